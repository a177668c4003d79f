//! Opening paths below a directory without following any symlink: `openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` where the kernel has it, one `O_NOFOLLOW`
//! component at a time otherwise.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{DirFd, cvt, owned};

/// Kernels before 5.6 (or seccomp profiles) lack openat2; once seen, stop trying.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// `struct open_how` of linux/openat2.h (libc's is not constructible).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const FILE_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
const DIR_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;

/// Whether an open below a directory failed because the path no longer leads
/// through directories to the object the caller saw: a symlink or a non-directory
/// was met (ELOOP, ENOTDIR), or the path left the directory (EXDEV).
pub fn swapped(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ELOOP | libc::ENOTDIR | libc::EXDEV)
    )
}

impl DirFd {
    /// Opens the directory `rel` (`/`-separated, `""` for this one) below this one.
    pub fn open_dir_beneath(&self, rel: impl AsRef<OsStr>) -> io::Result<DirFd> {
        let rel = rel.as_ref();
        if components(rel)?.is_empty() {
            return self.try_clone();
        }
        open_beneath(self, rel, DIR_FLAGS).map(DirFd)
    }

    /// Opens whatever `rel` names below this directory for reading, without blocking
    /// (a FIFO there must not hang the caller) and without following symlinks. It
    /// need not be a regular file: check the result's metadata.
    pub fn open_file_beneath(&self, rel: impl AsRef<OsStr>) -> io::Result<File> {
        open_beneath(self, rel.as_ref(), FILE_FLAGS).map(File::from)
    }
}

/// The names `rel` goes through; `..` is refused as leaving the directory.
fn components(rel: &OsStr) -> io::Result<Vec<&[u8]>> {
    let out: Vec<&[u8]> = rel
        .as_bytes()
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    if out.contains(&&b".."[..]) {
        return Err(io::Error::from_raw_os_error(libc::EXDEV));
    }
    Ok(out)
}

fn open_beneath(dir: &DirFd, rel: &OsStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let comps = components(rel)?;
    let Some((last, parents)) = comps.split_last() else {
        return Err(io::Error::from_raw_os_error(libc::EISDIR));
    };
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        let path = CString::new(comps.join(&b'/'))?;
        let how = OpenHow {
            flags: flags as u64,
            mode: 0,
            resolve: libc::RESOLVE_BENEATH
                | libc::RESOLVE_NO_SYMLINKS
                | libc::RESOLVE_NO_MAGICLINKS,
        };
        // SAFETY: path is NUL-terminated and how is a valid open_how of the given size.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.raw(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if r >= 0 {
            return Ok(owned(r as libc::c_int));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENOSYS) => NO_OPENAT2.store(true, Ordering::Relaxed),
            // Filtered by seccomp, or flags this kernel does not know: walk instead.
            Some(libc::EPERM | libc::EINVAL | libc::E2BIG) => {}
            _ => return Err(e),
        }
    }
    let mut cur: Option<DirFd> = None;
    for c in parents {
        let next = cur.as_ref().unwrap_or(dir).open_dir(&CString::new(*c)?)?;
        cur = Some(next);
    }
    let parent = cur.as_ref().unwrap_or(dir);
    let last = CString::new(*last)?;
    // SAFETY: last is NUL-terminated.
    let fd = cvt(unsafe { libc::openat(parent.raw(), last.as_ptr(), flags) })?;
    Ok(owned(fd))
}
