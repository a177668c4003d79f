//! What buildx's metadata file (`--metadata-file`) and `--iidfile` record of an
//! exported image: its manifest's digest and descriptor, and its config's digest
//! (the image ID `docker load` reports).

use std::collections::BTreeMap;

use buildd_oci::{Descriptor, Manifest};
use buildd_proto::Digest;

use crate::root::Root;

pub const IMAGE_DIGEST: &str = "containerimage.digest";
pub const IMAGE_DESCRIPTOR: &str = "containerimage.descriptor";
pub const CONFIG_DIGEST: &str = "containerimage.config.digest";

/// The metadata values of the image whose manifest `manifest` describes; the
/// manifest is read from the content store, where the export just wrote it.
pub fn image_metadata(root: &Root, manifest: &Descriptor) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    values.insert(IMAGE_DIGEST.to_owned(), manifest.digest.clone());
    values.insert(
        IMAGE_DESCRIPTOR.to_owned(),
        String::from_utf8(buildd_oci::json_blob(manifest)).expect("JSON is UTF-8"),
    );
    let config = manifest
        .digest
        .parse::<Digest>()
        .ok()
        .and_then(|d| std::fs::read(root.content.path(&d)).ok())
        .and_then(|bytes| serde_json::from_slice::<Manifest>(&bytes).ok())
        .map(|m| m.config.digest);
    if let Some(config) = config {
        values.insert(CONFIG_DIGEST.to_owned(), config);
    }
    values
}

/// The metadata file's JSON, as buildx writes it: the descriptor as an object,
/// every other value a string.
pub fn metadata_json(values: &BTreeMap<String, String>) -> String {
    let mut meta = serde_json::Map::new();
    for (k, v) in values {
        let value = match k.as_str() {
            IMAGE_DESCRIPTOR => {
                serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.clone()))
            }
            _ => serde_json::Value::String(v.clone()),
        };
        meta.insert(k.clone(), value);
    }
    serde_json::to_string_pretty(&serde_json::Value::Object(meta)).expect("JSON") + "\n"
}
