mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use buildd_fsutil::dockerignore::PatternMatcher;
use buildd_proto::llb::{ChownOpt, FileActionCopy, file_action::Action};
use buildd_snapshot::{CopySource, LayeredView, Snapshot};
use common::{apply, copy, has, layer, line, listing, mkdir, set_mtime, symlink, top, write};

/// A build context with fixed times and a non-root owner, so copies can be checked.
fn context() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    write(r, "a.txt", "A");
    write(r, "b.txt", "B");
    write(r, "src/main.rs", "fn main() {}");
    write(r, "src/lib/x.rs", "x");
    write(r, "secret.key", "k");
    write(r, "target/out", "o");
    symlink(r, "src/link", "main.rs");
    symlink(r, "alink", "a.txt");
    fs::hard_link(r.join("a.txt"), r.join("src/a-hard")).unwrap();
    fs::set_permissions(r.join("b.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    for e in [
        "a.txt",
        "b.txt",
        "src/main.rs",
        "src/lib/x.rs",
        "secret.key",
        "target/out",
        "src/link",
        "alink",
        "src/lib",
        "target",
        "src",
        "",
    ] {
        let p = r.join(e);
        std::os::unix::fs::lchown(&p, Some(1234), Some(1234)).unwrap();
        set_mtime(&p, 1000, 7);
    }
    d
}

fn act(c: FileActionCopy) -> Action {
    Action::Copy(c)
}

#[test]
fn copying_a_context_directory_with_dockerignore() {
    let (_d, store) = common::store();
    let ctx = context();
    let ignore = PatternMatcher::new(&["*.key".to_owned(), "target".to_owned()]).unwrap();
    let src = [CopySource::Dir {
        root: ctx.path(),
        excludes: Some(&ignore),
        selections: &BTreeMap::new(),
        immutable: false,
    }];
    let s = apply(
        &store,
        &Snapshot::scratch(),
        "01",
        vec![act(copy(0, ".", "/app/"))],
        &src,
    )
    .unwrap();
    let t = top(&store, &s);
    assert_eq!(
        t,
        [
            // Created for the copy: the action's time (unset: the epoch).
            "app dir 755 0:0 mtime=0.000000000",
            "app/a.txt file 1 \"A\" ino0 644 0:0 mtime=1000.000000007",
            "app/alink link -> a.txt 0 0:0 mtime=1000.000000007",
            "app/b.txt file 1 \"B\" ino1 600 0:0 mtime=1000.000000007",
            "app/src dir 755 0:0 mtime=1000.000000007",
            "app/src/a-hard file 1 \"A\" ino0 644 0:0 mtime=1000.000000007",
            "app/src/lib dir 755 0:0 mtime=1000.000000007",
            "app/src/lib/x.rs file 1 \"x\" ino2 644 0:0 mtime=1000.000000007",
            "app/src/link link -> main.rs 0 0:0 mtime=1000.000000007",
            "app/src/main.rs file 12 \"fn main() {}\" ino3 644 0:0 mtime=1000.000000007",
        ]
    );
}

#[test]
fn wildcards_files_and_directories_land_where_docker_puts_them() {
    let (_d, store) = common::store();
    let ctx = context();
    let src = [CopySource::Dir {
        root: ctx.path(),
        excludes: None,
        selections: &BTreeMap::new(),
        immutable: false,
    }];
    let base = apply(
        &store,
        &Snapshot::scratch(),
        "01",
        vec![mkdir("/dst", 0o755, false)],
        &[],
    )
    .unwrap();
    let mut no_contents = copy(0, "src", "/nested/");
    no_contents.dir_copy_contents = false;
    let actions = vec![
        act(copy(0, "*.txt", "/multi")),    // several matches: a directory
        act(copy(0, "a.txt", "/dst")),      // onto an existing directory: inside it
        act(copy(0, "b.txt", "/renamed")),  // a new name
        act(copy(0, "alink", "/followed")), // the named symlink is followed
        act(copy(0, "src/lib", "/lib")),    // a directory's contents
        act(no_contents),                   // the directory itself
    ];
    let s = apply(&store, &base, "02", actions, &src).unwrap();
    let t = top(&store, &s);
    for p in [
        "multi/a.txt",
        "multi/b.txt",
        "dst/a.txt",
        "renamed",
        "lib/x.rs",
        "nested/src/lib/x.rs",
        "nested/src/main.rs",
    ] {
        assert!(has(&t, p), "{p} missing from {t:#?}");
    }
    assert!(line(&t, "followed").contains("file 1 \"A\""), "{t:#?}");
    assert!(line(&t, "renamed").contains("\"B\""));
    assert!(!has(&t, "lib/lib"));
}

