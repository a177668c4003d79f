//! Flattening a snapshot into a plain directory (the local exporter).
//!
//! The destination belongs to the caller, who may race symlinks into it while an
//! export running as root writes there. So nothing below it is ever named by path:
//! every object is created relative to its parent's descriptor, each directory is
//! opened with `O_NOFOLLOW`, and metadata is set on the open object or with
//! `AT_SYMLINK_NOFOLLOW`.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use buildd_fsutil::dirfd::{self, DirFd};

use crate::error::SnapshotError;
use crate::fileop::CAPABILITY_XATTR;
use crate::snapshot::Snapshot;
use crate::store::LayerStore;
use crate::sys;
use crate::view::{LayeredView, Node};

/// Writes the merged filesystem of `snap` into `dest`, creating it if needed and
/// replacing what is in the way. Whatever already sits in `dest` is never followed:
/// a symlink where the snapshot has a directory is replaced, not written through.
/// Owners are kept when running as root. Directory modes and times are applied
/// after their contents, so read-only directories export (and re-export) fine.
pub fn export_tree(store: &LayerStore, snap: &Snapshot, dest: &Path) -> Result<(), SnapshotError> {
    fs::create_dir_all(dest).map_err(SnapshotError::io("create", dest))?;
    let view = LayeredView::new(store, snap)?;
    if snap.is_empty() {
        return Ok(());
    }
    let nodes = view.walk(&view.root()?)?;
    let root = DirFd::open(dest).map_err(SnapshotError::io("open", dest))?;
    let mut ex = Exporter {
        view: &view,
        dest,
        // SAFETY: geteuid has no preconditions.
        as_root: unsafe { libc::geteuid() } == 0,
        links: HashMap::new(),
    };
    // The open directories from `dest` down to the current node's parent. The root
    // is `dest` itself, whose own metadata is the caller's business.
    let mut open: Vec<(&Node, DirFd)> = Vec::new();
    for n in &nodes[1..] {
        let parent = n.rel.parent().unwrap_or(Path::new(""));
        while open.last().is_some_and(|(d, _)| d.rel != parent) {
            let (d, fd) = open.pop().expect("checked non-empty");
            ex.finish_dir(d, &fd)?;
        }
        let at = open.last().map_or(&root, |(_, fd)| fd);
        let name = cname(n.rel.file_name().expect("below the root"));
        let name = name.map_err(SnapshotError::io("export", dest.join(&n.rel)))?;
        if n.is_dir() {
            let fd = ex.dir(at, &name, n)?;
            open.push((n, fd));
        } else {
            ex.non_dir(&root, at, &name, n)?;
        }
    }
    while let Some((d, fd)) = open.pop() {
        ex.finish_dir(d, &fd)?;
    }
    Ok(())
}

fn cname(name: &OsStr) -> io::Result<CString> {
    Ok(CString::new(name.as_bytes())?)
}

struct Exporter<'v> {
    view: &'v LayeredView<'v>,
    dest: &'v Path,
    as_root: bool,
    /// First export of each multiply linked file of a layer, by its (dev, ino) in
    /// the layer: where it went and the (dev, ino) it got there.
    links: HashMap<LinkKey, (PathBuf, (u64, u64))>,
}

