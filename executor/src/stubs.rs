//! Mount point stubs.
//!
//! The runtime creates a missing mount point (`/proc`, `/etc/hosts`, a `RUN --mount`
//! target) in the root filesystem, which would make it part of the layer. Those that
//! were missing before the run and are still empty after it are removed again, and the
//! times of the directories that held them restored, so the upper dir keeps only what
//! the process changed.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use crate::sys;

#[derive(Debug, Default)]
pub struct Stubs {
    /// Paths relative to the root, parents sorting before their children.
    missing: BTreeSet<PathBuf>,
    /// Existing directories that will receive a stub, with their atime and mtime.
    parents: BTreeMap<PathBuf, [libc::timespec; 2]>,
}

/// `dest` as a relative path with `.` and `..` applied lexically, never above the root.
pub fn clean(dest: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in Path::new(dest).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

impl Stubs {
    /// Notes which of `dests` (absolute container paths) do not exist under `root`.
    pub fn record<'a>(root: &Path, dests: impl IntoIterator<Item = &'a str>) -> io::Result<Self> {
        let root_fd = sys::open_path(root)?;
        let mut stubs = Stubs::default();
        for dest in dests {
            let rel = clean(dest);
            let mut prefix = PathBuf::new();
            let mut parent = PathBuf::new();
            for c in rel.components() {
                prefix.push(c);
                match sys::open_in_root(&root_fd, &prefix, libc::O_PATH) {
                    Ok(_) => parent = prefix.clone(),
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                        if !stubs.parents.contains_key(&parent) {
                            let times = dir_times(&root_fd, &parent)?;
                            stubs.parents.insert(parent.clone(), times);
                        }
                        let mut p = prefix.clone();
                        stubs.missing.insert(p.clone());
                        for rest in rel.components().skip(p.components().count()) {
                            p.push(rest);
                            stubs.missing.insert(p.clone());
                        }
                        break;
                    }
                    // Not a directory on the way, a loop: the runtime will refuse it.
                    Err(_) => break,
                }
            }
        }
        Ok(stubs)
    }

    /// Removes the stubs that are still empty and restores their parents' times.
    pub fn remove(&self, root: &Path) -> io::Result<()> {
        let root_fd = sys::open_path(root)?;
        for rel in self.missing.iter().rev() {
            let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
                continue;
            };
            let Ok(dir) = sys::open_in_root(&root_fd, parent, libc::O_PATH | libc::O_DIRECTORY)
            else {
                continue;
            };
            let Ok(st) = sys::lstat_at(&dir, name) else {
                continue;
            };
            let res = match st.st_mode & libc::S_IFMT {
                libc::S_IFDIR => sys::unlink_at(&dir, name, libc::AT_REMOVEDIR),
                libc::S_IFREG if st.st_size == 0 => sys::unlink_at(&dir, name, 0),
                _ => Ok(()),
            };
            match res {
                Err(e) if e.raw_os_error() != Some(libc::ENOTEMPTY) => return Err(e),
                _ => {}
            }
        }
        for (rel, times) in &self.parents {
            if let Ok(dir) = sys::open_in_root(&root_fd, rel, libc::O_RDONLY | libc::O_DIRECTORY) {
                sys::futimens(&dir, times)?;
            }
        }
        Ok(())
    }
}

fn dir_times(root: &OwnedFd, rel: &Path) -> io::Result<[libc::timespec; 2]> {
    let dir = sys::open_in_root(root, rel, libc::O_PATH | libc::O_DIRECTORY)?;
    let st = sys::fstat(&dir)?;
    Ok([
        libc::timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec,
        },
        libc::timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec,
        },
    ])
}
