//! The OCI image exporter: config, manifest and index over the layer blobs, written
//! as an OCI image layout.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use buildd_oci::{
    ANNOTATION_CREATED, ANNOTATION_REF_NAME, Compression, Descriptor, History, ImageConfig, Index,
    LayoutTarget, LayoutWriter, MEDIA_TYPE_CONFIG, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, Manifest,
};
use buildd_proto::Digest;
use buildd_snapshot::Snapshot;

use super::{ArchiveFormat, ExportError, ImageLayers, image_layers};
use crate::root::Root;

pub struct OciExport<'a> {
    pub dest: &'a Path,
    pub tar: bool,
    pub name: Option<&'a str>,
    pub compression: Compression,
    /// Fixes every timestamp the image carries (SOURCE_DATE_EPOCH).
    pub source_date_epoch: Option<i64>,
    pub format: ArchiveFormat,
}

/// An image assembled in the content store: layer blobs, config and manifest.
pub struct BuiltImage {
    pub layers: ImageLayers,
    pub config: Descriptor,
    pub config_digest: Digest,
    /// The manifest, with the config's platform.
    pub manifest: Descriptor,
    pub manifest_digest: Digest,
    pub created: String,
}

/// Compresses the snapshot's layers (or reuses their blobs) and writes the config
/// and manifest into the content store.
pub fn build_image(
    root: &Root,
    snap: &Snapshot,
    image: &ImageConfig,
    compression: Compression,
    source_date_epoch: Option<i64>,
) -> Result<BuiltImage, ExportError> {
    let layers = image_layers(
        &root.layers,
        &root.content,
        root.index.as_ref(),
        snap,
        compression,
        source_date_epoch,
    )?;
    let created = buildd_oci::rfc3339(source_date_epoch.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }));
    let config = image_config(image, &layers, &created);
    let config_bytes = buildd_oci::json_blob(&config);
    let config_digest = root.content.put_bytes(&config_bytes)?;
    let config_desc = Descriptor::new(MEDIA_TYPE_CONFIG, config_digest, config_bytes.len() as u64);
    let manifest = Manifest {
        schema_version: 2,
        media_type: MEDIA_TYPE_MANIFEST.to_owned(),
        config: config_desc.clone(),
        layers: layers
            .blobs
            .iter()
            .map(|b| Descriptor::new(b.media_type, b.digest, b.size))
            .collect(),
        annotations: BTreeMap::new(),
    };
    let manifest_bytes = buildd_oci::json_blob(&manifest);
    let manifest_digest = root.content.put_bytes(&manifest_bytes)?;
    let mut desc = Descriptor::new(
        MEDIA_TYPE_MANIFEST,
        manifest_digest,
        manifest_bytes.len() as u64,
    );
    desc.platform = Some(buildd_oci::Platform {
        architecture: config.architecture.clone(),
        os: config.os.clone(),
        variant: config.variant.clone(),
    });
    Ok(BuiltImage {
        layers,
        config: config_desc,
        config_digest,
        manifest: desc,
        manifest_digest,
        created,
    })
}

/// Writes the image and returns the manifest's descriptor.
pub fn export_oci(
    root: &Root,
    snap: &Snapshot,
    image: &ImageConfig,
    opts: &OciExport<'_>,
) -> Result<Descriptor, ExportError> {
    let target = if opts.tar {
        LayoutTarget::Tar(opts.dest.to_owned())
    } else {
        LayoutTarget::Dir(opts.dest.to_owned())
    };
    let (w, index, desc) = layout(root, snap, image, opts, target)?;
    w.finish(&index).map_err(|source| ExportError::Layout {
        dest: opts.dest.to_owned(),
        source,
    })?;
    Ok(desc)
}

/// Writes the image as an OCI layout tar to `out` as it goes (`opts.dest` only
/// names it in errors) and returns the manifest's descriptor.
pub fn export_oci_stream(
    root: &Root,
    snap: &Snapshot,
    image: &ImageConfig,
    opts: &OciExport<'_>,
    out: &mut dyn std::io::Write,
) -> Result<Descriptor, ExportError> {
    let (w, index, desc) = layout(root, snap, image, opts, LayoutTarget::TarStream)?;
    w.finish_stream(&index, out)
        .map_err(|source| ExportError::Layout {
            dest: opts.dest.to_owned(),
            source,
        })?;
    Ok(desc)
}

/// The image's blobs in a layout writer, and the index that finishes it.
fn layout(
    root: &Root,
    snap: &Snapshot,
    image: &ImageConfig,
    opts: &OciExport<'_>,
    target: LayoutTarget,
) -> Result<(LayoutWriter, Index, Descriptor), ExportError> {
    let BuiltImage {
        layers,
        config,
        config_digest,
        manifest: desc,
        manifest_digest,
        created,
    } = build_image(root, snap, image, opts.compression, opts.source_date_epoch)?;
    let layout_err = |source| ExportError::Layout {
        dest: opts.dest.to_owned(),
        source,
    };
    let mut w = LayoutWriter::new(target).map_err(layout_err)?;
    let blobs = layers
        .blobs
        .iter()
        .map(|b| (b.digest, b.size))
        .chain([(config_digest, config.size), (manifest_digest, desc.size)]);
    for (digest, size) in blobs {
        add_blob(&mut w, root, digest, size).map_err(layout_err)?;
    }
    let mut index_desc = desc.clone();
    index_desc
        .annotations
        .insert(ANNOTATION_CREATED.to_owned(), created);
    if opts.format == ArchiveFormat::Docker {
        let names = docker_names(opts.name)?;
        if let Some(first) = names.first() {
            index_desc
                .annotations
                .insert(ANNOTATION_IMAGE_NAME.to_owned(), first.full.clone());
            index_desc
                .annotations
                .insert(ANNOTATION_REF_NAME.to_owned(), first.tag.clone());
        }
        w.add_file(
            "manifest.json",
            docker_manifest_json(&config_digest, &layers, &names),
        );
    } else if let Some(name) = opts.name {
        index_desc
            .annotations
            .insert(ANNOTATION_REF_NAME.to_owned(), name.to_owned());
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_INDEX.to_owned()),
        manifests: vec![index_desc],
        annotations: BTreeMap::new(),
    };
    Ok((w, index, desc))
}

