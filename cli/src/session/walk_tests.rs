use std::os::unix::fs::{PermissionsExt, symlink};

use super::*;

fn ctx(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (rel, content) in files {
        let p = dir.path().join(rel);
        if let Some(dir_path) = rel.strip_suffix('/') {
            fs::create_dir_all(dir.path().join(dir_path)).unwrap();
            continue;
        }
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
    }
    dir
}

fn paths(root: &Path, filter: &Filter) -> Vec<String> {
    walk(root, filter)
        .unwrap()
        .into_iter()
        .map(|s| s.path)
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn lists_everything_in_walk_order_with_metadata() {
    let d = ctx(&[
        ("a/b", "1"),
        ("a-b", "22"),
        ("a0", ""),
        ("empty/", ""),
        ("with space é.txt", "x"),
    ]);
    fs::set_permissions(d.path().join("a-b"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("a/b", d.path().join("link")).unwrap();
    symlink("/etc", d.path().join("out")).unwrap();
    let stats = walk(d.path(), &Filter::default()).unwrap();
    let names: Vec<&str> = stats.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        names,
        [
            "a",
            "a/b",
            "a-b",
            "a0",
            "empty",
            "link",
            "out",
            "with space é.txt"
        ]
    );
    let by = |p: &str| stats.iter().find(|s| s.path == p).unwrap();
    assert_eq!(by("a-b").mode, 0o100755);
    assert_eq!(by("a-b").size, 2);
    assert_eq!(by("empty").mode & 0o170000, 0o040000);
    assert_eq!(by("link").linkname, "a/b");
    assert_eq!(by("link").mode & 0o170000, 0o120000);
    // Never followed out of the context.
    assert_eq!(by("out").linkname, "/etc");
    assert_eq!(by("out").size, 0);
    assert!(by("a0").mtime_ns > 0);
}

#[test]
fn excludes_prune_and_exceptions_reinclude_with_their_parents() {
    let d = ctx(&[
        ("node_modules/x/y.js", ""),
        ("logs/keep.txt", ""),
        ("logs/drop.txt", ""),
        ("logs/sub/deep.txt", ""),
        ("src/main.rs", ""),
        ("Dockerfile", ""),
    ]);
    let filter = Filter {
        exclude: strings(&["node_modules", "logs", "!logs/keep.txt", "Dockerfile"]),
        ..Filter::default()
    };
    assert_eq!(
        paths(d.path(), &filter),
        ["logs", "logs/keep.txt", "src", "src/main.rs"]
    );
    // A wildcard exception makes every excluded directory worth a look.
    let filter = Filter {
        exclude: strings(&["*", "!**/deep.txt"]),
        ..Filter::default()
    };
    assert_eq!(
        paths(d.path(), &filter),
        ["logs", "logs/sub", "logs/sub/deep.txt"]
    );
}

#[test]
fn includes_select_only_what_they_can_match() {
    let d = ctx(&[
        ("src/a.rs", ""),
        ("src/b.txt", ""),
        ("src/nested/c.rs", ""),
        ("docs/readme", ""),
        ("go.mod", ""),
        ("empty/", ""),
    ]);
    let filter = Filter {
        include: strings(&["src/*.rs", "go.mod", "empty"]),
        ..Filter::default()
    };
    assert_eq!(
        paths(d.path(), &filter),
        ["empty", "go.mod", "src", "src/a.rs"]
    );
    // A directory include takes its whole subtree; excludes still apply inside it.
    let filter = Filter {
        include: strings(&["src"]),
        exclude: strings(&["**/*.txt"]),
        ..Filter::default()
    };
    assert_eq!(
        paths(d.path(), &filter),
        ["src", "src/a.rs", "src/nested", "src/nested/c.rs"]
    );
    // "." is the whole context.
    let filter = Filter {
        include: strings(&["."]),
        ..Filter::default()
    };
    assert_eq!(paths(d.path(), &filter).len(), 9);
}

#[test]
fn follow_paths_add_link_targets_inside_the_context_only() {
    let d = ctx(&[
        ("real/file", "x"),
        ("real/other", "y"),
        ("unrelated", ""),
        ("conf/app.conf", ""),
    ]);
    symlink("real", d.path().join("dirlink")).unwrap();
    symlink("/conf/app.conf", d.path().join("abslink")).unwrap();
    symlink("../../../etc", d.path().join("escape")).unwrap();
    let filter = Filter {
        follow: strings(&["dirlink/file", "abslink", "escape/passwd"]),
        ..Filter::default()
    };
    assert_eq!(
        paths(d.path(), &filter),
        // `escape` resolves to `etc/passwd` inside the context, which is absent.
        [
            "abslink",
            "conf",
            "conf/app.conf",
            "dirlink",
            "escape",
            "real",
            "real/file"
        ]
    );
    let filter = Filter {
        follow: strings(&["dir*/oth?r"]),
        ..Filter::default()
    };
    assert_eq!(paths(d.path(), &filter), ["dirlink", "real", "real/other"]);
}

#[test]
fn symlink_loops_are_an_error_not_a_hang() {
    let d = ctx(&[]);
    symlink("b", d.path().join("a")).unwrap();
    symlink("a", d.path().join("b")).unwrap();
    let filter = Filter {
        follow: strings(&["a"]),
        ..Filter::default()
    };
    let err = walk(d.path(), &filter).unwrap_err();
    assert!(matches!(err, WalkError::TooManySymlinks { .. }), "{err}");
}

#[test]
fn bad_patterns_name_the_list() {
    let d = ctx(&[]);
    let filter = Filter {
        exclude: strings(&["!"]),
        ..Filter::default()
    };
    let err = walk(d.path(), &filter).unwrap_err().to_string();
    assert_eq!(err, "invalid exclude patterns");
}
