//! MergeOp and DiffOp work on layer stacks alone: no file is touched.

use std::sync::Arc;

use buildd_proto::llb::DiffOp;
use buildd_snapshot::{LayerId, Snapshot};

use super::worker::Ref;
use crate::solver::{OpError, Resolved};

/// Stacks the inputs, later ones on top. A layer already present lower down is
/// kept only at its highest position, since a stack cannot name a layer twice.
pub(crate) fn merge(inputs: &[Arc<Resolved<Ref>>]) -> Result<Ref, OpError> {
    let mut stacked: Vec<LayerId> = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let snap = input.output.snapshot(&format!("merge input {i}"))?;
        for id in snap.layers.iter() {
            stacked.retain(|l| l != id);
            stacked.push(id.clone());
        }
    }
    Ok(Ref::Snapshot(Snapshot::new(stacked)))
}

/// The layers `upper` adds on top of `lower`. Only stacks that extend each other
/// can be diffed without comparing files; anything else is reported.
pub(crate) fn diff(op: &DiffOp, inputs: &[Arc<Resolved<Ref>>]) -> Result<Ref, OpError> {
    let pick = |i: i64, what: &str| -> Result<Snapshot, OpError> {
        if i < 0 {
            return Ok(Snapshot::scratch());
        }
        inputs
            .get(i as usize)
            .ok_or_else(|| OpError::new(format!("diff {what} input {i} does not exist")))?
            .output
            .snapshot(&format!("diff {what}"))
            .cloned()
    };
    let lower = pick(op.lower, "lower")?;
    let upper = pick(op.upper, "upper")?;
    if upper.layers.starts_with(&lower.layers) {
        Ok(Ref::Snapshot(Snapshot::new(
            upper.layers[lower.layers.len()..].to_vec(),
        )))
    } else {
        Err(OpError::new(
            "diff of snapshots that do not share a layer prefix is not supported yet",
        ))
    }
}
