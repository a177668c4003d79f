//! Helpers shared by the integration tests: layers built by hand, FileOp builders and
//! a recursive listing that captures everything a layer's bytes depend on.

#![allow(dead_code)]

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use buildd_proto::llb::{self, file_action::Action};
use buildd_snapshot::{CopySource, FileOpError, LayerId, LayerStore, Snapshot, apply_file_op};

pub fn store() -> (tempfile::TempDir, LayerStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LayerStore::open(&dir.path().join("store")).unwrap();
    (dir, store)
}

/// Commits a layer that `build` writes by hand, stacked on `below`.
pub fn layer(
    store: &LayerStore,
    below: &Snapshot,
    id: &str,
    build: impl FnOnce(&Path),
) -> Snapshot {
    let p = store.begin().unwrap();
    build(p.path());
    let id = LayerId::new(id).unwrap();
    p.commit(&id).unwrap();
    below.with_layer(id)
}

pub fn whiteout(p: &Path) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    assert_eq!(
        unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, 0) },
        0,
        "mknod {p:?}"
    );
}

pub fn opaque(p: &Path) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            b"y".as_ptr().cast(),
            1,
            0,
        )
    };
    assert_eq!(rc, 0, "setxattr {p:?}");
}

pub fn is_opaque(p: &Path) -> bool {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut buf = [0u8; 1];
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            1,
        )
    };
    n == 1 && buf[0] == b'y'
}

pub fn write(root: &Path, rel: &str, data: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

pub fn symlink(root: &Path, rel: &str, target: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, p).unwrap();
}

/// One line per entry below `root`, sorted: path, type, mode, owner, mtime, and size
/// or target; whiteouts and opaque directories are marked. Hard links share an
/// inode number (renumbered in order of appearance so listings compare).
pub fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut inodes = std::collections::HashMap::new();
    walk(root, root, &mut out, &mut inodes);
    out.sort();
    out
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut Vec<String>,
    inodes: &mut std::collections::HashMap<u64, usize>,
) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let m = fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let ft = m.file_type();
        let what = if ft.is_dir() {
            format!("dir{}", if is_opaque(&p) { " opaque" } else { "" })
        } else if ft.is_symlink() {
            format!("link -> {}", fs::read_link(&p).unwrap().display())
        } else if ft.is_char_device() && m.rdev() == 0 {
            "whiteout".to_owned()
        } else if ft.is_file() {
            let n = inodes.len();
            let ino = *inodes.entry(m.ino()).or_insert(n);
            format!(
                "file {} {:?} ino{ino}",
                m.size(),
                fs::read_to_string(&p).unwrap_or_default()
            )
        } else {
            format!("special {:o}", m.mode() & libc::S_IFMT)
        };
        let mode = if ft.is_symlink() {
            0
        } else {
            m.mode() & 0o7777
        };
        out.push(format!(
            "{rel} {what} {mode:o} {}:{} mtime={}.{:09}",
            m.uid(),
            m.gid(),
            m.mtime(),
            m.mtime_nsec()
        ));
        if ft.is_dir() {
            walk(root, &p, out, inodes);
        }
    }
}

pub fn op(actions: Vec<Action>) -> llb::FileOp {
    llb::FileOp {
        base: 0,
        actions: actions
            .into_iter()
            .map(|a| llb::FileAction { action: Some(a) })
            .collect(),
    }
}

pub fn mkdir(path: &str, mode: u32, parents: bool) -> Action {
    Action::Mkdir(llb::FileActionMkDir {
        path: path.into(),
        mode,
        make_parents: parents,
        ..Default::default()
    })
}

pub fn mkfile(path: &str, data: &str) -> Action {
    Action::Mkfile(llb::FileActionMkFile {
        path: path.into(),
        mode: 0o644,
        data: data.into(),
        ..Default::default()
    })
}

pub fn rm(path: &str) -> Action {
    Action::Rm(llb::FileActionRm {
        path: path.into(),
        ..Default::default()
    })
}

pub fn symlink_action(target: &str, path: &str) -> Action {
    Action::Symlink(llb::FileActionSymlink {
        oldpath: target.into(),
        newpath: path.into(),
        ..Default::default()
    })
}

/// A COPY as the Dockerfile frontend emits it, from input `input`.
pub fn copy(input: i64, src: &str, dest: &str) -> llb::FileActionCopy {
    llb::FileActionCopy {
        source_input: input,
        src: src.into(),
        dest: dest.into(),
        follow_symlink: true,
        dir_copy_contents: true,
        create_dest_path: true,
        allow_wildcard: true,
        allow_empty_wildcard: false,
        ..Default::default()
    }
}

/// Applies `actions` over `base`, commits the result as `id` and returns the new
/// snapshot.
pub fn apply(
    store: &LayerStore,
    base: &Snapshot,
    id: &str,
    actions: Vec<Action>,
    sources: &[CopySource<'_>],
) -> Result<Snapshot, FileOpError> {
    let pending = apply_file_op(store, base, &op(actions), sources)?;
    let id = LayerId::new(id).unwrap();
    pending.commit(&id).unwrap();
    Ok(base.with_layer(id))
}

/// The listing of the top layer of `snap`.
pub fn top(store: &LayerStore, snap: &Snapshot) -> Vec<String> {
    listing(&store.diff_dir(snap.top().unwrap()))
}

/// Whether `lines` has one starting with `prefix` (a path followed by a space).
pub fn has(lines: &[String], prefix: &str) -> bool {
    lines.iter().any(|l| l.starts_with(&format!("{prefix} ")))
}

pub fn line<'a>(lines: &'a [String], path: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.starts_with(&format!("{path} ")))
        .unwrap_or_else(|| panic!("{path} not in {lines:#?}"))
}

/// Sets the mtime (and atime) of `p` itself, not following a symlink.
pub fn set_mtime(p: &Path, secs: i64, nsec: i64) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let ts = libc::timespec {
        tv_sec: secs,
        tv_nsec: nsec,
    };
    // SAFETY: a valid NUL-terminated path and two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            [ts, ts].as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(rc, 0, "utimensat {}", p.display());
}