/// `io.containerd.image.name`, the full name `docker load` tags the image with.
const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";

/// A tagged name as a docker archive carries it.
struct DockerName {
    /// `docker.io/library/app:1`
    full: String,
    /// `app:1`: `manifest.json`'s RepoTags are in docker's short form.
    familiar: String,
    /// `1`
    tag: String,
}

fn docker_names(name: Option<&str>) -> Result<Vec<DockerName>, ExportError> {
    let Some(name) = name else {
        return Ok(Vec::new());
    };
    let r = buildd_registry::Reference::parse(name).map_err(|e| ExportError::Name {
        name: name.to_owned(),
        message: e.to_string(),
    })?;
    // A name pinned only by digest has no tag to load it under.
    let Some(tag) = r.tag.clone() else {
        return Ok(Vec::new());
    };
    let repo = if r.registry == buildd_registry::DOCKER_HUB {
        r.repository
            .strip_prefix("library/")
            .unwrap_or(&r.repository)
            .to_owned()
    } else {
        r.name()
    };
    Ok(vec![DockerName {
        full: format!("{}:{tag}", r.name()),
        familiar: format!("{repo}:{tag}"),
        tag,
    }])
}

/// `manifest.json`, what `docker load` and `skopeo … docker-archive:` read: the
/// config and layers by their paths in the layout, and the names to tag.
fn docker_manifest_json(config: &Digest, layers: &ImageLayers, names: &[DockerName]) -> Vec<u8> {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        config: String,
        repo_tags: Vec<String>,
        layers: Vec<String>,
    }
    let path = |d: &Digest| format!("blobs/sha256/{}", d.hex());
    buildd_oci::json_blob(&[Entry {
        config: path(config),
        repo_tags: names.iter().map(|n| n.familiar.clone()).collect(),
        layers: layers.blobs.iter().map(|b| path(&b.digest)).collect(),
    }])
}

fn add_blob(
    w: &mut LayoutWriter,
    root: &Root,
    digest: Digest,
    size: u64,
) -> Result<(), buildd_oci::LayoutError> {
    w.add_blob_file(digest, size, &root.content.path(&digest))
}

/// The frontend's config with the layers filled in and history matched to them:
/// each non-empty history entry claims the next layer; a layer that turned out empty
/// turns its entry into an `empty_layer` one.
fn image_config(image: &ImageConfig, layers: &ImageLayers, created: &str) -> ImageConfig {
    let mut config = image.clone();
    config.created = Some(created.to_owned());
    config.rootfs.kind = "layers".to_owned();
    config.rootfs.diff_ids = layers.blobs.iter().map(|b| b.diff_id.to_string()).collect();
    let mut non_empty = layers.non_empty.iter().copied();
    let mut history: Vec<History> = Vec::with_capacity(config.history.len());
    for mut h in config.history.drain(..) {
        if !h.empty_layer {
            // An entry without a layer to claim describes nothing the image holds.
            h.empty_layer = !non_empty.next().unwrap_or(false);
        }
        history.push(h);
    }
    // Layers no instruction accounted for still need an entry each.
    for layer_has_content in non_empty {
        if layer_has_content {
            history.push(History {
                created_by: Some("buildd: layer".to_owned()),
                ..Default::default()
            });
        }
    }
    for h in &mut history {
        h.created.get_or_insert_with(|| created.to_owned());
    }
    config.history = history;
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use buildd_oci::LayerBlob;

    fn blob(n: u8) -> LayerBlob {
        LayerBlob {
            diff_id: Digest::of(&[n]),
            digest: Digest::of(&[n, n]),
            size: 1,
            media_type: "x",
        }
    }

    fn hist(created_by: &str, empty: bool) -> History {
        History {
            created_by: Some(created_by.into()),
            empty_layer: empty,
            ..Default::default()
        }
    }

    #[test]
    fn history_is_matched_to_non_empty_layers() {
        let image = ImageConfig {
            history: vec![
                hist("ENV A=b", true),
                hist("COPY a /a", false),
                hist("WORKDIR /x", false),
                hist("COPY b /b", false),
            ],
            ..Default::default()
        };
        // WORKDIR's mkdir changed nothing (the dir existed): its layer is empty.
        let layers = ImageLayers {
            blobs: vec![blob(1), blob(2)],
            non_empty: vec![true, false, true],
        };
        let c = image_config(&image, &layers, "2026-01-01T00:00:00Z");
        let empties: Vec<bool> = c.history.iter().map(|h| h.empty_layer).collect();
        assert_eq!(empties, [true, false, true, false]);
        assert_eq!(c.rootfs.diff_ids.len(), 2);
        assert_eq!(
            c.history.iter().filter(|h| !h.empty_layer).count(),
            c.rootfs.diff_ids.len()
        );
    }
}
