//! The worker that runs LLB ops on this host: sources, file ops, merge and diff.
//! RUN goes to the container executor.

mod content_key;
mod exec;
mod file;
mod git;
mod hash_cache;
mod http;
mod local_keys;
mod merge;
mod pull;
mod source;
mod worker;

pub(crate) use exec::{CacheSeed, cache_mount_dir, cache_mount_identity};
pub use exec::{RuntimeConfig, RuntimeInfo};
pub(crate) use file::fresh_layer_id;
pub(crate) use pull::{compression_of, unpack_one as unpack_cache_layer};
pub(crate) use worker::blocking_op;

/// A new layer with no changes (an imported step that changed nothing).
pub(crate) fn fresh_layer(
    root: &crate::root::Root,
) -> Result<buildd_snapshot::LayerId, crate::solver::OpError> {
    let fail = |e: buildd_snapshot::SnapshotError| {
        crate::solver::OpError::new(format!("making an empty layer: {e}"))
    };
    let pending = root.layers.begin().map_err(fail)?;
    let id = fresh_layer_id(buildd_proto::Digest::of(b"buildd: empty layer"));
    pending.commit(&id).map_err(fail)?;
    Ok(id)
}
pub use local_keys::LocalKeys;
pub use worker::{BuildWorker, Ref};
