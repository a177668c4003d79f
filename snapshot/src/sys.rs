//! Thin wrappers over the system calls std does not expose.

use std::ffi::CString;
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

use buildd_fsutil::dirfd;

const OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque\0";

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Whether `meta` describes an overlayfs whiteout.
pub fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

pub fn mknod(p: &Path, mode: u32, rdev: u64) -> io::Result<()> {
    let c = cpath(p)?;
    // SAFETY: `c` is a valid NUL-terminated path.
    check(unsafe { libc::mknod(c.as_ptr(), mode as libc::mode_t, rdev as libc::dev_t) })
}

pub fn make_whiteout(p: &Path) -> io::Result<()> {
    mknod(p, libc::S_IFCHR, 0)
}

pub fn set_opaque(p: &Path) -> io::Result<()> {
    let c = cpath(p)?;
    // SAFETY: valid NUL-terminated path and name, and a 1-byte value buffer.
    check(unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            OPAQUE_XATTR.as_ptr().cast(),
            b"y".as_ptr().cast(),
            1,
            0,
        )
    })
}

pub fn is_opaque(p: &Path) -> io::Result<bool> {
    let c = cpath(p)?;
    let mut buf = [0u8; 2];
    // SAFETY: valid NUL-terminated path and name; `buf` outlives the call.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            OPAQUE_XATTR.as_ptr().cast(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOTSUP) | Some(libc::ERANGE) => Ok(false),
            _ => Err(e),
        };
    }
    Ok(n == 1 && buf[0] == b'y')
}

/// Sets atime and mtime of `p` itself (never a symlink's target) to `ns` since the epoch.
pub fn set_times(p: &Path, ns: i64) -> io::Result<()> {
    let c = cpath(p)?;
    let ts = dirfd::timespec(ns);
    let times = [ts, ts];
    // SAFETY: valid path and a two-element timespec array.
    check(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

pub fn lchown(p: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))
}

/// chmod that refuses to act through a symlink.
pub fn chmod_nofollow(p: &Path, mode: u32) -> io::Result<()> {
    if fs::symlink_metadata(p)?.file_type().is_symlink() {
        return Ok(());
    }
    fs::set_permissions(p, fs::Permissions::from_mode(mode & 0o7777))
}

/// Sets owner, permission bits and times, in the order that keeps set-id bits
/// (chown clears them).
pub fn set_meta(p: &Path, uid: u32, gid: u32, mode: u32, mtime_ns: i64) -> io::Result<()> {
    lchown(p, uid, gid)?;
    chmod_nofollow(p, mode)?;
    set_times(p, mtime_ns)
}

/// Links the open file `f` at `to` (linkat with AT_EMPTY_PATH: exactly the file
/// that was opened and checked, whatever its path holds by now).
pub fn link_fd(f: &File, to: &Path) -> io::Result<()> {
    let to = cpath(to)?;
    // SAFETY: `f` is open, both strings are NUL-terminated and outlive the call.
    check(unsafe {
        libc::linkat(
            f.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    })
}

/// Whether `f` has extended attributes other than file capabilities, which a copy
/// would not carry and a link would.
pub fn has_other_xattrs(f: &File) -> io::Result<bool> {
    let mut buf = [0u8; 256];
    // SAFETY: `f` is open and `buf` is valid for writes of its length.
    let n = unsafe { libc::flistxattr(f.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOTSUP) => Ok(false),
            // More names than fit: certainly more than the capability.
            Some(libc::ERANGE) => Ok(true),
            _ => Err(e),
        };
    }
    let names = &buf[..n as usize];
    Ok(names
        .split(|&b| b == 0)
        .any(|name| !name.is_empty() && name != b"security.capability"))
}

/// Flushes the filesystem holding `p` to stable storage.
pub fn syncfs(p: &Path) -> io::Result<()> {
    dirfd::syncfs(p)
}

/// Nanoseconds since the epoch, saturated beyond what an i64 holds (year 2262).
pub fn mtime_ns(meta: &Metadata) -> i64 {
    dirfd::time_ns(meta.mtime(), meta.mtime_nsec())
}

/// Reads xattr `name` of `p` itself; None when absent or unsupported.
pub fn lget_xattr(p: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    dirfd::lget_xattr(p, name)
}

pub fn lset_xattr(p: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let c = cpath(p)?;
    let cname = CString::new(name)?;
    // SAFETY: valid NUL-terminated path and name; `value` outlives the call.
    check(unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            cname.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}
