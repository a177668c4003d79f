//! What a FileOp reads from local directories, as a digest for its cache key.

use std::sync::Arc;

use buildd_fsutil::hash::selection_digest;
use buildd_fsutil::select::{SelectOptions, select};
use buildd_proto::Digest;
use buildd_proto::llb::{file_action, op};
use sha2::{Digest as _, Sha256};

use super::hash_cache::IndexHashCache;
use super::local_keys::{self, LocalKeys};
use super::worker::{LocalDir, Ref, Selections};
use crate::root::Root;
use crate::solver::{OpError, Resolved, Vertex};

/// Accumulates what an op reads from local directories: one digest over the
/// selections (by the index of the action or mount that reads them), plus the
/// selections themselves for execution to reuse.
pub(crate) struct LocalReads<'a> {
    cache: IndexHashCache<'a>,
    memo: &'a LocalKeys,
    hasher: Sha256,
    selections: Selections,
    /// Something local was read (its selection may have come from the memo).
    read: bool,
}

impl<'a> LocalReads<'a> {
    pub(crate) fn new(root: &'a Root) -> Self {
        Self {
            cache: IndexHashCache(root.index.as_ref()),
            memo: &root.local_keys,
            hasher: Sha256::new(),
            selections: Selections::new(),
            read: false,
        }
    }

    /// The local directory input `index` names, if it is one.
    pub(crate) fn local_input(inputs: &[Arc<Resolved<Ref>>], index: i64) -> Option<&LocalDir> {
        match &inputs.get(usize::try_from(index).ok()?)?.output {
            Ref::Local(dir) => Some(dir),
            Ref::Snapshot(_) | Ref::Remote(_) => None,
        }
    }

    /// Selects `src` in `dir` and hashes exactly what was selected. A directory
    /// with a version answers from the memo when it can; execution then selects
    /// again (the same files: the version has not changed).
    pub(crate) fn add(
        &mut self,
        index: usize,
        dir: &LocalDir,
        src: &str,
        opts: &SelectOptions<'_>,
    ) -> Result<(), String> {
        let memo_key = dir.content_id.map(|id| local_keys::key(&id, src, opts));
        let remembered = memo_key.as_ref().and_then(|k| self.memo.get(k));
        let digest = match remembered {
            Some(digest) => digest,
            None => {
                let selection = select(&dir.root, src, opts).map_err(|e| e.to_string())?;
                let digest = selection_digest(&dir.root, &selection, Some(&self.cache))
                    .map_err(|e| e.to_string())?;
                if let Some(k) = memo_key {
                    self.memo.put(k, digest);
                }
                self.selections.insert(index, selection);
                digest
            }
        };
        self.hasher.update((index as u64).to_le_bytes());
        self.hasher.update(digest.as_bytes());
        self.read = true;
        Ok(())
    }

    /// `None` when nothing local was read: the inputs' keys then say it all.
    pub(crate) fn finish(self) -> (Option<Digest>, Selections) {
        let key = self.read.then(|| self.hasher.into());
        (key, self.selections)
    }
}

/// Digest over the files each copy action selects from a local source.
pub(crate) fn file_op(
    root: &Root,
    vertex: &Vertex,
    inputs: &[Arc<Resolved<Ref>>],
) -> Result<(Option<Digest>, Selections), OpError> {
    let mut reads = LocalReads::new(root);
    let Some(op::Op::File(file)) = &vertex.op.op else {
        return Ok(reads.finish());
    };
    for (i, action) in file.actions.iter().enumerate() {
        let Some(file_action::Action::Copy(copy)) = &action.action else {
            continue;
        };
        let Some(dir) = LocalReads::local_input(inputs, copy.source_input) else {
            continue;
        };
        let opts = SelectOptions {
            follow_symlink: copy.follow_symlink,
            allow_wildcard: copy.allow_wildcard,
            allow_empty_wildcard: copy.allow_empty_wildcard,
            context_excludes: dir.excludes.as_ref(),
            include_patterns: &copy.include_patterns,
            exclude_patterns: &copy.exclude_patterns,
            replaced_only: dir.immutable,
        };
        reads.add(i, dir, &copy.src, &opts).map_err(OpError::new)?;
    }
    Ok(reads.finish())
}
