use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use buildd_fsutil::dockerignore::{PatternMatcher, parse};
use buildd_fsutil::select::{EntryKind, SelectError, SelectOptions, Selection, path_order, select};

fn tree(files: &[&str]) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    for f in files {
        let p = t.path().join(f);
        if let Some(d) = f.strip_suffix('/') {
            fs::create_dir_all(t.path().join(d)).unwrap();
        } else {
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, f.as_bytes()).unwrap();
        }
    }
    t
}

fn sel(root: &Path, src: &str, opts: &SelectOptions<'_>) -> Selection {
    select(root, src, opts).unwrap_or_else(|e| panic!("select {src:?}: {e}"))
}

/// Each root as (rel, entry rels).
fn paths(s: &Selection) -> Vec<(String, Vec<String>)> {
    s.roots
        .iter()
        .map(|r| {
            (
                r.rel.clone(),
                r.entries.iter().map(|e| e.rel.clone()).collect(),
            )
        })
        .collect()
}

fn one_root(s: &Selection) -> Vec<String> {
    assert_eq!(s.roots.len(), 1, "{s:?}");
    paths(s).remove(0).1
}

fn ignore(text: &str) -> PatternMatcher {
    PatternMatcher::new(&parse(text)).unwrap()
}

#[test]
fn whole_directory_in_walk_order_including_empty_dirs() {
    let t = tree(&["a/b/c.txt", "a-b", "a/a.txt", "empty/", "z"]);
    let s = sel(t.path(), ".", &SelectOptions::default());
    assert_eq!(s.roots[0].rel, "");
    assert_eq!(
        one_root(&s),
        ["", "a", "a/a.txt", "a/b", "a/b/c.txt", "a-b", "empty", "z"]
    );
    let r = &s.roots[0];
    assert!(r.entries[0].is_dir());
    assert_eq!(r.entries[2].kind, EntryKind::File);
    assert_eq!(r.entries[2].size, "a/a.txt".len() as u64);
}

#[test]
fn source_paths_are_cleaned_and_clamped_at_the_root() {
    let t = tree(&["dir/f"]);
    for src in [
        "dir/f",
        "/dir/f",
        "./dir/f",
        "x/../dir/f",
        "../dir/f",
        "../../dir//./f",
    ] {
        let s = sel(t.path(), src, &SelectOptions::default());
        assert_eq!(
            paths(&s),
            [("dir/f".to_owned(), vec!["dir/f".to_owned()])],
            "{src}"
        );
    }
    for src in ["", "/", ".", ".."] {
        assert_eq!(
            sel(t.path(), src, &SelectOptions::default()).roots[0].rel,
            "",
            "{src:?}"
        );
    }
}

#[test]
fn missing_source_is_not_found_as_written() {
    let t = tree(&["a"]);
    let err = select(t.path(), "./foo.txt", &SelectOptions::default()).unwrap_err();
    assert!(matches!(&err, SelectError::NotFound { path } if path == "./foo.txt"));
    assert_eq!(err.to_string(), "\"./foo.txt\": not found");
    // Below a regular file is missing too, not an I/O error.
    assert!(matches!(
        select(t.path(), "a/b", &SelectOptions::default()),
        Err(SelectError::NotFound { .. })
    ));
}

#[test]
fn wildcards_match_per_segment_in_order() {
    let t = tree(&[
        "b.txt", "a.txt", "c.md", "d1/x.txt", "d2/x.txt", "d2/y.txt", "[a].txt",
    ]);
    let wild = SelectOptions {
        allow_wildcard: true,
        ..Default::default()
    };
    let s = sel(t.path(), "*.txt", &wild);
    let rels: Vec<_> = s.roots.iter().map(|r| r.rel.as_str()).collect();
    assert_eq!(rels, ["[a].txt", "a.txt", "b.txt"]);
    let s = sel(t.path(), "d*/x.txt", &wild);
    let rels: Vec<_> = s.roots.iter().map(|r| r.rel.as_str()).collect();
    assert_eq!(rels, ["d1/x.txt", "d2/x.txt"]);
    // A class is a wildcard; without wildcards it is a literal name.
    assert_eq!(sel(t.path(), "[a].txt", &wild).roots[0].rel, "a.txt");
    assert_eq!(
        sel(t.path(), "[a].txt", &SelectOptions::default()).roots[0].rel,
        "[a].txt"
    );
    assert!(matches!(
        select(t.path(), "*.txt", &SelectOptions::default()),
        Err(SelectError::NotFound { .. })
    ));
}

