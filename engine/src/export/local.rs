use std::path::Path;

use buildd_snapshot::{LayerStore, Snapshot};

use super::ExportError;

/// Writes the merged filesystem of `snap` into `dest`.
pub fn export_local(layers: &LayerStore, snap: &Snapshot, dest: &Path) -> Result<(), ExportError> {
    std::fs::create_dir_all(dest).map_err(|source| ExportError::Io {
        path: dest.to_owned(),
        source,
    })?;
    buildd_snapshot::export_tree(layers, snap, dest).map_err(|source| ExportError::Snapshot {
        dest: dest.to_owned(),
        source,
    })
}
