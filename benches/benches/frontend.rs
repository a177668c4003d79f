//! Parse and compile of a 2,000-instruction, 50-stage Dockerfile (the generator is
//! shared with the frontend's scale tests): parsing, compiling the parsed file,
//! and both.

#[path = "../../frontend/tests/common/big.rs"]
mod big;

use buildd_frontend::{BuildOptions, compile, compile_parsed, parse};
use criterion::{Criterion, criterion_group, criterion_main};

/// As the `buildd` binary: measured with the allocator it ships with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let text = big::dockerfile();
    let opts = BuildOptions::new(buildd_oci::host_platform());
    let mut group = c.benchmark_group("frontend-2000x50");
    group.bench_function("parse", |b| b.iter(|| parse(&text).unwrap()));
    let ast = parse(&text).unwrap();
    group.bench_function("compile", |b| {
        b.iter(|| compile_parsed(&text, &ast, &opts).unwrap())
    });
    group.bench_function("parse+compile", |b| {
        b.iter(|| compile(&text, &opts).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
