//! COPY that shares storage: a copied file becomes a hard link to an immutable
//! source when nothing about it changes, and a copy of its own otherwise.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use buildd_proto::llb::file_action::Action;
use buildd_snapshot::{
    CopySource, LayerId, LayerStore, Snapshot, apply_file_op, apply_file_op_shared,
};
use common::{copy, op, set_mtime, write};

fn ino(p: &Path) -> u64 {
    std::fs::symlink_metadata(p).unwrap().ino()
}

/// A context beside the store (one filesystem), owned by root like a mirror's.
fn context(base: &Path) -> std::path::PathBuf {
    let ctx = base.join("ctx");
    write(&ctx, "a.txt", "A");
    write(&ctx, "dir/b.txt", "B");
    for p in ["a.txt", "dir/b.txt"] {
        std::os::unix::fs::lchown(ctx.join(p), Some(0), Some(0)).unwrap();
        set_mtime(&ctx.join(p), 1000, 7);
    }
    ctx
}

fn apply(
    store: &LayerStore,
    id: &str,
    shared: bool,
    action: buildd_proto::llb::FileActionCopy,
    sources: &[CopySource<'_>],
) -> Snapshot {
    let op = op(vec![Action::Copy(action)]);
    let base = Snapshot::scratch();
    let pending = if shared {
        apply_file_op_shared(store, &base, &op, sources)
    } else {
        apply_file_op(store, &base, &op, sources)
    }
    .unwrap();
    let id = LayerId::new(id).unwrap();
    pending.commit(&id).unwrap();
    base.with_layer(id)
}

#[test]
fn copies_from_immutable_sources_are_links_and_the_rest_are_copies() {
    let (d, store) = common::store();
    let ctx = context(d.path());
    let sel = BTreeMap::new();
    let dir = |immutable| CopySource::Dir {
        root: &ctx,
        excludes: None,
        selections: &sel,
        immutable,
    };
    let in_layer = |s: &Snapshot, p: &str| store.diff_dir(s.top().unwrap()).join(p);

    let linked = apply(&store, "01", true, copy(0, ".", "/app/"), &[dir(true)]);
    assert_eq!(
        ino(&in_layer(&linked, "app/a.txt")),
        ino(&ctx.join("a.txt"))
    );
    assert_eq!(
        ino(&in_layer(&linked, "app/dir/b.txt")),
        ino(&ctx.join("dir/b.txt"))
    );

    // A directory the user may change: always a copy.
    let mutable = apply(&store, "02", true, copy(0, ".", "/app/"), &[dir(false)]);
    assert_ne!(
        ino(&in_layer(&mutable, "app/a.txt")),
        ino(&ctx.join("a.txt"))
    );

    // A layer that may be written to (a read-write mount): always a copy.
    let writable = apply(&store, "03", false, copy(0, ".", "/app/"), &[dir(true)]);
    assert_ne!(
        ino(&in_layer(&writable, "app/a.txt")),
        ino(&ctx.join("a.txt"))
    );

    // --chmod and --chown change the file: a copy, and the source keeps its own.
    let mut chmod = copy(0, "a.txt", "/a.txt");
    chmod.mode = Some(0o600);
    let changed = apply(&store, "04", true, chmod, &[dir(true)]);
    let copied = in_layer(&changed, "a.txt");
    assert_ne!(ino(&copied), ino(&ctx.join("a.txt")));
    assert_eq!(std::fs::metadata(&copied).unwrap().mode() & 0o7777, 0o600);
    assert_eq!(
        std::fs::metadata(ctx.join("a.txt")).unwrap().mode() & 0o7777,
        0o644
    );

    // COPY --from a committed layer links to that layer's file.
    let from = apply(
        &store,
        "05",
        true,
        copy(0, "/app", "/again/"),
        &[CopySource::Snapshot(&linked)],
    );
    assert_eq!(
        ino(&in_layer(&from, "again/a.txt")),
        ino(&in_layer(&linked, "app/a.txt"))
    );
    assert_eq!(
        std::fs::read(in_layer(&from, "again/dir/b.txt")).unwrap(),
        b"B"
    );
}
