//! Imported caches: every `--cache-from`'s records are fetched before the solve;
//! a layer blob is fetched only when a step that hits needs its content (a step
//! that runs on it, or the result), so a graph that hits throughout pulls only
//! the layers of its result.

use std::collections::HashMap;
use std::sync::Arc;

use buildd_proto::Digest;
use buildd_snapshot::{LayerId, Snapshot};
use tokio::sync::OnceCell;

use super::format::{CacheLayer, Stack, check};
use super::store::RemoteStore;
use crate::cache::Table;
use crate::ops::{blocking_op, fresh_layer, unpack_cache_layer};
use crate::root::Root;
use crate::solver::OpError;

/// One loaded cache.
pub struct Source {
    store: Arc<dyn RemoteStore>,
    layers: Vec<CacheLayer>,
    stacks: Vec<Stack>,
    /// The layer each stack's top became here, made once however many results
    /// share it.
    made: Vec<OnceCell<LayerId>>,
}

/// The records of every import, first import first for a key they share.
#[derive(Default)]
pub struct Imported {
    records: HashMap<Digest, (Arc<Source>, Option<u32>)>,
    /// Cache mount id → the layer that seeds it (`cache-mounts=true`).
    mounts: HashMap<String, (Arc<Source>, u32)>,
}

impl std::fmt::Debug for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Imported({} records)", self.records.len())
    }
}

impl Imported {
    /// Loads each store's records. A cache that is not there or cannot be read
    /// is a warning, given to `warn`, and the build goes on without it.
    pub async fn load(
        stores: Vec<Arc<dyn RemoteStore>>,
        warn: &mut (dyn FnMut(String) + Send),
    ) -> Self {
        let mut imported = Self::default();
        for store in stores {
            let loaded = match store.load().await {
                Ok(Some((manifest, config))) => check(&manifest, &config),
                Ok(None) => {
                    warn(format!("{}: no cache there yet", store.describe()));
                    continue;
                }
                Err(e) => Err(e),
            };
            let checked = match loaded {
                Ok(c) => c,
                Err(e) => {
                    warn(format!("{}: ignored: {e}", store.describe()));
                    continue;
                }
            };
            let source = Arc::new(Source {
                store,
                made: checked.stacks.iter().map(|_| OnceCell::new()).collect(),
                layers: checked.layers,
                stacks: checked.stacks,
            });
            for (key, stack) in checked.records {
                imported
                    .records
                    .entry(key)
                    .or_insert_with(|| (source.clone(), stack));
            }
            for (id, layer) in checked.cache_mounts {
                imported
                    .mounts
                    .entry(id)
                    .or_insert_with(|| (source.clone(), layer));
            }
        }
        imported
    }

    /// Adds another import's records; this one's win where both have a key.
    pub fn extend(&mut self, other: Imported) {
        for (k, v) in other.records {
            self.records.entry(k).or_insert(v);
        }
        for (k, v) in other.mounts {
            self.mounts.entry(k).or_insert(v);
        }
    }

    /// The content of cache mount `id`, if an import holds it: its blob, fetched
    /// into the content store.
    pub(crate) async fn cache_mount_seed(
        &self,
        root: &Root,
        id: &str,
    ) -> Result<Option<crate::ops::CacheSeed>, String> {
        let Some((source, layer)) = self.mounts.get(id) else {
            return Ok(None);
        };
        let layer = &source.layers[*layer as usize];
        let digest: Digest = layer.desc.digest.parse().map_err(|e| format!("{e}"))?;
        if root.content.size(&digest) != Some(layer.desc.size) {
            source
                .store
                .fetch_blob(&layer.desc, &root.content)
                .await
                .map_err(|e| format!("{}: layer {digest}: {e}", source.store.describe()))?;
        }
        Ok(Some(crate::ops::CacheSeed {
            blob: root.content.path(&digest),
            compression: layer.compression,
            diff_id: layer.diff_id,
        }))
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The result recorded under `key`, not yet fetched.
    pub fn get(&self, key: &Digest) -> Option<RemoteResult> {
        let (source, stack) = self.records.get(key)?;
        Some(RemoteResult {
            key: *key,
            source: source.clone(),
            stack: *stack,
            snapshot: OnceCell::new(),
        })
    }
}

/// A step's result found in an imported cache.
pub struct RemoteResult {
    pub key: Digest,
    source: Arc<Source>,
    stack: Option<u32>,
    snapshot: OnceCell<Snapshot>,
}

impl std::fmt::Debug for RemoteResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RemoteResult({}, {})",
            self.key,
            self.source.store.describe()
        )
    }
}

