mod common;

use std::io::Read;
use std::path::Path;

use buildd_oci::{
    Compression, LayerError, LayerOptions, MEDIA_TYPE_LAYER_GZIP, is_empty_diff, write_layer,
};
use buildd_proto::Digest;
use common::*;

fn layer(
    dir: &Path,
    compression: Compression,
    epoch: Option<i64>,
) -> (Vec<u8>, buildd_oci::LayerBlob) {
    let mut out = Vec::new();
    let opts = LayerOptions {
        compression,
        source_date_epoch: epoch,
    };
    let blob = write_layer(dir, &opts, &mut out).unwrap();
    (out, blob)
}

fn decompress(bytes: &[u8], c: Compression) -> Vec<u8> {
    let mut out = Vec::new();
    match c {
        Compression::None => out.extend_from_slice(bytes),
        Compression::Gzip => {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .unwrap();
        }
        Compression::Zstd => {
            zstd::stream::read::Decoder::new(bytes)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
        }
    }
    out
}

#[derive(Debug, PartialEq)]
struct Seen {
    path: String,
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    link: Option<String>,
    data: Vec<u8>,
}

fn entries(tar_bytes: &[u8]) -> Vec<Seen> {
    let mut a = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let mut uid = e.header().uid().unwrap();
        let mut gid = e.header().gid().unwrap();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for x in exts {
                let x = x.unwrap();
                match x.key().unwrap() {
                    "uid" => uid = x.value().unwrap().parse().unwrap(),
                    "gid" => gid = x.value().unwrap().parse().unwrap(),
                    _ => {}
                }
            }
        }
        let h = e.header();
        assert_eq!(h.username_bytes(), Some(&b""[..]));
        assert_eq!(h.groupname_bytes(), Some(&b""[..]));
        let mut seen = Seen {
            path: String::from_utf8(e.path_bytes().into_owned()).unwrap(),
            kind: h.entry_type(),
            mode: h.mode().unwrap(),
            uid,
            gid,
            mtime: h.mtime().unwrap(),
            link: e
                .link_name_bytes()
                .map(|l| String::from_utf8(l.into_owned()).unwrap()),
            data: Vec::new(),
        };
        e.read_to_end(&mut seen.data).unwrap();
        out.push(seen);
    }
    out
}

#[track_caller]
fn require_root() -> bool {
    buildd_testkit::require_root("devices, whiteouts, ownership and trusted xattrs")
}

#[test]
fn layer_is_byte_identical_across_runs_and_inode_layouts() {
    if !require_root() {
        return;
    }
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    build_diff(a.path(), false);
    build_diff(b.path(), true);
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let (first, blob1) = layer(a.path(), c, None);
        let (again, blob2) = layer(a.path(), c, None);
        let (other, blob3) = layer(b.path(), c, None);
        assert!(first == again && first == other, "{c} output differs");
        assert_eq!(blob1, blob2);
        assert_eq!(blob1, blob3);
        assert_eq!(blob1.digest, Digest::of(&first));
        assert_eq!(blob1.size, first.len() as u64);
        assert_eq!(blob1.media_type, c.media_type());
        assert_eq!(blob1.diff_id, Digest::of(&decompress(&first, c)), "{c}");
    }
    // The compressed forms are different blobs of the same tar.
    let (_, gz) = layer(a.path(), Compression::Gzip, None);
    let (_, zst) = layer(a.path(), Compression::Zstd, None);
    let (_, raw) = layer(a.path(), Compression::None, None);
    assert_eq!(gz.diff_id, raw.diff_id);
    assert_eq!(zst.diff_id, raw.diff_id);
    assert_ne!(gz.digest, raw.digest);
    assert_eq!(gz.media_type, MEDIA_TYPE_LAYER_GZIP);
}

