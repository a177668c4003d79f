//! The worker that runs LLB ops on this host: sources, file ops, merge and diff.
//! (RUN needs the container executor, which a later change adds.)

mod content_key;
mod file;
mod hash_cache;
mod merge;
mod source;
mod worker;

pub(crate) use file::fresh_layer_id;
pub use worker::{BuildWorker, Ref};