#[test]
fn empty_wildcard_is_an_error_unless_allowed() {
    let t = tree(&["a.txt"]);
    let mut opts = SelectOptions {
        allow_wildcard: true,
        ..Default::default()
    };
    let err = select(t.path(), "*.go", &opts).unwrap_err();
    assert_eq!(err.to_string(), "\"*.go\": no source files matched");
    opts.allow_empty_wildcard = true;
    assert!(sel(t.path(), "*.go", &opts).roots.is_empty());
    assert!(matches!(
        select(t.path(), "[", &opts),
        Err(SelectError::Wildcard { .. })
    ));
}

#[test]
fn symlinks_followed_at_the_top_and_kept_below() {
    let t = tree(&["real/f", "real/sub/g"]);
    let r = t.path();
    symlink("real", r.join("link")).unwrap();
    symlink("sub", r.join("real/sublink")).unwrap();
    symlink("f", r.join("real/flink")).unwrap();

    let follow = SelectOptions {
        follow_symlink: true,
        ..Default::default()
    };
    let s = sel(r, "link", &follow);
    assert_eq!(s.roots[0].rel, "link");
    assert_eq!(
        one_root(&s),
        [
            "real",
            "real/f",
            "real/flink",
            "real/sub",
            "real/sub/g",
            "real/sublink"
        ]
    );
    let kinds: Vec<_> = s.roots[0].entries.iter().map(|e| e.kind.clone()).collect();
    assert_eq!(kinds[2], EntryKind::Symlink { target: "f".into() });
    assert_eq!(
        kinds[5],
        EntryKind::Symlink {
            target: "sub".into()
        }
    );

    let s = sel(r, "link", &SelectOptions::default());
    assert_eq!(one_root(&s), ["link"]);
    assert_eq!(
        s.roots[0].entries[0].kind,
        EntryKind::Symlink {
            target: "real".into()
        }
    );

    // A symlink in the middle is always resolved.
    let s = sel(r, "link/sub/g", &SelectOptions::default());
    assert_eq!(
        paths(&s),
        [("link/sub/g".to_owned(), vec!["real/sub/g".to_owned()])]
    );
}

#[test]
fn symlink_escapes_stay_in_the_root() {
    let t = tree(&["etc/passwd", "top"]);
    let r = t.path();
    let ctx = tempfile::tempdir().unwrap();
    symlink("/etc", r.join("x")).unwrap();
    symlink("../../..", r.join("y")).unwrap();
    symlink(ctx.path(), r.join("abs")).unwrap();
    fs::write(ctx.path().join("secret"), "s").unwrap();
    let follow = SelectOptions {
        follow_symlink: true,
        ..Default::default()
    };
    // `x` means the root's own etc, never the host's.
    let s = sel(r, "x/passwd", &follow);
    assert_eq!(s.roots[0].entries[0].rel, "etc/passwd");
    // `y` climbs no higher than the root.
    let s = sel(r, "y", &follow);
    assert_eq!(s.roots[0].entries[0].rel, "");
    assert!(one_root(&s).contains(&"top".to_owned()));
    assert_eq!(sel(r, "y/top", &follow).roots[0].entries[0].rel, "top");
    assert!(matches!(
        select(r, "abs/secret", &follow),
        Err(SelectError::NotFound { .. })
    ));
    // Below the selected root, symlinks are entries and never entered.
    let s = sel(r, ".", &SelectOptions::default());
    assert!(
        !one_root(&s)
            .iter()
            .any(|p| p.starts_with("y/") || p.starts_with("x/"))
    );
}

#[test]
fn dockerignore_excluded_is_not_found_and_pruned() {
    let t = tree(&["keep.txt", "secret.txt", "node_modules/m/i.js", "docs/a.md"]);
    let r = t.path();
    // A name the walk could not represent: reaching it would be an error, so a
    // passing walk proves the directory was never entered.
    fs::write(
        r.join("node_modules")
            .join(std::ffi::OsStr::from_bytes(b"bad\xff")),
        "",
    )
    .unwrap();
    let m = ignore("secret.txt\nnode_modules\n# comment\n\n/docs/*.md\n");
    let opts = SelectOptions {
        context_excludes: Some(&m),
        ..Default::default()
    };
    assert_eq!(one_root(&sel(r, ".", &opts)), ["", "docs", "keep.txt"]);
    for src in [
        "secret.txt",
        "node_modules",
        "node_modules/m/i.js",
        "docs/a.md",
    ] {
        assert!(
            matches!(select(r, src, &opts), Err(SelectError::NotFound { .. })),
            "{src}"
        );
    }
    // Without the exclusion the same walk fails on the bad name.
    assert!(matches!(
        select(r, ".", &SelectOptions::default()),
        Err(SelectError::NonUtf8Name { .. })
    ));
}

