//! Images from registries: a pinned reference becomes a layer stack.
//!
//! Blobs land in the content store by digest (verified while streaming; one already
//! there is not fetched again), then each layer is unpacked into a new diff dir of
//! the layer store, checking its diff_id against the image config. The solver
//! records the resulting stack under the source's cache key, which includes the
//! manifest digest: a pinned image is never pulled twice, a moved tag is.

use std::sync::Arc;

use buildd_oci::{Compression, Descriptor, ImageConfig, LayerBlob};
use buildd_proto::Digest;
use buildd_registry::{Client, Reference};
use buildd_snapshot::{LayerId, Snapshot};
use futures_util::future::try_join_all;
use tokio::sync::Semaphore;

use super::worker::{Cancelled, Ref, blocking};
use crate::export::record_layer_blob;
use crate::root::Root;
use crate::solver::{LogSink, OpError};

/// Layers fetched at once, per pull (as Docker's default of three).
const CONCURRENT_LAYERS: usize = 3;

pub(crate) async fn pull(
    root: Arc<Root>,
    registry: Arc<Client>,
    reference: &str,
    log: LogSink,
) -> Result<Ref, OpError> {
    let fail = |e: &dyn std::fmt::Display| OpError::new(format!("pulling {reference}: {e}"));
    let r = Reference::parse(reference).map_err(|e| fail(&e))?;
    if r.digest.is_none() {
        return Err(fail(&"the reference is not pinned to a digest"));
    }
    let platform = buildd_oci::host_platform();
    let resolved = registry
        .resolve(&r, &platform)
        .await
        .map_err(|e| OpError::new(e.to_string()))?;
    let manifest = resolved.manifest;
    let config_bytes = registry
        .fetch_blob_bytes(&r, &manifest.config)
        .await
        .map_err(|e| OpError::new(e.to_string()))?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| fail(&format!("image config is not valid: {e}")))?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(fail(&format!(
            "the manifest has {} layers but the config {} diff_ids",
            manifest.layers.len(),
            config.rootfs.diff_ids.len()
        )));
    }

    log.write(
        1,
        format!(
            "resolve {} to {}: {} layers\n",
            r,
            resolved.digest,
            manifest.layers.len()
        )
        .as_bytes(),
    );
    let permits = Arc::new(Semaphore::new(CONCURRENT_LAYERS));
    try_join_all(manifest.layers.iter().map(|desc| {
        let (root, registry, r, permits, log) = (
            root.clone(),
            registry.clone(),
            r.clone(),
            permits.clone(),
            log.clone(),
        );
        async move {
            let _permit = permits.acquire().await.expect("never closed");
            fetch_layer(&root, &registry, &r, desc, &log).await
        }
    }))
    .await?;

    let layers: Vec<(Descriptor, Digest)> = manifest
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .map(|(desc, diff_id)| {
            let diff_id = diff_id
                .parse::<Digest>()
                .map_err(|e| fail(&format!("diff_id {diff_id:?}: {e}")))?;
            Ok((desc.clone(), diff_id))
        })
        .collect::<Result<_, OpError>>()?;
    let name = reference.to_owned();
    blocking(move |cancelled| unpack_all(&root, &name, &layers, &cancelled)).await
}

async fn fetch_layer(
    root: &Root,
    registry: &Client,
    r: &Reference,
    desc: &Descriptor,
    log: &LogSink,
) -> Result<(), OpError> {
    let digest = desc
        .digest
        .parse::<Digest>()
        .map_err(|e| OpError::new(format!("pulling {r}: layer {:?}: {e}", desc.digest)))?;
    if root.content.size(&digest) == Some(desc.size) {
        return Ok(());
    }
    let mut writer = root
        .content
        .writer()
        .map_err(|e| OpError::new(format!("pulling {r}: {e}")))?;
    registry
        .fetch_blob(r, desc, &mut writer)
        .await
        .map_err(|e| OpError::new(e.to_string()))?;
    // The commit fsyncs: not on an async thread.
    tokio::task::spawn_blocking(move || writer.commit(Some(digest)))
        .await
        .map_err(|e| OpError::new(format!("internal error: {e}")))?
        .map_err(|e| OpError::new(format!("pulling {r}: layer {digest}: {e}")))?;
    log.write(
        1,
        format!("downloaded {digest} ({} bytes)\n", desc.size).as_bytes(),
    );
    Ok(())
}

fn unpack_all(
    root: &Root,
    reference: &str,
    layers: &[(Descriptor, Digest)],
    cancelled: &Cancelled,
) -> Result<Ref, OpError> {
    let mut ids = Vec::with_capacity(layers.len());
    for (desc, diff_id) in layers {
        if cancelled.is_set() {
            return Err(OpError::new("cancelled"));
        }
        ids.push(unpack_one(root, reference, desc, *diff_id)?);
    }
    Ok(Ref::Snapshot(Snapshot::new(ids)))
}

pub(crate) fn unpack_one(
    root: &Root,
    reference: &str,
    desc: &Descriptor,
    diff_id: Digest,
) -> Result<LayerId, OpError> {
    let fail = |e: &dyn std::fmt::Display| {
        OpError::new(format!("pulling {reference}: layer {}: {e}", desc.digest))
    };
    let compression = compression_of(&desc.media_type).ok_or_else(|| {
        fail(&format!(
            "unsupported layer media type {:?}",
            desc.media_type
        ))
    })?;
    let digest: Digest = desc.digest.parse().map_err(|e| fail(&e))?;
    let blob = std::fs::File::open(root.content.path(&digest)).map_err(|e| fail(&e))?;
    let pending = root.layers.begin().map_err(|e| fail(&e))?;
    let got = buildd_oci::unpack_layer(std::io::BufReader::new(blob), compression, pending.path())
        .map_err(|e| fail(&e))?;
    if got != diff_id {
        return Err(fail(&format!(
            "uncompressed content is {got}, the image config says {diff_id}"
        )));
    }
    let id = super::fresh_layer_id(diff_id);
    pending.commit(&id).map_err(|e| fail(&e))?;
    // Exporting this layer again reuses the registry's blob instead of making a new
    // one: the image keeps its base layers' digests, as with BuildKit.
    record_layer_blob(
        root.index.as_ref(),
        &id,
        compression,
        &LayerBlob {
            media_type: compression.media_type(),
            digest,
            diff_id,
            size: desc.size,
        },
    )
    .map_err(|e| fail(&e))?;
    Ok(id)
}

/// OCI and Docker layer media types by compression; foreign layers are refused.
pub(crate) fn compression_of(media_type: &str) -> Option<Compression> {
    match media_type {
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip" => Some(Compression::Gzip),
        "application/vnd.oci.image.layer.v1.tar+zstd" => Some(Compression::Zstd),
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
        _ => None,
    }
}
