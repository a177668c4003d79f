//! The buildd engine: solver, cache, content store, snapshots, ops and exporters.
//!
//! See `docs/ARCHITECTURE.md` for the bird's-eye view.

pub mod cache;
pub mod solver;
pub mod store;
