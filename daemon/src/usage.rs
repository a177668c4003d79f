//! DiskUsage and Prune over the daemon's root: layers, blobs and context mirrors.
//!
//! What refers to what: image records name layers (never pruned); cache records
//! (the index's results table) name layers that later builds would hit; layer-blob
//! records name the compressed blobs exported from layers. Everything else in the
//! content store (configs, manifests, pulled blobs) can be made again. Prune runs
//! with the storage lock held exclusively, so no build is using anything it sees.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use buildd_engine::cache::Table;
use buildd_engine::cache::snapshots::SnapshotTable;
use buildd_engine::root::Root;
use buildd_proto::control::{PruneRequest, PruneResponse, UsageRecord};
use buildd_snapshot::LayerId;

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("invalid filter {0:?}: want kind=layer|blob|context")]
    Filter(String),
    #[error("{what}: {message}")]
    Storage { what: String, message: String },
}

fn storage(what: &str, e: impl std::fmt::Display) -> UsageError {
    UsageError::Storage {
        what: what.to_owned(),
        message: e.to_string(),
    }
}

/// Every layer, blob and context mirror with its size and whether it is in use.
pub fn disk_usage(
    root: &Root,
    contexts_in_use: &dyn Fn(&Path) -> bool,
) -> Result<Vec<UsageRecord>, UsageError> {
    let refs = References::read(root)?;
    let mut out = Vec::new();
    for id in root.layers.list().map_err(|e| storage("layers", e))? {
        let dir = root.layers.diff_dir(&id);
        let (description, in_use) = match refs.images.get(id.as_str()) {
            Some(name) => (format!("image {name}"), true),
            None if refs.cached.contains(id.as_str()) => ("cache".to_owned(), false),
            None => ("unreferenced".to_owned(), false),
        };
        out.push(record(&dir, id.to_string(), "layer", in_use, description));
    }
    let blobs = root.path.join("blobs").join("sha256");
    for name in names(&blobs)? {
        let id = format!("sha256:{name}");
        let description = if refs.blobs.contains(&id) {
            "layer blob"
        } else {
            "unreferenced"
        };
        out.push(record(
            &blobs.join(&name),
            id,
            "blob",
            false,
            description.to_owned(),
        ));
    }
    let contexts = root.path.join("contexts");
    for name in names(&contexts)? {
        let dir = contexts.join(&name);
        if !dir.is_dir() {
            continue;
        }
        let in_use = contexts_in_use(&dir);
        out.push(record(
            &dir,
            name,
            "context",
            in_use,
            "client directory mirror".to_owned(),
        ));
    }
    Ok(out)
}

/// Removes what `req` selects and nothing in use: layers no image names (with
/// `all`, also those cache records name), blobs no layer-blob record names (with
/// `all`, every blob), and context mirrors.
pub fn prune(
    root: &Root,
    req: &PruneRequest,
    contexts_in_use: &dyn Fn(&Path) -> bool,
) -> Result<PruneResponse, UsageError> {
    let mut kinds: Option<HashSet<String>> = None;
    for f in &req.filters {
        match f.split_once('=') {
            Some(("kind" | "type", k)) if matches!(k, "layer" | "blob" | "context") => {
                kinds.get_or_insert_with(HashSet::new).insert(k.to_owned());
            }
            _ => return Err(UsageError::Filter(f.clone())),
        }
    }
    let records = disk_usage(root, contexts_in_use)?;
    let total: u64 = records.iter().map(|r| r.size).sum();
    let keep_after = (req.keep_duration_s > 0).then(|| {
        SystemTime::now()
            .checked_sub(Duration::from_secs(req.keep_duration_s as u64))
            .map_or(0, |t| {
                t.duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as i64)
            })
    });
    let mut candidates: Vec<UsageRecord> = records
        .into_iter()
        .filter(|r| !r.in_use)
        .filter(|r| kinds.as_ref().is_none_or(|k| k.contains(&r.kind)))
        .filter(|r| req.all || r.description != "cache")
        .filter(|r| req.all || r.kind != "blob" || r.description == "unreferenced")
        .filter(|r| keep_after.is_none_or(|t| r.last_used_ns < t))
        .collect();
    // Oldest first, so keep-storage keeps the most recent.
    candidates.sort_by_key(|r| r.last_used_ns);
    let mut remaining = total;
    let mut removed = Vec::new();
    for r in candidates {
        if req.keep_storage_bytes > 0 && remaining <= req.keep_storage_bytes {
            break;
        }
        match r.kind.as_str() {
            "layer" => {
                let id = LayerId::new(r.id.as_str()).map_err(|e| storage(&r.id, e))?;
                root.layers.remove(&id).map_err(|e| storage(&r.id, e))?;
            }
            "blob" => {
                let hex = r.id.trim_start_matches("sha256:");
                let path = root.path.join("blobs").join("sha256").join(hex);
                std::fs::remove_file(&path).map_err(|e| storage(&r.id, e))?;
            }
            _ => {
                let path = root.path.join("contexts").join(&r.id);
                std::fs::remove_dir_all(&path).map_err(|e| storage(&r.id, e))?;
            }
        }
        remaining = remaining.saturating_sub(r.size);
        removed.push(r);
    }
    if removed.iter().any(|r| r.kind != "context") {
        // Cache records naming what went would point at nothing.
        let dropped =
            buildd_engine::fsck::drop_dangling_records(root).map_err(|e| storage("index", e))?;
        tracing::debug!(dropped, "dropped cache records naming pruned content");
    }
    Ok(PruneResponse {
        reclaimed_bytes: total - remaining,
        removed,
    })
}

/// What the root's records refer to.
struct References {
    /// Layer id → a name of an image that uses it.
    images: std::collections::HashMap<String, String>,
    cached: HashSet<String>,
    blobs: HashSet<String>,
}

impl References {
    fn read(root: &Root) -> Result<Self, UsageError> {
        let mut images = std::collections::HashMap::new();
        for image in root.images.list().map_err(|e| storage("images", e))? {
            for layer in &image.layers {
                images
                    .entry(layer.clone())
                    .or_insert_with(|| image.name.clone());
            }
        }
        let mut cached = HashSet::new();
        let snapshots =
            SnapshotTable::load(root.index.as_ref()).map_err(|e| storage("index", e))?;
        let mut seen = HashSet::new();
        for value in root
            .index
            .values(Table::Results)
            .map_err(|e| storage("index", e))?
        {
            // What a broken record reaches is still named by it.
            let _ = snapshots.reach(&value, &mut seen, &mut cached);
        }
        let mut blobs = HashSet::new();
        for value in root
            .index
            .values(Table::LayerBlobs)
            .map_err(|e| storage("index", e))?
        {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&value)
                && let Some(d) = v.get("digest").and_then(|d| d.as_str())
            {
                blobs.insert(d.to_owned());
            }
        }
        Ok(Self {
            images,
            cached,
            blobs,
        })
    }
}

fn names(dir: &Path) -> Result<Vec<String>, UsageError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(storage(&dir.display().to_string(), e)),
    };
    let mut out: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.') && !n.ends_with(".syncing"))
        .collect();
    out.sort();
    Ok(out)
}

fn record(path: &Path, id: String, kind: &str, in_use: bool, description: String) -> UsageRecord {
    let last_used_ns = std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64);
    UsageRecord {
        id,
        kind: kind.to_owned(),
        size: size_of(path),
        in_use,
        last_used_ns,
        description,
    }
}

/// Apparent size of a file or tree, symlinks not followed.
fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| size_of(&e.path()))
                .sum()
        })
        .unwrap_or(0)
}