#[test]
fn dockerignore_exception_reincludes_inside_an_excluded_dir() {
    let t = tree(&[
        "vendor/keep.txt",
        "vendor/other.txt",
        "vendor/sub/x",
        "app.go",
    ]);
    let r = t.path();
    let m = ignore("vendor\n!vendor/keep.txt\n");
    let opts = SelectOptions {
        context_excludes: Some(&m),
        ..Default::default()
    };
    assert_eq!(
        one_root(&sel(r, ".", &opts)),
        ["", "app.go", "vendor", "vendor/keep.txt"]
    );
    assert_eq!(
        one_root(&sel(r, "vendor", &opts)),
        ["vendor", "vendor/keep.txt"]
    );
    assert_eq!(
        one_root(&sel(r, "vendor/keep.txt", &opts)),
        ["vendor/keep.txt"]
    );
    assert!(select(r, "vendor/other.txt", &opts).is_err());
    assert!(select(r, "vendor/sub", &opts).is_err());

    // A wildcard exception makes the walk descend everywhere.
    let m = ignore("vendor\n!**/x\n");
    let opts = SelectOptions {
        context_excludes: Some(&m),
        ..Default::default()
    };
    assert_eq!(
        one_root(&sel(r, ".", &opts)),
        ["", "app.go", "vendor", "vendor/sub", "vendor/sub/x"]
    );

    // An exception that matches nothing leaves the excluded dir missing.
    let m = ignore("vendor\n!vendor/nothing\n");
    let opts = SelectOptions {
        context_excludes: Some(&m),
        ..Default::default()
    };
    assert!(select(r, "vendor", &opts).is_err());
}

#[test]
fn copy_level_include_and_exclude_are_relative_to_the_selected_dir() {
    let t = tree(&[
        "src/a.rs",
        "src/b.md",
        "src/sub/c.rs",
        "src/sub/d.md",
        "top.md",
    ]);
    let r = t.path();
    let excl = vec!["*.md".to_owned(), "sub/*.md".to_owned()];
    let opts = SelectOptions {
        exclude_patterns: &excl,
        ..Default::default()
    };
    assert_eq!(
        one_root(&sel(r, "src", &opts)),
        ["src", "src/a.rs", "src/sub", "src/sub/c.rs"]
    );
    let incl = vec!["**/*.rs".to_owned()];
    let opts = SelectOptions {
        include_patterns: &incl,
        ..Default::default()
    };
    // `sub` itself does not match but is listed as the parent of a kept file.
    assert_eq!(
        one_root(&sel(r, "src", &opts)),
        ["src", "src/a.rs", "src/sub", "src/sub/c.rs"]
    );
    let bad = vec!["[".to_owned()];
    let opts = SelectOptions {
        exclude_patterns: &bad,
        ..Default::default()
    };
    assert!(matches!(
        select(r, "src", &opts),
        Err(SelectError::Pattern { .. })
    ));
}

#[test]
fn special_characters_in_names() {
    let names = [
        "with space",
        "ünïcödé",
        "new\nline",
        "tab\there",
        "quote\"'",
        "star*",
    ];
    let t = tree(&["d/"]);
    for n in names {
        fs::write(t.path().join("d").join(n), n).unwrap();
    }
    let s = sel(t.path(), "d", &SelectOptions::default());
    let mut want: Vec<String> = names.iter().map(|n| format!("d/{n}")).collect();
    want.sort_by(|a, b| path_order(a, b));
    want.insert(0, "d".into());
    assert_eq!(one_root(&s), want);
    for n in names {
        let src = format!("d/{n}");
        assert_eq!(
            one_root(&sel(t.path(), &src, &SelectOptions::default())),
            [src.as_str()]
        );
    }
}

#[test]
fn special_files_have_their_kinds() {
    let t = tree(&["d/"]);
    let r = t.path();
    let fifo = std::ffi::CString::new(r.join("d/fifo").as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    fs::set_permissions(r.join("d/fifo"), fs::Permissions::from_mode(0o4751)).unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(r.join("d/sock")).unwrap();
    let s = sel(r, "d", &SelectOptions::default());
    let e = &s.roots[0].entries;
    assert_eq!(
        (e[1].rel.as_str(), &e[1].kind),
        ("d/fifo", &EntryKind::Fifo)
    );
    assert_eq!(e[1].mode, 0o4751, "setuid is part of the mode");
    assert_eq!(
        (e[2].rel.as_str(), &e[2].kind),
        ("d/sock", &EntryKind::Socket)
    );
}

#[test]
fn large_tree_is_complete_sorted_and_unique() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    let mut n = 0;
    for a in 0..20 {
        for b in 0..10 {
            let d = r.join(format!("d{a}/e{b}"));
            fs::create_dir_all(&d).unwrap();
            for f in 0..10 {
                fs::write(d.join(format!("f{f}")), "").unwrap();
                n += 1;
            }
        }
    }
    let s = sel(r, ".", &SelectOptions::default());
    let rels = one_root(&s);
    assert_eq!(rels.len(), 1 + 20 + 20 * 10 + n);
    assert!(rels.windows(2).all(|w| path_order(&w[0], &w[1]).is_lt()));
}

