//! Filesystem building blocks shared by the engine and the client.

pub mod glob;