#[test]
fn entries_are_sorted_normalized_and_overlay_markers_converted() {
    if !require_root() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    build_diff(d.path(), false);
    let (bytes, _) = layer(d.path(), Compression::None, None);
    let seen = entries(&bytes);
    use tar::EntryType as T;
    let long_a = "long/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/";
    let long_file = format!("{LONG_DIR}/{LONG_FILE}");
    assert!(long_file.len() > 100);
    let long_dir = format!("{LONG_DIR}/");
    let expect: Vec<(&str, T, u32, i64)> = vec![
        ("bin/", T::Directory, 0o755, 2_000),
        ("bin/tool", T::Regular, 0o4755, 2_001),
        ("bin/tool2", T::Link, 0o4755, 2_001),
        ("etc/", T::Directory, 0o755, 1_000),
        ("etc/passwd", T::Regular, 0o644, 1_001),
        (".wh.gone", T::Regular, 0, 0),
        ("link", T::Symlink, 0o777, 3_000),
        ("long/", T::Directory, 0o755, 6_000),
        (long_a, T::Directory, 0o755, 6_000),
        (&long_dir, T::Directory, 0o755, 6_000),
        (&long_file, T::Regular, 0o644, 6_000),
        ("null", T::Char, 0o666, 4_000),
        ("opq/", T::Directory, 0o750, 5_000),
        ("opq/.wh..wh..opq", T::Regular, 0, 0),
        ("opq/keep", T::Regular, 0o600, 5_001),
        ("pipe", T::Fifo, 0o600, 4_001),
    ];
    let got: Vec<(&str, T, u32, i64)> = seen
        .iter()
        .map(|s| (s.path.as_str(), s.kind, s.mode, s.mtime as i64))
        .collect();
    assert_eq!(got, expect);

    let tool = &seen[1];
    assert_eq!((tool.uid, tool.gid), (1000, 3_000_000));
    assert_eq!(tool.data, b"#!/bin/sh\necho tool\n");
    assert_eq!(seen[2].link.as_deref(), Some("bin/tool"));
    assert!(seen[2].data.is_empty());
    assert_eq!(seen[6].link.as_deref(), Some("etc/passwd"));
    assert_eq!(seen[10].data, b"long");
    assert!(seen[5].data.is_empty() && seen[13].data.is_empty());
    // Device numbers survive.
    let mut a = tar::Archive::new(&bytes[..]);
    let null = a
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| &*e.path_bytes() == b"null")
        .unwrap();
    assert_eq!(null.header().device_major().unwrap(), Some(1));
    assert_eq!(null.header().device_minor().unwrap(), Some(3));
    // No atime/ctime or other PAX noise: the only PAX records are those needed.
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("atime") && !text.contains("ctime"));
    assert!(!text.contains("overlay"));
}

#[test]
fn source_date_epoch_clamps_mtimes() {
    let d = tempfile::tempdir().unwrap();
    write(&d.path().join("old"), b"", 0o644, 100);
    write(&d.path().join("new"), b"", 0o644, 2_000_000_000);
    let (bytes, _) = layer(d.path(), Compression::None, Some(1_000));
    let mtimes: Vec<(String, u64)> = entries(&bytes)
        .into_iter()
        .map(|s| (s.path, s.mtime))
        .collect();
    assert_eq!(mtimes, [("new".into(), 1_000), ("old".into(), 100)]);
}

#[test]
fn file_capabilities_are_kept_as_pax_xattr() {
    if !require_root() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("ping");
    write(&f, b"x", 0o755, 0);
    // VFS_CAP_REVISION_2 | effective, permitted = CAP_NET_RAW (13).
    let cap: [u8; 20] = [
        1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    set_xattr(&f, "security.capability", &cap).unwrap();
    set_xattr(&f, "user.other", b"dropped").unwrap();
    let (bytes, _) = layer(d.path(), Compression::None, None);
    let mut a = tar::Archive::new(&bytes[..]);
    let mut e = a.entries().unwrap().next().unwrap().unwrap();
    let exts: Vec<(String, Vec<u8>)> = e
        .pax_extensions()
        .unwrap()
        .unwrap()
        .map(|x| {
            let x = x.unwrap();
            (x.key().unwrap().to_owned(), x.value_bytes().to_vec())
        })
        .collect();
    assert_eq!(
        exts,
        [("SCHILY.xattr.security.capability".to_owned(), cap.to_vec())]
    );
}

#[test]
fn reserved_whiteout_names_are_refused() {
    let d = tempfile::tempdir().unwrap();
    write(&d.path().join(".wh.sneaky"), b"", 0o644, 0);
    let err = write_layer(d.path(), &LayerOptions::default(), Vec::new()).unwrap_err();
    assert!(matches!(err, LayerError::ReservedName { .. }), "{err}");
    assert!(err.to_string().contains(".wh.sneaky"));
}

#[test]
fn empty_diff_is_detected_and_yields_an_empty_archive() {
    let d = tempfile::tempdir().unwrap();
    assert!(is_empty_diff(d.path()).unwrap());
    let (bytes, blob) = layer(d.path(), Compression::None, None);
    assert_eq!(bytes, vec![0u8; 1024]);
    assert_eq!(blob.diff_id, Digest::of(&[0u8; 1024]));
    write(&d.path().join("f"), b"", 0o644, 0);
    assert!(!is_empty_diff(d.path()).unwrap());
    assert!(is_empty_diff(&d.path().join("missing")).is_err());
}
