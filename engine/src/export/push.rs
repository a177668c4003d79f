//! `type=image,push=true`: the built image's blobs and manifest, uploaded to the
//! registry its name points at. Blobs the repository has are not sent again.

use buildd_oci::Descriptor;
use buildd_registry::{BlobSource, Client, Reference};
use futures_util::future::try_join_all;

use super::ExportError;
use super::oci::BuiltImage;
use crate::root::Root;

/// Pushes `image` as `name` and returns the manifest digest the registry stored.
pub async fn push_image(
    root: &Root,
    registry: &Client,
    name: &str,
    image: &BuiltImage,
) -> Result<Descriptor, ExportError> {
    let fail = |message: String| ExportError::Push {
        name: name.to_owned(),
        message,
    };
    let r = Reference::parse(name).map_err(|e| fail(e.to_string()))?;
    if r.digest.is_some() {
        return Err(fail("a pushed name takes a tag, not a digest".to_owned()));
    }
    let blobs = image
        .layers
        .blobs
        .iter()
        .map(|b| {
            (
                Descriptor::new(b.media_type, b.digest, b.size),
                root.content.path(&b.digest),
            )
        })
        .chain([(
            image.config.clone(),
            root.content.path(&image.config_digest),
        )]);
    try_join_all(blobs.map(|(desc, path)| {
        let r = r.clone();
        async move {
            registry
                .push_blob(&r, &desc, &BlobSource::Path(path), None)
                .await
                .map_err(|e| fail(e.to_string()))
        }
    }))
    .await?;
    let bytes = root.content.read(
        &image.manifest_digest,
        "manifest",
        buildd_registry::limits::MAX_MANIFEST_BYTES,
    )?;
    registry
        .push_manifest(&r, &image.manifest.media_type, &bytes)
        .await
        .map_err(|e| fail(e.to_string()))?;
    Ok(image.manifest.clone())
}
