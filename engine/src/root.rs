//! The engine's state directory and its exclusive lock.
//!
//! ```text
//! <root>/lock            flock'ed by the one process using the root
//! <root>/index/          sled cache index
//! <root>/blobs/sha256/   content store
//! <root>/ingest/         blobs being written
//! <root>/layers/         snapshot diff dirs
//! <root>/images/         the local image store
//! <root>/dirty           exists while a process uses the root
//! ```

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cache::snapshots::SnapshotTable;
use crate::cache::{CacheIndex, IndexError, SledIndex, Table, WriteBehind};
use crate::images::ImageStore;
use crate::store::{ContentStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error(
        "buildd must run as root for now: layers keep file ownership (rootless mode is not supported yet)"
    )]
    NotRoot,
    #[error("root {path} in use by another buildd process")]
    InUse { path: PathBuf },
    #[error("root {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Snapshot(#[from] buildd_snapshot::SnapshotError),
    #[error(transparent)]
    Images(#[from] crate::images::ImageError),
}

/// An opened root. Dropping it releases the lock.
pub struct Root {
    pub path: PathBuf,
    pub content: ContentStore,
    pub index: Arc<dyn CacheIndex>,
    pub layers: Arc<buildd_snapshot::LayerStore>,
    pub images: Arc<ImageStore>,
    /// Content digests of versioned local directories' selections.
    pub local_keys: crate::ops::LocalKeys,
    /// The private tmpfs for runtime bundles, mounted on first use; `None` inside
    /// when it could not be mounted.
    bundles: std::sync::OnceLock<Option<PathBuf>>,
    _lock: File,
}

impl std::fmt::Debug for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Root")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A root's lock, held before anything in the root is read or changed. Opening the
/// stores cleans up after crashed processes, so checks that want to see those
/// leftovers look while holding only this.
#[derive(Debug)]
pub struct RootLock {
    path: PathBuf,
    file: File,
}

