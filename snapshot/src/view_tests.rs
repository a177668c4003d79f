//! A view through the merged tree must read exactly as one that probes every
//! layer: random stacks with whiteouts, opaque directories, and files and
//! directories replacing each other, walked both ways.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::*;
use crate::store::LayerId;

const PATHS: &[&str] = &["a", "b", "a/x", "a/y", "a/b", "a/b/z", "c", "c/q", "c/q/r"];

/// xorshift: deterministic without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Writes a random change of `PATHS` into `dir`, a layer being built.
fn scribble(dir: &Path, rng: &mut Rng) {
    for _ in 0..4 {
        let rel = PATHS[rng.next(PATHS.len())];
        let p = dir.join(rel);
        if p.symlink_metadata().is_ok() {
            continue;
        }
        if let Some(parent) = p.parent()
            && fs::create_dir_all(parent).is_err()
        {
            continue; // a file of this layer is where a parent would go
        }
        match rng.next(5) {
            0 => fs::write(&p, rel).unwrap(),
            1 => fs::create_dir(&p).unwrap(),
            2 => sys::make_whiteout(&p).unwrap(),
            3 => {
                fs::create_dir(&p).unwrap();
                sys::set_opaque(&p).unwrap();
            }
            _ => std::os::unix::fs::symlink("a", &p).unwrap(),
        }
    }
}

/// Everything a view shows: each path with the host file it reads.
fn shown(view: &LayeredView<'_>) -> Vec<(PathBuf, PathBuf, bool)> {
    let root = view.root().unwrap();
    let mut out: Vec<_> = view
        .walk(&root)
        .unwrap()
        .into_iter()
        .map(|n| (n.rel.clone(), view.host_path(&n), n.is_dir()))
        .collect();
    for missing in ["nothing", "a/nothing", "c/q/nothing"] {
        if let Ok(r) = view.resolve(Path::new(missing), false) {
            assert!(r.node.is_none(), "{missing}");
        }
    }
    for p in ["a/x", "a/b/z", "c/q/r"] {
        let got = format!("{:?}", view.stat(Path::new(p)).map(|m| m.map(|m| m.ino())));
        out.push((PathBuf::from(p), PathBuf::from(got), false));
    }
    out
}

#[test]
fn merged_trees_read_as_probing_every_layer_does() {
    for seed in 1..=40u64 {
        let dir = tempfile::tempdir().unwrap();
        let store = LayerStore::open(dir.path()).unwrap();
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut snap = Snapshot::scratch();
        for i in 0..12 {
            let p = store.begin().unwrap();
            scribble(p.path(), &mut rng);
            if rng.next(8) == 0 {
                sys::set_opaque(p.path()).unwrap();
            }
            let id = LayerId::new(format!("{seed:x}0{i:x}")).unwrap();
            p.commit(&id).unwrap();
            snap = snap.with_layer(id);
            let probed = LayeredView::build(&store, &snap, usize::MAX).unwrap();
            let merged = LayeredView::build(&store, &snap, 0).unwrap();
            assert!(merged.layers.is_empty());
            assert_eq!(
                shown(&probed),
                shown(&merged),
                "seed {seed}, {} layers",
                i + 1
            );

            let upper = tempfile::tempdir().unwrap();
            scribble(upper.path(), &mut rng);
            let probed = LayeredView::open_with_upper(&store, &snap, upper.path(), usize::MAX);
            let merged = LayeredView::open_with_upper(&store, &snap, upper.path(), 0);
            assert_eq!(
                shown(&probed.unwrap()),
                shown(&merged.unwrap()),
                "seed {seed}, {} layers and an upper",
                i + 1
            );
        }
    }
}
