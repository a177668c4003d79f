//! One file system object found by a selection, with the metadata a copy and its
//! cache key need.

use std::cmp::Ordering;
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::SelectError;

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
    pub mtime_ns: i64,
    /// Status change time; part of a per-file hash cache key since an mtime can be
    /// set back by hand but a ctime cannot.
    pub ctime_ns: i64,
}

impl Entry {
    /// Builds the entry for `rel` from its `lstat` data, reading a symlink's target.
    pub(crate) fn from_metadata(
        root: &Path,
        rel: String,
        md: &Metadata,
    ) -> Result<Self, SelectError> {
        let ft = md.file_type();
        let kind = if ft.is_file() {
            EntryKind::File
        } else if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_symlink() {
            let full = root.join(&rel);
            let target = std::fs::read_link(&full).map_err(|source| SelectError::Io {
                path: rel.clone(),
                source,
            })?;
            let target =
                target
                    .into_os_string()
                    .into_string()
                    .map_err(|t| SelectError::NonUtf8 {
                        path: format!("{rel} -> {}", t.to_string_lossy()),
                    })?;
            EntryKind::Symlink { target }
        } else if ft.is_fifo() {
            EntryKind::Fifo
        } else if ft.is_char_device() {
            EntryKind::CharDev { rdev: md.rdev() }
        } else if ft.is_block_device() {
            EntryKind::BlockDev { rdev: md.rdev() }
        } else {
            EntryKind::Socket
        };
        Ok(Entry {
            rel,
            kind,
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            size: md.size(),
            dev: md.dev(),
            ino: md.ino(),
            nlink: md.nlink(),
            mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
            ctime_ns: md.ctime() * 1_000_000_000 + md.ctime_nsec(),
        })
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
