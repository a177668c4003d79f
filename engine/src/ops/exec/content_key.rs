//! What a RUN reads from local directories through bind mounts, as a digest for
//! its cache key: without it a RUN would be cached across context changes.

use std::sync::Arc;

use buildd_fsutil::select::SelectOptions;
use buildd_proto::Digest;
use buildd_proto::llb::{MountType, op};

use super::mounts::selector;
use crate::ops::content_key::LocalReads;
use crate::ops::worker::{Ref, Selections};
use crate::root::Root;
use crate::solver::{OpError, Resolved, Vertex};

/// Digest over the files each bind mount of a local directory selects, with the
/// selections by mount index; `None` when no mount reads a local directory.
pub(crate) fn exec_op(
    root: &Root,
    vertex: &Vertex,
    inputs: &[Arc<Resolved<Ref>>],
) -> Result<(Option<Digest>, Selections), OpError> {
    let mut reads = LocalReads::new(root);
    let Some(op::Op::Exec(exec)) = &vertex.op.op else {
        return Ok(reads.finish());
    };
    for (i, m) in exec.mounts.iter().enumerate() {
        if m.mount_type() != MountType::Bind {
            continue;
        }
        let Some(dir) = LocalReads::local_input(inputs, m.input) else {
            continue;
        };
        let opts = SelectOptions {
            follow_symlink: true,
            context_excludes: dir.excludes.as_ref(),
            replaced_only: dir.immutable,
            ..Default::default()
        };
        reads
            .add(i, dir, selector(m), &opts)
            .map_err(|e| OpError::new(format!("RUN mount {}: {e}", m.dest)))?;
    }
    Ok(reads.finish())
}
