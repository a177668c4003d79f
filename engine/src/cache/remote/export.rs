//! Writing a cache: the chosen steps' results as layer stacks over one set of
//! blobs, each blob stored once, the manifest written last.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use buildd_oci::{Descriptor, MEDIA_TYPE_MANIFEST, Manifest};
use buildd_proto::Digest;
use buildd_snapshot::Snapshot;

use super::format::{
    CacheConfig, CacheMountRecord, CacheRecord, InlineCache, MEDIA_TYPE_CACHE_CONFIG, Stack,
};
use super::import::RemoteResult;
use super::spec::{CacheExport, CacheMode};
use super::store::RemoteStore;
use crate::root::Root;

/// A step's result as the export sees it.
pub enum ResultRef {
    Local(Snapshot),
    Remote(Arc<RemoteResult>),
}

impl ResultRef {
    pub fn clone_ref(&self) -> Self {
        match self {
            Self::Local(s) => Self::Local(s.clone()),
            Self::Remote(r) => Self::Remote(r.clone()),
        }
    }
}

/// What an export wrote, for the progress log and the closing numbers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportStats {
    pub records: usize,
    pub layers: usize,
    /// Bytes of layer blobs the cache names.
    pub layer_bytes: u64,
    /// Blobs the store already had and were not sent again.
    pub reused: usize,
}

/// A cache mount's files as a layer blob in the content store.
#[derive(Debug, Clone)]
pub struct CacheMountBlob {
    pub id: String,
    pub desc: Descriptor,
    pub diff_id: Digest,
}

/// Archives cache mount `id` (its first instance) into the content store;
/// `None` when this root has no such cache.
pub fn cache_mount_blob(
    root: &Root,
    id: &str,
    compression: buildd_oci::Compression,
) -> Result<Option<CacheMountBlob>, String> {
    let dir = crate::ops::cache_mount_dir(&root.path, id);
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut writer = root.content.writer().map_err(|e| e.to_string())?;
    let opts = buildd_oci::LayerOptions {
        compression,
        source_date_epoch: None,
    };
    let blob = buildd_oci::write_layer(&dir, &opts, &mut writer).map_err(|e| e.to_string())?;
    let (digest, size) = writer
        .commit(Some(blob.digest))
        .map_err(|e| e.to_string())?;
    Ok(Some(CacheMountBlob {
        id: id.to_owned(),
        desc: Descriptor::new(blob.media_type, digest, size),
        diff_id: blob.diff_id,
    }))
}

/// One layer of a result: its blob, and where to get it when the content store
/// lacks it.
#[derive(Clone)]
struct Entry {
    desc: Descriptor,
    diff_id: Digest,
    from: Option<Arc<dyn RemoteStore>>,
}

/// Writes the cache of `results` (cache key, result; the build's result is
/// `result`) to `store`.
pub async fn export_cache(
    root: &Arc<Root>,
    results: Vec<(Digest, ResultRef)>,
    result: &ResultRef,
    spec: &CacheExport,
    store: &dyn RemoteStore,
    source_date_epoch: Option<i64>,
    mounts: Vec<CacheMountBlob>,
) -> Result<ExportStats, String> {
    let final_form = layer_entries(root, result, spec.compression, source_date_epoch).await?;
    let mut chosen: Vec<(Digest, Vec<Option<Entry>>)> = Vec::new();
    for (key, r) in results {
        let entries = layer_entries(root, &r, spec.compression, source_date_epoch).await?;
        if spec.mode == CacheMode::Max || is_prefix(&entries, &final_form) {
            chosen.push((key, entries));
        }
    }
    chosen.sort_by_key(|a| a.0);
    chosen.dedup_by(|a, b| a.0 == b.0);

    let mut config = CacheConfig::default();
    let mut layers: Vec<Entry> = Vec::new();
    let mut layer_index: HashMap<String, u32> = HashMap::new();
    let mut stack_index: HashMap<Stack, u32> = HashMap::new();
    for (key, entries) in &chosen {
        let mut below = None;
        for e in entries {
            let layer = e.as_ref().map(|e| {
                *layer_index.entry(e.desc.digest.clone()).or_insert_with(|| {
                    layers.push(e.clone());
                    config.diff_ids.push(e.diff_id.to_string());
                    (layers.len() - 1) as u32
                })
            });
            let stack = Stack { below, layer };
            below = Some(*stack_index.entry(stack).or_insert_with(|| {
                config.stacks.push(stack);
                (config.stacks.len() - 1) as u32
            }));
        }
        config.records.push(CacheRecord {
            key: key.to_string(),
            stack: below,
        });
    }

    for m in mounts {
        let index = *layer_index.entry(m.desc.digest.clone()).or_insert_with(|| {
            layers.push(Entry {
                desc: m.desc.clone(),
                diff_id: m.diff_id,
                from: None,
            });
            config.diff_ids.push(m.diff_id.to_string());
            (layers.len() - 1) as u32
        });
        config.cache_mounts.push(CacheMountRecord {
            id: m.id,
            layer: index,
        });
    }
    config.cache_mounts.sort_by(|a, b| a.id.cmp(&b.id));

    let mut stats = ExportStats {
        records: config.records.len(),
        layers: layers.len(),
        layer_bytes: layers.iter().map(|l| l.desc.size).sum(),
        reused: 0,
    };
    let mut blobs: Vec<(Descriptor, Option<PathBuf>)> = Vec::new();
    for l in &layers {
        let digest: Digest = l.desc.digest.parse().map_err(|e| format!("{e}"))?;
        let path = root.content.path(&digest);
        if root.content.size(&digest) == Some(l.desc.size) {
            blobs.push((l.desc.clone(), Some(path)));
        } else if store.has_blob(&l.desc).await? {
            stats.reused += 1;
            blobs.push((l.desc.clone(), None));
        } else {
            // A layer of an imported result that nothing here needed yet.
            let from = l
                .from
                .as_ref()
                .ok_or_else(|| format!("layer {digest} is not in the content store"))?;
            from.fetch_blob(&l.desc, &root.content)
                .await
                .map_err(|e| format!("fetching layer {digest} from {}: {e}", from.describe()))?;
            blobs.push((l.desc.clone(), Some(path)));
        }
    }
    let config_bytes = buildd_oci::json_blob(&config);
    let manifest = Manifest {
        schema_version: 2,
        media_type: MEDIA_TYPE_MANIFEST.to_owned(),
        config: Descriptor::new(
            MEDIA_TYPE_CACHE_CONFIG,
            Digest::of(&config_bytes),
            config_bytes.len() as u64,
        ),
        layers: layers.iter().map(|l| l.desc.clone()).collect(),
        annotations: Default::default(),
    };
    store
        .save(blobs, config_bytes, buildd_oci::json_blob(&manifest))
        .await?;
    Ok(stats)
}

