//! A read-only merged view of a stack of layers, resolved the way overlayfs merges
//! them, with every path confined to the view's root.

use std::collections::{BTreeSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use buildd_fsutil::glob;

use crate::dircache::DirInfo;
use crate::error::SnapshotError;
use crate::merged::{Entry, MergedDir};
use crate::snapshot::Snapshot;
use crate::store::{LayerId, LayerStore};
use crate::sys;

/// Symlinks followed while resolving one path before giving up, as Linux does.
const MAX_SYMLINKS: u32 = 40;

/// One entry of a merged directory.
#[derive(Debug, Clone)]
pub struct ViewEntry {
    pub name: OsString,
    /// Metadata of the entry itself (symlinks are not followed).
    pub metadata: Metadata,
}

/// A merged, read-only view of a [`Snapshot`]. Symlinks are followed inside the view:
/// absolute targets resolve against the view root and `..` never climbs above it.
#[derive(Debug)]
pub struct LayeredView<'a> {
    /// Diff directories probed one by one, topmost first: every layer of a
    /// shallow stack; over a deep one, only the upper being written.
    layers: Vec<PathBuf>,
    /// Layers from this index down are committed: their directories are cached
    /// in the store (an upper directory being written is not).
    committed_from: usize,
    /// The root directory of each committed layer, by index into `layers`.
    roots: Vec<Option<Arc<DirInfo>>>,
    /// The merged tree of the committed stack below `layers`, when it is deep.
    merged: Option<Arc<MergedDir>>,
    store: &'a LayerStore,
}

/// Stacks deeper than this are read through their merged tree (see
/// [`crate::merged`]) rather than by probing each layer: building the tree once
/// costs what the layers hold, probing costs the depth on every lookup.
const MERGED_FROM: usize = 8;

/// Where a node's own copy is.
#[derive(Debug, Clone)]
pub(crate) enum At {
    /// In `layers[i]`.
    Probed(usize),
    /// In a layer of the merged tree.
    Merged(LayerId),
}

/// What the view holds at one path.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// Path below the view root, without a leading `/`.
    pub rel: PathBuf,
    /// Metadata from the topmost layer holding the path.
    pub meta: Metadata,
    /// That topmost layer.
    pub layer: At,
    /// For directories, the probed layers whose copies merge into this one,
    /// topmost first.
    pub dir_layers: Vec<usize>,
    /// For a directory whose merge reaches the merged tree: its directory there.
    merged: Option<Arc<MergedDir>>,
}

impl Node {
    pub fn is_dir(&self) -> bool {
        self.meta.is_dir()
    }

    /// Whether the topmost layer holds it: the upper being written, if any.
    pub fn in_top(&self) -> bool {
        matches!(self.layer, At::Probed(0))
    }
}

/// A resolved path: the directory that holds it and what is there, if anything.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// None only for the root.
    pub parent: Option<Node>,
    pub rel: PathBuf,
    pub node: Option<Node>,
}

/// The display form of a view path.
pub(crate) fn show(rel: &Path) -> PathBuf {
    Path::new("/").join(rel)
}

impl<'a> LayeredView<'a> {
    pub fn new(store: &'a LayerStore, snap: &Snapshot) -> Result<Self, SnapshotError> {
        Self::build(store, snap, MERGED_FROM)
    }

    fn build(
        store: &'a LayerStore,
        snap: &Snapshot,
        merged_from: usize,
    ) -> Result<Self, SnapshotError> {
        if snap.len() > merged_from {
            return Ok(LayeredView {
                layers: Vec::new(),
                committed_from: 0,
                roots: Vec::new(),
                merged: snap.merged(store)?,
                store,
            });
        }
        let mut layers = Vec::with_capacity(snap.len());
        let mut roots = Vec::with_capacity(snap.len());
        for id in snap.iter_top_down() {
            let dir = store.diff_dir(id);
            // The cached root of a committed layer: one stat per layer the first
            // time, a hash probe after.
            match store.dirs.dir(&dir) {
                Ok(Some(root)) => roots.push(Some(root)),
                Ok(None) => return Err(SnapshotError::LayerMissing(id.to_string())),
                Err(e) => return Err(SnapshotError::io("stat", &dir)(e)),
            }
            layers.push(dir);
        }
        Ok(LayeredView {
            layers,
            committed_from: 0,
            roots,
            merged: None,
            store,
        })
    }

