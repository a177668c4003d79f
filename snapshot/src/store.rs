use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::dircache::DirCache;
use crate::error::SnapshotError;
use crate::snapshot::SnapshotMemo;
use crate::sys;

const TMP_PREFIX: &str = ".tmp-";

/// The name of a committed layer: 1 to 128 lower-case hex digits, so it is always a
/// safe directory name. Shared, not copied: many lists name the same layer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LayerId(Arc<str>);

impl LayerId {
    pub fn new(id: impl Into<String>) -> Result<Self, SnapshotError> {
        let id = id.into();
        let ok = (1..=128).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(LayerId(id.into()))
        } else {
            Err(SnapshotError::InvalidLayerId(id))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for LayerId {
    type Err = SnapshotError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LayerId::new(s)
    }
}

/// Committed layers live in `root/layers/<id>/`; layers being written live in
/// `root/layers/.tmp-*/` and are renamed into place when complete, so a committed id
/// always names a complete layer.
#[derive(Debug)]
pub struct LayerStore {
    layers: PathBuf,
    /// What committed layers' directories hold (see [`DirCache`]).
    pub(crate) dirs: DirCache,
    /// Snapshots alive in this process by id (see [`SnapshotMemo`]).
    pub snapshots: SnapshotMemo,
    /// Layers removed so far: what was learned of stacks before a removal may
    /// name a layer that is gone.
    generation: AtomicU64,
}

impl LayerStore {
    /// Opens (creating if needed) the store at `root` and deletes temporary layers a
    /// crashed process left behind. One process owns a store at a time.
    pub fn open(root: &Path) -> Result<Self, SnapshotError> {
        let layers = root.join("layers");
        fs::create_dir_all(&layers).map_err(SnapshotError::io("create", &layers))?;
        let entries = fs::read_dir(&layers).map_err(SnapshotError::io("read", &layers))?;
        for entry in entries {
            let entry = entry.map_err(SnapshotError::io("read", &layers))?;
            if entry
                .file_name()
                .as_encoded_bytes()
                .starts_with(TMP_PREFIX.as_bytes())
            {
                let p = entry.path();
                remove_tree(&p).map_err(SnapshotError::io("remove", &p))?;
            }
        }
        Ok(LayerStore {
            layers,
            dirs: DirCache::default(),
            snapshots: SnapshotMemo::default(),
            generation: AtomicU64::new(0),
        })
    }

    pub fn diff_dir(&self, id: &LayerId) -> PathBuf {
        self.layers.join(id.as_str())
    }

    /// Whether `id` is committed. A `stat`, not the directory cache: a warm
    /// chain asks once per step decoded, and caching every layer's listing for
    /// that held ~0.5 KB per layer.
    pub fn exists(&self, id: &LayerId) -> bool {
        fs::symlink_metadata(self.diff_dir(id)).is_ok_and(|m| m.is_dir())
    }

    /// Counts layer removals (see the field).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// A fresh, empty diff directory to build a layer in.
    pub fn begin(&self) -> Result<PendingLayer, SnapshotError> {
        let path = self.temp_path()?;
        Ok(PendingLayer {
            path,
            layers: self.layers.clone(),
            done: false,
        })
    }

    /// Deletes a committed layer. It is renamed away first so that a crash midway never
    /// leaves a partial layer under its id.
    /// Makes every committed layer durable: file data, metadata and the renames.
    pub fn sync(&self) -> Result<(), SnapshotError> {
        sys::syncfs(&self.layers).map_err(SnapshotError::io("sync", &self.layers))
    }

    /// Ids of all committed layers.
    pub fn list(&self) -> Result<Vec<LayerId>, SnapshotError> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.layers).map_err(SnapshotError::io("read", &self.layers))? {
            let e = e.map_err(SnapshotError::io("read", &self.layers))?;
            if let Some(id) = e.file_name().to_str().and_then(|n| LayerId::new(n).ok()) {
                out.push(id);
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn remove(&self, id: &LayerId) -> Result<(), SnapshotError> {
        let dir = self.diff_dir(id);
        self.dirs.forget(&dir);
        self.snapshots.clear();
        self.generation.fetch_add(1, Ordering::SeqCst);
        let doomed = self.temp_name();
        match fs::rename(&dir, &doomed) {
            Ok(()) => remove_tree(&doomed).map_err(SnapshotError::io("remove", &doomed)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(SnapshotError::LayerMissing(id.to_string()))
            }
            Err(e) => Err(SnapshotError::Io {
                op: "remove",
                path: dir,
                error: e,
            }),
        }
    }

    fn temp_name(&self) -> PathBuf {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        self.layers
            .join(format!("{TMP_PREFIX}{}-{n}", std::process::id()))
    }

    fn temp_path(&self) -> Result<PathBuf, SnapshotError> {
        loop {
            let p = self.temp_name();
            match fs::create_dir(&p) {
                Ok(()) => {
                    // Deterministic root metadata whatever the umask.
                    sys::set_meta(&p, 0, 0, 0o755, 0).map_err(SnapshotError::io("create", &p))?;
                    return Ok(p);
                }
                // Left by an earlier process with our pid; pick the next number.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(SnapshotError::Io {
                        op: "create",
                        path: p,
                        error: e,
                    });
                }
            }
        }
    }
}

/// A layer being written. Dropping it without [`commit`](Self::commit) deletes it.
#[derive(Debug)]
pub struct PendingLayer {
    path: PathBuf,
    layers: PathBuf,
    done: bool,
}

impl PendingLayer {
    /// The diff directory to write into.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the layer into place as `id`. When `id` already exists (the same content
    /// committed by someone else) this layer is discarded and that one kept.
    ///
    /// The rename is not made durable here: a build commits many layers and makes them
    /// durable at once with [`LayerStore::sync`] before anything that names them (the
    /// cache index) is flushed. One syncfs per build instead of one per layer.
    pub fn commit(mut self, id: &LayerId) -> Result<(), SnapshotError> {
        let dest = self.layers.join(id.as_str());
        if dest.is_dir() {
            return Ok(()); // Drop deletes the temporary directory.
        }
        match fs::rename(&self.path, &dest) {
            Ok(()) => {
                self.done = true;
                Ok(())
            }
            // rename(2) onto a non-empty directory: another commit of the same id won.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) => {
                Ok(())
            }
            Err(e) => Err(SnapshotError::Io {
                op: "commit",
                path: dest,
                error: e,
            }),
        }
    }
}

impl Drop for PendingLayer {
    fn drop(&mut self) {
        if !self.done {
            // Best effort: `LayerStore::open` sweeps anything left.
            let _ = remove_tree(&self.path);
        }
    }
}

fn remove_tree(p: &Path) -> io::Result<()> {
    match fs::remove_dir_all(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}
