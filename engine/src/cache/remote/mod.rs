//! Remote caches (`--cache-from`, `--cache-to`): the format is in `format.rs`
//! and docs/cache.md; `store.rs` is the seam to where a cache lives (a registry
//! tag, a local OCI layout), one file per place.

mod export;
mod format;
mod import;
mod local_store;
mod registry_store;
mod spec;
mod store;

pub use export::{
    CacheMountBlob, ExportStats, ResultRef, cache_mount_blob, export_cache, inline_cache,
};
pub use format::{CacheConfig, CacheRecord, InlineCache, MEDIA_TYPE_CACHE_CONFIG, Stack};
pub use import::{Imported, RemoteResult};
pub use local_store::LocalStore;
pub use registry_store::RegistryStore;
pub use spec::{CacheExport, CacheImport, CacheLocation, CacheMode, CacheSpecError, parse_attrs};
pub use store::RemoteStore;

use std::sync::Arc;

/// The store a location names; a registry needs a client.
pub fn open_store(
    location: &CacheLocation,
    registry: Option<&Arc<buildd_registry::Client>>,
) -> Result<Arc<dyn RemoteStore>, String> {
    match location {
        CacheLocation::Registry(r) => {
            let client = registry.ok_or("no registry is configured")?;
            Ok(Arc::new(RegistryStore::new(client.clone(), r)?))
        }
        CacheLocation::Local(dir) => Ok(Arc::new(LocalStore::new(dir.clone()))),
        CacheLocation::Inline => Err("an inline cache is written with the image".to_owned()),
    }
}