impl RootLock {
    /// Creates the root if needed and locks it; refused while another process
    /// holds it.
    pub fn acquire(path: &Path) -> Result<Self, RootError> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(RootError::NotRoot);
        }
        let io_err = |source| RootError::Io {
            path: path.to_owned(),
            source,
        };
        // Layers keep setuid binaries and the context mirrors hold users' files:
        // nobody but root may look. A new root, or one buildd made before (it has
        // a lock file), is made 0700; a directory of other use is left as it is.
        let ours = !path.exists() || path.join("lock").exists();
        fs::create_dir_all(path).map_err(io_err)?;
        if ours {
            fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(io_err)?;
        } else if fs::metadata(path).map_err(io_err)?.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                root = %path.display(),
                "the root was not made by buildd and others may read it; use a directory of its own"
            );
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.join("lock"))
            .map_err(io_err)?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            return Err(if e.kind() == io::ErrorKind::WouldBlock {
                RootError::InUse {
                    path: path.to_owned(),
                }
            } else {
                io_err(e)
            });
        }
        Ok(Self {
            path: path.to_owned(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the last process that used the root did not close it cleanly.
    pub fn unclean(&self) -> bool {
        self.path.join(DIRTY).exists()
    }
}

impl Root {
    /// Opens `path`, reaping what a killed process left with runc or crun from
    /// `PATH`.
    pub fn open(path: &Path) -> Result<Self, RootError> {
        Self::open_with_runtime(path, None)
    }

    /// Opens `path`; containers a killed process left are deleted with `runtime`
    /// first (the one that made them), then runc and crun from `PATH`.
    pub fn open_with_runtime(path: &Path, runtime: Option<&Path>) -> Result<Self, RootError> {
        Self::open_locked(RootLock::acquire(path)?, runtime)
    }

    /// Opens the stores of a root already locked: reaps what killed processes
    /// left (containers, mounts, scratch; see [`crate::recovery`]) and, after an
    /// unclean shutdown, recovers the layer store.
    pub fn open_locked(lock: RootLock, runtime: Option<&Path>) -> Result<Self, RootError> {
        let path = lock.path.as_path();
        let io_err = |source| RootError::Io {
            path: path.to_owned(),
            source,
        };
        let runtimes: Vec<PathBuf> = runtime
            .map(Path::to_owned)
            .into_iter()
            .chain(
                ["runc", "crun"]
                    .into_iter()
                    .filter_map(buildd_executor::find_in_path),
            )
            .collect();
        let reaped = crate::recovery::reap(path, &runtimes).map_err(io_err)?;
        if !reaped.is_empty() {
            tracing::warn!(
                root = %path.display(),
                containers = reaped.containers,
                mounts = reaped.mounts,
                entries = reaped.entries,
                old_indexes = reaped.indexes,
                "reaped what a killed buildd left"
            );
        }
        let layers = Arc::new(buildd_snapshot::LayerStore::open(path)?);
        // Records reach the durable index only after the layers they name are synced.
        let synced = layers.clone();
        let content = ContentStore::open(path)?;
        let blobs = content.clone();
        let index = Arc::new(WriteBehind::new(
            SledIndex::open(&path.join("index"))?,
            Box::new(move || {
                synced
                    .sync()
                    .map_err(|e| IndexError::Storage(format!("syncing layers: {e}")))?;
                // Exported blobs are written without an fsync of their own (one
                // filesystem sync, usually a no-op after the layers').
                blobs
                    .sync()
                    .map_err(|e| IndexError::Storage(format!("syncing blobs: {e}")))
            }),
        ));
        let root = Self {
            path: path.to_owned(),
            content,
            index,
            layers,
            images: Arc::new(ImageStore::open(path)?),
            local_keys: crate::ops::LocalKeys::default(),
            bundles: std::sync::OnceLock::new(),
            _lock: lock.file,
        };
        let dirty = path.join(DIRTY);
        if dirty.exists() {
            root.recover()?;
        }
        // The marker must be durable before any layer is written, or a crash could
        // leave torn layers and no sign that recovery is needed.
        File::create(&dirty)
            .and_then(|f| f.sync_all())
            .and_then(|()| File::open(path)?.sync_all())
            .map_err(io_err)?;
        Ok(root)
    }

    /// The private tmpfs runtime bundles (which hold secret env values) live on:
    /// `<root>/bundles`, mounted 0700 on first use and unmounted when the root
    /// closes. `None` where no tmpfs can be mounted (then RUNs with secret env are
    /// refused, never written to a disk).
    pub fn bundles(&self) -> Option<PathBuf> {
        self.bundles
            .get_or_init(|| {
                let dir = self.path.join(BUNDLES);
                match mount_private_tmpfs(&dir) {
                    Ok(()) => Some(dir),
                    Err(e) => {
                        tracing::warn!(
                            "cannot mount a tmpfs at {}: {e}; RUN steps with secret environment variables will be refused",
                            dir.display()
                        );
                        None
                    }
                }
            })
            .clone()
    }

    /// Makes everything recorded so far durable: layers first, then the index that
    /// names them.
    pub fn flush(&self) -> Result<(), RootError> {
        self.index.flush()?;
        Ok(())
    }

    /// After an unclean shutdown, layers that no durable cache record names may not
    /// have reached the disk whole; a later commit of the same id would trust them,
    /// so they go.
    fn recover(&self) -> Result<(), RootError> {
        // Exported layer blobs are written without an fsync of their own: those the
        // crashed process wrote may be torn under their real names.
        if let Ok(since) = fs::metadata(self.path.join(DIRTY)).and_then(|m| m.modified()) {
            let torn = self
                .content
                .drop_torn_since(since)
                .map_err(|source| RootError::Io {
                    path: self.content.dir().to_owned(),
                    source,
                })?;
            if torn > 0 {
                tracing::warn!(root = %self.path.display(), torn, "removed blobs a crash left torn");
            }
        }
        let mut named = HashSet::new();
        let table = SnapshotTable::load(self.index.as_ref())?;
        let mut seen = HashSet::new();
        for record in self.index.values(Table::Results)? {
            // A record that cannot be followed whole still names what it reaches.
            let _ = table.reach(&record, &mut seen, &mut named);
        }
        // Named images are not a cache: their layers stay whatever the index says.
        for image in self.images.list()? {
            named.extend(image.layers);
        }
        let mut removed = 0;
        for id in self.layers.list()? {
            if !named.contains(id.as_str()) {
                self.layers.remove(&id)?;
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::warn!(
                root = %self.path.display(),
                removed,
                "root was not closed cleanly; removed layers no cache record names"
            );
        }
        Ok(())
    }
}

/// Present while a process uses the root; left behind by a crash.
const DIRTY: &str = "dirty";
/// The bundle tmpfs's mount point under the root.
const BUNDLES: &str = "bundles";

/// Room for bundles: each is a config.json and a runtime log.
const BUNDLES_SIZE: usize = 64 << 20;

fn mount_private_tmpfs(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    crate::mounts::tmpfs(dir, BUNDLES_SIZE)
}

impl Drop for Root {
    fn drop(&mut self) {
        if let Some(Some(dir)) = self.bundles.get()
            && let Err(e) = crate::mounts::detach(dir)
        {
            tracing::warn!("unmount {}: {e}", dir.display());
        }
        match self.flush() {
            Ok(()) => {
                let _ = fs::remove_file(self.path.join(DIRTY));
            }
            Err(e) => tracing::warn!("closing root {}: {e}", self.path.display()),
        }
    }
}

/// `/var/lib/buildd` for root, `$XDG_DATA_HOME/buildd` (or `~/.local/share/buildd`)
/// for anyone else.
pub fn default_root() -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/buildd");
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data.join("buildd")
}

#[cfg(test)]
mod tests {
    use buildd_proto::Digest;

    use super::*;

    #[test]
    fn a_second_open_is_refused_until_the_first_closes() {
        let dir = tempfile::tempdir().unwrap();
        let first = Root::open(dir.path()).unwrap();
        let err = Root::open(dir.path()).unwrap_err();
        assert!(matches!(err, RootError::InUse { .. }), "{err}");
        assert!(err.to_string().contains("in use"), "{err}");
        drop(first);
        Root::open(dir.path()).unwrap();
    }

    #[test]
    fn after_a_crash_unrecorded_layers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let kept = buildd_snapshot::LayerId::new("aa").unwrap();
        let orphan = buildd_snapshot::LayerId::new("bb").unwrap();
        {
            let root = Root::open(dir.path()).unwrap();
            root.layers.begin().unwrap().commit(&kept).unwrap();
            root.index
                .put(Table::Results, b"key", br#"["aa"]"#)
                .unwrap();
        }
        // A process that committed a layer and died before recording it.
        let layers = buildd_snapshot::LayerStore::open(dir.path()).unwrap();
        layers.begin().unwrap().commit(&orphan).unwrap();
        File::create(dir.path().join(DIRTY)).unwrap();

        let root = Root::open(dir.path()).unwrap();
        assert!(root.layers.exists(&kept));
        assert!(!root.layers.exists(&orphan));
        drop(root);
        assert!(!dir.path().join(DIRTY).exists());
    }

    #[test]
    fn after_a_crash_torn_blobs_of_that_process_are_removed() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let (old, torn) = (Digest::of(b"old"), Digest::of(b"torn"));
        {
            let root = Root::open(dir.path()).unwrap();
            root.content.put_bytes(b"old").unwrap();
        }
        // The crashed process: its marker, then an exported blob (no fsync of its
        // own) whose bytes never reached the disk.
        File::create(dir.path().join(DIRTY)).unwrap();
        let content = ContentStore::open(dir.path()).unwrap();
        let mut w = content.writer_deferred().unwrap();
        w.write_all(b"torn").unwrap();
        w.commit(Some(torn)).unwrap();
        fs::write(content.path(&torn), b"\0\0\0\0").unwrap();

        let root = Root::open(dir.path()).unwrap();
        assert_eq!(root.content.size(&old), Some(3));
        assert_eq!(root.content.size(&torn), None);
    }
}
