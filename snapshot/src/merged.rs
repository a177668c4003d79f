//! The merged tree of a stack of committed layers, kept per snapshot as a
//! persistent map: the tree of `S + L` is the tree of `S` with what `L` holds
//! applied (entries added, whiteouts and opaque directories taking away), sharing
//! every directory `L` does not touch. A lookup in a view of a deep stack then
//! costs a probe per path component instead of one per layer, and stacking a
//! layer costs what the layer holds, whatever lies below.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::Arc;

use rpds::RedBlackTreeMapSync;

use crate::store::{LayerId, LayerStore};
use crate::sys;

/// A directory of the merged tree.
#[derive(Debug)]
pub(crate) struct MergedDir {
    /// The topmost layer holding this directory: its metadata is this one's.
    pub layer: LayerId,
    /// What shows in it, sorted by name.
    pub entries: RedBlackTreeMapSync<OsString, Entry>,
}

#[derive(Debug, Clone)]
pub(crate) enum Entry {
    Dir(Arc<MergedDir>),
    /// Anything else, in the topmost layer holding it.
    Other(LayerId),
}

impl MergedDir {
    pub fn get(&self, name: &OsStr) -> Option<&Entry> {
        self.entries.get(name)
    }
}

/// The tree of `below` with the committed layer `layer` on top.
pub(crate) fn apply(
    store: &LayerStore,
    below: Option<&Arc<MergedDir>>,
    layer: &LayerId,
) -> io::Result<Arc<MergedDir>> {
    apply_dir(below, layer, &store.diff_dir(layer))
}

fn apply_dir(
    below: Option<&Arc<MergedDir>>,
    layer: &LayerId,
    host: &Path,
) -> io::Result<Arc<MergedDir>> {
    let mut entries = match below {
        Some(b) if !sys::is_opaque(host)? => b.entries.clone(),
        _ => RedBlackTreeMapSync::new_sync(),
    };
    for e in fs::read_dir(host)? {
        let e = e?;
        let name = e.file_name();
        let kind = e.file_type()?;
        if kind.is_dir() {
            let under = match entries.get(&name) {
                Some(Entry::Dir(d)) => Some(d.clone()),
                _ => None, // a directory over anything else hides it whole
            };
            let dir = apply_dir(under.as_ref(), layer, &host.join(&name))?;
            entries.insert_mut(name, Entry::Dir(dir));
        } else if kind.is_char_device() && sys::is_whiteout(&e.metadata()?) {
            entries.remove_mut(&name);
        } else {
            entries.insert_mut(name, Entry::Other(layer.clone()));
        }
    }
    Ok(Arc::new(MergedDir {
        layer: layer.clone(),
        entries,
    }))
}
