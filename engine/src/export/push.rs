//! `type=image,push=true`: the built image's blobs and manifest, uploaded to the
//! registry its name points at. Blobs the repository has are not sent again, and a
//! blob another repository of the same registry is known to hold (the base image's
//! layers) is mounted from there instead of uploaded.
//!
//! Which repository holds a blob is remembered in the `BlobSources` table: the
//! repositories `FROM` resolved images in, and the ones pushed to.

use buildd_oci::Descriptor;
use buildd_proto::Digest;
use buildd_registry::{BlobPush, BlobSource, Client, Reference};
use futures_util::future::try_join_all;

use super::ExportError;
use super::oci::BuiltImage;
use crate::cache::{CacheIndex, Table};
use crate::root::Root;

/// Pushes `image` as `name` and returns the manifest digest the registry stored.
/// `log` gets a line per blob: whether it existed, was mounted or uploaded.
pub async fn push_image(
    root: &Root,
    registry: &Client,
    name: &str,
    image: &BuiltImage,
    log: &(dyn Fn(&str) + Sync),
) -> Result<Descriptor, ExportError> {
    let fail = |message: String| ExportError::Push {
        name: name.to_owned(),
        message,
    };
    let r = Reference::parse(name).map_err(|e| fail(e.to_string()))?;
    if r.digest.is_some() {
        return Err(fail("a pushed name takes a tag, not a digest".to_owned()));
    }
    let blobs: Vec<_> = image
        .layers
        .blobs
        .iter()
        .map(|b| {
            (
                Descriptor::new(b.media_type, b.digest, b.size),
                b.digest,
                root.content.path(&b.digest),
            )
        })
        .chain([(
            image.config.clone(),
            image.config_digest,
            root.content.path(&image.config_digest),
        )])
        .collect();
    let index = root.index.as_ref();
    try_join_all(blobs.iter().map(|(desc, digest, path)| {
        let r = &r;
        let from = mount_source(index, r, digest);
        async move {
            let pushed = registry
                .push_blob(r, desc, &BlobSource::Path(path.clone()), from.as_deref())
                .await
                .map_err(|e| fail(e.to_string()))?;
            log(&match (pushed, &from) {
                (BlobPush::Exists, _) => format!("{}: exists", short(digest)),
                (BlobPush::Mounted, Some(from)) => {
                    format!("{}: mounted from {from}", short(digest))
                }
                _ => format!("{}: pushed {}", short(digest), human_size(desc.size)),
            });
            Ok::<_, ExportError>(())
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
    // The next push of these layers to another repository can mount them from here.
    record_blob_sources(index, &r, blobs.iter().map(|(_, d, _)| d))?;
    Ok(image.manifest.clone())
}

/// Remembers that `r`'s repository holds `digests`, for later pushes to other
/// repositories of its registry to mount them from.
pub fn record_blob_sources<'a>(
    index: &dyn CacheIndex,
    r: &Reference,
    digests: impl IntoIterator<Item = &'a Digest>,
) -> Result<(), ExportError> {
    for digest in digests {
        index.put(
            Table::BlobSources,
            source_key(&r.registry, digest).as_bytes(),
            r.repository.as_bytes(),
        )?;
    }
    Ok(())
}

/// Another repository of `r`'s registry known to hold `digest`. A failed lookup is
/// no mount, not an error: the blob is uploaded as it would be without a record.
fn mount_source(index: &dyn CacheIndex, r: &Reference, digest: &Digest) -> Option<String> {
    let found = index
        .get(
            Table::BlobSources,
            source_key(&r.registry, digest).as_bytes(),
        )
        .ok()??;
    String::from_utf8(found)
        .ok()
        .filter(|repo| *repo != r.repository)
}

fn source_key(registry: &str, digest: &Digest) -> String {
    format!("{registry}/{digest}")
}

/// `sha256:` and the first 12 hex digits, as Docker shows layers.
fn short(digest: &Digest) -> String {
    let s = digest.to_string();
    s.chars().take("sha256:".len() + 12).collect()
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{size:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::MemoryIndex;

    #[test]
    fn mounts_come_from_another_repository_of_the_same_registry() {
        let index = MemoryIndex::default();
        let d = Digest::of(b"layer");
        let base = Reference::parse("reg.example:5000/team/base:1").unwrap();
        record_blob_sources(&index, &base, [&d]).unwrap();
        let app = Reference::parse("reg.example:5000/team/app:1").unwrap();
        assert_eq!(mount_source(&index, &app, &d).as_deref(), Some("team/base"));
        // Not from itself, another registry, or for another blob.
        assert_eq!(mount_source(&index, &base, &d), None);
        let elsewhere = Reference::parse("other.example/team/app:1").unwrap();
        assert_eq!(mount_source(&index, &elsewhere, &d), None);
        assert_eq!(mount_source(&index, &app, &Digest::of(b"other")), None);
    }

    #[test]
    fn sizes_read_as_docker_shows_them() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(12_900_000), "12.3 MiB");
    }
}
