//! What a FileOp reads from local directories, as a digest for its cache key.

use std::sync::Arc;

use buildd_fsutil::hash::selection_digest;
use buildd_fsutil::select::{SelectOptions, select};
use buildd_proto::Digest;
use buildd_proto::llb::{file_action, op};
use sha2::{Digest as _, Sha256};

use super::hash_cache::IndexHashCache;
use super::worker::{Ref, Selections};
use crate::root::Root;
use crate::solver::{OpError, Resolved, Vertex};

/// Digest over the files each copy action selects from a local source, or `None`
/// when the op reads no local source (its inputs' keys then say it all).
pub(crate) fn file_op(
    root: &Root,
    vertex: &Vertex,
    inputs: &[Arc<Resolved<Ref>>],
) -> Result<(Option<Digest>, Selections), OpError> {
    let mut selections = Selections::new();
    let Some(op::Op::File(file)) = &vertex.op.op else {
        return Ok((None, selections));
    };
    let cache = IndexHashCache(root.index.as_ref());
    let mut h = Sha256::new();
    for (i, action) in file.actions.iter().enumerate() {
        let Some(file_action::Action::Copy(copy)) = &action.action else {
            continue;
        };
        let Some(Ref::Local(dir)) = usize::try_from(copy.source_input)
            .ok()
            .and_then(|i| inputs.get(i))
            .map(|r| &r.output)
        else {
            continue;
        };
        let opts = SelectOptions {
            follow_symlink: copy.follow_symlink,
            allow_wildcard: copy.allow_wildcard,
            allow_empty_wildcard: copy.allow_empty_wildcard,
            context_excludes: dir.excludes.as_ref(),
            include_patterns: &copy.include_patterns,
            exclude_patterns: &copy.exclude_patterns,
        };
        let selection =
            select(&dir.root, &copy.src, &opts).map_err(|e| OpError::new(e.to_string()))?;
        let digest = selection_digest(&dir.root, &selection, Some(&cache))
            .map_err(|e| OpError::new(e.to_string()))?;
        h.update((i as u64).to_le_bytes());
        h.update(digest.as_bytes());
        selections.insert(i, selection);
    }
    let key = (!selections.is_empty()).then(|| h.into());
    Ok((key, selections))
}
