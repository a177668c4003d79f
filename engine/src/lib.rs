//! The buildd engine: solver, cache, content store, snapshots, ops and exporters.
//!
//! See `docs/ARCHITECTURE.md` for the bird's-eye view.

pub mod build;
mod build_cache;
pub mod cache;
pub mod engine;
pub mod export;
pub mod fsck;
pub mod images;
mod mounts;
pub mod ops;
pub mod progress;
pub mod recovery;
pub mod remote_context;
pub mod resolver;
pub mod root;
pub mod session;
pub mod solver;
pub mod store;

pub use engine::{Engine, EngineOptions};
