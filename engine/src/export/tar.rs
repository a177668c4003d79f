//! `type=tar`: the result's filesystem as one tar archive, as BuildKit's tar
//! exporter gives it. Written in the layer format (entries sorted, hard links
//! kept, owners as numbers, mtimes clamped to SOURCE_DATE_EPOCH), uncompressed,
//! from the snapshot's squashed layer: its files are hard links to the layers
//! that hold them, so nothing is copied to make it.

use std::io::Write;

use buildd_oci::{Compression, LayerOptions};
use buildd_snapshot::Snapshot;

use super::ExportError;
use crate::root::Root;

/// Writes the tar of `snap`'s merged filesystem to `out`.
pub fn export_tar(
    root: &Root,
    snap: &Snapshot,
    source_date_epoch: Option<i64>,
    out: &mut dyn Write,
) -> Result<(), ExportError> {
    let opts = LayerOptions {
        compression: Compression::None,
        source_date_epoch,
    };
    let layer = |source| ExportError::Layer {
        layer: "the merged filesystem".to_owned(),
        source,
    };
    if snap.is_empty() {
        // Nothing but the end of the archive.
        return out.write_all(&[0; 1024]).map_err(|source| ExportError::Io {
            path: "the tar output".into(),
            source,
        });
    }
    let squashed =
        buildd_snapshot::squash(&root.layers, snap).map_err(|source| ExportError::Snapshot {
            dest: "the tar output".into(),
            source,
        })?;
    buildd_oci::write_layer(&root.layers.diff_dir(&squashed), &opts, out).map_err(layer)?;
    Ok(())
}
