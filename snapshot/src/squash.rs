//! One layer holding a whole stack, for the overlay mounts of RUN steps over
//! stacks deeper than a mount can name. Built from the stack's merged tree with
//! every file hard-linked from the layer that holds it (committed layers never
//! change), and committed under an id derived from the snapshot's, so the steps
//! that follow over the same stack reuse it instead of flattening again.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use buildd_proto::Digest;

use crate::error::SnapshotError;
use crate::merged::{Entry, MergedDir};
use crate::snapshot::Snapshot;
use crate::store::{LayerId, LayerStore};
use crate::sys;

/// The id of `snap`'s squashed layer, committing it first when it is not there.
/// Directories keep owner, mode and mtime; their extended attributes other than
/// overlay's own are not carried over.
pub fn squash(store: &LayerStore, snap: &Snapshot) -> Result<LayerId, SnapshotError> {
    let mut name = b"squash\0".to_vec();
    name.extend_from_slice(snap.id().as_bytes());
    let id = LayerId::new(Digest::of(&name).hex())?;
    if store.exists(&id) {
        return Ok(id);
    }
    let pending = store.begin()?;
    if let Some(tree) = snap.merged(store)? {
        let out = pending.path();
        link_dir(store, &tree, Path::new(""), out)
            .map_err(SnapshotError::io("squash layers into", out))?;
    }
    pending.commit(&id)?;
    Ok(id)
}

/// Fills `out` (an existing directory) with `dir`'s entries, then gives it the
/// metadata of `dir`'s topmost copy (last, so adding entries leaves its mtime).
fn link_dir(store: &LayerStore, dir: &MergedDir, rel: &Path, out: &Path) -> io::Result<()> {
    for (name, entry) in dir.entries.iter() {
        let rel = rel.join(name);
        let dst = out.join(name);
        match entry {
            Entry::Dir(d) => {
                fs::create_dir(&dst)?;
                link_dir(store, d, &rel, &dst)?;
            }
            // `link` does not follow a symlink: the link itself is shared.
            Entry::Other(layer) => fs::hard_link(store.diff_dir(layer).join(&rel), &dst)?,
        }
    }
    let m = fs::symlink_metadata(store.diff_dir(&dir.layer).join(rel))?;
    sys::set_meta(out, m.uid(), m.gid(), m.mode() & 0o7777, sys::mtime_ns(&m))
}