#[test]
fn non_utf8_names_fail_only_when_selected() {
    let t = tree(&["src/ok.rs", "keep/x"]);
    let r = t.path();
    let bad = std::ffi::OsStr::from_bytes(b"caf\xe9.bin");
    fs::write(r.join("src").join(bad), "").unwrap();
    fs::create_dir(r.join("keep").join(bad)).unwrap();
    fs::write(r.join("keep").join(bad).join("y"), "").unwrap();

    // Excluded by a pattern that does not prune its directory: the walk lists the
    // name, so it must filter before insisting on UTF-8.
    let m = ignore("**/*.bin\n");
    let opts = SelectOptions {
        context_excludes: Some(&m),
        ..Default::default()
    };
    assert_eq!(
        one_root(&sel(r, ".", &opts)),
        ["", "keep", "keep/x", "src", "src/ok.rs"]
    );
    // Entered only because an exception might want something below: nothing is.
    let m = ignore("*\n!src/ok.rs\n!**/x\n");
    let opts = SelectOptions {
        context_excludes: Some(&m),
        ..Default::default()
    };
    assert_eq!(
        one_root(&sel(r, ".", &opts)),
        ["", "keep", "keep/x", "src", "src/ok.rs"]
    );
    // Selected: an error naming the directory that holds the name.
    let err = select(r, "src", &SelectOptions::default()).unwrap_err();
    assert!(
        matches!(&err, SelectError::NonUtf8Name { dir } if dir == "src"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "\"src\": holds a selected file whose name is not valid UTF-8"
    );
    // Below a non-UTF-8 directory, the error names the directory holding it.
    let m = ignore("src\n");
    let opts = SelectOptions {
        context_excludes: Some(&m),
        ..Default::default()
    };
    let err = select(r, ".", &opts).unwrap_err();
    assert!(
        matches!(&err, SelectError::NonUtf8Name { dir } if dir == "keep"),
        "{err:?}"
    );
}

#[test]
fn far_future_times_do_not_overflow() {
    let t = tree(&["f"]);
    let c = std::ffi::CString::new(t.path().join("f").to_str().unwrap()).unwrap();
    // The year 3000: seconds * 1e9 does not fit in an i64.
    let ts = libc::timespec {
        tv_sec: 32_503_680_000,
        tv_nsec: 0,
    };
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), [ts, ts].as_ptr(), 0) };
    assert_eq!(rc, 0);
    let s = sel(t.path(), "f", &SelectOptions::default());
    assert_eq!(s.roots[0].entries[0].mtime_ns, i64::MAX);
}

/// Where files are only replaced (the daemon's mirror), a hard link to a file,
/// which moves its ctime, leaves the entry's version as it was; a replacement
/// by rename does not. Elsewhere the ctime counts.
#[test]
fn replaced_only_roots_are_versioned_by_birth_time() {
    use buildd_fsutil::select::Stamp;
    let t = tree(&["d/f"]);
    let links = tempfile::tempdir_in(t.path()).unwrap();
    let entry = |replaced_only: bool| {
        let opts = SelectOptions {
            replaced_only,
            ..Default::default()
        };
        let s = sel(t.path(), "d/f", &opts);
        s.roots[0].entries[0].clone()
    };
    let born = entry(true);
    if !matches!(born.stamp, Stamp::Born(_)) {
        eprintln!("skipped: this filesystem records no birth times");
        return;
    }
    let by_ctime = entry(false);
    assert!(matches!(by_ctime.stamp, Stamp::Ctime(_)));
    std::thread::sleep(std::time::Duration::from_millis(10));
    fs::hard_link(t.path().join("d/f"), links.path().join("f")).unwrap();
    let md = fs::metadata(t.path().join("d/f")).unwrap();
    assert!(born.same_file(&md));
    assert!(!by_ctime.same_file(&md));
    assert_eq!(entry(true).stamp, born.stamp);

    fs::write(t.path().join("d/new"), "d/f").unwrap();
    fs::rename(t.path().join("d/new"), t.path().join("d/f")).unwrap();
    assert!(!born.same_file(&fs::metadata(t.path().join("d/f")).unwrap()));
}
