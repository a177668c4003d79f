mod common;

use std::fs;
use std::path::Path;

use buildd_proto::llb::{FileActionMkDir, FileActionRm, file_action::Action};
use buildd_snapshot::{LayeredView, Snapshot};
use common::{
    apply, has, layer, line, mkdir, mkfile, rm, set_mtime, symlink, symlink_action, top, write,
};

const SEC: i64 = 1_000_000_000;

#[test]
fn mkdir_with_parents_on_scratch() {
    let (_d, store) = common::store();
    let act = Action::Mkdir(FileActionMkDir {
        path: "/a/b/c".into(),
        mode: 0o700,
        make_parents: true,
        timestamp: Some(5 * SEC),
        ..Default::default()
    });
    let s = apply(&store, &Snapshot::scratch(), "01", vec![act], &[]).unwrap();
    assert_eq!(
        top(&store, &s),
        [
            "a dir 700 0:0 mtime=5.000000000",
            "a/b dir 700 0:0 mtime=5.000000000",
            "a/b/c dir 700 0:0 mtime=5.000000000"
        ]
    );
    // The diff root stands for the scratch root.
    let root = fs::metadata(store.diff_dir(&s.layers()[0])).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::mode(&root) & 0o7777, 0o755);
}

#[test]
fn mkdir_without_parents_names_the_missing_one() {
    let (_d, store) = common::store();
    let e = apply(
        &store,
        &Snapshot::scratch(),
        "01",
        vec![mkdir("/x/y", 0o755, false)],
        &[],
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"mkdir "/x/y": parent directory "/x" does not exist"#
    );
    let e = apply(
        &store,
        &Snapshot::scratch(),
        "01",
        vec![mkfile("/f", ""), mkdir("/f", 0o755, false)],
        &[],
    )
    .unwrap_err();
    assert_eq!(e.to_string(), r#"mkdir "/f": file exists"#);
    let e = apply(
        &store,
        &Snapshot::scratch(),
        "01",
        vec![mkfile("/f", ""), mkdir("/f/g", 0o755, true)],
        &[],
    )
    .unwrap_err();
    assert_eq!(e.to_string(), r#"mkdir "/f/g": "/f" is not a directory"#);
}

#[test]
fn writing_below_a_lower_directory_copies_it_up() {
    let (_d, store) = common::store();
    let base = layer(&store, &Snapshot::scratch(), "01", |r| {
        write(r, "usr/lib/old", "o");
        fs::set_permissions(
            r.join("usr/lib"),
            std::os::unix::fs::PermissionsExt::from_mode(0o750),
        )
        .unwrap();
        std::os::unix::fs::lchown(r.join("usr/lib"), Some(7), Some(8)).unwrap();
        set_mtime(&r.join("usr/lib"), 100, 0);
        set_mtime(&r.join("usr"), 200, 0);
    });
    let s = apply(&store, &base, "02", vec![mkfile("/usr/lib/new", "n")], &[]).unwrap();
    assert_eq!(
        top(&store, &s),
        [
            // usr's entries did not change: it keeps its lower mtime.
            "usr dir 755 0:0 mtime=200.000000000",
            // usr/lib gained a child at the action's time (unset: the epoch).
            "usr/lib dir 750 7:8 mtime=0.000000000",
            "usr/lib/new file 1 \"n\" ino0 644 0:0 mtime=0.000000000",
        ]
    );
    let view = LayeredView::new(&store, &s).unwrap();
    let names: Vec<_> = view
        .read_dir(Path::new("/usr/lib"))
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["new", "old"]);
}

#[test]
fn mkfile_overwrites_and_refuses_directories() {
    let (_d, store) = common::store();
    let base = layer(&store, &Snapshot::scratch(), "01", |r| write(r, "f", "old"));
    let s = apply(&store, &base, "02", vec![mkfile("/f", "new")], &[]).unwrap();
    assert!(line(&top(&store, &s), "f").contains("\"new\""));
    let e = apply(&store, &base, "03", vec![mkfile("/", "x")], &[]).unwrap_err();
    assert_eq!(e.to_string(), r#"mkfile "/": is a directory"#);
}

#[test]
fn symlink_creates_and_refuses_to_overwrite() {
    let (_d, store) = common::store();
    let s = apply(
        &store,
        &Snapshot::scratch(),
        "01",
        vec![symlink_action("/nowhere", "/l")],
        &[],
    )
    .unwrap();
    assert_eq!(
        top(&store, &s),
        ["l link -> /nowhere 0 0:0 mtime=0.000000000"]
    );
    let e = apply(&store, &s, "02", vec![symlink_action("x", "/l")], &[]).unwrap_err();
    assert_eq!(e.to_string(), r#"symlink "/l": file exists"#);
}

#[test]
fn rm_whites_out_lower_paths_only() {
    let (_d, store) = common::store();
    let base = layer(&store, &Snapshot::scratch(), "01", |r| {
        write(r, "a/f", "f");
        write(r, "a/g", "g");
        write(r, "d/x/y", "y");
    });
    let s = apply(
        &store,
        &base,
        "02",
        vec![rm("/a/f"), mkfile("/a/tmp", "t"), rm("/a/tmp"), rm("/d")],
        &[],
    )
    .unwrap();
    assert_eq!(
        top(&store, &s),
        [
            "a dir 755 0:0 mtime=0.000000000",
            "a/f whiteout 0 0:0 mtime=0.000000000",
            "d whiteout 0 0:0 mtime=0.000000000",
        ]
    );
    let view = LayeredView::new(&store, &s).unwrap();
    assert!(view.lstat(Path::new("/a/f")).unwrap().is_none());
    assert!(view.lstat(Path::new("/a/g")).unwrap().is_some());
    assert!(view.lstat(Path::new("/d/x")).unwrap().is_none());
}

#[test]
fn rm_missing_paths_and_wildcards() {
    let (_d, store) = common::store();
    let base = layer(&store, &Snapshot::scratch(), "01", |r| {
        write(r, "a/x.log", "");
        write(r, "a/y.log", "");
        write(r, "a/keep.txt", "");
    });
    let e = apply(&store, &base, "02", vec![rm("/a/nope")], &[]).unwrap_err();
    assert_eq!(e.to_string(), r#"rm "/a/nope": no such file or directory"#);
    let e = apply(&store, &base, "02", vec![rm("/")], &[]).unwrap_err();
    assert_eq!(e.to_string(), r#"rm "/": cannot remove the root directory"#);
    let lenient = |p: &str, wildcard| {
        Action::Rm(FileActionRm {
            path: p.into(),
            allow_not_found: true,
            allow_wildcard: wildcard,
        })
    };
    let s = apply(
        &store,
        &base,
        "02",
        vec![
            lenient("/a/nope", false),
            lenient("/b/c", false),
            lenient("/a/*.log", true),
        ],
        &[],
    )
    .unwrap();
    let t = top(&store, &s);
    assert!(
        t[1].starts_with("a/x.log whiteout") && t[2].starts_with("a/y.log whiteout"),
        "{t:#?}"
    );
    assert_eq!(t.len(), 3);
}

#[test]
fn a_directory_recreated_after_rm_is_opaque() {
    let (_d, store) = common::store();
    let base = layer(&store, &Snapshot::scratch(), "01", |r| {
        write(r, "d/old", "o")
    });
    let s = apply(
        &store,
        &base,
        "02",
        vec![rm("/d"), mkdir("/d", 0o755, false), mkfile("/d/new", "n")],
        &[],
    )
    .unwrap();
    assert_eq!(
        top(&store, &s),
        [
            "d dir opaque 755 0:0 mtime=0.000000000",
            "d/new file 1 \"n\" ino0 644 0:0 mtime=0.000000000"
        ]
    );
    let view = LayeredView::new(&store, &s).unwrap();
    assert_eq!(view.read_dir(Path::new("/d")).unwrap().len(), 1);
}

#[test]
fn symlinks_in_the_base_cannot_lead_writes_out_of_the_diff() {
    let d = tempfile::tempdir().unwrap();
    let store = buildd_snapshot::LayerStore::open(&d.path().join("store")).unwrap();
    let base = layer(&store, &Snapshot::scratch(), "01", |r| {
        symlink(r, "etc", "/");
        symlink(r, "x", "../../..");
        symlink(r, "abs", "/../../../../tmp");
        symlink(r, "victim", "../../../../outside-victim");
    });
    let actions = vec![
        mkdir("/x/y", 0o755, true),
        mkfile("/etc/passwd", "p"),
        mkdir("/abs/z", 0o755, true),
        mkfile("/victim", "v"),
        mkdir("/x/x/x/deep/er", 0o755, true),
    ];
    let s = apply(&store, &base, "02", actions, &[]).unwrap();
    let t = top(&store, &s);
    for p in ["y", "passwd", "tmp/z", "outside-victim", "deep/er"] {
        assert!(has(&t, p), "{p} missing from {t:#?}");
    }
    // Nothing besides the store appeared next to it.
    let around: Vec<_> = fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(around, ["store"]);
    let layers: Vec<_> = fs::read_dir(d.path().join("store/layers"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(layers.len(), 2);
}
