mod common;

use std::fs;
use std::io::Read;
use std::path::Path;

use buildd_snapshot::{LayeredView, Snapshot, SnapshotError};
use common::{layer, opaque, symlink, whiteout, write};

fn names(view: &LayeredView<'_>, p: &str) -> Vec<String> {
    view.read_dir(Path::new(p))
        .unwrap()
        .into_iter()
        .map(|e| e.name.to_string_lossy().into_owned())
        .collect()
}

fn read(view: &LayeredView<'_>, p: &str) -> String {
    let mut s = String::new();
    view.open(Path::new(p))
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    s
}

#[test]
fn three_layers_merge_with_whiteouts_and_opaque_dirs() {
    let (_d, store) = common::store();
    let s = layer(&store, &Snapshot::scratch(), "01", |r| {
        write(r, "etc/a", "a1");
        write(r, "etc/b", "b1");
        write(r, "opq/old", "old");
        write(r, "gone/x", "x");
        write(r, "file-then-dir", "f");
    });
    let s = layer(&store, &s, "02", |r| {
        write(r, "etc/a", "a2");
        write(r, "etc/c", "c2");
        whiteout(&r.join("gone"));
        write(r, "opq/mid", "mid");
        fs::remove_dir_all(r.join("file-then-dir")).ok();
        write(r, "file-then-dir/inner", "i");
    });
    let s = layer(&store, &s, "03", |r| {
        fs::create_dir_all(r.join("etc")).unwrap();
        whiteout(&r.join("etc/b"));
        fs::create_dir_all(r.join("opq")).unwrap();
        opaque(&r.join("opq"));
        write(r, "opq/new", "new");
        write(r, "gone/back", "back");
    });
    let view = LayeredView::new(&store, &s).unwrap();
    assert_eq!(names(&view, "/"), ["etc", "file-then-dir", "gone", "opq"]);
    assert_eq!(names(&view, "/etc"), ["a", "c"]);
    assert_eq!(read(&view, "/etc/a"), "a2");
    assert!(view.lstat(Path::new("/etc/b")).unwrap().is_none());
    // Opaque: the lower layers' opq/old and opq/mid are hidden.
    assert_eq!(names(&view, "/opq"), ["new"]);
    // A directory above a whiteout starts afresh.
    assert_eq!(names(&view, "/gone"), ["back"]);
    // A directory above a file does not merge with it.
    assert_eq!(names(&view, "/file-then-dir"), ["inner"]);
    assert!(
        view.lstat(Path::new("/file-then-dir"))
            .unwrap()
            .unwrap()
            .is_dir()
    );

    // Each layer on its own is still intact.
    let bottom = LayeredView::new(&store, &Snapshot::new(vec![s.layers()[0].clone()])).unwrap();
    assert_eq!(names(&bottom, "/opq"), ["old"]);
    assert_eq!(read(&bottom, "/etc/b"), "b1");
}

#[test]
fn symlinks_resolve_inside_the_view() {
    let (_d, store) = common::store();
    let s = layer(&store, &Snapshot::scratch(), "01", |r| {
        write(r, "data/f", "inside");
        symlink(r, "abs", "/data");
        symlink(r, "up", "../../../../data");
        symlink(r, "root", "/");
        symlink(r, "etc", "/../../..");
        symlink(r, "loop1", "loop2");
        symlink(r, "loop2", "loop1");
    });
    let view = LayeredView::new(&store, &s).unwrap();
    assert_eq!(read(&view, "/abs/f"), "inside");
    assert_eq!(read(&view, "/up/f"), "inside");
    assert_eq!(read(&view, "/root/data/f"), "inside");
    assert_eq!(read(&view, "/etc/etc/root/../data/f"), "inside");
    assert_eq!(
        names(&view, "/etc"),
        ["abs", "data", "etc", "loop1", "loop2", "root", "up"]
    );
    assert_eq!(
        view.readlink(Path::new("/abs")).unwrap(),
        Path::new("/data")
    );
    assert!(
        view.lstat(Path::new("/abs"))
            .unwrap()
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(view.stat(Path::new("/abs")).unwrap().unwrap().is_dir());
    let e = view.open(Path::new("/loop1")).unwrap_err();
    assert!(matches!(e, SnapshotError::SymlinkLoop(_)), "{e}");
    assert!(matches!(
        view.open(Path::new("/data")),
        Err(SnapshotError::NotAFile(_))
    ));
    assert!(matches!(
        view.read_dir(Path::new("/data/f")),
        Err(SnapshotError::NotADirectory(_))
    ));
}

#[test]
fn scratch_is_an_empty_root() {
    let (_d, store) = common::store();
    let view = LayeredView::new(&store, &Snapshot::scratch()).unwrap();
    assert!(view.read_dir(Path::new("/")).unwrap().is_empty());
    assert!(view.lstat(Path::new("/x")).unwrap().is_none());
}

#[test]
fn a_missing_layer_is_an_error() {
    let (_d, store) = common::store();
    let s = Snapshot::new(vec![buildd_snapshot::LayerId::new("ff").unwrap()]);
    let e = LayeredView::new(&store, &s).unwrap_err();
    assert_eq!(e.to_string(), "layer ff does not exist");
}

/// What committed layers hold is cached per directory (deep stacks are looked up
/// with hash probes, not a stat per layer): lookups answer the same the second
/// time, through whiteouts and opaque directories, and a removed layer is gone.
#[test]
fn a_deep_stack_resolves_the_same_from_the_cache() {
    let (_d, store) = common::store();
    let mut s = Snapshot::scratch();
    for i in 0..200 {
        s = layer(&store, &s, &format!("{i:04x}"), |r| {
            write(r, &format!("f{i}"), &i.to_string());
            write(r, "d/top", &i.to_string());
            if i == 150 {
                whiteout(&r.join("f5"));
                opaque(&r.join("d"));
            }
        });
    }
    let top = s.clone();
    s = layer(&store, &s, "ffff", |r| write(r, "d/last", "last"));
    for round in 0..2 {
        let view = LayeredView::new(&store, &s).unwrap();
        assert_eq!(read(&view, "/f0"), "0", "round {round}");
        assert_eq!(read(&view, "/f199"), "199");
        assert_eq!(read(&view, "/d/top"), "199");
        assert!(view.lstat(Path::new("/f5")).unwrap().is_none());
        assert!(view.lstat(Path::new("/f6")).unwrap().is_some());
        assert!(view.lstat(Path::new("/nothing")).unwrap().is_none());
        assert_eq!(names(&view, "/d"), ["last", "top"]);
    }
    store.remove(s.top().unwrap()).unwrap();
    let e = LayeredView::new(&store, &s).unwrap_err();
    assert_eq!(e.to_string(), "layer ffff does not exist");
    let view = LayeredView::new(&store, &top).unwrap();
    assert!(view.lstat(Path::new("/d/last")).unwrap().is_none());
}