#[test]
fn copy_errors_name_the_action_and_path() {
    let (_d, store) = common::store();
    let ctx = context();
    let src = [CopySource::Dir {
        root: ctx.path(),
        excludes: None,
        selections: &BTreeMap::new(),
        immutable: false,
    }];
    let run = |actions| {
        apply(&store, &Snapshot::scratch(), "01", actions, &src)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        run(vec![act(copy(0, "nope", "/x"))]),
        r#"copy "nope": no such file or directory"#
    );
    assert_eq!(
        run(vec![act(copy(0, "*.nope", "/x/"))]),
        r#"copy "*.nope": no source files matched"#
    );
    let mut strict = copy(0, "a.txt", "/no/such/dir/f");
    strict.create_dest_path = false;
    assert_eq!(
        run(vec![act(strict)]),
        r#"copy "/no/such/dir/f": parent directory "/no" does not exist"#
    );
    assert_eq!(
        run(vec![
            common::mkfile("/app", "f"),
            act(copy(0, "src", "/app"))
        ]),
        r#"copy "/app": not a directory"#
    );
    assert_eq!(
        run(vec![
            common::mkfile("/app/", "f"),
            act(copy(0, "*.txt", "/app/"))
        ]),
        r#"copy "/app/": not a directory"#
    );
    assert_eq!(
        run(vec![
            mkdir("/app/main.rs", 0o755, true),
            act(copy(0, "src", "/app"))
        ]),
        r#"copy "/app/main.rs": is a directory"#
    );
    assert_eq!(
        run(vec![act(copy(3, "a.txt", "/"))]),
        r#"copy "a.txt": input index 3 is out of range"#
    );
    let mut empty_ok = copy(0, "*.nope", "/x/");
    empty_ok.allow_empty_wildcard = true;
    let s = apply(
        &store,
        &Snapshot::scratch(),
        "02",
        vec![act(empty_ok)],
        &src,
    )
    .unwrap();
    assert!(top(&store, &s).is_empty());
}

#[test]
fn chmod_chown_by_name_and_timestamp() {
    let (_d, store) = common::store();
    let ctx = context();
    let base = layer(&store, &Snapshot::scratch(), "01", |r| {
        write(
            r,
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        );
        write(r, "etc/group", "root:x:0:\napp:x:1000:\nstaff:x:50:\n");
    });
    let src = [CopySource::Dir {
        root: ctx.path(),
        excludes: None,
        selections: &BTreeMap::new(),
        immutable: false,
    }];
    let mut c = copy(0, "src/lib", "/opt/lib/");
    c.owner = Some(ChownOpt {
        user_name: "app".into(),
        group_name: "staff".into(),
        ..Default::default()
    });
    c.mode = Some(0o751);
    c.timestamp = Some(42_000_000_000);
    let s = apply(&store, &base, "02", vec![act(c)], &src).unwrap();
    assert_eq!(
        top(&store, &s),
        [
            // Made on the way with the --chmod mode, as the reference BuildKit
            // does (tests/parity/cases/copy-chmod-parents).
            "opt dir 751 1000:50 mtime=42.000000000",
            "opt/lib dir 751 1000:50 mtime=42.000000000",
            "opt/lib/x.rs file 1 \"x\" ino0 751 1000:50 mtime=42.000000000",
        ]
    );
    // A name the filesystem does not know is root, as BuildKit resolves it.
    let mut c = copy(0, "a.txt", "/ghost.txt");
    c.owner = Some(ChownOpt {
        user_name: "ghost".into(),
        ..Default::default()
    });
    let s = apply(&store, &base, "03", vec![act(c)], &src).unwrap();
    assert!(
        top(&store, &s)
            .iter()
            .any(|l| l.starts_with("ghost.txt file") && l.contains(" 0:0 ")),
        "{:?}",
        top(&store, &s)
    );
}

