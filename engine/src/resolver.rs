//! `FROM NAME` for the frontend: the local image store first. (Registries come
//! with the registry client.)

use std::sync::Arc;

use buildd_frontend::{ImageResolver, ResolvedImage};
use buildd_oci::Platform;

use crate::images::{ImageStore, normalize_name};

pub struct LocalResolver {
    pub images: Arc<ImageStore>,
}

impl ImageResolver for LocalResolver {
    fn resolve(&self, reference: &str, _platform: &Platform) -> Result<ResolvedImage, String> {
        let name = normalize_name(reference).map_err(|e| e.to_string())?;
        match self.images.get(&name).map_err(|e| e.to_string())? {
            // Pinned to this content: the source's cache key changes when the name is
            // given to another image, and stays when it is not.
            Some(record) => Ok(ResolvedImage {
                reference: format!("{name}@{}", record.digest()),
                config: record.config,
            }),
            None => Err(format!(
                "{name} is not in the local image store (buildd images lists it; \
                 pulling from registries is not supported yet)"
            )),
        }
    }
}
