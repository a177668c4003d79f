//! Solver overhead on synthetic graphs whose ops do nothing: what is measured is
//! graph loading, scheduling, deduplication and cache-key work per vertex.

use std::sync::Arc;

use buildd_engine::cache::MemoryIndex;
use buildd_engine::solver::testing::{ScriptWorker, chain, lattice, wide};
use buildd_engine::solver::{BuildCtx, Graph, SolveRequest, Solver, SolverConfig};
use buildd_proto::llb::Definition;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

/// As the `buildd` binary: measured with the allocator it ships with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn solve_cold(rt: &tokio::runtime::Runtime, def: &Definition) {
    let solver = Solver::new(
        ScriptWorker::default(),
        Arc::new(MemoryIndex::default()),
        SolverConfig::default(),
    );
    rt.block_on(async {
        let graph = Arc::new(Graph::load(def).unwrap());
        solver
            .solve(SolveRequest {
                graph,
                ctx: Arc::new(BuildCtx::default()),
                progress: None,
            })
            .await
            .unwrap();
    });
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let graphs = [
        ("wide-10k", wide(10_000, &[])),
        ("chain-10k", chain(10_000)),
        ("lattice-100x100", lattice(100, 100)),
    ];
    let mut group = c.benchmark_group("solve-noop");
    group.sample_size(10);
    for (name, def) in &graphs {
        group.throughput(Throughput::Elements(def.def.len() as u64));
        group.bench_function(*name, |b| {
            b.iter_batched(|| (), |_| solve_cold(&rt, def), BatchSize::PerIteration)
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