#[test]
fn copying_from_a_snapshot_keeps_owners_and_filters() {
    let (_d, store) = common::store();
    let stage = layer(&store, &Snapshot::scratch(), "01", |r| {
        write(r, "build/bin/tool", "elf");
        write(r, "build/bin/tool.debug", "dbg");
        write(r, "build/doc/readme", "r");
        symlink(r, "build/bin/current", "tool");
        std::os::unix::fs::lchown(r.join("build/bin/tool"), Some(33), Some(44)).unwrap();
    });
    let stage = layer(&store, &stage, "02", |r| {
        fs::create_dir_all(r.join("build/doc")).unwrap();
        common::whiteout(&r.join("build/doc/readme"));
        symlink(r, "out", "/build");
    });
    let base = layer(&store, &Snapshot::scratch(), "03", |r| {
        fs::create_dir(r.join("usr")).unwrap()
    });
    let mut c = copy(0, "/out/", "/usr/local/");
    c.exclude_patterns = vec!["**/*.debug".into()];
    let s = apply(
        &store,
        &base,
        "04",
        vec![act(c)],
        &[CopySource::Snapshot(&stage)],
    )
    .unwrap();
    let t = top(&store, &s);
    assert!(line(&t, "usr/local/bin/tool").contains("33:44"), "{t:#?}");
    assert!(line(&t, "usr/local/bin/current").contains("link -> tool"));
    assert!(!has(&t, "usr/local/bin/tool.debug"));
    assert!(has(&t, "usr/local/doc") && !has(&t, "usr/local/doc/readme"));

    let mut c = copy(0, "build", "/only-bin");
    c.include_patterns = vec!["bin/tool".into()];
    let s = apply(
        &store,
        &base,
        "05",
        vec![act(c)],
        &[CopySource::Snapshot(&stage)],
    )
    .unwrap();
    let names: Vec<_> = top(&store, &s)
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["only-bin", "only-bin/bin", "only-bin/bin/tool"]);
}

#[test]
fn copies_cannot_escape_through_base_symlinks() {
    let d = tempfile::tempdir().unwrap();
    let store = buildd_snapshot::LayerStore::open(&d.path().join("store")).unwrap();
    let ctx = context();
    let base = layer(&store, &Snapshot::scratch(), "01", |r| {
        symlink(r, "x", "../../..");
        symlink(r, "etc", "/");
    });
    let src = [CopySource::Dir {
        root: ctx.path(),
        excludes: None,
        selections: &BTreeMap::new(),
        immutable: false,
    }];
    let s = apply(
        &store,
        &base,
        "02",
        vec![
            act(copy(0, "a.txt", "/x/y/")),
            act(copy(0, "src", "/etc/etc/z")),
        ],
        &src,
    )
    .unwrap();
    let t = top(&store, &s);
    assert!(has(&t, "y/a.txt") && has(&t, "z/main.rs"), "{t:#?}");
    let around: Vec<_> = fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(around, ["store"]);
}

#[test]
fn the_same_op_twice_gives_byte_identical_layers() {
    let ctx = context();
    let run = || {
        let (d, store) = common::store();
        let base = layer(&store, &Snapshot::scratch(), "01", |r| {
            write(r, "usr/share/doc", "d");
            write(r, "etc/old", "o");
            // Fixed times: the base itself must be identical in both runs.
            for p in ["usr/share", "usr", "etc"] {
                set_mtime(&r.join(p), 77, 7);
            }
        });
        let src = [CopySource::Dir {
            root: ctx.path(),
            excludes: None,
            selections: &BTreeMap::new(),
            immutable: false,
        }];
        let actions = vec![
            mkdir("/work/a/b", 0o750, true),
            act(copy(0, ".", "/usr/share/app/")),
            common::rm("/etc/old"),
            common::mkfile("/etc/new", "n"),
            common::symlink_action("../usr/share/app", "/etc/app"),
        ];
        let s = apply(&store, &base, "02", actions, &src).unwrap();
        let l = listing(&store.diff_dir(&s.layers()[1]));
        // The merged view reads back what was written.
        let view = LayeredView::new(&store, &s).unwrap();
        assert!(
            view.stat(Path::new("/etc/app/src/main.rs"))
                .unwrap()
                .unwrap()
                .is_file()
        );
        drop(d);
        l
    };
    let first = run();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = run();
    assert_eq!(first, second);
    assert!(
        line(&first, "usr/share").contains("mtime=0.000000000"),
        "{first:#?}"
    );
    // Copied up but not itself changed: keeps the lower mtime.
    assert!(
        line(&first, "usr").contains("mtime=77.000000007"),
        "{first:#?}"
    );
}
