//! Helpers shared by the integration tests: building diff dirs with exact metadata.
#![allow(dead_code)]

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Sets the mtime of `p` itself (not a symlink's target).
pub fn set_mtime(p: &Path, secs: i64) {
    let t = libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    // SAFETY: the path is NUL-terminated and the array holds two timespecs.
    check(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            cpath(p).as_ptr(),
            [t, t].as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .unwrap();
}

pub fn set_xattr(p: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let n = CString::new(name).unwrap();
    // SAFETY: both strings are NUL-terminated and value is valid for its length.
    check(unsafe {
        libc::lsetxattr(
            cpath(p).as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

pub fn get_xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: both strings are NUL-terminated and buf is valid for its length.
    let r = unsafe {
        libc::lgetxattr(
            cpath(p).as_ptr(),
            n.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (r >= 0).then(|| {
        buf.truncate(r as usize);
        buf
    })
}

pub fn mknod(p: &Path, mode: u32, major: u32, minor: u32) -> io::Result<()> {
    // SAFETY: the path is NUL-terminated.
    check(unsafe { libc::mknod(cpath(p).as_ptr(), mode, libc::makedev(major, minor)) })?;
    // mknod applies the umask.
    fs::set_permissions(p, fs::Permissions::from_mode(mode & 0o7777))
}

pub fn lchown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

pub fn write(p: &Path, data: &[u8], mode: u32, mtime: i64) {
    fs::write(p, data).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    set_mtime(p, mtime);
}

pub fn mkdir(p: &Path, mode: u32, mtime: i64) {
    fs::create_dir(p).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    set_mtime(p, mtime);
}

/// A 100+ byte relative path, nested so each component stays short.
pub const LONG_DIR: &str = "long/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
pub const LONG_FILE: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccc.txt";

/// A diff dir with every kind of entry. Needs root for devices, whiteouts, ownership and the
/// trusted opaque xattr. `reverse` creates entries in the opposite order, so inode numbers
/// and directory order differ while the content is the same.
pub fn build_diff(root: &Path, reverse: bool) {
    let mut steps: Vec<fn(&Path)> = vec![
        |r| {
            mkdir(&r.join("etc"), 0o755, 1_000);
            write(
                &r.join("etc/passwd"),
                b"root:x:0:0::/root:/bin/sh\n",
                0o644,
                1_001,
            );
            set_mtime(&r.join("etc"), 1_000);
        },
        |r| {
            mkdir(&r.join("bin"), 0o755, 2_000);
            let tool = r.join("bin/tool");
            fs::write(&tool, b"#!/bin/sh\necho tool\n").unwrap();
            // Owner first: chown clears the setuid bit.
            lchown(&tool, 1000, 3_000_000);
            fs::set_permissions(&tool, fs::Permissions::from_mode(0o4755)).unwrap();
            set_mtime(&tool, 2_001);
            fs::hard_link(&tool, r.join("bin/tool2")).unwrap();
            set_mtime(&r.join("bin"), 2_000);
        },
        |r| {
            std::os::unix::fs::symlink("etc/passwd", r.join("link")).unwrap();
            set_mtime(&r.join("link"), 3_000);
        },
        |r| {
            mknod(&r.join("gone"), libc::S_IFCHR, 0, 0).unwrap();
            mknod(&r.join("null"), libc::S_IFCHR | 0o666, 1, 3).unwrap();
            set_mtime(&r.join("null"), 4_000);
            mknod(&r.join("pipe"), libc::S_IFIFO | 0o600, 0, 0).unwrap();
            set_mtime(&r.join("pipe"), 4_001);
        },
        |r| {
            mkdir(&r.join("opq"), 0o750, 5_000);
            set_xattr(&r.join("opq"), "trusted.overlay.opaque", b"y").unwrap();
            write(&r.join("opq/keep"), b"kept", 0o600, 5_001);
            set_mtime(&r.join("opq"), 5_000);
        },
        |r| {
            fs::create_dir_all(r.join(LONG_DIR)).unwrap();
            write(&r.join(LONG_DIR).join(LONG_FILE), b"long", 0o644, 6_000);
            for d in [
                LONG_DIR,
                "long/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "long",
            ] {
                set_mtime(&r.join(d), 6_000);
            }
        },
    ];
    if reverse {
        steps.reverse();
    }
    for s in steps {
        s(root);
    }
}