impl RemoteResult {
    /// Stack indices, bottom first.
    fn chain(&self) -> Vec<usize> {
        let mut chain = Vec::new();
        let mut cur = self.stack;
        while let Some(i) = cur {
            chain.push(i as usize);
            cur = self.source.stacks[i as usize].below;
        }
        chain.reverse();
        chain
    }

    /// The result's layers, bottom first: a blob, or `None` for a layer with no
    /// changes.
    pub fn layers(&self) -> Vec<Option<&CacheLayer>> {
        self.chain()
            .into_iter()
            .map(|i| {
                self.source.stacks[i]
                    .layer
                    .map(|l| &self.source.layers[l as usize])
            })
            .collect()
    }

    pub fn store(&self) -> &Arc<dyn RemoteStore> {
        &self.source.store
    }

    /// Records the result in the local index if its layers are all here already
    /// (a prefix of a result that was fetched), so the next build hits without
    /// the import; fetches nothing.
    pub fn record_if_here(&self, root: &Root) -> Result<(), OpError> {
        let mut ids = Vec::new();
        for i in self.chain() {
            match self.source.made[i].get() {
                Some(id) => ids.push(id.clone()),
                None => return Ok(()),
            }
        }
        record(root, &self.key, &Snapshot::new(ids))
    }

    /// The result as a snapshot here: its blobs fetched and unpacked (each once),
    /// then recorded in the local index, so the next build hits locally.
    pub async fn materialize(&self, root: &Arc<Root>) -> Result<Snapshot, OpError> {
        self.snapshot
            .get_or_try_init(|| async {
                let mut ids = Vec::new();
                for i in self.chain() {
                    let id = self.source.made[i]
                        .get_or_try_init(|| self.source.make_layer(root, i))
                        .await?;
                    ids.push(id.clone());
                }
                let snap = Snapshot::new(ids);
                record(root, &self.key, &snap)?;
                Ok(snap)
            })
            .await
            .cloned()
    }
}

fn record(root: &Root, key: &Digest, snap: &Snapshot) -> Result<(), OpError> {
    let record = crate::cache::snapshots::encode(root.index.as_ref(), &root.layers, snap)
        .map_err(|e| OpError::new(e.to_string()))?;
    root.index
        .put(Table::Results, key.as_bytes(), &record)
        .map_err(|e| OpError::new(e.to_string()))
}

impl Source {
    async fn make_layer(&self, root: &Arc<Root>, stack: usize) -> Result<LayerId, OpError> {
        let root = root.clone();
        let Some(l) = self.stacks[stack].layer else {
            return blocking_op(move || fresh_layer(&root)).await;
        };
        let layer = self.layers[l as usize].clone();
        let what = self.store.describe();
        let digest: Digest = layer
            .desc
            .digest
            .parse()
            .map_err(|e| OpError::new(format!("{what}: {e}")))?;
        if root.content.size(&digest) != Some(layer.desc.size) {
            self.store
                .fetch_blob(&layer.desc, &root.content)
                .await
                .map_err(|e| OpError::new(format!("cache {what}: layer {digest}: {e}")))?;
        }
        blocking_op(move || unpack_cache_layer(&root, &what, &layer.desc, layer.diff_id)).await
    }
}