/// The inline cache of an image of `result`: the records of the steps whose
/// results are a bottom part of it (as `mode=min`), their stacks naming the
/// image's own layers by their index in its manifest.
pub async fn inline_cache(
    root: &Arc<Root>,
    results: Vec<(Digest, ResultRef)>,
    result: &Snapshot,
    source_date_epoch: Option<i64>,
) -> Result<InlineCache, String> {
    // Which blob a layer has only matters for comparing prefixes here; the
    // image's own compression does not change which layers are its.
    let compression = buildd_oci::Compression::Gzip;
    let final_form = layer_entries(
        root,
        &ResultRef::Local(result.clone()),
        compression,
        source_date_epoch,
    )
    .await?;
    let mut manifest_index = Vec::with_capacity(final_form.len());
    let mut next = 0u32;
    for e in &final_form {
        manifest_index.push(e.as_ref().map(|_| {
            next += 1;
            next - 1
        }));
    }
    let mut chosen: Vec<(Digest, usize)> = Vec::new();
    for (key, r) in results {
        let entries = layer_entries(root, &r, compression, source_date_epoch).await?;
        if is_prefix(&entries, &final_form) {
            chosen.push((key, entries.len()));
        }
    }
    chosen.sort_by_key(|a| a.0);
    chosen.dedup_by(|a, b| a.0 == b.0);
    let mut cache = InlineCache::default();
    // Every chosen result is a prefix of one stack chain: stack i is the image's
    // bottom i + 1 layers.
    let depth = chosen.iter().map(|c| c.1).max().unwrap_or(0);
    for (i, layer) in manifest_index.iter().take(depth).enumerate() {
        cache.stacks.push(Stack {
            below: i.checked_sub(1).map(|b| b as u32),
            layer: *layer,
        });
    }
    for (key, len) in chosen {
        cache.records.push(CacheRecord {
            key: key.to_string(),
            stack: len.checked_sub(1).map(|s| s as u32),
        });
    }
    Ok(cache)
}

/// Whether a result's layers are the bottom of the final result's (mode=min
/// and inline caches hold only those).
fn is_prefix(entries: &[Option<Entry>], final_form: &[Option<Entry>]) -> bool {
    entries.len() <= final_form.len()
        && entries.iter().zip(final_form).all(|(a, b)| match (a, b) {
            (Some(a), Some(b)) => a.desc.digest == b.desc.digest,
            (None, None) => true,
            _ => false,
        })
}

/// A result's layers bottom first, each a blob or `None` when it has no changes.
async fn layer_entries(
    root: &Arc<Root>,
    r: &ResultRef,
    compression: buildd_oci::Compression,
    source_date_epoch: Option<i64>,
) -> Result<Vec<Option<Entry>>, String> {
    match r {
        ResultRef::Remote(remote) => Ok(remote
            .layers()
            .into_iter()
            .map(|l| {
                l.map(|l| Entry {
                    desc: l.desc.clone(),
                    diff_id: l.diff_id,
                    from: Some(remote.store().clone()),
                })
            })
            .collect()),
        ResultRef::Local(snap) => {
            let (root, snap) = (root.clone(), snap.clone());
            // Compressing is file work: off the async threads.
            tokio::task::spawn_blocking(move || {
                let layers = crate::export::image_layers(
                    &root.layers,
                    &root.content,
                    root.index.as_ref(),
                    &snap,
                    compression,
                    source_date_epoch,
                )
                .map_err(|e| e.to_string())?;
                let mut blobs = layers.blobs.into_iter();
                Ok(layers
                    .non_empty
                    .into_iter()
                    .map(|non_empty| {
                        non_empty.then(|| blobs.next()).flatten().map(|b| Entry {
                            desc: Descriptor::new(b.media_type, b.digest, b.size),
                            diff_id: b.diff_id,
                            from: None,
                        })
                    })
                    .collect())
            })
            .await
            .map_err(|e| format!("internal error: {e}"))?
        }
    }
}
