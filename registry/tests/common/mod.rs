//! Test images built in memory, and a tiny scriptable HTTP server for the cases a
//! real registry cannot produce (tampered blobs, token auth).

#![allow(dead_code)]

pub mod fake;

use std::collections::BTreeMap;
use std::io::Write;

use buildd_oci::{
    Descriptor, ImageConfig, Index, MEDIA_TYPE_CONFIG, MEDIA_TYPE_INDEX, MEDIA_TYPE_LAYER_GZIP,
    MEDIA_TYPE_MANIFEST, Manifest, Platform, RootFs, json_blob,
};
use buildd_proto::Digest;
use buildd_registry::{BlobSource, Client, Reference};

/// An image ready to push: config and layer blobs plus the manifest over them.
pub struct TestImage {
    pub manifest: Manifest,
    pub manifest_bytes: Vec<u8>,
    pub digest: Digest,
    /// The config first, then the layers.
    pub blobs: Vec<(Descriptor, Vec<u8>)>,
}

pub fn platform(os: &str, arch: &str, variant: Option<&str>) -> Platform {
    Platform {
        os: os.into(),
        architecture: arch.into(),
        variant: variant.map(Into::into),
    }
}

/// A gzip layer holding `files` (path, content), deterministic.
pub fn layer(files: &[(&str, &[u8])]) -> (Vec<u8>, Digest) {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, path, *content).unwrap();
    }
    let raw = tar.into_inner().unwrap();
    let diff_id = Digest::of(&raw);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    (gz.finish().unwrap(), diff_id)
}

/// An OCI image for `plat` with one layer per entry of `layers`.
pub fn image(plat: &Platform, layers: &[&[(&str, &[u8])]]) -> TestImage {
    image_typed(
        plat,
        layers,
        MEDIA_TYPE_MANIFEST,
        MEDIA_TYPE_CONFIG,
        MEDIA_TYPE_LAYER_GZIP,
    )
}

pub fn image_typed(
    plat: &Platform,
    layers: &[&[(&str, &[u8])]],
    manifest_type: &str,
    config_type: &str,
    layer_type: &str,
) -> TestImage {
    let mut diff_ids = Vec::new();
    let mut blobs = Vec::new();
    for files in layers {
        let (blob, diff_id) = layer(files);
        diff_ids.push(diff_id.to_string());
        let desc = Descriptor::new(layer_type, Digest::of(&blob), blob.len() as u64);
        blobs.push((desc, blob));
    }
    let config = ImageConfig {
        architecture: plat.architecture.clone(),
        os: plat.os.clone(),
        variant: plat.variant.clone(),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids,
        },
        ..Default::default()
    };
    let config_bytes = json_blob(&config);
    let config_desc = Descriptor::new(
        config_type,
        Digest::of(&config_bytes),
        config_bytes.len() as u64,
    );
    blobs.insert(0, (config_desc.clone(), config_bytes));
    let manifest = Manifest {
        schema_version: 2,
        media_type: manifest_type.into(),
        config: config_desc,
        layers: blobs[1..].iter().map(|(d, _)| d.clone()).collect(),
        annotations: BTreeMap::new(),
    };
    let manifest_bytes = json_blob(&manifest);
    TestImage {
        digest: Digest::of(&manifest_bytes),
        manifest,
        manifest_bytes,
        blobs,
    }
}

/// An index over `images`, each entry carrying its image's platform.
pub fn index(images: &[(&TestImage, Platform)], index_type: &str) -> (Vec<u8>, Digest) {
    let manifests = images
        .iter()
        .map(|(img, plat)| {
            let mut d = Descriptor::new(
                &img.manifest.media_type,
                img.digest,
                img.manifest_bytes.len() as u64,
            );
            d.platform = Some(plat.clone());
            d
        })
        .collect();
    let idx = Index {
        schema_version: 2,
        media_type: Some(index_type.to_owned()),
        manifests,
        annotations: BTreeMap::new(),
    };
    let bytes = json_blob(&idx);
    let digest = Digest::of(&bytes);
    (bytes, digest)
}

pub fn oci_index(images: &[(&TestImage, Platform)]) -> (Vec<u8>, Digest) {
    index(images, MEDIA_TYPE_INDEX)
}

/// Pushes the image's blobs, then its manifest under `r`'s tag (or by digest).
pub async fn push_image(client: &Client, r: &Reference, img: &TestImage) {
    for (desc, bytes) in &img.blobs {
        client
            .push_blob(r, desc, &BlobSource::Bytes(bytes.clone()), None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let digest = client
        .push_manifest(r, &img.manifest.media_type, &img.manifest_bytes)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(digest, img.digest);
}

pub fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap_or_else(|e| panic!("{e}"))
}
