//! One file system object found by a selection, with the metadata a copy and its
//! cache key need.

use std::cmp::Ordering;
use std::ffi::CStr;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

use super::SelectError;
use crate::dirfd::{DirFd, time_ns};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EntryKind {
    File,
    Dir,
    Symlink { target: String },
    Fifo,
    CharDev { rdev: u64 },
    BlockDev { rdev: u64 },
    Socket,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `/`-separated path relative to the context root, with every followed
    /// symlink resolved: `root.join(rel)` is the object itself.
    pub rel: String,
    pub kind: EntryKind,
    /// Permission bits plus setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    /// Nanoseconds since the epoch, saturated outside 1678 to 2262.
    pub mtime_ns: i64,
    /// What tells this version of the file from another at the same inode; part
    /// of a per-file hash cache key.
    pub stamp: Stamp,
}

/// What changes when a file at an inode is no longer the version an entry saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stamp {
    /// The status change time (ns): an mtime can be set back by hand, a ctime
    /// cannot.
    Ctime(i64),
    /// The birth time (ns), for a root whose files are replaced, never changed in
    /// place (see [`SelectOptions::replaced_only`](super::SelectOptions)): a new
    /// version is a new inode, and a hard link to the file, which moves its ctime,
    /// does not change it.
    Born(i64),
}

impl Stamp {
    /// The stamp of `md` of the same kind as this one.
    fn of(self, md: &Metadata) -> Option<Self> {
        Some(match self {
            Stamp::Ctime(_) => Stamp::Ctime(time_ns(md.ctime(), md.ctime_nsec())),
            Stamp::Born(_) => {
                let born = md.created().ok()?;
                let since = born.duration_since(std::time::UNIX_EPOCH).ok()?;
                Stamp::Born(i64::try_from(since.as_nanos()).ok()?)
            }
        })
    }
}

impl Entry {
    /// Builds the entry for `rel` from its `lstat` data; `name` in `dir` is the
    /// object itself, whose target is read when it is a symlink.
    // `stat` field types differ between targets; the casts are no-ops on some.
    #[allow(clippy::unnecessary_cast)]
    pub(crate) fn from_stat(
        dir: &DirFd,
        name: &CStr,
        rel: String,
        st: &libc::stat,
        born: Option<i64>,
    ) -> Result<Self, SelectError> {
        let kind = match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => EntryKind::File,
            libc::S_IFDIR => EntryKind::Dir,
            libc::S_IFLNK => {
                let target = dir.read_link(name).map_err(|source| SelectError::Io {
                    path: rel.clone(),
                    source,
                })?;
                let target = target.into_string().map_err(|t| SelectError::NonUtf8 {
                    path: format!("{rel} -> {}", t.to_string_lossy()),
                })?;
                EntryKind::Symlink { target }
            }
            libc::S_IFIFO => EntryKind::Fifo,
            libc::S_IFCHR => EntryKind::CharDev {
                rdev: st.st_rdev as u64,
            },
            libc::S_IFBLK => EntryKind::BlockDev {
                rdev: st.st_rdev as u64,
            },
            _ => EntryKind::Socket,
        };
        Ok(Entry {
            rel,
            kind,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size as u64,
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            nlink: st.st_nlink as u64,
            mtime_ns: time_ns(st.st_mtime as i64, st.st_mtime_nsec as i64),
            stamp: match born {
                Some(ns) => Stamp::Born(ns),
                None => Stamp::Ctime(time_ns(st.st_ctime as i64, st.st_ctime_nsec as i64)),
            },
        })
    }

    /// Whether `md` (an `fstat` of a file opened at `rel`) is the very version of the
    /// regular file this entry describes: same inode, size, mtime and stamp. Any
    /// write or metadata change since the entry was taken moves the ctime; where
    /// files are only ever replaced, a new version has a new birth time.
    pub fn same_file(&self, md: &Metadata) -> bool {
        self.kind == EntryKind::File
            && md.is_file()
            && md.dev() == self.dev
            && md.ino() == self.ino
            && md.size() == self.size
            && time_ns(md.mtime(), md.mtime_nsec()) == self.mtime_ns
            && self.stamp.of(md) == Some(self.stamp)
    }

    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Dir
    }
}

/// Walk order: component by component, byte order within a component, so a
/// directory is immediately followed by its whole subtree (`a`, `a/b`, `a-b`).
pub fn path_order(a: &str, b: &str) -> Ordering {
    let key = |c: u8| if c == b'/' { 0 } else { c };
    a.bytes().map(key).cmp(b.bytes().map(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_order_keeps_subtrees_together() {
        let mut v = vec!["a-b", "a/b", "a", "a/b/c", "", "a0", "b"];
        v.sort_by(|x, y| path_order(x, y));
        assert_eq!(v, ["", "a", "a/b", "a/b/c", "a-b", "a0", "b"]);
    }
}
