//! Cache-key work for `COPY . /app` over a 20,000-file context: walking and
//! selecting, then hashing contents cold (every file read) and warm (per-file
//! hashes from the stat cache, as on a rebuild).

use std::collections::HashMap;
use std::sync::Mutex;

use buildd_fsutil::hash::{HashCache, StatKey, selection_digest};
use buildd_fsutil::select::{SelectOptions, select};
use buildd_proto::Digest;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const FILES: usize = 20_000;

#[derive(Default)]
struct MemCache(Mutex<HashMap<StatKey, Digest>>);

impl HashCache for MemCache {
    fn get(&self, key: &StatKey) -> Option<Digest> {
        self.0.lock().unwrap().get(key).copied()
    }
    fn put(&self, key: &StatKey, digest: Digest) {
        self.0.lock().unwrap().insert(key.clone(), digest);
    }
}

/// As the `buildd` binary: measured with the allocator it ships with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..FILES {
        let sub = dir.path().join(format!("d{:03}/e{:02}", i % 200, i % 7));
        std::fs::create_dir_all(&sub).unwrap();
        // Small source-like files of varying size.
        std::fs::write(sub.join(format!("f{i}.txt")), "x".repeat(64 + i % 2048)).unwrap();
    }
    let opts = SelectOptions::default();
    let mut group = c.benchmark_group("context-20k");
    group.sample_size(10);
    group.throughput(Throughput::Elements(FILES as u64));
    group.bench_function("select", |b| {
        b.iter(|| select(dir.path(), ".", &opts).unwrap())
    });
    group.bench_function("select+hash-cold", |b| {
        b.iter(|| {
            let sel = select(dir.path(), ".", &opts).unwrap();
            selection_digest(dir.path(), &sel, None).unwrap()
        })
    });
    let cache = MemCache::default();
    let sel = select(dir.path(), ".", &opts).unwrap();
    selection_digest(dir.path(), &sel, Some(&cache)).unwrap();
    group.bench_function("select+hash-warm", |b| {
        b.iter(|| {
            let sel = select(dir.path(), ".", &opts).unwrap();
            selection_digest(dir.path(), &sel, Some(&cache)).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
