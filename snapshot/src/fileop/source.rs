//! What a copy action reads: the entries a source selects, in one shape for both
//! kinds of source.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use buildd_fsutil::dirfd::{self, DirFd};
use buildd_fsutil::dockerignore::PatternMatcher;
use buildd_fsutil::select::{self, Entry, EntryKind, SelectError, SelectOptions};
use buildd_fsutil::{cleanpath, glob};
use buildd_proto::llb::FileActionCopy;

use super::CopySource;
use crate::error::{FileOpErrorKind, SnapshotError};
use crate::snapshot::Snapshot;
use crate::store::LayerStore;
use crate::sys;
use crate::view::{LayeredView, Node};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
    Symlink(PathBuf),
    /// A device, fifo or socket: its `S_IF*` type bits and device number.
    Special {
        file_type: u32,
        rdev: u64,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct SrcEntry {
    /// Below the selected object; empty for the object itself.
    pub rel: PathBuf,
    pub kind: Kind,
    /// Permission bits plus setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_ns: i64,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    /// Where a regular file's bytes are.
    pub origin: Origin,
}

#[derive(Debug, Clone)]
pub(crate) enum Origin {
    /// In a layer of the store, which only buildd writes.
    Layer(PathBuf),
    /// In the context directory, as its selection saw it: opened below
    /// [`Listing::context`] and checked to be that very version of the file.
    Context(Entry),
}

/// One selected object (a wildcard selects several).
#[derive(Debug)]
pub(crate) struct SrcItem {
    /// The name a copy gives it: the last component of the source path as written.
    /// None for the source root, which only ever has contents.
    pub name: Option<OsString>,
    /// The object first, then everything below it, parents before children.
    pub entries: Vec<SrcEntry>,
}

impl SrcItem {
    pub fn is_dir(&self) -> bool {
        self.entries[0].kind == Kind::Dir
    }
}

pub(crate) struct Listing {
    pub items: Vec<SrcItem>,
    /// Whether copies keep the source's owners. Context files are owned by root, as
    /// BuildKit resets their owners when it transfers the context.
    pub keep_owner: bool,
    /// The context directory, for a copy from one.
    pub context: Option<DirFd>,
    /// Whether the source's files never change in place (see [`CopySource::Dir`]).
    pub immutable: bool,
}

impl Listing {
    /// Opens the regular file `e` for reading, refusing anything else: a context
    /// file must still be the one its selection saw, reached without following
    /// any symlink swapped in since.
    pub fn open(&self, e: &SrcEntry) -> Result<File, FileOpErrorKind> {
        match (&e.origin, &self.context) {
            (Origin::Layer(host), _) => Ok(File::options()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(host)?),
            (Origin::Context(entry), Some(dir)) => {
                let changed = || FileOpErrorKind::Changed(entry.rel.clone());
                let f = match dir.open_file_beneath(&entry.rel) {
                    Ok(f) => f,
                    Err(err) if dirfd::swapped(&err) || err.kind() == io::ErrorKind::NotFound => {
                        return Err(changed());
                    }
                    Err(err) => return Err(err.into()),
                };
                if !entry.same_file(&f.metadata()?) {
                    return Err(changed());
                }
                Ok(f)
            }
            (Origin::Context(_), None) => unreachable!("context entries come with their directory"),
        }
    }
}

pub(crate) fn list(
    store: &LayerStore,
    source: &CopySource<'_>,
    a: &FileActionCopy,
    index: usize,
) -> Result<Listing, FileOpErrorKind> {
    match source {
        CopySource::Dir {
            root,
            excludes,
            selections,
            immutable,
        } => {
            let fresh;
            let sel = match selections.get(&index) {
                Some(sel) => sel,
                None => {
                    let opts = SelectOptions {
                        follow_symlink: a.follow_symlink,
                        allow_wildcard: a.allow_wildcard,
                        allow_empty_wildcard: a.allow_empty_wildcard,
                        context_excludes: *excludes,
                        include_patterns: &a.include_patterns,
                        exclude_patterns: &a.exclude_patterns,
                        replaced_only: *immutable,
                    };
                    fresh = select::select(root, &a.src, &opts).map_err(|e| match e {
                        SelectError::NotFound { .. } => FileOpErrorKind::NotFound,
                        SelectError::NoMatch { .. } => FileOpErrorKind::NoMatch,
                        e => FileOpErrorKind::Select(e),
                    })?;
                    &fresh
                }
            };
            let items = sel.roots.iter().map(from_selection).collect();
            Ok(Listing {
                items,
                keep_owner: false,
                context: Some(DirFd::open(root)?),
                immutable: *immutable,
            })
        }
        CopySource::Snapshot(snap) => {
            let items = list_snapshot(store, snap, a)?;
            Ok(Listing {
                items,
                keep_owner: true,
                context: None,
                // Committed layers are never written again.
                immutable: true,
            })
        }
    }
}

fn from_selection(r: &select::SelectedRoot) -> SrcItem {
    let base = r.entries[0].rel.as_str();
    let entries = r
        .entries
        .iter()
        .map(|e| {
            let rel = if e.rel == base {
                PathBuf::new()
            } else {
                let below = if base.is_empty() {
                    e.rel.as_str()
                } else {
                    &e.rel[base.len() + 1..]
                };
                PathBuf::from(below)
            };
            let kind = match &e.kind {
                EntryKind::Dir => Kind::Dir,
                EntryKind::File => Kind::File,
                EntryKind::Symlink { target } => Kind::Symlink(target.into()),
                EntryKind::Fifo => Kind::Special {
                    file_type: libc::S_IFIFO,
                    rdev: 0,
                },
                EntryKind::CharDev { rdev } => Kind::Special {
                    file_type: libc::S_IFCHR,
                    rdev: *rdev,
                },
                EntryKind::BlockDev { rdev } => Kind::Special {
                    file_type: libc::S_IFBLK,
                    rdev: *rdev,
                },
                EntryKind::Socket => Kind::Special {
                    file_type: libc::S_IFSOCK,
                    rdev: 0,
                },
            };
            SrcEntry {
                origin: Origin::Context(e.clone()),
                rel,
                kind,
                mode: e.mode,
                uid: e.uid,
                gid: e.gid,
                mtime_ns: e.mtime_ns,
                dev: e.dev,
                ino: e.ino,
                nlink: e.nlink,
            }
        })
        .collect();
    SrcItem {
        name: last_name(&r.rel),
        entries,
    }
}

fn last_name(path: &str) -> Option<OsString> {
    Path::new(path).file_name().map(|n| n.to_owned())
}

fn list_snapshot(
    store: &LayerStore,
    snap: &Snapshot,
    a: &FileActionCopy,
) -> Result<Vec<SrcItem>, FileOpErrorKind> {
    let view = LayeredView::new(store, snap)?;
    let wildcard = a.allow_wildcard && glob::has_meta(&a.src);
    if snap.is_empty() {
        // The empty filesystem has nothing to select, not even a root to walk.
        return match (wildcard, a.allow_empty_wildcard) {
            (true, true) => Ok(Vec::new()),
            (true, false) => Err(FileOpErrorKind::NoMatch),
            (false, _) => Err(FileOpErrorKind::NotFound),
        };
    }
    let paths = if wildcard {
        view.glob(&a.src)?
    } else {
        vec![a.src.clone()]
    };
    let include = matcher(&a.include_patterns)?;
    let exclude = matcher(&a.exclude_patterns)?;
    let mut items = Vec::with_capacity(paths.len());
    for p in paths {
        let node = match view.resolve(Path::new(&p), a.follow_symlink) {
            Ok(r) => r.node.ok_or(FileOpErrorKind::NotFound)?,
            Err(SnapshotError::NotFound(_)) => return Err(FileOpErrorKind::NotFound),
            Err(e) => return Err(e.into()),
        };
        let nodes = view.walk(&node)?;
        let kept = filter(&node, &nodes, include.as_ref(), exclude.as_ref());
        let entries = nodes
            .iter()
            .zip(kept)
            .filter(|(_, k)| *k)
            .map(|(n, _)| snapshot_entry(&view, &node, n))
            .collect::<Result<_, _>>()?;
        items.push(SrcItem {
            name: last_name(&cleanpath::clean(&p)),
            entries,
        });
    }
    if wildcard && items.is_empty() && !a.allow_empty_wildcard {
        return Err(FileOpErrorKind::NoMatch);
    }
    Ok(items)
}

fn matcher(patterns: &[String]) -> Result<Option<PatternMatcher>, FileOpErrorKind> {
    if patterns.is_empty() {
        return Ok(None);
    }
    PatternMatcher::new(patterns)
        .map(Some)
        .map_err(|_| FileOpErrorKind::BadPattern(patterns.join(", ")))
}

/// Which of `nodes` (the walk of `top`) a copy keeps: those the include patterns
/// want and the exclude patterns do not, plus the directories holding them.
fn filter(
    top: &Node,
    nodes: &[Node],
    include: Option<&PatternMatcher>,
    exclude: Option<&PatternMatcher>,
) -> Vec<bool> {
    let rel = |n: &Node| {
        n.rel
            .strip_prefix(&top.rel)
            .expect("walk stays below its top")
            .to_string_lossy()
            .into_owned()
    };
    let mut wanted: HashSet<PathBuf> = HashSet::new();
    for n in &nodes[1..] {
        let r = rel(n);
        let keep = include.is_none_or(|m| m.matches(&r)) && !exclude.is_some_and(|m| m.matches(&r));
        if keep {
            wanted.extend(n.rel.ancestors().map(Path::to_path_buf));
        }
    }
    std::iter::once(true)
        .chain(nodes[1..].iter().map(|n| wanted.contains(&n.rel)))
        .collect()
}

fn snapshot_entry(
    view: &LayeredView<'_>,
    top: &Node,
    n: &Node,
) -> Result<SrcEntry, FileOpErrorKind> {
    let m = &n.meta;
    let ft = m.file_type();
    let host = view.host_path(n);
    let kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File
    } else if ft.is_symlink() {
        Kind::Symlink(std::fs::read_link(&host)?)
    } else {
        Kind::Special {
            file_type: m.mode() & libc::S_IFMT,
            rdev: m.rdev(),
        }
    };
    Ok(SrcEntry {
        rel: n
            .rel
            .strip_prefix(&top.rel)
            .expect("walk stays below its top")
            .to_owned(),
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        mtime_ns: sys::mtime_ns(m),
        dev: m.dev(),
        ino: m.ino(),
        nlink: m.nlink(),
        origin: Origin::Layer(host),
    })
}
