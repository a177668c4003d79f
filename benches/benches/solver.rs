//! Solver overhead on synthetic graphs whose ops do nothing: what is measured is
//! graph loading, scheduling, deduplication and cache-key work per vertex. Then
//! the same with the real worker and sled index (`solve-file`): file ops that
//! each commit a layer in a root on disk, cold (a fresh salt each time) and warm.

use std::sync::Arc;

use buildd_engine::cache::MemoryIndex;
use buildd_engine::engine::Engine;
use buildd_engine::solver::testing::{ScriptWorker, chain, file_chain, file_wide, lattice, wide};
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

fn solve_with(rt: &tokio::runtime::Runtime, engine: &Engine, def: &Definition) {
    rt.block_on(async {
        let graph = Arc::new(Graph::load(def).unwrap());
        engine
            .solver
            .solve(SolveRequest {
                graph,
                ctx: Arc::new(BuildCtx::default()),
                progress: None,
            })
            .await
            .unwrap();
    });
}

/// A graph of `n` vertices salted with the given string.
type MakeGraph = fn(usize, &str) -> Definition;

fn bench_real(c: &mut Criterion) {
    // The layer store needs root (it keeps owners); others skip this group.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: solve-file needs root");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), SolverConfig::default()).unwrap();
    let salt = std::sync::atomic::AtomicU64::new(0);
    let fresh = || {
        salt.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_string()
    };
    let shapes: [(&str, MakeGraph, usize); 2] =
        [("chain", file_chain, 1_000), ("wide", file_wide, 1_000)];
    let mut group = c.benchmark_group("solve-file");
    group.sample_size(10);
    for (name, make, n) in shapes {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("{name}-{n}-cold"), |b| {
            b.iter_batched(
                || make(n, &fresh()),
                |def| solve_with(&rt, &engine, &def),
                BatchSize::PerIteration,
            )
        });
        let warm = make(n, &fresh());
        solve_with(&rt, &engine, &warm);
        group.bench_function(format!("{name}-{n}-warm"), |b| {
            b.iter(|| solve_with(&rt, &engine, &warm))
        });
    }
    group.finish();
}

criterion_group!(benches, bench, bench_real);
criterion_main!(benches);
