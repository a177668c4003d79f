//! Source ops: where content enters the graph.

use std::sync::Arc;

use buildd_fsutil::dockerignore::PatternMatcher;
use buildd_proto::llb::SourceOp;
use buildd_snapshot::Snapshot;

use super::worker::{LocalDir, Ref};
use crate::root::Root;
use crate::solver::{BuildCtx, OpError};

pub(crate) fn resolve(root: &Root, src: &SourceOp, ctx: &BuildCtx) -> Result<Ref, OpError> {
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
        return Ok(Ref::Local(Arc::new(LocalDir {
            root: root.clone(),
            excludes,
        })));
    }
    if let Some(reference) = id.strip_prefix("docker-image://") {
        return local_image(root, reference);
    }
    let scheme = id.split_once("://").map_or(id, |(s, _)| s);
    let what = match scheme {
        "git" => "git sources",
        "http" | "https" => "http sources",
        _ => return Err(OpError::new(format!("unknown source {id:?}"))),
    };
    Err(OpError::new(format!(
        "{id}: {what}, which this buildd does not support yet"
    )))
}

/// `NAME@sha256:…` from the local image store; the digest pins the content the
/// frontend resolved.
fn local_image(root: &Root, reference: &str) -> Result<Ref, OpError> {
    let (name, digest) = reference.split_once('@').ok_or_else(|| {
        OpError::new(format!(
            "image {reference}: not pinned to a digest; pulling from registries is not supported yet"
        ))
    })?;
    let record = root
        .images
        .get(name)
        .map_err(|e| OpError::new(e.to_string()))?
        .ok_or_else(|| OpError::new(format!("image {name} is not in the local image store")))?;
    if record.digest().to_string() != digest {
        return Err(OpError::new(format!(
            "image {name} changed during the build (now {}, expected {digest})",
            record.digest()
        )));
    }
    let snapshot = record.snapshot().map_err(|e| OpError::new(e.to_string()))?;
    if let Some(missing) = snapshot.layers.iter().find(|id| !root.layers.exists(id)) {
        return Err(OpError::new(format!(
            "image {name}: layer {missing} is missing from the layer store"
        )));
    }
    Ok(Ref::Snapshot(snapshot))
}
