//! Metadata of open files: owner, mode, times and extended attributes.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::cvt;

const NS_PER_SEC: i64 = 1_000_000_000;

/// Nanoseconds since the epoch of a `(seconds, nanoseconds)` time. Saturates for
/// times outside i64 nanoseconds (before 1678 or after 2262) rather than overflow.
pub fn time_ns(sec: i64, nsec: i64) -> i64 {
    sec.saturating_mul(NS_PER_SEC).saturating_add(nsec)
}

/// The timespec for `ns` nanoseconds since the epoch.
pub fn timespec(ns: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: ns.div_euclid(NS_PER_SEC) as libc::time_t,
        tv_nsec: ns.rem_euclid(NS_PER_SEC) as libc::c_long,
    }
}

/// Owner, permissions and mtime (atime too) of an open file or directory. Owner
/// first: chown clears setuid/setgid bits and file capabilities.
pub fn set_meta(
    fd: impl AsFd,
    owner: Option<(u32, u32)>,
    mode: u32,
    mtime: libc::timespec,
) -> io::Result<()> {
    let raw = fd.as_fd().as_raw_fd();
    if let Some((uid, gid)) = owner {
        // SAFETY: raw is a valid open fd for the duration of the call.
        cvt(unsafe { libc::fchown(raw, uid, gid) })?;
    }
    // SAFETY: as above.
    cvt(unsafe { libc::fchmod(raw, mode & 0o7777) })?;
    let ts = [mtime, mtime];
    // SAFETY: as above; ts holds two timespecs.
    cvt(unsafe { libc::futimens(raw, ts.as_ptr()) }).map(drop)
}

/// Permission bits of an open file or directory.
pub fn fchmod(fd: impl AsFd, mode: u32) -> io::Result<()> {
    // SAFETY: the fd is open for the duration of the call.
    cvt(unsafe { libc::fchmod(fd.as_fd().as_raw_fd(), mode & 0o7777) }).map(drop)
}

pub fn fset_xattr(fd: impl AsFd, name: &str, value: &[u8]) -> io::Result<()> {
    let cname = CString::new(name)?;
    // SAFETY: the fd is open, cname NUL-terminated, value valid for value.len() bytes.
    cvt(unsafe {
        libc::fsetxattr(
            fd.as_fd().as_raw_fd(),
            cname.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
    .map(drop)
}

/// Reads xattr `name` of an open file; `None` when absent or unsupported.
pub fn fget_xattr(fd: impl AsFd, name: &str) -> io::Result<Option<Vec<u8>>> {
    let cname = CString::new(name)?;
    let raw = fd.as_fd().as_raw_fd();
    // SAFETY: the fd is open, cname NUL-terminated, buf valid for its length.
    read_xattr(|buf| unsafe {
        libc::fgetxattr(raw, cname.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
    })
}

/// Reads xattr `name` of `path` itself, not following a final symlink; `None` when
/// absent or unsupported (unprivileged readers do not see `trusted.*`: absent to them).
pub fn lget_xattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let cpath = CString::new(path.as_os_str().as_bytes())?;
    let cname = CString::new(name)?;
    // SAFETY: both strings NUL-terminated, buf valid for its length.
    read_xattr(|buf| unsafe {
        libc::lgetxattr(
            cpath.as_ptr(),
            cname.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    })
}

/// The getxattr calling convention: grow the buffer on ERANGE, absent is `None`.
fn read_xattr(mut call: impl FnMut(&mut [u8]) -> libc::ssize_t) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        let n = call(&mut buf);
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(Some(buf));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOTSUP) => return Ok(None),
            Some(libc::ERANGE) if buf.len() < 1 << 16 => buf.resize(buf.len() * 4, 0),
            _ => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_times_saturate_and_split_back() {
        assert_eq!(time_ns(1, 5), 1_000_000_005);
        assert_eq!(time_ns(-1, 5), -999_999_995);
        // Year 3000 does not fit in i64 nanoseconds.
        assert_eq!(time_ns(32_503_680_000, 0), i64::MAX);
        assert_eq!(time_ns(i64::MIN, 0), i64::MIN);
        let ts = timespec(-999_999_995);
        assert_eq!((ts.tv_sec, ts.tv_nsec), (-1, 5));
        let ts = timespec(i64::MAX);
        assert_eq!((ts.tv_sec, ts.tv_nsec), (9_223_372_036, 854_775_807));
    }
}
