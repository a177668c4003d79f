//! Directory descriptors and the `*at` calls relative to them live in buildd-fsutil;
//! extraction resolves every name through them, one component at a time, never
//! following a symlink.

pub(crate) use buildd_fsutil::dirfd::{DirFd, fset_xattr, set_meta};

/// The timespec of a tar header's whole-second mtime.
pub(crate) fn secs(mtime: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    }
}
