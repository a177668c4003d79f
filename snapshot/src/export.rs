//! Flattening a snapshot into a plain directory (the local exporter).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::SnapshotError;
use crate::store::{LayerStore, Snapshot};
use crate::sys;
use crate::view::{LayeredView, Node};

/// Writes the merged filesystem of `snap` into `dest`, creating it if needed and
/// replacing what is in the way. Whatever already sits in `dest` is never followed:
/// a symlink where the snapshot has a directory is replaced, not written through.
/// Owners are kept when running as root.
pub fn export_tree(store: &LayerStore, snap: &Snapshot, dest: &Path) -> Result<(), SnapshotError> {
    fs::create_dir_all(dest).map_err(SnapshotError::io("create", dest))?;
    let view = LayeredView::new(store, snap)?;
    if snap.layers.is_empty() {
        return Ok(());
    }
    let nodes = view.walk(&view.root()?)?;
    // SAFETY: geteuid has no preconditions.
    let as_root = unsafe { libc::geteuid() } == 0;
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut dir_times = Vec::new();
    // The root is `dest` itself, whose own metadata is the caller's business.
    for n in &nodes[1..] {
        let target = dest.join(&n.rel);
        let io = |op| SnapshotError::io(op, target.clone());
        export_one(&view, n, &target, &mut links).map_err(io("export"))?;
        let m = &n.meta;
        if as_root {
            sys::lchown(&target, m.uid(), m.gid()).map_err(io("chown"))?;
        }
        if !m.file_type().is_symlink() {
            sys::chmod_nofollow(&target, m.mode()).map_err(io("chmod"))?;
        }
        if m.is_dir() {
            dir_times.push((target, sys::mtime_ns(m)));
        } else {
            sys::set_times(&target, sys::mtime_ns(m)).map_err(io("set times on"))?;
        }
    }
    // Children change their directory's mtime, so directories go last, deepest first.
    for (p, t) in dir_times.iter().rev() {
        sys::set_times(p, *t).map_err(SnapshotError::io("set times on", p))?;
    }
    Ok(())
}

fn export_one(
    view: &LayeredView<'_>,
    n: &Node,
    target: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    let m = &n.meta;
    let existing = match fs::symlink_metadata(target) {
        Ok(e) => Some(e),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if m.is_dir() {
        match existing {
            Some(e) if e.is_dir() => return Ok(()),
            Some(_) => fs::remove_file(target)?,
            None => {}
        }
        return fs::create_dir(target);
    }
    match existing {
        Some(e) if e.is_dir() => fs::remove_dir_all(target)?,
        Some(_) => fs::remove_file(target)?,
        None => {}
    }
    let ft = m.file_type();
    if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(view.host_path(n))?, target)
    } else if ft.is_file() {
        // Hard links inside one layer stay links; across layers they are separate files.
        let key = (m.dev(), m.ino());
        if m.nlink() > 1 {
            if let Some(first) = links.get(&key) {
                return fs::hard_link(first, target);
            }
            links.insert(key, target.to_owned());
        }
        let mut src = view
            .open_node(n)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let mut dst = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(target)?;
        io::copy(&mut src, &mut dst).map(drop)
    } else {
        sys::mknod(
            target,
            (m.mode() & libc::S_IFMT) | (m.mode() & 0o7777),
            m.rdev(),
        )
    }
}
