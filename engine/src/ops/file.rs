//! FileOp: actions applied on the host into a new layer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

use buildd_proto::Digest;
use buildd_proto::llb::{NO_INPUT, op};
use buildd_snapshot::{CopySource, LayerId, Snapshot};

use super::worker::{Cancelled, Ref, Selections};
use crate::root::Root;
use crate::solver::{OpError, Resolved, Vertex};

pub(crate) fn run(
    root: &Root,
    vertex: &Vertex,
    inputs: &[Arc<Resolved<Ref>>],
    selections: &Selections,
    cache_key: Digest,
    cancelled: &Cancelled,
) -> Result<Ref, OpError> {
    let Some(op::Op::File(file)) = &vertex.op.op else {
        unreachable!("dispatched on op kind")
    };
    let base = if file.base == NO_INPUT {
        Snapshot::scratch()
    } else {
        inputs
            .get(usize::try_from(file.base).map_err(|_| {
                OpError::new(format!(
                    "file op base input {} is not an input index",
                    file.base
                ))
            })?)
            .ok_or_else(|| {
                OpError::new(format!("file op base input {} does not exist", file.base))
            })?
            .output
            .snapshot("file op base")?
            .clone()
    };
    let sources: Vec<CopySource<'_>> = inputs
        .iter()
        .map(|r| {
            Ok(match &r.output {
                Ref::Snapshot(_) | Ref::Remote(_) => {
                    CopySource::Snapshot(r.output.snapshot("file op source")?)
                }
                Ref::Local(dir) => CopySource::Dir {
                    root: &dir.root,
                    excludes: dir.excludes.as_ref(),
                    // The very files the cache key hashed; the copy checks each is unchanged.
                    selections,
                    immutable: dir.immutable,
                },
            })
        })
        .collect::<Result<_, OpError>>()?;
    let pending = buildd_snapshot::apply_file_op_shared(&root.layers, &base, file, &sources)
        .map_err(|e| OpError::new(e.to_string()))?;
    if cancelled.is_set() {
        // Nobody waits for this layer; dropping `pending` removes it.
        return Err(OpError::new("cancelled"));
    }
    let id = fresh_layer_id(cache_key);
    pending
        .commit(&id)
        .map_err(|e| OpError::new(format!("committing layer: {e}")))?;
    Ok(Ref::Snapshot(base.with_layer(id)))
}

/// A name no other layer has or will have. Reusing the cache key would make a
/// re-run (`--no-cache`, or after a crash) adopt the old layer instead of its own.
pub(crate) fn fresh_layer_id(cache_key: Digest) -> LayerId {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut h = Sha256::new();
    h.update(cache_key.as_bytes());
    h.update(now.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(SEQ.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let id: [u8; 32] = h.finalize().into();
    LayerId::new(hex::encode(id)).expect("hex is a valid layer id")
}