impl Exporter<'_> {
    fn err(&self, op: &'static str, n: &Node) -> impl FnOnce(io::Error) -> SnapshotError {
        SnapshotError::io(op, self.dest.join(&n.rel))
    }

    fn owner(&self, n: &Node) -> Option<(u32, u32)> {
        self.as_root.then(|| (n.meta.uid(), n.meta.gid()))
    }

    /// Opens directory `name` in `at`, creating it or replacing a non-directory
    /// there. It stays writable by us until [`finish_dir`](Self::finish_dir).
    fn dir(&self, at: &DirFd, name: &CString, n: &Node) -> Result<DirFd, SnapshotError> {
        match at.lstat(name).map_err(self.err("stat", n))? {
            Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                let fd = at.open_dir(name).map_err(self.err("open", n))?;
                dirfd::fchmod(&fd, 0o700).map_err(self.err("chmod", n))?;
                return Ok(fd);
            }
            Some(_) => at.unlink(name, false).map_err(self.err("remove", n))?,
            None => {}
        }
        at.mkdir(name, 0o700).map_err(self.err("create", n))?;
        at.open_dir(name).map_err(self.err("open", n))
    }

    /// Owner, mode, times and capabilities of a directory whose contents are in.
    fn finish_dir(&self, n: &Node, fd: &DirFd) -> Result<(), SnapshotError> {
        let caps = sys::lget_xattr(&self.view.host_path(n), CAPABILITY_XATTR)
            .map_err(self.err("read", n))?;
        self.finish(n, fd, caps.as_deref())
    }

    /// Capabilities go last: chown clears them.
    fn finish(
        &self,
        n: &Node,
        fd: impl std::os::fd::AsFd,
        caps: Option<&[u8]>,
    ) -> Result<(), SnapshotError> {
        let ts = dirfd::timespec(sys::mtime_ns(&n.meta));
        dirfd::set_meta(&fd, self.owner(n), n.meta.mode(), ts)
            .map_err(self.err("set metadata on", n))?;
        if let Some(caps) = caps {
            dirfd::fset_xattr(&fd, CAPABILITY_XATTR, caps)
                .map_err(self.err("set capabilities on", n))?;
        }
        Ok(())
    }

    fn non_dir(
        &mut self,
        root: &DirFd,
        at: &DirFd,
        name: &CString,
        n: &Node,
    ) -> Result<(), SnapshotError> {
        match at.lstat(name).map_err(self.err("stat", n))? {
            Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                at.remove_all(name).map_err(self.err("remove", n))?
            }
            Some(_) => at.unlink(name, false).map_err(self.err("remove", n))?,
            None => {}
        }
        let m = &n.meta;
        let ft = m.file_type();
        let ts = dirfd::timespec(sys::mtime_ns(m));
        if ft.is_symlink() {
            let target = fs::read_link(self.view.host_path(n)).map_err(self.err("readlink", n))?;
            let target = cname(target.as_os_str()).map_err(self.err("symlink", n))?;
            at.symlink(&target, name).map_err(self.err("symlink", n))?;
            if let Some((uid, gid)) = self.owner(n) {
                at.lchown(name, uid, gid).map_err(self.err("chown", n))?;
            }
            return at.set_ltimes(name, ts).map_err(self.err("set times on", n));
        }
        if ft.is_file() {
            return self.file(root, at, name, n);
        }
        let file_type = m.mode() & libc::S_IFMT;
        at.mknod(name, file_type | 0o600, m.rdev() as libc::dev_t)
            .map_err(self.err("create", n))?;
        if let Some((uid, gid)) = self.owner(n) {
            at.lchown(name, uid, gid).map_err(self.err("chown", n))?;
        }
        at.chmod_nofollow(name, file_type, m.mode())
            .map_err(self.err("chmod", n))?;
        at.set_ltimes(name, ts).map_err(self.err("set times on", n))
    }

    fn file(
        &mut self,
        root: &DirFd,
        at: &DirFd,
        name: &CString,
        n: &Node,
    ) -> Result<(), SnapshotError> {
        let m = &n.meta;
        // Hard links inside one layer stay links; across layers they are separate
        // files (a COPY links its files to the layer it read them from, and two
        // such paths must not come out as one file, as BuildKit's never do).
        let key = (m.nlink() > 1).then(|| (layer_key(&n.layer), m.dev(), m.ino()));
        if let Some(key) = &key
            && let Some((first, made)) = self.links.get(key)
        {
            return self.link(root, at, name, n, first, *made);
        }
        let mut src = self.view.open_node(n)?;
        let caps = dirfd::fget_xattr(&src, CAPABILITY_XATTR).map_err(self.err("read", n))?;
        let mut dst = at.create_file(name).map_err(self.err("create", n))?;
        io::copy(&mut src, &mut dst).map_err(self.err("write", n))?;
        self.finish(n, &dst, caps.as_deref())?;
        if let Some(key) = key {
            let made = dst.metadata().map_err(self.err("stat", n))?;
            self.links
                .insert(key, (n.rel.clone(), (made.dev(), made.ino())));
        }
        Ok(())
    }

    /// Links `name` to the file first exported at `first`, reaching it without
    /// following symlinks and checking it is still the file made there.
    // `stat` field types differ between targets; the casts are no-ops on some.
    #[allow(clippy::unnecessary_cast)]
    fn link(
        &self,
        root: &DirFd,
        at: &DirFd,
        name: &CString,
        n: &Node,
        first: &Path,
        made: (u64, u64),
    ) -> Result<(), SnapshotError> {
        let from = root
            .open_dir_beneath(first.parent().unwrap_or(Path::new("")))
            .map_err(self.err("link", n))?;
        let from_name =
            cname(first.file_name().expect("below the root")).map_err(self.err("link", n))?;
        at.link(&from, &from_name, name)
            .map_err(self.err("link", n))?;
        let st = at.lstat(name).map_err(self.err("stat", n))?;
        if st.is_none_or(|st| (st.st_dev as u64, st.st_ino as u64) != made) {
            let _ = at.unlink(name, false);
            return Err(SnapshotError::io("link", self.dest.join(&n.rel))(
                io::Error::other(format!(
                    "{:?} was replaced during the export",
                    self.dest.join(first)
                )),
            ));
        }
        Ok(())
    }
}

/// A file by its layer, device and inode.
type LinkKey = (String, u64, u64);

/// Names the layer a node comes from, for telling links within a layer apart
/// from files shared across layers.
fn layer_key(at: &crate::view::At) -> String {
    match at {
        crate::view::At::Probed(i) => format!("probed {i}"),
        crate::view::At::Merged(id) => format!("merged {}", id.as_str()),
    }
}
