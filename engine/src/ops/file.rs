//! FileOp: actions applied on the host into a new layer.

use std::sync::Arc;

use buildd_proto::Digest;
use buildd_proto::llb::{NO_INPUT, op};
use buildd_snapshot::{CopySource, LayerId, Snapshot};

use super::worker::Ref;
use crate::root::Root;
use crate::solver::{OpError, Resolved, Vertex};

pub(crate) fn run(
    root: &Root,
    vertex: &Vertex,
    inputs: &[Arc<Resolved<Ref>>],
    cache_key: Digest,
) -> Result<Ref, OpError> {
    let Some(op::Op::File(file)) = &vertex.op.op else {
        unreachable!("dispatched on op kind")
    };
    let base = if file.base == NO_INPUT {
        Snapshot::scratch()
    } else {
        inputs
            .get(usize::try_from(file.base).map_err(|_| OpError::new("bad base input"))?)
            .ok_or_else(|| {
                OpError::new(format!("file op base input {} does not exist", file.base))
            })?
            .output
            .snapshot("file op base")?
            .clone()
    };
    let sources: Vec<CopySource<'_>> = inputs
        .iter()
        .map(|r| match &r.output {
            Ref::Snapshot(s) => CopySource::Snapshot(s),
            Ref::Local(dir) => CopySource::Dir {
                root: &dir.root,
                excludes: dir.excludes.as_ref(),
            },
        })
        .collect();
    let pending = buildd_snapshot::apply_file_op(&root.layers, &base, file, &sources)
        .map_err(|e| OpError::new(e.to_string()))?;
    // Layers are named by the cache key of the op that made them: the same work
    // always lands in the same place.
    let id = LayerId::new(cache_key.hex()).expect("hex is a valid layer id");
    pending
        .commit(&id)
        .map_err(|e| OpError::new(format!("committing layer: {e}")))?;
    Ok(Ref::Snapshot(base.with_layer(id)))
}
