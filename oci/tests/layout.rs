mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use buildd_oci::{
    Descriptor, Index, LayoutError, LayoutTarget, LayoutWriter, MEDIA_TYPE_INDEX, MEDIA_TYPE_LAYER,
    MEDIA_TYPE_MANIFEST, json_blob,
};
use buildd_proto::Digest;

fn index_for(manifest: Digest, size: u64) -> Index {
    let mut d = Descriptor::new(MEDIA_TYPE_MANIFEST, manifest, size);
    d.annotations = BTreeMap::from([(
        buildd_oci::ANNOTATION_REF_NAME.to_owned(),
        "latest".to_owned(),
    )]);
    Index {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_INDEX.to_owned()),
        manifests: vec![d],
        annotations: BTreeMap::new(),
    }
}

/// Writes a layout with one on-disk blob and one in-memory "manifest".
fn write_layout(target: LayoutTarget, blob: &Path) -> Digest {
    let bytes = fs::read(blob).unwrap();
    let mut w = LayoutWriter::new(target).unwrap();
    w.add_blob_file(Digest::of(&bytes), bytes.len() as u64, blob)
        .unwrap();
    let manifest = br#"{"schemaVersion":2}"#;
    let m = w.add_blob_bytes(manifest).unwrap();
    w.finish(&index_for(m, manifest.len() as u64)).unwrap();
    m
}

#[test]
fn tar_layout_is_sorted_normalized_and_deterministic() {
    let d = tempfile::tempdir().unwrap();
    let blob = d.path().join("layer");
    fs::write(&blob, b"layer bytes").unwrap();
    let a = d.path().join("a.tar");
    let b = d.path().join("b.tar");
    let m = write_layout(LayoutTarget::Tar(a.clone()), &blob);
    write_layout(LayoutTarget::Tar(b.clone()), &blob);
    let bytes = fs::read(&a).unwrap();
    assert_eq!(bytes, fs::read(&b).unwrap());

    let mut layer_hex = Digest::of(b"layer bytes").hex();
    let mut manifest_hex = m.hex();
    if layer_hex > manifest_hex {
        std::mem::swap(&mut layer_hex, &mut manifest_hex);
    }
    let mut archive = tar::Archive::new(&bytes[..]);
    let mut seen = Vec::new();
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        assert_eq!(h.mtime().unwrap(), 0);
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
        seen.push((
            String::from_utf8(e.path_bytes().into_owned()).unwrap(),
            h.mode().unwrap(),
        ));
    }
    let expect = [
        ("blobs/".to_owned(), 0o755),
        ("blobs/sha256/".to_owned(), 0o755),
        (format!("blobs/sha256/{layer_hex}"), 0o644),
        (format!("blobs/sha256/{manifest_hex}"), 0o644),
        ("index.json".to_owned(), 0o644),
        ("oci-layout".to_owned(), 0o644),
    ];
    assert_eq!(seen, expect);
    // Only the archive itself is left next to it: no temporary files.
    let mut names: Vec<_> = fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a.tar", "b.tar", "layer"]);
}

#[test]
fn dir_layout_has_layout_files_and_copies_blobs() {
    let d = tempfile::tempdir().unwrap();
    let blob = d.path().join("layer");
    fs::write(&blob, b"layer bytes").unwrap();
    let out = d.path().join("out");
    let m = write_layout(LayoutTarget::Dir(out.clone()), &blob);
    assert_eq!(
        fs::read_to_string(out.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let index: Index = serde_json::from_slice(&fs::read(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(index.manifests[0].digest, m.to_string());
    let copied = out
        .join("blobs/sha256")
        .join(Digest::of(b"layer bytes").hex());
    // A copy, not a link: editing the export must not reach the source blob.
    assert_ne!(
        fs::metadata(&copied).unwrap().ino(),
        fs::metadata(&blob).unwrap().ino()
    );
    assert_eq!(fs::read(&copied).unwrap(), b"layer bytes");
    assert_eq!(
        fs::read(out.join("blobs/sha256").join(m.hex())).unwrap(),
        br#"{"schemaVersion":2}"#
    );
    // Writing again into the same layout is idempotent, and repairs a damaged blob.
    fs::write(&copied, b"LAYER BYTES").unwrap();
    write_layout(LayoutTarget::Dir(out.clone()), &blob);
    assert_eq!(fs::read_dir(out.join("blobs/sha256")).unwrap().count(), 2);
    assert_eq!(fs::read(&copied).unwrap(), b"layer bytes");
}

#[test]
fn wrong_blob_size_or_content_is_refused_and_nothing_is_left() {
    let d = tempfile::tempdir().unwrap();
    let blob = d.path().join("layer");
    fs::write(&blob, b"layer bytes").unwrap();
    let digest = Digest::of(b"layer bytes");

    let mut w = LayoutWriter::new(LayoutTarget::Tar(d.path().join("x.tar"))).unwrap();
    let err = w.add_blob_file(digest, 3, &blob).unwrap_err();
    assert!(
        matches!(err, LayoutError::SizeMismatch { actual: 11, .. }),
        "{err}"
    );

    // A digest that does not match the content is caught while the tar is written.
    let wrong = Digest::of(b"something else");
    w.add_blob_file(wrong, 11, &blob).unwrap();
    let m = w.add_blob_bytes(b"{}").unwrap();
    let err = w.finish(&index_for(m, 2)).unwrap_err();
    assert!(matches!(err, LayoutError::DigestMismatch { .. }), "{err}");
    assert_eq!(
        fs::read_dir(d.path()).unwrap().count(),
        1,
        "only the blob remains"
    );

    // An index naming a manifest that is not in the layout is refused before index.json.
    let out = d.path().join("dir");
    let mut w = LayoutWriter::new(LayoutTarget::Dir(out.clone())).unwrap();
    w.add_blob_file(digest, 11, &blob).unwrap();
    let err = w.finish(&index_for(wrong, 1)).unwrap_err();
    assert!(matches!(err, LayoutError::MissingBlob { .. }), "{err}");
    assert!(!out.join("index.json").exists());
}

#[test]
fn json_blob_is_compact_and_stable() {
    let idx = index_for(Digest::of(b"m"), 1);
    let bytes = json_blob(&idx);
    assert_eq!(bytes, json_blob(&idx));
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with(
        r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"#
    ));
    assert!(!text.contains(' ') && !text.contains('\n'));
    assert_eq!(MEDIA_TYPE_LAYER, "application/vnd.oci.image.layer.v1.tar");
}
