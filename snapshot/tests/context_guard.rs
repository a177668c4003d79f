//! A copy from a context copies what its cache key was computed from, reached
//! without following symlinks, and refuses what it cannot represent faithfully.

mod common;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use buildd_fsutil::select::{SelectOptions, Selection, select};
use buildd_proto::llb::{ChownOpt, file_action::Action};
use buildd_snapshot::{CopySource, Snapshot, apply_file_op, export_tree};
use common::{apply, copy, layer, line, op, set_mtime, top, write};

/// A v2 `security.capability` value granting cap_net_bind_service, effective.
const CAPS: [u8; 20] = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

fn get_caps(p: &Path) -> Option<Vec<u8>> {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut buf = [0u8; 64];
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"security.capability".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

fn set_caps(p: &Path) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            c"security.capability".as_ptr(),
            CAPS.as_ptr().cast(),
            CAPS.len(),
            0,
        )
    };
    assert_eq!(rc, 0, "setxattr {p:?}: {}", std::io::Error::last_os_error());
}

fn selected(root: &Path, src: &str) -> Selection {
    select(root, src, &SelectOptions::default()).unwrap()
}

fn run(
    ctx: &Path,
    selections: &BTreeMap<usize, Selection>,
    actions: Vec<Action>,
) -> Result<Vec<String>, String> {
    let (_d, store) = common::store();
    let src = [CopySource::Dir {
        root: ctx,
        excludes: None,
        selections,
        immutable: false,
    }];
    apply(&store, &Snapshot::scratch(), "01", actions, &src)
        .map(|s| top(&store, &s))
        .map_err(|e| e.to_string())
}

#[test]
fn the_hashed_selection_is_what_gets_copied() {
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "a.txt", "A");
    let sels = BTreeMap::from([(0, selected(ctx.path(), "."))]);
    // Added after the key was computed: not part of this build.
    write(ctx.path(), "late.txt", "L");
    let t = run(ctx.path(), &sels, vec![Action::Copy(copy(0, ".", "/app/"))]).unwrap();
    assert!(common::has(&t, "app/a.txt"), "{t:#?}");
    assert!(!common::has(&t, "app/late.txt"), "{t:#?}");
    // Without a selection the copy selects afresh.
    let t = run(
        ctx.path(),
        &BTreeMap::new(),
        vec![Action::Copy(copy(0, ".", "/app/"))],
    )
    .unwrap();
    assert!(common::has(&t, "app/late.txt"), "{t:#?}");
}

#[test]
fn a_file_changed_after_hashing_fails_the_copy() {
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "a.txt", "A");
    let sels = BTreeMap::from([(0, selected(ctx.path(), "a.txt"))]);
    write(ctx.path(), "a.txt", "changed");
    let err = run(
        ctx.path(),
        &sels,
        vec![Action::Copy(copy(0, "a.txt", "/a"))],
    )
    .unwrap_err();
    assert_eq!(err, "copy \"a.txt\": \"a.txt\" changed during the build");
}

#[test]
fn a_parent_swapped_for_a_symlink_is_not_followed() {
    let ctx = tempfile::tempdir().unwrap();
    let r = ctx.path();
    write(r, "sub/f", "F");
    let sels = BTreeMap::from([(0, selected(r, "sub"))]);
    // The very same file, now behind a symlink the copy must not go through.
    fs::rename(r.join("sub"), r.join("real")).unwrap();
    std::os::unix::fs::symlink("real", r.join("sub")).unwrap();
    let err = run(r, &sels, vec![Action::Copy(copy(0, "sub", "/x/"))]).unwrap_err();
    assert_eq!(err, "copy \"sub\": \"sub/f\" changed during the build");
}

#[test]
fn a_fifo_swapped_in_for_a_file_fails_without_hanging() {
    let ctx = tempfile::tempdir().unwrap();
    let r = ctx.path();
    write(r, "f", "F");
    let sels = BTreeMap::from([(0, selected(r, "f"))]);
    fs::remove_file(r.join("f")).unwrap();
    let c = CString::new(r.join("f").as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let err = run(r, &sels, vec![Action::Copy(copy(0, "f", "/f"))]).unwrap_err();
    assert_eq!(err, "copy \"f\": \"f\" changed during the build");
}

#[test]
fn whiteout_names_are_refused() {
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "d/.wh.secret", "x");
    let err = run(
        ctx.path(),
        &BTreeMap::new(),
        vec![Action::Copy(copy(0, "d", "/app/"))],
    )
    .unwrap_err();
    assert_eq!(
        err,
        "copy \"/app/.wh.secret\": file names starting with \".wh.\" are reserved for whiteouts"
    );
}

