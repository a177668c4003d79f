//! Execution of an LLB FileOp into a new layer.

mod actions;
mod archive;
mod copy;
mod owner;
mod source;
mod writer;

use std::collections::BTreeMap;
use std::path::Path;

use buildd_fsutil::dockerignore::PatternMatcher;
use buildd_fsutil::select::Selection;
use buildd_proto::llb::{FileOp, file_action::Action};

use crate::error::{FileOpError, FileOpErrorKind};
use crate::snapshot::Snapshot;
use crate::store::{LayerStore, PendingLayer};
pub(crate) use writer::CAPABILITY_XATTR;
use writer::Writer;

/// A copy source: one of `Op.inputs`, as the engine resolved it.
#[derive(Debug, Clone, Copy)]
pub enum CopySource<'a> {
    /// A plain directory (the build context), minus what `excludes` (its
    /// .dockerignore, relative to `root`) rules out.
    Dir {
        root: &'a Path,
        excludes: Option<&'a PatternMatcher>,
        /// What each copy action reading this directory selected when its cache key
        /// was computed, by the action's index in `FileOp.actions`. A copy with an
        /// entry here copies exactly that selection and fails if a file in it changed
        /// since; one without selects afresh.
        selections: &'a BTreeMap<usize, Selection>,
        /// Files here are replaced by rename and never changed in place (the
        /// daemon's context mirror), so a copy may share their storage.
        immutable: bool,
    },
    /// The output of another vertex.
    Snapshot(&'a Snapshot),
}

/// Applies the actions of `op`, in order, as one new layer over `base`. `sources[i]`
/// is `Op.inputs[i]`. The returned layer is complete but not committed. Every file
/// is a copy of its own, so the result may be written to (a read-write mount).
pub fn apply_file_op(
    store: &LayerStore,
    base: &Snapshot,
    op: &FileOp,
    sources: &[CopySource<'_>],
) -> Result<PendingLayer, FileOpError> {
    apply(store, base, op, sources, false)
}

/// [`apply_file_op`] for a layer that is committed and never written again: a
/// copied regular file whose owner, mode and mtime stay as they are becomes a hard
/// link to its source when that source is immutable too (a committed layer, an
/// immutable context directory), so COPY costs a link, not a copy of the bytes.
pub fn apply_file_op_shared(
    store: &LayerStore,
    base: &Snapshot,
    op: &FileOp,
    sources: &[CopySource<'_>],
) -> Result<PendingLayer, FileOpError> {
    apply(store, base, op, sources, true)
}

fn apply(
    store: &LayerStore,
    base: &Snapshot,
    op: &FileOp,
    sources: &[CopySource<'_>],
    share: bool,
) -> Result<PendingLayer, FileOpError> {
    let whole = |kind: FileOpErrorKind| FileOpError {
        action: "fileop",
        path: None,
        kind,
    };
    let pending = store
        .begin()
        .map_err(|e| whole(FileOpErrorKind::Store(e)))?;
    let mut w =
        Writer::new(store, base, pending.path()).map_err(|e| whole(FileOpErrorKind::Store(e)))?;
    w.share = share;
    for (index, action) in op.actions.iter().enumerate() {
        match &action.action {
            Some(Action::Mkdir(a)) => actions::mkdir(&mut w, a)?,
            Some(Action::Mkfile(a)) => actions::mkfile(&mut w, a)?,
            Some(Action::Symlink(a)) => actions::symlink(&mut w, a)?,
            Some(Action::Rm(a)) => actions::rm(&mut w, a)?,
            Some(Action::Copy(a)) => copy::copy(&mut w, store, a, index, sources)?,
            None => {
                return Err(whole(FileOpErrorKind::Unsupported(
                    "an action without a kind",
                )));
            }
        }
    }
    w.finish().map_err(|e| whole(FileOpErrorKind::Store(e)))?;
    Ok(pending)
}

/// Wraps an error kind with the action and path it belongs to.
pub(crate) fn at<'p>(
    action: &'static str,
    path: &'p str,
) -> impl Fn(FileOpErrorKind) -> FileOpError + 'p {
    move |kind| FileOpError {
        action,
        path: Some(path.to_owned()),
        kind,
    }
}
