//! Layer blobs for a snapshot's stack: compressed once, then remembered.

use buildd_oci::{Compression, LayerBlob, LayerOptions};
use buildd_proto::Digest;
use buildd_snapshot::{LayerId, LayerStore, Snapshot};
use serde::{Deserialize, Serialize};

use super::ExportError;
use crate::cache::{CacheIndex, Table};
use crate::store::ContentStore;

/// The exported form of a snapshot: one blob per non-empty layer, bottom first.
#[derive(Debug, Clone)]
pub struct ImageLayers {
    pub blobs: Vec<LayerBlob>,
    /// For each layer of the snapshot: whether it had any changes (empty ones are
    /// left out of the image, as BuildKit does).
    pub non_empty: Vec<bool>,
}

/// A `LayerBlobs` value: the blob a layer was exported as.
#[derive(Serialize, Deserialize)]
pub(crate) struct BlobRecord {
    pub(crate) diff_id: String,
    pub(crate) digest: String,
    pub(crate) size: u64,
}

/// Compresses each layer of `snap` into the content store, reusing blobs exported
/// before (keyed by layer and compression) whose content is still present.
pub fn image_layers(
    layers: &LayerStore,
    content: &ContentStore,
    index: &dyn CacheIndex,
    snap: &Snapshot,
    compression: Compression,
    source_date_epoch: Option<i64>,
) -> Result<ImageLayers, ExportError> {
    let mut out = ImageLayers {
        blobs: Vec::new(),
        non_empty: Vec::new(),
    };
    for id in snap.layers().iter() {
        let dir = layers.diff_dir(id);
        let empty = buildd_oci::is_empty_diff(&dir).map_err(|source| ExportError::Io {
            path: dir.clone(),
            source,
        })?;
        out.non_empty.push(!empty);
        if empty {
            continue;
        }
        out.blobs.push(layer_blob(
            layers,
            content,
            index,
            id,
            compression,
            source_date_epoch,
        )?);
    }
    Ok(out)
}

fn layer_blob(
    layers: &LayerStore,
    content: &ContentStore,
    index: &dyn CacheIndex,
    id: &LayerId,
    compression: Compression,
    source_date_epoch: Option<i64>,
) -> Result<LayerBlob, ExportError> {
    let key = blob_key(id, compression, source_date_epoch);
    if let Some(rec) = index.get(Table::LayerBlobs, key.as_bytes())?
        && let Ok(rec) = serde_json::from_slice::<BlobRecord>(&rec)
        && let (Ok(digest), Ok(diff_id)) = (rec.digest.parse::<Digest>(), rec.diff_id.parse())
        && content.size(&digest) == Some(rec.size)
    {
        return Ok(LayerBlob {
            diff_id,
            digest,
            size: rec.size,
            media_type: compression.media_type(),
        });
    }
    // write_layer hashes what it writes; the index record that names the blob is
    // durable only after the next flush syncs it.
    let mut w = content.writer_deferred()?;
    let opts = LayerOptions {
        compression,
        source_date_epoch,
    };
    let blob = buildd_oci::write_layer(&layers.diff_dir(id), &opts, &mut w).map_err(|source| {
        ExportError::Layer {
            layer: id.to_string(),
            source,
        }
    })?;
    w.commit(Some(blob.digest))?;
    record(index, &key, &blob)?;
    Ok(blob)
}

fn blob_key(id: &LayerId, compression: Compression, source_date_epoch: Option<i64>) -> String {
    format!(
        "{id}/{compression:?}/{}",
        source_date_epoch.map_or(String::new(), |t| t.to_string())
    )
}

/// The layer a `LayerBlobs` key was made for (see [`blob_key`]).
pub(crate) fn blob_key_layer(key: &str) -> Option<&str> {
    key.split_once('/').map(|(id, _)| id)
}

fn record(index: &dyn CacheIndex, key: &str, blob: &LayerBlob) -> Result<(), ExportError> {
    let rec = BlobRecord {
        diff_id: blob.diff_id.to_string(),
        digest: blob.digest.to_string(),
        size: blob.size,
    };
    index.put(
        Table::LayerBlobs,
        key.as_bytes(),
        &serde_json::to_vec(&rec).expect("serializable"),
    )?;
    Ok(())
}

/// Remembers that `blob` (already in the content store) is layer `id` exported with
/// `compression`, e.g. the registry's own blob of a pulled layer.
pub fn record_layer_blob(
    index: &dyn CacheIndex,
    id: &LayerId,
    compression: Compression,
    blob: &LayerBlob,
) -> Result<(), ExportError> {
    record(index, &blob_key(id, compression, None), blob)
}
