//! Filesystem building blocks shared by the engine and the client.
//!
//! - [`glob`]: Go's `filepath.Match`, used for COPY wildcards.
//! - [`cleanpath`]: Go's `path.Clean`.
//! - [`dockerignore`]: `.dockerignore` parsing and matching with Docker's semantics.
//! - [`confine`]: symlink resolution that cannot leave a root directory.
//! - [`dirfd`]: directory descriptors and `*at` calls that never follow a symlink.
//! - [`select`]: what a COPY source names in a directory, walked in parallel.
//! - [`hash`]: the content digest of such a selection, with a per-file hash cache.

pub mod cleanpath;
pub mod confine;
pub mod dirfd;
pub mod dockerignore;
pub mod glob;
pub mod hash;
pub mod select;
pub mod stdin_context;
mod workers;
