//! Directory file descriptors and the `*at` calls relative to them, so extraction resolves
//! every name one component at a time and never follows a symlink.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub(crate) struct DirFd(OwnedFd);

impl DirFd {
    /// Opens the directory `path` itself (the caller's choice, so symlinks are followed).
    pub fn open(path: &Path) -> io::Result<Self> {
        let c = CString::new(path.as_os_str().as_bytes())?;
        // SAFETY: c is NUL-terminated; a non-negative result is a fresh fd we own.
        let fd = cvt(unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: fd was just returned by open and is owned by nobody else.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn try_clone(&self) -> io::Result<Self> {
        self.0.try_clone().map(Self)
    }

    fn raw(&self) -> libc::c_int {
        self.0.as_raw_fd()
    }

    /// Opens child directory `name`; fails with ELOOP or ENOTDIR if it is a symlink or
    /// not a directory.
    pub fn open_dir(&self, name: &CStr) -> io::Result<Self> {
        // SAFETY: name is NUL-terminated; the result is a fresh fd we own.
        let fd = cvt(unsafe {
            libc::openat(
                self.raw(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: fd was just returned by openat and is owned by nobody else.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Creates regular file `name`, which must not exist (a symlink there is not followed).
    pub fn create_file(&self, name: &CStr) -> io::Result<File> {
        // SAFETY: name is NUL-terminated; the result is a fresh fd we own.
        let fd = cvt(unsafe {
            libc::openat(
                self.raw(),
                name.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        })?;
        // SAFETY: fd was just returned by openat and is owned by nobody else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    pub fn mkdir(&self, name: &CStr, mode: u32) -> io::Result<()> {
        // SAFETY: name is NUL-terminated.
        cvt(unsafe { libc::mkdirat(self.raw(), name.as_ptr(), mode) }).map(drop)
    }

    pub fn mknod(&self, name: &CStr, mode: u32, dev: libc::dev_t) -> io::Result<()> {
        // SAFETY: name is NUL-terminated.
        cvt(unsafe { libc::mknodat(self.raw(), name.as_ptr(), mode, dev) }).map(drop)
    }

    pub fn symlink(&self, target: &CStr, name: &CStr) -> io::Result<()> {
        // SAFETY: both are NUL-terminated.
        cvt(unsafe { libc::symlinkat(target.as_ptr(), self.raw(), name.as_ptr()) }).map(drop)
    }

    /// Hardlinks `from_dir/from_name` (a symlink there is linked, not followed) as `name`.
    pub fn link(&self, from_dir: &DirFd, from_name: &CStr, name: &CStr) -> io::Result<()> {
        // SAFETY: both names are NUL-terminated; flags 0 does not follow symlinks.
        cvt(unsafe {
            libc::linkat(
                from_dir.raw(),
                from_name.as_ptr(),
                self.raw(),
                name.as_ptr(),
                0,
            )
        })
        .map(drop)
    }

    /// `lstat` of `name`; `None` when it does not exist.
    pub fn lstat(&self, name: &CStr) -> io::Result<Option<libc::stat>> {
        let mut st = MaybeUninit::<libc::stat>::uninit();
        // SAFETY: name is NUL-terminated and st is valid for writes of a stat.
        let r = unsafe {
            libc::fstatat(
                self.raw(),
                name.as_ptr(),
                st.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        match cvt(r) {
            // SAFETY: fstatat succeeded, so it filled st.
            Ok(_) => Ok(Some(unsafe { st.assume_init() })),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn unlink(&self, name: &CStr, dir: bool) -> io::Result<()> {
        let flags = if dir { libc::AT_REMOVEDIR } else { 0 };
        // SAFETY: name is NUL-terminated.
        cvt(unsafe { libc::unlinkat(self.raw(), name.as_ptr(), flags) }).map(drop)
    }

    /// Owner and mtime of `name` itself, even when it is a symlink.
    pub fn lchown(&self, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
        // SAFETY: name is NUL-terminated.
        cvt(unsafe {
            libc::fchownat(
                self.raw(),
                name.as_ptr(),
                uid,
                gid,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
        .map(drop)
    }

    /// Permissions of `name`, which the caller just created as a non-symlink (Linux has no
    /// portable no-follow chmod before fchmodat2).
    pub fn chmod(&self, name: &CStr, mode: u32) -> io::Result<()> {
        // SAFETY: name is NUL-terminated.
        cvt(unsafe { libc::fchmodat(self.raw(), name.as_ptr(), mode & 0o7777, 0) }).map(drop)
    }

    pub fn set_lmtime(&self, name: &CStr, mtime: i64) -> io::Result<()> {
        let ts = timespecs(mtime);
        // SAFETY: name is NUL-terminated and ts holds two timespecs.
        cvt(unsafe {
            libc::utimensat(
                self.raw(),
                name.as_ptr(),
                ts.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
        .map(drop)
    }
}

impl AsFd for DirFd {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

fn timespecs(mtime: i64) -> [libc::timespec; 2] {
    let t = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    [t, t]
}

/// Owner, permissions and mtime of an open file or directory. Owner first: chown clears
/// setuid/setgid bits and file capabilities.
pub(crate) fn set_meta(
    fd: impl AsFd,
    owner: Option<(u32, u32)>,
    mode: u32,
    mtime: i64,
) -> io::Result<()> {
    let raw = fd.as_fd().as_raw_fd();
    if let Some((uid, gid)) = owner {
        // SAFETY: raw is a valid open fd for the duration of the call.
        cvt(unsafe { libc::fchown(raw, uid, gid) })?;
    }
    // SAFETY: as above.
    cvt(unsafe { libc::fchmod(raw, mode & 0o7777) })?;
    let ts = timespecs(mtime);
    // SAFETY: as above; ts holds two timespecs.
    cvt(unsafe { libc::futimens(raw, ts.as_ptr()) }).map(drop)
}

pub(crate) fn fset_xattr(fd: impl AsFd, name: &str, value: &[u8]) -> io::Result<()> {
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
