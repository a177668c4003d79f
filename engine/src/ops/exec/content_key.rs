//! What a RUN reads from local directories through bind mounts, as a digest for
//! its cache key: without it a RUN would be cached across context changes.

use std::sync::Arc;

use buildd_fsutil::hash::selection_digest;
use buildd_fsutil::select::{SelectOptions, select};
use buildd_proto::Digest;
use buildd_proto::llb::{MountType, op};
use sha2::{Digest as _, Sha256};

use super::mounts::selector;
use crate::ops::hash_cache::IndexHashCache;
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
    let mut selections = Selections::new();
    let Some(op::Op::Exec(exec)) = &vertex.op.op else {
        return Ok((None, selections));
    };
    let cache = IndexHashCache(root.index.as_ref());
    let mut h = Sha256::new();
    for (i, m) in exec.mounts.iter().enumerate() {
        if m.mount_type() != MountType::Bind {
            continue;
        }
        let Some(Ref::Local(dir)) = usize::try_from(m.input)
            .ok()
            .and_then(|i| inputs.get(i))
            .map(|r| &r.output)
        else {
            continue;
        };
        let opts = SelectOptions {
            follow_symlink: true,
            allow_wildcard: false,
            allow_empty_wildcard: false,
            context_excludes: dir.excludes.as_ref(),
            include_patterns: &[],
            exclude_patterns: &[],
        };
        let fail = |e: String| OpError::new(format!("RUN mount {}: {e}", m.dest));
        let selection = select(&dir.root, selector(m), &opts).map_err(|e| fail(e.to_string()))?;
        let digest = selection_digest(&dir.root, &selection, Some(&cache))
            .map_err(|e| fail(e.to_string()))?;
        h.update((i as u64).to_le_bytes());
        h.update(digest.as_bytes());
        selections.insert(i, selection);
    }
    let key = (!selections.is_empty()).then(|| h.into());
    Ok((key, selections))
}
