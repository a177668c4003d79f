//! Filesystem snapshots as stacks of layers.
//!
//! A layer is a directory in overlayfs upper-dir format: a deleted path is a whiteout
//! (a character device 0/0) and a directory that hides everything below it carries
//! `trusted.overlay.opaque=y`. [`LayerStore`] keeps committed layers, [`LayeredView`]
//! reads a stack of them as one filesystem, [`apply_file_op`] runs an LLB FileOp into a
//! new layer and [`export_tree`] flattens a stack into a plain directory.

mod dircache;
mod error;
pub mod etc_db;
mod export;
mod fileop;
mod merged;
mod snapshot;
mod squash;
mod store;
mod sys;
mod view;

pub use error::{FileOpError, FileOpErrorKind, SnapshotError};
pub use export::export_tree;
pub use fileop::{CopySource, apply_file_op, apply_file_op_shared};
pub use snapshot::{SCRATCH_ID, Snapshot, SnapshotMemo};
pub use squash::squash;
pub use store::{LayerId, LayerStore, PendingLayer};
pub use view::{LayeredView, ViewEntry};
