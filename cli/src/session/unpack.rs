//! Unpacking a `type=local` export (a tar stream from the daemon) into a directory,
//! confined to it: every path is resolved one component at a time through directory
//! descriptors that refuse symlinks, so neither `..`, an absolute name nor a
//! symlink the archive (or the directory) holds can lead a write outside.

use std::ffi::CString;
use std::io::{self, Read};
use std::path::Path;

use buildd_fsutil::dirfd::{DirFd, set_meta, time_ns, timespec};
use tar::EntryType;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("{path:?}: refusing a path that leaves the destination")]
    Escape { path: String },
    #[error("{path:?}: a parent directory is a symlink or not a directory")]
    ParentNotDir { path: String },
    #[error("{path:?}: unsupported entry type {kind:?}")]
    Unsupported { path: String, kind: EntryType },
    #[error("{path:?}: name is not valid UTF-8 or holds a NUL byte")]
    BadName { path: String },
    #[error("cannot unpack {path:?}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// Unpacks the tar stream `reader` into `dest` (created if missing). Existing
/// entries of the same name are replaced; owners are kept when running as root.
pub fn unpack(reader: impl Read, dest: &Path) -> Result<(), UnpackError> {
    let io_err = |path: &str| {
        let path = path.to_owned();
        move |source| UnpackError::Io { path, source }
    };
    std::fs::create_dir_all(dest).map_err(io_err(""))?;
    let root = DirFd::open(dest).map_err(io_err(""))?;
    let as_root = geteuid() == 0;
    // Directory times are set last: creating entries inside changes them.
    let mut dir_times = Vec::new();
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(io_err(""))? {
        let mut entry = entry.map_err(io_err(""))?;
        let raw = String::from_utf8(entry.path_bytes().into_owned()).map_err(|e| {
            UnpackError::BadName {
                path: String::from_utf8_lossy(e.as_bytes()).into_owned(),
            }
        })?;
        let comps = components(&raw)?;
        let Some((name, parents)) = comps.split_last() else {
            continue; // The destination itself.
        };
        let header = entry.header();
        let mode = header.mode().map_err(io_err(&raw))?;
        let mtime = timespec(time_ns(header.mtime().map_err(io_err(&raw))? as i64, 0));
        let owner = if as_root {
            Some((
                header.uid().map_err(io_err(&raw))? as u32,
                header.gid().map_err(io_err(&raw))? as u32,
            ))
        } else {
            None
        };
        let kind = header.entry_type();
        let parent = open_parents(&root, parents, &raw, true)?;
        let cname = cstring(name, &raw)?;
        let existing = parent.lstat(&cname).map_err(io_err(&raw))?;
        let is_dir = |st: &libc::stat| st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        match kind {
            EntryType::Directory => {
                if existing.as_ref().is_some_and(|st| !is_dir(st)) {
                    parent.unlink(&cname, false).map_err(io_err(&raw))?;
                }
                if !existing.as_ref().is_some_and(is_dir) {
                    parent.mkdir(&cname, 0o700).map_err(io_err(&raw))?;
                }
                let dir = parent.open_dir(&cname).map_err(io_err(&raw))?;
                set_meta(&dir, owner, mode, timespec(0)).map_err(io_err(&raw))?;
                dir_times.push((comps.clone(), mtime));
                continue;
            }
            _ if existing.is_some() => parent.remove_all(&cname).map_err(io_err(&raw))?,
            _ => {}
        }
        match kind {
            EntryType::Regular | EntryType::Continuous => {
                let mut file = parent.create_file(&cname).map_err(io_err(&raw))?;
                io::copy(&mut entry, &mut file).map_err(io_err(&raw))?;
                set_meta(&file, owner, mode, mtime).map_err(io_err(&raw))?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let target =
                    CString::new(target).map_err(|_| UnpackError::BadName { path: raw.clone() })?;
                parent.symlink(&target, &cname).map_err(io_err(&raw))?;
                if let Some((uid, gid)) = owner {
                    parent.lchown(&cname, uid, gid).map_err(io_err(&raw))?;
                }
                parent.set_ltimes(&cname, mtime).map_err(io_err(&raw))?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                let tcomps = components(&target)?;
                let Some((tname, tparents)) = tcomps.split_last() else {
                    return Err(UnpackError::Escape { path: target });
                };
                let from = open_parents(&root, tparents, &target, false)?;
                parent
                    .link(&from, &cstring(tname, &target)?, &cname)
                    .map_err(io_err(&raw))?;
            }
            EntryType::Fifo => {
                parent
                    .mknod(&cname, libc::S_IFIFO | (mode & 0o7777), 0)
                    .map_err(io_err(&raw))?;
                parent.chmod(&cname, mode).map_err(io_err(&raw))?;
                parent.set_ltimes(&cname, mtime).map_err(io_err(&raw))?;
            }
            kind => return Err(UnpackError::Unsupported { path: raw, kind }),
        }
    }
    for (comps, mtime) in dir_times.into_iter().rev() {
        let path = comps.join("/");
        let (name, parents) = comps.split_last().expect("not the root");
        let parent = open_parents(&root, parents, &path, false)?;
        parent
            .set_ltimes(&cstring(name, &path)?, mtime)
            .map_err(io_err(&path))?;
    }
    Ok(())
}

/// The components of an archive path; `.` and empty ones dropped, `..` and absolute
/// paths refused.
fn components(raw: &str) -> Result<Vec<String>, UnpackError> {
    if raw.starts_with('/') {
        return Err(UnpackError::Escape {
            path: raw.to_owned(),
        });
    }
    let mut out = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(UnpackError::Escape {
                    path: raw.to_owned(),
                });
            }
            c => out.push(c.to_owned()),
        }
    }
    Ok(out)
}

/// Opens the directory `parents` names below `root`, never through a symlink;
/// missing directories are created when `create` is set.
fn open_parents(
    root: &DirFd,
    parents: &[String],
    path: &str,
    create: bool,
) -> Result<DirFd, UnpackError> {
    let io_err = |source| UnpackError::Io {
        path: path.to_owned(),
        source,
    };
    let mut dir = root.try_clone().map_err(io_err)?;
    for comp in parents {
        let c = cstring(comp, path)?;
        dir = match dir.open_dir(&c) {
            Ok(d) => d,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => {
                dir.mkdir(&c, 0o755).map_err(io_err)?;
                dir.open_dir(&c).map_err(io_err)?
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                return Err(UnpackError::ParentNotDir {
                    path: path.to_owned(),
                });
            }
            Err(e) => return Err(io_err(e)),
        };
    }
    Ok(dir)
}

fn cstring(name: &str, path: &str) -> Result<CString, UnpackError> {
    CString::new(name).map_err(|_| UnpackError::BadName {
        path: path.to_owned(),
    })
}

fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
#[path = "unpack_tests.rs"]
mod tests;
