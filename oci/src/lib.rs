//! The OCI image model and its on-disk forms.
//!
//! - [`spec`]: image config, manifest, index and descriptors as serde types whose
//!   JSON is deterministic (sorted maps, fixed field order).
//! - [`layer`]: deterministic layer tarballs from overlayfs-style diff directories.
//! - [`layout`]: OCI image layouts written as a directory or a tar archive.
//! - [`unpack`]: layer tarballs extracted into diff directories, confined to them.

mod compress;
mod dirfd;
pub mod layer;
pub mod layout;
mod pgzip;
mod tarfmt;
mod time;
pub mod unpack;

pub mod spec;

pub use compress::{Compression, UnknownCompression};
pub use layer::{LayerBlob, LayerError, LayerOptions, is_empty_diff, write_layer};
pub use layout::{LayoutError, LayoutTarget, LayoutWriter, json_blob};
pub use spec::*;
pub use time::rfc3339;
pub use unpack::{UnpackError, unpack_layer};
