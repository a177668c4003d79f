//! `type=local,src=DIR|dest=DIR`: the cache as an OCI image layout directory;
//! a second export into it adds only the blobs it lacks.

use std::collections::BTreeMap;
use std::path::PathBuf;

use buildd_oci::{
    Descriptor, Index, LayoutTarget, LayoutWriter, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, Manifest,
};
use buildd_proto::Digest;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::store::{Loaded, RemoteStore};
use crate::store::ContentStore;

pub struct LocalStore {
    dir: PathBuf,
}

impl LocalStore {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf, String> {
        let d: Digest = digest.parse().map_err(|e| format!("{digest:?}: {e}"))?;
        Ok(self.dir.join("blobs/sha256").join(d.hex()))
    }

    fn read_blob(&self, desc: &Descriptor, limit: u64) -> Result<Vec<u8>, String> {
        if desc.size > limit {
            return Err(format!(
                "{} is {} bytes, over {limit}",
                desc.digest, desc.size
            ));
        }
        let path = self.blob_path(&desc.digest)?;
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if Digest::of(&bytes).to_string() != desc.digest {
            return Err(format!(
                "{}: content does not match its digest",
                path.display()
            ));
        }
        Ok(bytes)
    }
}

impl RemoteStore for LocalStore {
    fn describe(&self) -> String {
        format!("local {}", self.dir.display())
    }

    fn load(&self) -> BoxFuture<'_, Result<Option<Loaded>, String>> {
        let load = || -> Result<Option<Loaded>, String> {
            let index_path = self.dir.join("index.json");
            let bytes = match std::fs::read(&index_path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(format!("{}: {e}", index_path.display())),
            };
            let index: Index = serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: {e}", index_path.display()))?;
            let desc = index
                .manifests
                .first()
                .ok_or_else(|| format!("{}: no manifest", index_path.display()))?;
            let limit = buildd_registry::limits::MAX_MANIFEST_BYTES;
            let manifest: Manifest = serde_json::from_slice(&self.read_blob(desc, limit)?)
                .map_err(|e| format!("not a buildd cache: {e}"))?;
            if manifest.config.media_type != super::format::MEDIA_TYPE_CACHE_CONFIG {
                return Err(format!(
                    "not a buildd cache: its config is {:?}",
                    manifest.config.media_type
                ));
            }
            let config =
                self.read_blob(&manifest.config, buildd_registry::limits::MAX_CONFIG_BYTES)?;
            Ok(Some((manifest, config)))
        };
        futures_util::future::ready(load()).boxed()
    }

    fn fetch_blob<'a>(
        &'a self,
        desc: &'a Descriptor,
        content: &'a ContentStore,
    ) -> BoxFuture<'a, Result<(), String>> {
        async move {
            let path = self.blob_path(&desc.digest)?;
            let digest: Digest = desc.digest.parse().map_err(|e| format!("{e}"))?;
            let content = content.clone();
            tokio::task::spawn_blocking(move || {
                let f =
                    std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                content
                    .put_reader(std::io::BufReader::new(f), Some(digest))
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| format!("internal error: {e}"))??;
            Ok(())
        }
        .boxed()
    }

    fn has_blob<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<bool, String>> {
        let has = self
            .blob_path(&desc.digest)
            .map(|p| std::fs::metadata(p).is_ok_and(|m| m.len() == desc.size));
        futures_util::future::ready(has).boxed()
    }

    fn save<'a>(
        &'a self,
        blobs: Vec<(Descriptor, Option<PathBuf>)>,
        config: Vec<u8>,
        manifest: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), String>> {
        let dir = self.dir.clone();
        async move {
            tokio::task::spawn_blocking(move || -> Result<(), String> {
                let err = |e: buildd_oci::LayoutError| e.to_string();
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let mut w = LayoutWriter::new(LayoutTarget::Dir(dir)).map_err(err)?;
                for (desc, path) in blobs {
                    if let Some(path) = path {
                        let digest = desc.digest.parse().map_err(|e| format!("{e}"))?;
                        w.add_blob_file(digest, desc.size, &path).map_err(err)?;
                    }
                }
                w.add_blob_bytes(&config).map_err(err)?;
                let digest = w.add_blob_bytes(&manifest).map_err(err)?;
                let index = Index {
                    schema_version: 2,
                    media_type: Some(MEDIA_TYPE_INDEX.to_owned()),
                    manifests: vec![Descriptor::new(
                        MEDIA_TYPE_MANIFEST,
                        digest,
                        manifest.len() as u64,
                    )],
                    annotations: BTreeMap::new(),
                };
                w.finish(&index).map_err(err)
            })
            .await
            .map_err(|e| format!("internal error: {e}"))?
        }
        .boxed()
    }
}