#[test]
fn a_new_destination_directory_is_made_as_buildkit_makes_it() {
    let ctx = tempfile::tempdir().unwrap();
    let r = ctx.path();
    write(r, "src/f", "F");
    fs::set_permissions(r.join("src"), fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::lchown(r.join("src"), Some(1234), Some(1234)).unwrap();
    set_mtime(&r.join("src/f"), 500, 0);
    set_mtime(&r.join("src"), 1000, 0);
    let t = run(
        r,
        &BTreeMap::new(),
        vec![Action::Copy(copy(0, "src", "/new"))],
    )
    .unwrap();
    // As the reference BuildKit (tests/parity/cases/copy-dir-modes): 0755 and
    // root's (or --chown's), not the source directory's mode, but its mtime.
    assert_eq!(line(&t, "new"), "new dir 755 0:0 mtime=1000.000000000");
    let mut c = copy(0, "src", "/new");
    c.owner = Some(ChownOpt {
        uid: Some(7),
        gid: Some(8),
        ..Default::default()
    });
    let t = run(r, &BTreeMap::new(), vec![Action::Copy(c)]).unwrap();
    assert_eq!(line(&t, "new"), "new dir 755 7:8 mtime=1000.000000000");
    // Into a directory named with a trailing slash: created as BuildKit's MkdirAll does.
    let t = run(
        r,
        &BTreeMap::new(),
        vec![Action::Copy(copy(0, "src", "/new/"))],
    )
    .unwrap();
    assert_eq!(line(&t, "new"), "new dir 755 0:0 mtime=0.000000000");
}

#[test]
fn file_capabilities_survive_copies_copy_up_and_export() {
    let (d, store) = common::store();
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "bin/ping", "elf");
    set_caps(&ctx.path().join("bin/ping"));
    let src = [CopySource::Dir {
        root: ctx.path(),
        excludes: None,
        selections: &BTreeMap::new(),
        immutable: false,
    }];
    let s = apply(
        &store,
        &Snapshot::scratch(),
        "01",
        vec![Action::Copy(copy(0, "bin/ping", "/usr/bin/ping"))],
        &src,
    )
    .unwrap();
    let l1 = store.diff_dir(&s.layers()[0]);
    assert_eq!(
        get_caps(&l1.join("usr/bin/ping")).as_deref(),
        Some(&CAPS[..])
    );

    // From a snapshot source.
    let from_snap = [CopySource::Snapshot(&s)];
    let s2 = apply(
        &store,
        &s,
        "02",
        vec![Action::Copy(copy(0, "/usr/bin/ping", "/sbin/ping"))],
        &from_snap,
    )
    .unwrap();
    let l2 = store.diff_dir(&s2.layers()[1]);
    assert_eq!(get_caps(&l2.join("sbin/ping")).as_deref(), Some(&CAPS[..]));

    // Copy-up of a directory carrying the attribute.
    let base = layer(&store, &Snapshot::scratch(), "03", |r| {
        fs::create_dir(r.join("capdir")).unwrap();
        set_caps(&r.join("capdir"));
    });
    let s3 = apply(
        &store,
        &base,
        "04",
        vec![common::mkfile("/capdir/new", "n")],
        &[],
    )
    .unwrap();
    let l3 = store.diff_dir(&s3.layers()[1]);
    assert_eq!(get_caps(&l3.join("capdir")).as_deref(), Some(&CAPS[..]));

    let dest = d.path().join("out");
    export_tree(&store, &s2, &dest).unwrap();
    for p in ["usr/bin/ping", "sbin/ping"] {
        assert_eq!(get_caps(&dest.join(p)).as_deref(), Some(&CAPS[..]), "{p}");
    }
    export_tree(&store, &s3, &dest).unwrap();
    assert_eq!(get_caps(&dest.join("capdir")).as_deref(), Some(&CAPS[..]));
}

#[test]
fn errors_of_the_op_as_a_whole_name_no_empty_path() {
    let (_d, store) = common::store();
    let mut o = op(vec![]);
    o.actions
        .push(buildd_proto::llb::FileAction { action: None });
    let err = apply_file_op(&store, &Snapshot::scratch(), &o, &[]).unwrap_err();
    assert_eq!(err.path, None);
    assert_eq!(
        err.to_string(),
        "fileop: an action without a kind is not supported"
    );
}
