//! The on-disk content store: immutable blobs named by their sha256.

mod content;

pub(crate) use content::digest_of;
pub use content::{BlobWriter, ContentStore, StoreError};
