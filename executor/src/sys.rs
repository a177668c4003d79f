//! Thin wrappers over the system calls the executor needs.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub fn cstr(s: impl AsRef<OsStr>) -> io::Result<CString> {
    CString::new(s.as_ref().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `mount(2)` of a filesystem without a source device.
pub fn mount(fstype: &str, target: &Path, flags: libc::c_ulong, data: &str) -> io::Result<()> {
    let (src, ty, tgt, data) = (cstr(fstype)?, cstr(fstype)?, cstr(target)?, cstr(data)?);
    // SAFETY: every pointer is a valid NUL-terminated string that outlives the call.
    check(unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            ty.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    })
}

/// A bind mount of `src` onto `target`.
pub fn bind(src: &Path, target: &Path) -> io::Result<()> {
    let (src, tgt) = (cstr(src)?, cstr(target)?);
    // SAFETY: valid NUL-terminated strings; fstype and data may be null for a bind.
    check(unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    })
}

pub fn umount(target: &Path, flags: libc::c_int) -> io::Result<()> {
    let tgt = cstr(target)?;
    // SAFETY: valid NUL-terminated string.
    check(unsafe { libc::umount2(tgt.as_ptr(), flags) })
}

/// Unmounts `target`, lazily when it is busy. A target that is not mounted is fine.
pub fn umount_best(target: &Path) -> io::Result<()> {
    match umount(target, 0) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(_) => umount(target, libc::MNT_DETACH),
    }
}

pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare takes plain flags.
    check(unsafe { libc::unshare(flags) })
}

pub fn chdir(dir: &Path) -> io::Result<()> {
    let d = cstr(dir)?;
    // SAFETY: valid NUL-terminated string.
    check(unsafe { libc::chdir(d.as_ptr()) })
}

pub fn open_path(p: &Path) -> io::Result<OwnedFd> {
    let c = cstr(p)?;
    // SAFETY: valid NUL-terminated string; the fd returned is owned by the caller.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `rel` under `root` with `flags`, resolving every component, `..` and symlinks
/// included, as if `root` were `/`, so nothing can escape it. A final symlink is not
/// followed.
pub fn open_in_root(root: &OwnedFd, rel: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let c = cstr(rel)?;
    // SAFETY: open_how is plain data; zeroed is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC | libc::O_NOFOLLOW) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: pointers are valid for the call and the size matches the struct.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the syscall returned a new fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`.
pub fn lstat_at(dir: &OwnedFd, name: &OsStr) -> io::Result<libc::stat> {
    let c = cstr(name)?;
    // SAFETY: stat is plain data filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, string and out pointer.
    check(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(st)
}

pub fn unlink_at(dir: &OwnedFd, name: &OsStr, flags: libc::c_int) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid fd and string.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) })
}

/// Sets atime and mtime of the open file `fd`.
pub fn futimens(fd: &OwnedFd, times: &[libc::timespec; 2]) -> io::Result<()> {
    // SAFETY: valid fd and a two-element timespec array.
    check(unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) })
}

pub fn fstat(fd: &OwnedFd) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out pointer.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

pub fn mknod(p: &Path, mode: u32, rdev: u64) -> io::Result<()> {
    let c = cstr(p)?;
    // SAFETY: valid NUL-terminated string.
    check(unsafe { libc::mknod(c.as_ptr(), mode, rdev) })
}

pub fn lchown(p: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))
}

/// Sets atime and mtime of `p` without following a symlink.
pub fn set_times(p: &Path, st: &std::fs::Metadata) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let c = cstr(p)?;
    let ts = [
        libc::timespec {
            tv_sec: st.atime(),
            tv_nsec: st.atime_nsec(),
        },
        libc::timespec {
            tv_sec: st.mtime(),
            tv_nsec: st.mtime_nsec(),
        },
    ];
    // SAFETY: valid string and a two-element timespec array.
    check(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

/// The extended attributes of `p` (not following a symlink), names and values.
pub fn xattrs(p: &Path) -> io::Result<Vec<(CString, Vec<u8>)>> {
    let c = cstr(p)?;
    // SAFETY: a null buffer of size 0 asks for the needed size.
    let n = unsafe { libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENOTSUP) {
            Ok(Vec::new())
        } else {
            Err(e)
        };
    }
    let mut names = vec![0u8; n as usize];
    // SAFETY: the buffer is as large as announced.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    names.truncate(n as usize);
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let name = CString::new(name).expect("split on NUL");
        // SAFETY: size query as above.
        let n = unsafe { libc::lgetxattr(c.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut val = vec![0u8; n as usize];
        // SAFETY: the buffer is as large as announced.
        let n = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                name.as_ptr(),
                val.as_mut_ptr().cast(),
                val.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        val.truncate(n as usize);
        out.push((name, val));
    }
    Ok(out)
}

pub fn set_xattr(p: &Path, name: &CString, val: &[u8]) -> io::Result<()> {
    let c = cstr(p)?;
    // SAFETY: valid strings and a buffer of the given length.
    check(unsafe { libc::lsetxattr(c.as_ptr(), name.as_ptr(), val.as_ptr().cast(), val.len(), 0) })
}

pub fn remove_xattr(p: &Path, name: &CString) -> io::Result<()> {
    let c = cstr(p)?;
    // SAFETY: valid NUL-terminated strings.
    check(unsafe { libc::lremovexattr(c.as_ptr(), name.as_ptr()) })
}

/// Brings the loopback interface of the calling thread's network namespace up.
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: a datagram socket only serves as a handle for the interface ioctls.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is new and owned here.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: valid socket and ifreq for SIOCGIFFLAGS / SIOCSIFFLAGS.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: the union member ifru_flags is the one SIOCGIFFLAGS filled.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: as above.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) })
}
