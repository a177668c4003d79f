//! Directory file descriptors and the `*at` calls relative to them, so a path below a
//! directory is resolved one component at a time and never through a symlink, even
//! one swapped in after the path was checked.

mod attr;
mod beneath;

use std::ffi::{CStr, CString, OsString};
use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

pub use attr::{fchmod, fget_xattr, fset_xattr, lget_xattr, set_meta, time_ns, timespec};
pub use beneath::swapped;

pub(crate) fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Takes ownership of a descriptor a successful call just returned.
fn owned(fd: libc::c_int) -> OwnedFd {
    // SAFETY: callers pass only fresh descriptors that nobody else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// An open directory.
#[derive(Debug)]
pub struct DirFd(OwnedFd);

impl DirFd {
    /// Opens the directory `path` itself (the caller's choice, so symlinks are followed).
    pub fn open(path: &Path) -> io::Result<Self> {
        let c = CString::new(path.as_os_str().as_bytes())?;
        // SAFETY: c is NUL-terminated.
        let fd = cvt(unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        Ok(Self(owned(fd)))
    }

    pub fn try_clone(&self) -> io::Result<Self> {
        self.0.try_clone().map(Self)
    }

    pub(crate) fn raw(&self) -> libc::c_int {
        self.0.as_raw_fd()
    }

    /// Opens child directory `name`; fails with ELOOP or ENOTDIR if it is a symlink or
    /// not a directory.
    pub fn open_dir(&self, name: &CStr) -> io::Result<Self> {
        // SAFETY: name is NUL-terminated.
        let fd = cvt(unsafe {
            libc::openat(
                self.raw(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })?;
        Ok(Self(owned(fd)))
    }

    /// Creates regular file `name`, which must not exist (a symlink there is not followed).
    pub fn create_file(&self, name: &CStr) -> io::Result<File> {
        // SAFETY: name is NUL-terminated.
        let fd = cvt(unsafe {
            libc::openat(
                self.raw(),
                name.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        })?;
        Ok(File::from(owned(fd)))
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

    /// Renames `from` to `to`, both in this directory, replacing what `to` names.
    pub fn rename(&self, from: &CStr, to: &CStr) -> io::Result<()> {
        // SAFETY: both names are NUL-terminated and the descriptor is open.
        cvt(unsafe { libc::renameat(self.raw(), from.as_ptr(), self.raw(), to.as_ptr()) }).map(drop)
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

    /// `lstat` of `name` through `statx`, with the birth time when the filesystem
    /// records one (ns since the epoch); `None` when `name` does not exist.
    // `stat` field types differ between targets; the casts are no-ops on some.
    #[allow(clippy::unnecessary_cast)]
    pub fn lstat_born(&self, name: &CStr) -> io::Result<Option<(libc::stat, Option<i64>)>> {
        let mut stx = MaybeUninit::<libc::statx>::uninit();
        // SAFETY: name is NUL-terminated and stx is valid for writes of a statx.
        let r = unsafe {
            libc::statx(
                self.raw(),
                name.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
                libc::STATX_BASIC_STATS | libc::STATX_BTIME,
                stx.as_mut_ptr(),
            )
        };
        let stx = match cvt(r) {
            // SAFETY: statx succeeded, so it filled stx.
            Ok(_) => unsafe { stx.assume_init() },
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        };
        // SAFETY: an all-zero stat is valid; the fields read later are set here.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        st.st_dev = libc::makedev(stx.stx_dev_major, stx.stx_dev_minor) as _;
        st.st_ino = stx.stx_ino as _;
        st.st_nlink = stx.stx_nlink as _;
        st.st_mode = stx.stx_mode as _;
        st.st_uid = stx.stx_uid;
        st.st_gid = stx.stx_gid;
        st.st_rdev = libc::makedev(stx.stx_rdev_major, stx.stx_rdev_minor) as _;
        st.st_size = stx.stx_size as _;
        st.st_blocks = stx.stx_blocks as _;
        st.st_mtime = stx.stx_mtime.tv_sec as _;
        st.st_mtime_nsec = stx.stx_mtime.tv_nsec as _;
        st.st_ctime = stx.stx_ctime.tv_sec as _;
        st.st_ctime_nsec = stx.stx_ctime.tv_nsec as _;
        st.st_atime = stx.stx_atime.tv_sec as _;
        st.st_atime_nsec = stx.stx_atime.tv_nsec as _;
        let born = (stx.stx_mask & libc::STATX_BTIME != 0)
            .then(|| time_ns(stx.stx_btime.tv_sec, i64::from(stx.stx_btime.tv_nsec)));
        Ok(Some((st, born)))
    }

    /// `fstat` of the directory itself.
    pub fn stat(&self) -> io::Result<libc::stat> {
        let mut st = MaybeUninit::<libc::stat>::uninit();
        // SAFETY: the fd is open and st is valid for writes of a stat.
        cvt(unsafe { libc::fstat(self.raw(), st.as_mut_ptr()) })?;
        // SAFETY: fstat succeeded, so it filled st.
        Ok(unsafe { st.assume_init() })
    }

    /// The target of symlink `name`.
    pub fn read_link(&self, name: &CStr) -> io::Result<OsString> {
        let mut buf = vec![0u8; 256];
        loop {
            // SAFETY: name is NUL-terminated and buf is valid for buf.len() bytes.
            let n = unsafe {
                libc::readlinkat(
                    self.raw(),
                    name.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = n as usize;
            // A full buffer may mean a truncated target.
            if n < buf.len() {
                buf.truncate(n);
                return Ok(OsString::from_vec(buf));
            }
            buf.resize(buf.len() * 4, 0);
        }
    }

    /// The names in the directory, without `.` and `..`, in no particular order.
    pub fn names(&self) -> io::Result<Vec<CString>> {
        // A fresh open file description, so the listing starts at the beginning
        // whatever was read through this one.
        // SAFETY: the name is NUL-terminated.
        let fd = cvt(unsafe {
            libc::openat(
                self.raw(),
                c".".as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: fd is a fresh directory descriptor; the stream takes it over.
        let dir = unsafe { libc::fdopendir(fd) };
        if dir.is_null() {
            let e = io::Error::last_os_error();
            drop(owned(fd));
            return Err(e);
        }
        let mut out = Vec::new();
        let res = loop {
            // SAFETY: errno is thread-local; readdir reports errors only through it.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: dir is an open stream used by this thread only.
            let ent = unsafe { libc::readdir(dir) };
            if ent.is_null() {
                let e = io::Error::last_os_error();
                break if e.raw_os_error() == Some(0) {
                    Ok(())
                } else {
                    Err(e)
                };
            }
            // SAFETY: d_name of a returned entry is a NUL-terminated string that lives
            // until the next readdir call; it is copied before then.
            let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
            if name != c"." && name != c".." {
                out.push(name.to_owned());
            }
        };
        // SAFETY: dir is open and not used afterwards; this also closes fd.
        unsafe { libc::closedir(dir) };
        res.map(|()| out)
    }

    pub fn unlink(&self, name: &CStr, dir: bool) -> io::Result<()> {
        let flags = if dir { libc::AT_REMOVEDIR } else { 0 };
        // SAFETY: name is NUL-terminated.
        cvt(unsafe { libc::unlinkat(self.raw(), name.as_ptr(), flags) }).map(drop)
    }

    /// Removes `name` and, for a directory, everything below it, without following
    /// symlinks. Read-only directories on the way are made writable first.
    pub fn remove_all(&self, name: &CStr) -> io::Result<()> {
        let Some(st) = self.lstat(name)? else {
            return Ok(());
        };
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return self.unlink(name, false);
        }
        let dir = self.open_dir(name)?;
        // SAFETY: the fd is open; failure shows up as EACCES below.
        unsafe { libc::fchmod(dir.raw(), 0o700) };
        for child in dir.names()? {
            dir.remove_all(&child)?;
        }
        self.unlink(name, true)
    }

    /// Owner of `name` itself, even when it is a symlink.
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

    /// Permissions of `name`, which the caller just created as a non-symlink in a
    /// directory nobody else can write (this follows a symlink; see
    /// [`chmod_nofollow`](Self::chmod_nofollow) otherwise).
    pub fn chmod(&self, name: &CStr, mode: u32) -> io::Result<()> {
        // SAFETY: name is NUL-terminated.
        cvt(unsafe { libc::fchmodat(self.raw(), name.as_ptr(), mode & 0o7777, 0) }).map(drop)
    }

    /// Permissions of `name`, which must be a `file_type` (`S_IF*` bits) object and
    /// not a symlink. The object is pinned with an `O_PATH` descriptor and changed
    /// through its `/proc` link, since Linux has no no-follow chmod before fchmodat2.
    pub fn chmod_nofollow(&self, name: &CStr, file_type: u32, mode: u32) -> io::Result<()> {
        // SAFETY: name is NUL-terminated.
        let fd = owned(cvt(unsafe {
            libc::openat(
                self.raw(),
                name.as_ptr(),
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })?);
        let mut st = MaybeUninit::<libc::stat>::uninit();
        // SAFETY: fd is open and st is valid for writes of a stat.
        cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
        // SAFETY: fstat succeeded, so it filled st.
        let st = unsafe { st.assume_init() };
        if st.st_mode & libc::S_IFMT != file_type {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        let proc = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
        // SAFETY: proc is NUL-terminated; the magic link names the pinned object.
        cvt(unsafe { libc::chmod(proc.as_ptr(), mode & 0o7777) }).map(drop)
    }

    /// Access and modification times of `name` itself, even when it is a symlink.
    pub fn set_ltimes(&self, name: &CStr, mtime: libc::timespec) -> io::Result<()> {
        let ts = [mtime, mtime];
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
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Flushes the filesystem holding `path` to stable storage: one call where an
/// fsync per file would cost one journal commit each.
pub fn syncfs(path: &Path) -> io::Result<()> {
    let f = File::open(path)?;
    // SAFETY: `f` is an open descriptor for the duration of the call.
    cvt(unsafe { libc::syncfs(f.as_raw_fd()) }).map(drop)
}
