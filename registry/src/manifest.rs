//! Manifest media types (OCI and Docker v2) and parsing of fetched manifests.

use buildd_oci::{
    Index, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST_LIST, MEDIA_TYPE_INDEX,
    MEDIA_TYPE_MANIFEST, Manifest,
};
use buildd_proto::Digest;

use crate::error::ErrorKind;

/// What a manifest request accepts, in order of preference.
pub(crate) const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// An OCI index or Docker manifest list.
    Index,
    /// An OCI image manifest or Docker schema 2 manifest.
    Image,
}

pub fn kind_of(media_type: &str) -> Option<ManifestKind> {
    match media_type {
        MEDIA_TYPE_INDEX | MEDIA_TYPE_DOCKER_MANIFEST_LIST => Some(ManifestKind::Index),
        MEDIA_TYPE_MANIFEST | MEDIA_TYPE_DOCKER_MANIFEST => Some(ManifestKind::Image),
        _ => None,
    }
}

/// The media type of fetched manifest bytes: the document's `mediaType` when it has
/// one, else the response's Content-Type, else its shape (OCI makes `mediaType`
/// optional).
pub(crate) fn media_type_of(
    what: &str,
    bytes: &[u8],
    content_type: Option<&str>,
) -> Result<String, ErrorKind> {
    let doc: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|source| ErrorKind::InvalidJson {
            what: what.to_owned(),
            source,
        })?;
    let unsupported = |media_type: &str| ErrorKind::UnsupportedMediaType {
        what: what.to_owned(),
        media_type: media_type.to_owned(),
    };
    if doc.get("schemaVersion").and_then(|v| v.as_u64()) == Some(1) {
        return Err(unsupported("docker schema 1 manifest"));
    }
    if let Some(mt) = doc.get("mediaType").and_then(|v| v.as_str()) {
        return kind_of(mt)
            .map(|_| mt.to_owned())
            .ok_or_else(|| unsupported(mt));
    }
    let ct = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim())
        .filter(|c| kind_of(c).is_some());
    if let Some(ct) = ct {
        return Ok(ct.to_owned());
    }
    if doc.get("manifests").is_some() {
        Ok(MEDIA_TYPE_INDEX.to_owned())
    } else if doc.get("config").is_some() && doc.get("layers").is_some() {
        Ok(MEDIA_TYPE_MANIFEST.to_owned())
    } else {
        Err(unsupported(content_type.unwrap_or("(none)")))
    }
}

/// Parses an image manifest, supplying the `mediaType` OCI lets it omit.
pub(crate) fn parse_manifest(
    what: &str,
    bytes: &[u8],
    media_type: &str,
) -> Result<Manifest, ErrorKind> {
    let invalid = |source| ErrorKind::InvalidJson {
        what: what.to_owned(),
        source,
    };
    let mut doc: serde_json::Value = serde_json::from_slice(bytes).map_err(invalid)?;
    if let Some(obj) = doc.as_object_mut() {
        obj.entry("mediaType")
            .or_insert_with(|| media_type.to_owned().into());
    }
    let manifest: Manifest = serde_json::from_value(doc).map_err(invalid)?;
    for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
        parse_digest(&d.digest)?;
    }
    Ok(manifest)
}

pub(crate) fn parse_index(what: &str, bytes: &[u8]) -> Result<Index, ErrorKind> {
    serde_json::from_slice(bytes).map_err(|source| ErrorKind::InvalidJson {
        what: what.to_owned(),
        source,
    })
}

pub(crate) fn parse_digest(s: &str) -> Result<Digest, ErrorKind> {
    s.parse().map_err(|_| ErrorKind::BadDigest(s.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_from_document_header_or_shape() {
        let m = br#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1},"layers":[]}"#;
        assert_eq!(media_type_of("m", m, None).unwrap(), MEDIA_TYPE_MANIFEST);
        assert_eq!(
            media_type_of(
                "m",
                m,
                Some(&format!("{MEDIA_TYPE_DOCKER_MANIFEST}; charset=utf-8"))
            )
            .unwrap(),
            MEDIA_TYPE_DOCKER_MANIFEST
        );
        let parsed = parse_manifest("m", m, MEDIA_TYPE_MANIFEST).unwrap();
        assert_eq!(parsed.media_type, MEDIA_TYPE_MANIFEST);

        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MEDIA_TYPE_DOCKER_MANIFEST_LIST}","manifests":[]}}"#
        );
        assert_eq!(
            media_type_of("i", list.as_bytes(), Some("application/json")).unwrap(),
            MEDIA_TYPE_DOCKER_MANIFEST_LIST
        );
        assert_eq!(
            media_type_of("i", br#"{"schemaVersion":2,"manifests":[]}"#, None).unwrap(),
            MEDIA_TYPE_INDEX
        );
    }

    #[test]
    fn rejects_schema1_unknown_types_and_bad_digests() {
        let err = media_type_of("manifest v1", br#"{"schemaVersion":1,"fsLayers":[]}"#, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("schema 1"), "{err}");
        let err = media_type_of("m", br#"{"mediaType":"text/plain"}"#, None)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "m: unsupported media type \"text/plain\"");
        assert!(media_type_of("m", b"not json", None).is_err());
        let bad = br#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha512:00","size":1},"layers":[]}"#;
        assert!(matches!(
            parse_manifest("m", bad, MEDIA_TYPE_MANIFEST),
            Err(ErrorKind::BadDigest(_))
        ));
    }
}