    /// The view of `snap` with the diff directory `upper` on top.
    pub(crate) fn with_upper(
        store: &'a LayerStore,
        snap: &Snapshot,
        upper: &'a Path,
    ) -> Result<Self, SnapshotError> {
        Self::open_with_upper(store, snap, upper, MERGED_FROM)
    }

    fn open_with_upper(
        store: &'a LayerStore,
        snap: &Snapshot,
        upper: &'a Path,
        merged_from: usize,
    ) -> Result<Self, SnapshotError> {
        let mut v = LayeredView::build(store, snap, merged_from)?;
        v.layers.insert(0, upper.to_owned());
        v.roots.insert(0, None);
        v.committed_from = 1;
        Ok(v)
    }

    /// Metadata of `path` itself; symlinks in its parents are followed. None when
    /// nothing is there.
    pub fn lstat(&self, path: &Path) -> Result<Option<Metadata>, SnapshotError> {
        self.stat_impl(path, false)
    }

    /// Metadata of what `path` resolves to, following every symlink.
    pub fn stat(&self, path: &Path) -> Result<Option<Metadata>, SnapshotError> {
        self.stat_impl(path, true)
    }

    fn stat_impl(&self, path: &Path, follow: bool) -> Result<Option<Metadata>, SnapshotError> {
        match self.resolve(path, follow) {
            Ok(r) => Ok(r.node.map(|n| n.meta)),
            Err(SnapshotError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn readlink(&self, path: &Path) -> Result<PathBuf, SnapshotError> {
        let node = self.existing(path, false)?;
        if !node.meta.file_type().is_symlink() {
            return Err(SnapshotError::NotASymlink(path.to_owned()));
        }
        let host = self.host_path(&node);
        fs::read_link(&host).map_err(SnapshotError::io("readlink", show(&node.rel)))
    }

    /// The merged entries of directory `path`, sorted by name.
    pub fn read_dir(&self, path: &Path) -> Result<Vec<ViewEntry>, SnapshotError> {
        if self.layers.is_empty()
            && self.merged.is_none()
            && normal_components(path).all(|c| c == "..")
        {
            return Ok(Vec::new()); // the empty filesystem's root
        }
        let node = self.existing(path, true)?;
        if !node.is_dir() {
            return Err(SnapshotError::NotADirectory(path.to_owned()));
        }
        Ok(self
            .children(&node)?
            .into_iter()
            .map(|n| ViewEntry {
                name: n.rel.file_name().expect("child has a name").to_owned(),
                metadata: n.meta,
            })
            .collect())
    }

    /// Opens the regular file `path` resolves to, for reading.
    pub fn open(&self, path: &Path) -> Result<File, SnapshotError> {
        let node = self.existing(path, true)?;
        if !node.meta.is_file() {
            return Err(SnapshotError::NotAFile(path.to_owned()));
        }
        self.open_node(&node)
    }

    pub(crate) fn open_node(&self, node: &Node) -> Result<File, SnapshotError> {
        let host = self.host_path(node);
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&host)
            .map_err(SnapshotError::io("open", show(&node.rel)))
    }

    fn existing(&self, path: &Path, follow: bool) -> Result<Node, SnapshotError> {
        self.resolve(path, follow)?
            .node
            .ok_or_else(|| SnapshotError::NotFound(path.to_owned()))
    }

    /// Where `node`'s own copy lives on the host.
    pub(crate) fn host_path(&self, node: &Node) -> PathBuf {
        match &node.layer {
            At::Probed(i) => self.layers[*i].join(&node.rel),
            At::Merged(id) => self.store.diff_dir(id).join(&node.rel),
        }
    }

    pub(crate) fn root(&self) -> Result<Node, SnapshotError> {
        let mut root: Option<Node> = None;
        let mut open = true;
        for (i, dir) in self.layers.iter().enumerate() {
            let (meta, opaque) = if let Some(info) = &self.roots[i] {
                (info.meta.clone(), info.opaque)
            } else {
                let meta = fs::symlink_metadata(dir).map_err(SnapshotError::io("stat", dir))?;
                (
                    meta,
                    sys::is_opaque(dir).map_err(SnapshotError::io("stat", dir))?,
                )
            };
            match &mut root {
                None => {
                    root = Some(Node {
                        rel: PathBuf::new(),
                        meta,
                        layer: At::Probed(i),
                        dir_layers: vec![i],
                        merged: None,
                    })
                }
                Some(r) => r.dir_layers.push(i),
            }
            if opaque {
                open = false;
                break;
            }
        }
        if open && let Some(m) = &self.merged {
            match &mut root {
                None => {
                    // A stat, not the directory cache: each step of a deep
                    // chain has a new top layer, and caching every one's root
                    // listing held ~0.3 KB per step.
                    let host = self.store.diff_dir(&m.layer);
                    let meta = match fs::symlink_metadata(&host) {
                        Ok(meta) => meta,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            return Err(SnapshotError::LayerMissing(m.layer.to_string()));
                        }
                        Err(e) => return Err(SnapshotError::io("stat", &host)(e)),
                    };
                    root = Some(Node {
                        rel: PathBuf::new(),
                        meta,
                        layer: At::Merged(m.layer.clone()),
                        dir_layers: Vec::new(),
                        merged: Some(m.clone()),
                    });
                }
                Some(r) => r.merged = Some(m.clone()),
            }
        }
        match root {
            Some(r) => Ok(r),
            // The empty filesystem: an empty root owned by root, 0755, at the epoch.
            None => Err(SnapshotError::NotFound(PathBuf::from("/"))),
        }
    }

    /// The entry `name` inside directory `parent`, merging across layers.
    pub(crate) fn child(&self, parent: &Node, name: &OsStr) -> Result<Option<Node>, SnapshotError> {
        let rel = parent.rel.join(name);
        let mut found: Option<Node> = None;
        let mut open = true;
        for &l in &parent.dir_layers {
            // A committed layer's listing of the parent says whether to look at
            // all: most layers of a deep stack do not hold the name.
            let cached = l >= self.committed_from;
            if cached {
                let listed = match &self.roots[l] {
                    Some(root) if parent.rel.as_os_str().is_empty() => Some(root.clone()),
                    _ => {
                        let dir = self.layers[l].join(&parent.rel);
                        self.store.dirs.dir(&dir).map_err(|e| SnapshotError::Io {
                            op: "read",
                            path: show(&parent.rel),
                            error: e,
                        })?
                    }
                };
                if !listed.is_some_and(|d| d.has(name)) {
                    continue;
                }
            }
            let host = self.layers[l].join(&rel);
            let meta = match fs::symlink_metadata(&host) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(SnapshotError::Io {
                        op: "stat",
                        path: show(&rel),
                        error: e,
                    });
                }
            };
            let is_dir = meta.is_dir();
            let opaque = || match cached && is_dir {
                true => match self.store.dirs.dir(&host) {
                    Ok(d) => Ok(d.is_some_and(|d| d.opaque)),
                    Err(e) => Err(SnapshotError::io("stat", show(&rel))(e)),
                },
                false => sys::is_opaque(&host).map_err(SnapshotError::io("stat", show(&rel))),
            };
            match &mut found {
                None if sys::is_whiteout(&meta) => return Ok(None),
                None if !meta.is_dir() => {
                    return Ok(Some(Node {
                        rel,
                        meta,
                        layer: At::Probed(l),
                        dir_layers: vec![],
                        merged: None,
                    }));
                }
                None => {
                    found = Some(Node {
                        rel: rel.clone(),
                        meta,
                        layer: At::Probed(l),
                        dir_layers: vec![l],
                        merged: None,
                    });
                }
                // A non-directory (or whiteout) below a directory ends the merge.
                Some(_) if !meta.is_dir() => {
                    open = false;
                    break;
                }
                Some(n) => n.dir_layers.push(l),
            }
            if opaque()? {
                open = false;
                break;
            }
        }
        let below = match &parent.merged {
            Some(m) if open => m.get(name),
            _ => None,
        };
        match (below, &mut found) {
            (None, _) => {}
            (Some(Entry::Other(layer)), None) => {
                let meta = self.lstat_merged(layer, &rel)?;
                return Ok(Some(Node {
                    rel,
                    meta,
                    layer: At::Merged(layer.clone()),
                    dir_layers: vec![],
                    merged: None,
                }));
            }
            // A non-directory below a directory ends the merge.
            (Some(Entry::Other(_)), Some(_)) => {}
            (Some(Entry::Dir(d)), None) => {
                found = Some(Node {
                    meta: self.lstat_merged(&d.layer, &rel)?,
                    rel,
                    layer: At::Merged(d.layer.clone()),
                    dir_layers: vec![],
                    merged: Some(d.clone()),
                });
            }
            (Some(Entry::Dir(d)), Some(n)) => n.merged = Some(d.clone()),
        }
        Ok(found)
    }

    fn lstat_merged(&self, layer: &LayerId, rel: &Path) -> Result<Metadata, SnapshotError> {
        let host = self.store.diff_dir(layer).join(rel);
        fs::symlink_metadata(&host).map_err(SnapshotError::io("stat", show(rel)))
    }

    /// The merged entries of directory `node`, sorted by name.
    pub(crate) fn children(&self, node: &Node) -> Result<Vec<Node>, SnapshotError> {
        let mut names = BTreeSet::new();
        for &l in &node.dir_layers {
            let host = self.layers[l].join(&node.rel);
            let rd = fs::read_dir(&host).map_err(SnapshotError::io("read", show(&node.rel)))?;
            for entry in rd {
                names.insert(
                    entry
                        .map_err(SnapshotError::io("read", show(&node.rel)))?
                        .file_name(),
                );
            }
        }
        if let Some(m) = &node.merged {
            names.extend(m.entries.keys().cloned());
        }
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if let Some(n) = self.child(node, &name)? {
                out.push(n);
            }
        }
        Ok(out)
    }

    /// `node` and everything below it, parents before children, siblings by name.
    /// Symlinks are listed, not followed.
    pub(crate) fn walk(&self, node: &Node) -> Result<Vec<Node>, SnapshotError> {
        let mut out = vec![node.clone()];
        let mut i = 0;
        while i < out.len() {
            if out[i].is_dir() {
                let kids = self.children(&out[i])?;
                // Depth-first order: insert the children right after their parent.
                out.splice(i + 1..i + 1, kids);
            }
            i += 1;
        }
        Ok(out)
    }

    /// Looks up an already resolved path (no symlinks in it) without following.
    pub(crate) fn lookup_rel(&self, rel: &Path) -> Result<Option<Node>, SnapshotError> {
        let mut node = self.root()?;
        for comp in rel.components() {
            let Component::Normal(name) = comp else {
                unreachable!("rel paths are normalized")
            };
            if !node.is_dir() {
                return Ok(None);
            }
            match self.child(&node, name)? {
                Some(n) => node = n,
                None => return Ok(None),
            }
        }
        Ok(Some(node))
    }

    /// Resolves `path` inside the view. Symlinks in the parents are followed, the last
    /// component only when `follow_last`. A missing last component is not an error; a
    /// missing directory before it is `NotFound` naming that directory.
    pub(crate) fn resolve(
        &self,
        path: &Path,
        follow_last: bool,
    ) -> Result<Resolved, SnapshotError> {
        let mut stack = vec![self.root()?];
        let mut pending: VecDeque<OsString> = normal_components(path).collect();
        let mut links = 0;
        while let Some(name) = pending.pop_front() {
            if name == ".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let parent = stack.last().expect("stack holds the root");
            let last = pending.is_empty();
            let child = self.child(parent, &name)?;
            if child.is_none() && !last {
                return Err(SnapshotError::NotFound(show(&parent.rel.join(&name))));
            }
            match child {
                None => {
                    let rel = parent.rel.join(&name);
                    return Ok(Resolved {
                        parent: Some(parent.clone()),
                        rel,
                        node: None,
                    });
                }
                Some(n) if n.meta.file_type().is_symlink() && (!last || follow_last) => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(SnapshotError::SymlinkLoop(path.to_owned()));
                    }
                    let target = fs::read_link(self.host_path(&n))
                        .map_err(SnapshotError::io("readlink", show(&n.rel)))?;
                    if target.has_root() {
                        stack.truncate(1);
                    }
                    for (i, c) in normal_components(&target).enumerate() {
                        pending.insert(i, c);
                    }
                }
                Some(n) if last => {
                    let parent = Some(parent.clone());
                    return Ok(Resolved {
                        parent,
                        rel: n.rel.clone(),
                        node: Some(n),
                    });
                }
                Some(n) if n.is_dir() => stack.push(n),
                Some(n) => return Err(SnapshotError::NotADirectory(show(&n.rel))),
            }
        }
        // Ended on a directory reached through `..`, a symlink to one, or the root.
        let node = stack.pop().expect("stack holds the root");
        Ok(Resolved {
            parent: stack.pop(),
            rel: node.rel.clone(),
            node: Some(node),
        })
    }

    /// Expands a wildcard pattern the way Go's `filepath.Glob` does: only components
    /// with wildcards are matched against directory listings. Returns the matching view
    /// paths (with a leading `/`), sorted.
    pub(crate) fn glob(&self, pattern: &str) -> Result<Vec<String>, SnapshotError> {
        let mut cur = vec![String::new()];
        for comp in pattern.split('/').filter(|c| !c.is_empty() && *c != ".") {
            let mut next = Vec::new();
            if !glob::has_meta(comp) {
                next.extend(cur.iter().map(|p| format!("{p}/{comp}")));
            } else {
                glob::matches(comp, "")
                    .map_err(|_| SnapshotError::BadPattern(pattern.to_owned()))?;
                for p in &cur {
                    let dir = match self.resolve(Path::new(p), true) {
                        Ok(Resolved { node: Some(n), .. }) if n.is_dir() => n,
                        Ok(_)
                        | Err(SnapshotError::NotFound(_) | SnapshotError::NotADirectory(_)) => {
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    for kid in self.children(&dir)? {
                        let name = kid
                            .rel
                            .file_name()
                            .expect("child has a name")
                            .to_string_lossy();
                        if glob::matches(comp, &name).unwrap_or(false) {
                            next.push(format!("{p}/{name}"));
                        }
                    }
                }
            }
            cur = next;
        }
        let mut out = Vec::new();
        for p in cur {
            if self.lstat(Path::new(&p))?.is_some() {
                out.push(if p.is_empty() { "/".to_owned() } else { p });
            }
        }
        Ok(out)
    }
}

/// The components of `p` that matter for resolution: names and `..`.
fn normal_components(p: &Path) -> impl Iterator<Item = OsString> + '_ {
    p.components().filter_map(|c| match c {
        Component::Normal(n) => Some(n.to_owned()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
