//! Source ops: where content enters the graph.

use std::sync::Arc;

use buildd_fsutil::dockerignore::PatternMatcher;
use buildd_proto::llb::SourceOp;
use buildd_snapshot::Snapshot;

use super::worker::{LocalDir, Ref};
use crate::root::Root;
use crate::solver::{BuildCtx, LogSink, OpError};

pub(crate) fn resolve(src: &SourceOp, ctx: &BuildCtx) -> Result<Ref, OpError> {
    let id = src.identifier.as_str();
    if id == "scratch" {
        return Ok(Ref::Snapshot(Snapshot::scratch()));
    }
    if let Some(name) = id.strip_prefix("local://") {
        let root = ctx
            .locals
            .get(name)
            .ok_or_else(|| OpError::new(format!("local source {name:?} was not provided")))?;
        let meta = std::fs::metadata(root).map_err(|e| {
            OpError::new(format!("local source {name:?} at {}: {e}", root.display()))
        })?;
        if !meta.is_dir() {
            return Err(OpError::new(format!(
                "local source {name:?} at {} is not a directory",
                root.display()
            )));
        }
        let excludes = if src.exclude_patterns.is_empty() {
            None
        } else {
            Some(
                PatternMatcher::new(&src.exclude_patterns)
                    .map_err(|e| OpError::new(format!("local source {name:?}: {e}")))?,
            )
        };
        let content_id = ctx.local_versions.get(name).map(|version| {
            use sha2::Digest as _;
            let mut h = sha2::Sha256::new();
            let path = root.as_os_str().as_encoded_bytes();
            h.update((path.len() as u64).to_le_bytes());
            h.update(path);
            h.update(version.to_le_bytes());
            for p in &src.exclude_patterns {
                h.update((p.len() as u64).to_le_bytes());
                h.update(p.as_bytes());
            }
            h.finalize().into()
        });
        return Ok(Ref::Local(Arc::new(LocalDir {
            root: root.clone(),
            excludes,
            immutable: ctx.immutable_locals,
            content_id,
        })));
    }
    Err(OpError::new(format!("unknown source {id:?}")))
}

/// `docker-image://NAME@sha256:…`: the local image store when it holds NAME with
/// that content (the digest pins what the frontend resolved), else the registry.
pub(crate) async fn image(
    root: Arc<Root>,
    registry: Option<Arc<buildd_registry::Client>>,
    reference: &str,
    log: LogSink,
) -> Result<Ref, OpError> {
    if let Some(local) = local_image(&root, reference)? {
        return Ok(local);
    }
    let registry = registry.ok_or_else(|| {
        OpError::new(format!(
            "image {reference} is not in the local image store and no registry is configured"
        ))
    })?;
    super::pull::pull(root, registry, reference, log).await
}

fn local_image(root: &Root, reference: &str) -> Result<Option<Ref>, OpError> {
    let Some((name, digest)) = reference.split_once('@') else {
        return Err(OpError::new(format!(
            "image {reference}: not pinned to a digest"
        )));
    };
    let Some(record) = root
        .images
        .get(name)
        .map_err(|e| OpError::new(e.to_string()))?
    else {
        return Ok(None);
    };
    if record.digest().to_string() != digest {
        return Ok(None);
    }
    let snapshot = record.snapshot().map_err(|e| OpError::new(e.to_string()))?;
    if let Some(missing) = snapshot.iter_top_down().find(|id| !root.layers.exists(id)) {
        return Err(OpError::new(format!(
            "image {name}: layer {missing} is missing from the layer store"
        )));
    }
    Ok(Some(Ref::Snapshot(snapshot)))
}
