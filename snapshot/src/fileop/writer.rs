//! Writes into one diff directory through the merged view of the base plus that diff,
//! keeping the overlayfs conventions (copy-up, whiteouts, opaque directories) and the
//! directory times a reproducible layer needs.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use buildd_fsutil::dirfd;

use crate::error::{FileOpErrorKind, SnapshotError};
use crate::snapshot::Snapshot;
use crate::store::LayerStore;
use crate::sys;
use crate::view::{LayeredView, Node, Resolved};

type Result<T> = std::result::Result<T, FileOpErrorKind>;

/// File capabilities, kept on copies so binaries keep what they may do.
pub(crate) const CAPABILITY_XATTR: &str = "security.capability";

/// Refuses a name an OCI layer would read back as a whiteout.
fn check_name(rel: &Path) -> Result<()> {
    match rel.file_name() {
        Some(n) if n.as_encoded_bytes().starts_with(b".wh.") => Err(FileOpErrorKind::ReservedName),
        _ => Ok(()),
    }
}

/// Owner, permission bits and mtime of an entry to create.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attrs {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub mtime_ns: i64,
}

pub(crate) struct Writer<'a> {
    /// The base with the diff on top (layer 0).
    pub view: LayeredView<'a>,
    diff: &'a Path,
    /// The final mtime of every directory in the diff. Adding a child changes a
    /// directory's mtime on disk, so all of them are set once, at the end.
    dir_times: BTreeMap<PathBuf, i64>,
    /// Whether files may be hard links to immutable sources (see
    /// [`crate::apply_file_op_shared`]).
    pub share: bool,
    /// A path the caller knows is empty in the view (see [`Self::known_absent`]).
    absent: Option<PathBuf>,
}

impl<'a> Writer<'a> {
    pub fn new(
        store: &'a LayerStore,
        base: &Snapshot,
        diff: &'a Path,
    ) -> std::result::Result<Self, SnapshotError> {
        // The diff root stands for the base root, so it takes the base root's metadata.
        let (uid, gid, mode, mtime) = if base.is_empty() {
            (0, 0, 0o755, 0)
        } else {
            let m = LayeredView::new(store, base)?.root()?.meta;
            (m.uid(), m.gid(), m.mode(), sys::mtime_ns(&m))
        };
        sys::set_meta(diff, uid, gid, mode, mtime).map_err(SnapshotError::io("create", diff))?;
        let view = LayeredView::with_upper(store, base, diff)?;
        let dir_times = BTreeMap::from([(PathBuf::new(), mtime)]);
        Ok(Writer {
            view,
            diff,
            dir_times,
            share: false,
            absent: None,
        })
    }

    fn host(&self, rel: &Path) -> PathBuf {
        self.diff.join(rel)
    }

    /// Makes the view directory `rel` a real directory in the diff, copying up every
    /// directory on the way that only a lower layer holds (with its metadata).
    pub fn ensure_dir(&mut self, rel: &Path) -> Result<Node> {
        let mut node = self.view.root()?;
        for comp in rel.components() {
            let Component::Normal(name) = comp else {
                unreachable!("resolved paths are normal")
            };
            let child = self
                .view
                .child(&node, name)?
                .ok_or(FileOpErrorKind::NotFound)?;
            if !child.is_dir() {
                return Err(FileOpErrorKind::ParentNotADirectory(
                    crate::view::show(&child.rel).display().to_string(),
                ));
            }
            if !child.in_top() {
                let host = self.host(&child.rel);
                fs::create_dir(&host)?;
                let m = &child.meta;
                sys::set_meta(&host, m.uid(), m.gid(), m.mode(), 0)?;
                let lower = self.view.host_path(&child);
                if let Some(caps) = sys::lget_xattr(&lower, CAPABILITY_XATTR)? {
                    sys::lset_xattr(&host, CAPABILITY_XATTR, &caps)?;
                }
                self.dir_times.insert(child.rel.clone(), sys::mtime_ns(m));
            }
            node = child;
        }
        Ok(self
            .view
            .lookup_rel(rel)?
            .expect("directory was just ensured"))
    }

    /// Resolves `path` like the view does, creating each missing directory on the way
    /// (`mkdir -p`) with attributes `a`.
    pub fn resolve_creating(
        &mut self,
        path: &Path,
        follow_last: bool,
        a: Attrs,
        now: i64,
    ) -> Result<Resolved> {
        loop {
            match self.view.resolve(path, follow_last) {
                Err(SnapshotError::NotFound(missing)) => {
                    let rel = missing
                        .strip_prefix("/")
                        .expect("view paths are absolute")
                        .to_owned();
                    self.ensure_dir(rel.parent().unwrap_or(Path::new("")))?;
                    self.create_dir(&rel, a, now)?;
                }
                r => return r.map_err(FileOpErrorKind::from_view),
            }
        }
    }

    /// Tells the next create at `rel` that nothing is there, in the diff or below:
    /// its parent is a directory this copy just created (new, or opaque over
    /// what was below). Saves the lookups that would find that out.
    pub fn known_absent(&mut self, rel: &Path) {
        self.absent = Some(rel.to_owned());
    }

