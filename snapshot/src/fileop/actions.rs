//! mkdir, mkfile, symlink and rm.

use std::path::Path;

use buildd_fsutil::glob;
use buildd_proto::llb::{FileActionMkDir, FileActionMkFile, FileActionRm, FileActionSymlink};

use super::writer::{Attrs, Writer};
use super::{at, owner};
use crate::error::{FileOpError, FileOpErrorKind};

pub(super) fn mkdir(w: &mut Writer<'_>, a: &FileActionMkDir) -> Result<(), FileOpError> {
    let err = at("mkdir", &a.path);
    let now = a.timestamp.unwrap_or(0);
    let (uid, gid) = owner::resolve(&w.view, a.owner.as_ref())
        .map_err(&err)?
        .unwrap_or((0, 0));
    let attrs = Attrs {
        uid,
        gid,
        mode: a.mode & 0o7777,
        mtime_ns: now,
    };
    let path = Path::new(&a.path);
    // Like `mkdir -p`, missing parents take the attributes of the directory itself.
    let r = if a.make_parents {
        w.resolve_creating(path, true, attrs, now)
    } else {
        w.view
            .resolve(path, true)
            .map_err(FileOpErrorKind::from_view)
    }
    .map_err(&err)?;
    match (r.node, r.parent) {
        (Some(n), _) if n.is_dir() => Ok(()),
        (Some(_), _) => Err(err(FileOpErrorKind::Exists)),
        (None, Some(parent)) => {
            w.ensure_dir(&parent.rel).map_err(&err)?;
            w.create_dir(&r.rel, attrs, now).map_err(&err)
        }
        (None, None) => unreachable!("the root always exists"),
    }
}

pub(super) fn mkfile(w: &mut Writer<'_>, a: &FileActionMkFile) -> Result<(), FileOpError> {
    let err = at("mkfile", &a.path);
    let now = a.timestamp.unwrap_or(0);
    let (uid, gid) = owner::resolve(&w.view, a.owner.as_ref())
        .map_err(&err)?
        .unwrap_or((0, 0));
    let r = w
        .view
        .resolve(Path::new(&a.path), true)
        .map_err(|e| err(e.into()))?;
    if r.node.as_ref().is_some_and(|n| n.is_dir()) {
        return Err(err(FileOpErrorKind::IsADirectory));
    }
    let parent = r
        .parent
        .expect("only the root has no parent, and it is a directory");
    w.ensure_dir(&parent.rel).map_err(&err)?;
    let attrs = Attrs {
        uid,
        gid,
        mode: a.mode & 0o7777,
        mtime_ns: now,
    };
    w.create_file(&r.rel, &mut a.data.as_slice(), attrs, None, now)
        .map_err(&err)
}

pub(super) fn symlink(w: &mut Writer<'_>, a: &FileActionSymlink) -> Result<(), FileOpError> {
    let err = at("symlink", &a.newpath);
    let now = a.timestamp.unwrap_or(0);
    let (uid, gid) = owner::resolve(&w.view, a.owner.as_ref())
        .map_err(&err)?
        .unwrap_or((0, 0));
    let r = w
        .view
        .resolve(Path::new(&a.newpath), false)
        .map_err(|e| err(e.into()))?;
    let (None, Some(parent)) = (r.node, r.parent) else {
        return Err(err(FileOpErrorKind::Exists));
    };
    w.ensure_dir(&parent.rel).map_err(&err)?;
    let attrs = Attrs {
        uid,
        gid,
        mode: 0o777,
        mtime_ns: now,
    };
    w.create_symlink(&r.rel, Path::new(&a.oldpath), attrs, now)
        .map_err(&err)
}

pub(super) fn rm(w: &mut Writer<'_>, a: &FileActionRm) -> Result<(), FileOpError> {
    let err = at("rm", &a.path);
    let paths = if a.allow_wildcard && glob::has_meta(&a.path) {
        // A pattern matching nothing removes nothing, as in BuildKit.
        w.view.glob(&a.path).map_err(|e| err(e.into()))?
    } else {
        vec![a.path.clone()]
    };
    for p in paths {
        let r = match w.view.resolve(Path::new(&p), false) {
            Err(crate::SnapshotError::NotFound(_)) if a.allow_not_found => continue,
            r => r.map_err(|e| err(e.into()))?,
        };
        match (r.node, r.parent) {
            (None, _) if a.allow_not_found => {}
            (None, _) => return Err(err(FileOpErrorKind::NotFound)),
            (Some(_), None) => return Err(err(FileOpErrorKind::RemoveRoot)),
            (Some(node), Some(parent)) => {
                w.ensure_dir(&parent.rel).map_err(&err)?;
                // rm carries no timestamp: the parent's new mtime is the epoch.
                w.remove(&node.rel, 0).map_err(&err)?;
            }
        }
    }
    Ok(())
}
