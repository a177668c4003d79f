//! The seam between the cache format and where a cache lives.

use std::path::PathBuf;

use buildd_oci::{Descriptor, Manifest};
use futures_util::future::BoxFuture;

use crate::store::ContentStore;

/// A cache's manifest and config bytes, as loaded.
pub type Loaded = (Manifest, Vec<u8>);

/// A cache as stored: a registry tag or a local OCI layout.
pub trait RemoteStore: Send + Sync {
    /// `registry R` or `local DIR`, for messages.
    fn describe(&self) -> String;

    /// The manifest and config bytes; `None` when there is no cache there yet.
    fn load(&self) -> BoxFuture<'_, Result<Option<Loaded>, String>>;

    /// Copies a blob into the content store, verified against its digest.
    fn fetch_blob<'a>(
        &'a self,
        desc: &'a Descriptor,
        content: &'a ContentStore,
    ) -> BoxFuture<'a, Result<(), String>>;

    /// Whether the store has a blob already (then an export need not hold it).
    fn has_blob<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<bool, String>>;

    /// Writes a cache: `blobs` as (descriptor, file; `None` when the store has
    /// it), then the config and manifest, the manifest last.
    fn save<'a>(
        &'a self,
        blobs: Vec<(Descriptor, Option<PathBuf>)>,
        config: Vec<u8>,
        manifest: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), String>>;
}
