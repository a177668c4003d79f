//! Source ops: where content enters the graph.

use std::sync::Arc;

use buildd_fsutil::dockerignore::PatternMatcher;
use buildd_proto::llb::SourceOp;
use buildd_snapshot::Snapshot;

use super::worker::{LocalDir, Ref};
use crate::solver::{BuildCtx, OpError};

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
        return Ok(Ref::Local(Arc::new(LocalDir {
            root: root.clone(),
            excludes,
        })));
    }
    let scheme = id.split_once("://").map_or(id, |(s, _)| s);
    let what = match scheme {
        "docker-image" => "image sources need the registry client",
        "git" => "git sources",
        "http" | "https" => "http sources",
        _ => return Err(OpError::new(format!("unknown source {id:?}"))),
    };
    Err(OpError::new(format!(
        "{id}: {what}, which this buildd does not support yet"
    )))
}
