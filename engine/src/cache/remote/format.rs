//! The cache format (docs/cache.md): an OCI image manifest whose layers are the
//! cached results' layer blobs and whose config maps cache keys to layer stacks.

use buildd_oci::{Compression, Descriptor, Manifest};
use buildd_proto::Digest;
use serde::{Deserialize, Serialize};

pub const MEDIA_TYPE_CACHE_CONFIG: &str = "application/vnd.buildd.cache.config.v1+json";

/// The config blob.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheConfig {
    /// The uncompressed digest of each of the manifest's layers, in its order.
    pub diff_ids: Vec<String>,
    /// Layer stacks, each one layer over the stack below it, a below always
    /// listed before what it is below: results share prefixes, so records cost
    /// the same at any depth.
    pub stacks: Vec<Stack>,
    /// Cache key → the stack that is its result, sorted by key.
    pub records: Vec<CacheRecord>,
    /// `cache-mounts=true`: the content of `RUN --mount=type=cache` ids, each a
    /// layer that seeds the mount where a builder has none yet. Sorted by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_mounts: Vec<CacheMountRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheMountRecord {
    pub id: String,
    /// The manifest layer holding its files.
    pub layer: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stack {
    /// The stack below, by index; none: this is the bottom layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<u32>,
    /// The manifest layer on top, by index; none: a layer with no changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    pub key: String,
    /// None: the empty filesystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<u32>,
}

/// What `--cache-to type=inline` puts in the image config (`buildd.cache.v1`):
/// stacks and records as in [`CacheConfig`], whose layer indexes are the image
/// manifest's and whose diff IDs are the image's `rootfs.diff_ids`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InlineCache {
    pub stacks: Vec<Stack>,
    pub records: Vec<CacheRecord>,
}

/// The parts of an image config an inline cache is read from.
#[derive(Deserialize)]
struct ImageWithCache {
    #[serde(default)]
    rootfs: RootFs,
    #[serde(rename = "buildd.cache.v1", default)]
    inline: Option<InlineCache>,
}

#[derive(Default, Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// Whether a manifest's config may hold a cache: buildd's cache config, or an
/// image config with an inline cache.
pub fn may_hold_cache(config_media_type: &str) -> bool {
    matches!(
        config_media_type,
        MEDIA_TYPE_CACHE_CONFIG
            | buildd_oci::MEDIA_TYPE_CONFIG
            | buildd_oci::MEDIA_TYPE_DOCKER_CONFIG
    )
}

/// A layer of a loaded cache.
#[derive(Debug, Clone)]
pub struct CacheLayer {
    pub desc: Descriptor,
    pub diff_id: Digest,
    pub compression: Compression,
}

/// A checked cache: what [`check`] found consistent.
#[derive(Debug, Clone)]
pub struct Checked {
    pub layers: Vec<CacheLayer>,
    pub stacks: Vec<Stack>,
    pub records: Vec<(Digest, Option<u32>)>,
    /// Cache mount id → the layer that seeds it.
    pub cache_mounts: Vec<(String, u32)>,
}

/// Checks a manifest and its config against each other, so that an imported
/// record can never name a layer or stack that is not there.
pub fn check(manifest: &Manifest, config: &[u8]) -> Result<Checked, String> {
    let config: CacheConfig = match manifest.config.media_type.as_str() {
        MEDIA_TYPE_CACHE_CONFIG => {
            serde_json::from_slice(config).map_err(|e| format!("cache config: {e}"))?
        }
        t if may_hold_cache(t) => {
            let image: ImageWithCache =
                serde_json::from_slice(config).map_err(|e| format!("image config: {e}"))?;
            let inline = image.inline.ok_or(
                "an image without an inline buildd cache (build it with --cache-to type=inline)",
            )?;
            CacheConfig {
                diff_ids: image.rootfs.diff_ids,
                stacks: inline.stacks,
                records: inline.records,
                cache_mounts: Vec::new(),
            }
        }
        other => return Err(format!("not a buildd cache: its config is {other:?}")),
    };
    if config.diff_ids.len() != manifest.layers.len() {
        return Err(format!(
            "the manifest has {} layers, the config {} diff_ids",
            manifest.layers.len(),
            config.diff_ids.len()
        ));
    }
    let layers = manifest
        .layers
        .iter()
        .zip(&config.diff_ids)
        .map(|(desc, diff_id)| {
            let diff_id = diff_id
                .parse::<Digest>()
                .map_err(|e| format!("diff_id {diff_id:?}: {e}"))?;
            desc.digest
                .parse::<Digest>()
                .map_err(|e| format!("layer {:?}: {e}", desc.digest))?;
            let compression = crate::ops::compression_of(&desc.media_type).ok_or_else(|| {
                format!("layer media type {:?} is not supported", desc.media_type)
            })?;
            Ok(CacheLayer {
                desc: desc.clone(),
                diff_id,
                compression,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    for (i, s) in config.stacks.iter().enumerate() {
        if s.below.is_some_and(|b| b as usize >= i) {
            return Err(format!("stack {i} is over a stack not listed before it"));
        }
        if s.layer.is_some_and(|l| l as usize >= layers.len()) {
            return Err(format!(
                "stack {i} names a layer that is not in the manifest"
            ));
        }
    }
    let records = config
        .records
        .iter()
        .map(|r| {
            let key = r
                .key
                .parse::<Digest>()
                .map_err(|e| format!("record key {:?}: {e}", r.key))?;
            if r.stack.is_some_and(|s| s as usize >= config.stacks.len()) {
                return Err(format!("record {key} names a stack that is not there"));
            }
            Ok((key, r.stack))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut cache_mounts = Vec::with_capacity(config.cache_mounts.len());
    for m in config.cache_mounts {
        if m.layer as usize >= layers.len() {
            return Err(format!(
                "cache mount {:?} names a layer that is not in the manifest",
                m.id
            ));
        }
        cache_mounts.push((m.id, m.layer));
    }
    Ok(Checked {
        layers,
        stacks: config.stacks,
        records,
        cache_mounts,
    })
}
