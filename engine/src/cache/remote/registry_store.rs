//! `type=registry,ref=R`: the cache manifest under a tag, its blobs in that
//! repository (so layers an image pushed there are not stored again).

use std::path::PathBuf;
use std::sync::Arc;

use buildd_oci::{Descriptor, MEDIA_TYPE_MANIFEST, Manifest};
use buildd_registry::{BlobSource, Client, Reference};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, try_join_all};

use super::store::{Loaded, RemoteStore};
use crate::store::ContentStore;

pub struct RegistryStore {
    client: Arc<Client>,
    reference: Reference,
}

impl RegistryStore {
    pub fn new(client: Arc<Client>, reference: &str) -> Result<Self, String> {
        let reference =
            Reference::parse(reference).map_err(|e| format!("cache ref {reference:?}: {e}"))?;
        Ok(Self { client, reference })
    }
}

impl RemoteStore for RegistryStore {
    fn describe(&self) -> String {
        format!("registry {}", self.reference)
    }

    fn load(&self) -> BoxFuture<'_, Result<Option<Loaded>, String>> {
        async move {
            let fetched = match self.client.fetch_manifest(&self.reference).await {
                Ok(m) => m,
                Err(e) if matches!(e.kind, buildd_registry::ErrorKind::NotFound { .. }) => {
                    return Ok(None);
                }
                Err(e) => return Err(e.to_string()),
            };
            let manifest: Manifest = serde_json::from_slice(&fetched.bytes)
                .map_err(|e| format!("not a buildd cache: {e}"))?;
            if !super::format::may_hold_cache(&manifest.config.media_type) {
                return Err(format!(
                    "not a buildd cache: its config is {:?}",
                    manifest.config.media_type
                ));
            }
            let config = self
                .client
                .fetch_blob_bytes(&self.reference, &manifest.config)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Some((manifest, config)))
        }
        .boxed()
    }

    fn fetch_blob<'a>(
        &'a self,
        desc: &'a Descriptor,
        content: &'a ContentStore,
    ) -> BoxFuture<'a, Result<(), String>> {
        async move {
            let digest = desc.digest.parse().map_err(|e| format!("{e}"))?;
            let mut writer = content.writer().map_err(|e| e.to_string())?;
            self.client
                .fetch_blob(&self.reference, desc, &mut writer)
                .await
                .map_err(|e| e.to_string())?;
            tokio::task::spawn_blocking(move || writer.commit(Some(digest)))
                .await
                .map_err(|e| format!("internal error: {e}"))?
                .map_err(|e| e.to_string())?;
            Ok(())
        }
        .boxed()
    }

    fn has_blob<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<bool, String>> {
        async move {
            self.client
                .blob_exists(&self.reference, desc)
                .await
                .map_err(|e| e.to_string())
        }
        .boxed()
    }

    fn save<'a>(
        &'a self,
        blobs: Vec<(Descriptor, Option<PathBuf>)>,
        config: Vec<u8>,
        manifest: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), String>> {
        async move {
            let r = &self.reference;
            try_join_all(blobs.into_iter().filter_map(|(desc, path)| {
                let path = path?;
                Some(async move {
                    self.client
                        .push_blob(r, &desc, &BlobSource::Path(path), None)
                        .await
                        .map_err(|e| e.to_string())
                })
            }))
            .await?;
            let config_desc = Descriptor::new(
                super::format::MEDIA_TYPE_CACHE_CONFIG,
                buildd_proto::Digest::of(&config),
                config.len() as u64,
            );
            self.client
                .push_blob(r, &config_desc, &BlobSource::Bytes(config), None)
                .await
                .map_err(|e| e.to_string())?;
            self.client
                .push_manifest(r, MEDIA_TYPE_MANIFEST, &manifest)
                .await
                .map_err(|e| e.to_string())?;
            Ok(())
        }
        .boxed()
    }
}
