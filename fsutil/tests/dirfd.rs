use std::fs;
use std::io::Read;
use std::os::unix::fs::symlink;

use buildd_fsutil::dirfd::{DirFd, swapped};

#[test]
fn opens_beneath_never_follow_symlinks() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    fs::create_dir_all(r.join("a/b")).unwrap();
    fs::write(r.join("a/b/f"), "data").unwrap();
    symlink("a", r.join("via")).unwrap();
    symlink("b/f", r.join("a/lf")).unwrap();
    let root = DirFd::open(r).unwrap();

    let mut s = String::new();
    root.open_file_beneath("a/b/f")
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "data");
    assert!(root.open_dir_beneath("a/./b/").is_ok());
    assert!(root.open_dir_beneath("").is_ok());
    for rel in ["via/b/f", "a/lf", "a/b/../b/f"] {
        let e = root.open_file_beneath(rel).unwrap_err();
        assert!(swapped(&e), "{rel}: {e}");
    }
    let e = root.open_dir_beneath("via/b").unwrap_err();
    assert!(swapped(&e), "{e}");
    let e = root.open_dir_beneath("a/b/f").unwrap_err();
    assert!(swapped(&e), "{e}");
    let e = root.open_file_beneath("a/missing").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn listing_and_removal_stay_inside() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("keep"), "").unwrap();
    fs::create_dir_all(r.join("d/e")).unwrap();
    fs::write(r.join("d/e/f"), "").unwrap();
    symlink(outside.path(), r.join("d/out")).unwrap();
    let root = DirFd::open(r).unwrap();
    let d = root.open_dir(c"d").unwrap();
    let mut names: Vec<_> = d.names().unwrap();
    names.sort();
    assert_eq!(names, [c"e".to_owned(), c"out".to_owned()]);
    root.remove_all(c"d").unwrap();
    assert!(!r.join("d").exists());
    assert!(outside.path().join("keep").exists());
}
