//! The OCI image model and its on-disk forms.
//!
//! - [`spec`]: image config, manifest, index and descriptors as serde types whose
//!   JSON is deterministic (sorted maps, fixed field order).

pub mod spec;

pub use spec::*;
