//! What the directories of committed layers hold, cached in memory. A committed
//! layer never changes, so a lookup that misses in most layers of a deep stack (a
//! new file over a thousand layers) costs a hash probe per layer instead of a
//! `stat` and a `getxattr` per layer, which made deep chains quadratic in the
//! kernel.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, Metadata};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::sys;

/// Names cached at most over all directories, each directory counting as one
/// more; past it the cache starts over (about 50 bytes a name, 300 a directory).
const MAX_NAMES: usize = 100_000;

/// One directory of a committed layer.
#[derive(Debug)]
pub(crate) struct DirInfo {
    pub meta: Metadata,
    /// Marked opaque: layers below do not show through.
    pub opaque: bool,
    names: HashSet<OsString>,
}

impl DirInfo {
    pub fn has(&self, name: &OsStr) -> bool {
        self.names.contains(name)
    }
}

#[derive(Debug, Default)]
pub(crate) struct DirCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// By host path, as raw bytes: hashing a `Path` parses its components.
    dirs: HashMap<Vec<u8>, Arc<DirInfo>>,
    names: usize,
}

fn key(p: &Path) -> &[u8] {
    p.as_os_str().as_encoded_bytes()
}

impl DirCache {
    /// The directory at `host`, a path inside a committed layer; `None` when
    /// nothing is there. Anything else there is an error, as callers ask only
    /// for paths a layer holds as directories.
    pub fn dir(&self, host: &Path) -> io::Result<Option<Arc<DirInfo>>> {
        if let Some(d) = self.inner.lock().unwrap().dirs.get(key(host)) {
            return Ok(Some(d.clone()));
        }
        let meta = match fs::symlink_metadata(host) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if !meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        let opaque = sys::is_opaque(host)?;
        let names = fs::read_dir(host)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<HashSet<_>>>()?;
        let info = Arc::new(DirInfo {
            meta,
            opaque,
            names,
        });
        let mut inner = self.inner.lock().unwrap();
        // A directory counts as a name more than it holds: empty ones cost too.
        let cost = info.names.len() + 1;
        if inner.names + cost > MAX_NAMES {
            inner.dirs.clear();
            inner.names = 0;
        }
        inner.names += cost;
        inner.dirs.insert(key(host).to_vec(), info.clone());
        Ok(Some(info))
    }

    /// Forgets what is cached under `layer` (a layer being removed).
    pub fn forget(&self, layer: &Path) {
        let mut inner = self.inner.lock().unwrap();
        let layer = key(layer);
        inner.dirs.retain(|p, _| {
            !(p.starts_with(layer) && matches!(p.get(layer.len()), None | Some(b'/')))
        });
        inner.names = inner.dirs.values().map(|d| d.names.len() + 1).sum();
    }
}
