//! `FROM NAME` for the frontend: the local image store first, then the registry (as
//! Buildah does). Either way the answer is pinned to a digest, so the source's cache
//! key changes exactly when the name comes to mean other content.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use buildd_frontend::{ImageResolver, ResolvedImage};
use buildd_oci::{ImageConfig, Platform};
use buildd_proto::Digest;
use buildd_registry::{Client, Reference};
use tokio::runtime::Handle;

use crate::images::{ImageStore, normalize_name};

/// One build's resolver. Answers are remembered for the build, so every stage that
/// names an image sees the same content and the registry is asked once.
pub struct BuildResolver {
    pub images: Arc<ImageStore>,
    /// `None`: local images only.
    pub registry: Option<Arc<Client>>,
    /// The runtime registry requests run on; `resolve` is called from a blocking
    /// thread (the frontend is synchronous).
    pub handle: Handle,
    answers: Mutex<HashMap<(String, String), ResolvedImage>>,
    /// The blobs (config and layers) of each image resolved in a registry, by the
    /// reference resolved: a push to that registry can mount them from there.
    sources: Mutex<Vec<(Reference, Vec<Digest>)>>,
}

impl std::fmt::Debug for BuildResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildResolver")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl BuildResolver {
    pub fn new(images: Arc<ImageStore>, registry: Option<Arc<Client>>, handle: Handle) -> Self {
        Self {
            images,
            registry,
            handle,
            answers: Mutex::default(),
            sources: Mutex::default(),
        }
    }

    /// What [`BuildResolver::sources`] collected: repositories and blobs they hold.
    pub fn blob_sources(&self) -> Vec<(Reference, Vec<Digest>)> {
        self.sources.lock().expect("not poisoned").clone()
    }

    fn resolve_uncached(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<ResolvedImage, String> {
        if let Ok(name) = normalize_name(reference)
            && let Some(record) = self.images.get(&name).map_err(|e| e.to_string())?
        {
            return Ok(ResolvedImage {
                reference: format!("{name}@{}", record.digest()),
                config: record.config,
            });
        }
        let Some(registry) = &self.registry else {
            return Err(format!(
                "{reference} is not in the local image store and no registry is configured"
            ));
        };
        let parsed = Reference::parse(reference).map_err(|e| e.to_string())?;
        let (registry, platform, r) = (registry.clone(), platform.clone(), parsed.clone());
        let (resolved, config) = self
            .handle
            .block_on(async move {
                let resolved = registry
                    .resolve(&r, &platform)
                    .await
                    .map_err(|e| e.to_string())?;
                let config = registry
                    .fetch_blob_bytes(&r, &resolved.manifest.config)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>((resolved, config))
            })
            // Say where else it looked, as the registry error alone may mislead
            // (a typo in a local name reads like a network problem).
            .map_err(|e| format!("not in the local image store, and {e}"))?;
        let config: ImageConfig = serde_json::from_slice(&config)
            .map_err(|e| format!("{reference}: image config is not valid: {e}"))?;
        let manifest = &resolved.manifest;
        let blobs = std::iter::once(&manifest.config)
            .chain(&manifest.layers)
            .filter_map(|d| d.digest.parse().ok())
            .collect();
        self.sources
            .lock()
            .expect("not poisoned")
            .push((parsed.clone(), blobs));
        let pinned = parsed.with_digest(resolved.root_digest);
        Ok(ResolvedImage {
            reference: pinned.to_string(),
            config,
        })
    }
}

impl ImageResolver for BuildResolver {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, String> {
        let key = (
            reference.to_owned(),
            buildd_registry::platform_string(platform),
        );
        if let Some(hit) = self.answers.lock().expect("not poisoned").get(&key) {
            return Ok(hit.clone());
        }
        let answer = self.resolve_uncached(reference, platform)?;
        self.answers
            .lock()
            .expect("not poisoned")
            .insert(key, answer.clone());
        Ok(answer)
    }
}