    /// Empties `rel` in the diff and returns what the lower layers still show there.
    fn clear(&mut self, rel: &Path) -> Result<Option<Node>> {
        if self.absent.as_deref() == Some(rel) {
            self.absent = None;
            return Ok(None);
        }
        let host = self.host(rel);
        match fs::symlink_metadata(&host) {
            Ok(m) if m.is_dir() => {
                fs::remove_dir_all(&host)?;
                let gone: Vec<PathBuf> = self
                    .dir_times
                    .range(rel.to_owned()..)
                    .map(|(p, _)| p.clone())
                    .take_while(|p| p.starts_with(rel))
                    .collect();
                for p in gone {
                    self.dir_times.remove(&p);
                }
            }
            Ok(_) => fs::remove_file(&host)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        Ok(self.view.lookup_rel(rel)?)
    }

    /// Records that the directory holding `rel` changed at `now`.
    fn touch_parent(&mut self, rel: &Path, now: i64) {
        if let Some(parent) = rel.parent() {
            self.dir_times.insert(parent.to_owned(), now);
        }
    }

    /// Sets the final mtime of directory `rel` (a copied directory keeps its source's).
    pub fn set_dir_time(&mut self, rel: &Path, mtime_ns: i64) {
        self.dir_times.insert(rel.to_owned(), mtime_ns);
    }

    /// Deletes `rel` from the view: drops what the diff holds and hides what lower
    /// layers hold with a whiteout. The parent must already be in the diff.
    pub fn remove(&mut self, rel: &Path, now: i64) -> Result<()> {
        if self.clear(rel)?.is_some() {
            let host = self.host(rel);
            sys::make_whiteout(&host)?;
            sys::set_meta(&host, 0, 0, 0, now)?;
        }
        self.touch_parent(rel, now);
        Ok(())
    }

    /// Creates directory `rel` in place of whatever is there. The parent must
    /// already be in the diff.
    pub fn create_dir(&mut self, rel: &Path, a: Attrs, now: i64) -> Result<()> {
        check_name(rel)?;
        let below = self.clear(rel)?;
        let host = self.host(rel);
        fs::create_dir(&host)?;
        sys::set_meta(&host, a.uid, a.gid, a.mode, a.mtime_ns)?;
        if below.is_some_and(|n| n.is_dir()) {
            // Replacing a deleted lower directory: its old contents must stay hidden.
            sys::set_opaque(&host)?;
        }
        self.dir_times.insert(rel.to_owned(), a.mtime_ns);
        self.touch_parent(rel, now);
        Ok(())
    }

    /// Gives the existing directory `rel` new metadata, copying it up if needed.
    pub fn set_dir_meta(&mut self, rel: &Path, a: Attrs) -> Result<()> {
        self.ensure_dir(rel)?;
        sys::set_meta(&self.host(rel), a.uid, a.gid, a.mode, a.mtime_ns)?;
        self.dir_times.insert(rel.to_owned(), a.mtime_ns);
        Ok(())
    }

    /// A regular file with `content`, and file capabilities `caps` if any.
    pub fn create_file(
        &mut self,
        rel: &Path,
        content: &mut dyn Read,
        a: Attrs,
        caps: Option<&[u8]>,
        now: i64,
    ) -> Result<()> {
        check_name(rel)?;
        self.clear(rel)?;
        let host = self.host(rel);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&host)?;
        io::copy(content, &mut f)?;
        // Capabilities last: chown clears them.
        dirfd::set_meta(
            &f,
            Some((a.uid, a.gid)),
            a.mode,
            dirfd::timespec(a.mtime_ns),
        )?;
        if let Some(caps) = caps {
            dirfd::fset_xattr(&f, CAPABILITY_XATTR, caps)?;
        }
        self.touch_parent(rel, now);
        Ok(())
    }

    /// Makes `rel` another name of `src`, an open immutable file that already has
    /// the owner, mode, mtime and capabilities the copy needs. False, with nothing
    /// changed, when the filesystem cannot link it (another filesystem, the link
    /// limit): the caller copies instead.
    pub fn link_file(&mut self, rel: &Path, src: &fs::File, now: i64) -> Result<bool> {
        check_name(rel)?;
        self.clear(rel)?;
        match sys::link_fd(src, &self.host(rel)) {
            Ok(()) => {
                self.touch_parent(rel, now);
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EXDEV | libc::EMLINK | libc::EPERM)
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn create_symlink(&mut self, rel: &Path, target: &Path, a: Attrs, now: i64) -> Result<()> {
        check_name(rel)?;
        self.clear(rel)?;
        let host = self.host(rel);
        std::os::unix::fs::symlink(target, &host)?;
        sys::lchown(&host, a.uid, a.gid)?;
        sys::set_times(&host, a.mtime_ns)?;
        self.touch_parent(rel, now);
        Ok(())
    }

    /// A device, fifo or socket; `file_type` is the `S_IF*` bits.
    pub fn create_special(
        &mut self,
        rel: &Path,
        file_type: u32,
        rdev: u64,
        a: Attrs,
        now: i64,
    ) -> Result<()> {
        check_name(rel)?;
        self.clear(rel)?;
        let host = self.host(rel);
        sys::mknod(&host, file_type | (a.mode & 0o7777), rdev)?;
        sys::set_meta(&host, a.uid, a.gid, a.mode, a.mtime_ns)?;
        self.touch_parent(rel, now);
        Ok(())
    }

    /// Makes `rel` another name for `existing`, a file this op already wrote.
    pub fn create_hardlink(&mut self, rel: &Path, existing: &Path, now: i64) -> Result<()> {
        check_name(rel)?;
        self.clear(rel)?;
        fs::hard_link(self.host(existing), self.host(rel))?;
        self.touch_parent(rel, now);
        Ok(())
    }

    /// Applies the recorded directory times; the diff is complete afterwards.
    pub fn finish(self) -> std::result::Result<(), SnapshotError> {
        for (rel, t) in &self.dir_times {
            let host = self.host(rel);
            sys::set_times(&host, *t).map_err(SnapshotError::io("set times on", &host))?;
        }
        Ok(())
    }
}
