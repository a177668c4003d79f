//! The worker that runs LLB ops on this host: sources, file ops, merge and diff.
//! RUN goes to the container executor.

mod content_key;
mod exec;
mod file;
mod hash_cache;
mod local_keys;
mod merge;
mod pull;
mod source;
mod worker;

pub use exec::{RuntimeConfig, RuntimeInfo};
pub(crate) use file::fresh_layer_id;
pub use local_keys::LocalKeys;
pub use worker::{BuildWorker, Ref};
