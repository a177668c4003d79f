//! The on-disk content store: immutable blobs named by their sha256.

mod content;

pub use content::{BlobWriter, ContentStore, StoreError};
