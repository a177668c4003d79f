mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use buildd_oci::{Compression, LayerOptions, UnpackError, unpack_layer, write_layer};
use common::*;

/// One raw tar entry; paths are written as-is, bypassing the `tar` crate's own checks.
fn raw(out: &mut Vec<u8>, path: &str, kind: tar::EntryType, link: &str, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(data.len() as u64);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
}

fn finish(mut out: Vec<u8>) -> Vec<u8> {
    out.extend_from_slice(&[0; 1024]);
    out
}

fn unpack(tar: &[u8], dest: &Path) -> Result<buildd_proto::Digest, UnpackError> {
    unpack_layer(tar, Compression::None, dest)
}

#[test]
fn round_trips_a_layer_with_every_entry_kind() {
    if !buildd_testkit::require_root("devices, whiteouts, ownership and trusted xattrs") {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    build_diff(src.path(), false);
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let opts = LayerOptions {
            compression: c,
            source_date_epoch: None,
        };
        let mut bytes = Vec::new();
        let blob = write_layer(src.path(), &opts, &mut bytes).unwrap();
        let dest = tempfile::tempdir().unwrap();
        let diff_id = unpack_layer(&bytes[..], c, dest.path()).unwrap();
        assert_eq!(diff_id, blob.diff_id, "{c}");
        // Re-archiving the extracted diff gives the very same layer.
        let mut again = Vec::new();
        let blob2 = write_layer(dest.path(), &opts, &mut again).unwrap();
        assert_eq!(blob2, blob, "{c}");

        let d = dest.path();
        let gone = fs::symlink_metadata(d.join("gone")).unwrap();
        assert!(gone.file_type().is_char_device() && gone.rdev() == 0);
        assert_eq!(
            get_xattr(&d.join("opq"), "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..])
        );
        let tool = fs::metadata(d.join("bin/tool")).unwrap();
        assert_eq!(tool.ino(), fs::metadata(d.join("bin/tool2")).unwrap().ino());
        assert_eq!(
            (tool.uid(), tool.gid(), tool.mode() & 0o7777),
            (1000, 3_000_000, 0o4755)
        );
        assert_eq!(
            fs::read_link(d.join("link")).unwrap(),
            Path::new("etc/passwd")
        );
        assert_eq!(fs::metadata(d.join("opq")).unwrap().mtime(), 5_000);
        assert_eq!(fs::read(d.join(LONG_DIR).join(LONG_FILE)).unwrap(), b"long");
    }
}

#[test]
fn file_capabilities_are_restored() {
    if !buildd_testkit::require_root("setting security.capability") {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let f = src.path().join("ping");
    write(&f, b"x", 0o755, 0);
    let cap: [u8; 20] = [
        1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    set_xattr(&f, "security.capability", &cap).unwrap();
    let mut bytes = Vec::new();
    write_layer(src.path(), &LayerOptions::default(), &mut bytes).unwrap();
    let dest = tempfile::tempdir().unwrap();
    unpack_layer(&bytes[..], Compression::Gzip, dest.path()).unwrap();
    assert_eq!(
        get_xattr(&dest.path().join("ping"), "security.capability").as_deref(),
        Some(&cap[..])
    );
}

#[test]
fn diff_id_covers_trailing_padding() {
    let mut t = Vec::new();
    raw(&mut t, "f", tar::EntryType::Regular, "", b"data");
    let mut t = finish(t);
    // Writers may pad to a 10 KiB record; that is part of the uncompressed stream.
    t.resize(10240, 0);
    let dest = tempfile::tempdir().unwrap();
    let id = unpack(&t, dest.path()).unwrap();
    assert_eq!(id, buildd_proto::Digest::of(&t));
    assert_eq!(fs::read(dest.path().join("f")).unwrap(), b"data");
}

/// `dest` is `root/dest`; `root/outside` is a directory an attack would like to reach.
fn sandbox() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let dest = root.path().join("dest");
    let outside = root.path().join("outside");
    fs::create_dir(&dest).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), b"secret").unwrap();
    (root, dest, outside)
}

fn assert_outside_untouched(outside: &Path) {
    let names: Vec<_> = fs::read_dir(outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["secret"]);
    assert_eq!(fs::read(outside.join("secret")).unwrap(), b"secret");
}

#[test]
fn dot_dot_and_absolute_paths_are_rejected() {
    use tar::EntryType as T;
    for (path, kind, link) in [
        ("../outside/evil", T::Regular, ""),
        ("a/../../outside/evil", T::Regular, ""),
        ("/abs", T::Regular, ""),
        ("h", T::Link, "../outside/secret"),
        ("h", T::Link, "/etc/passwd"),
        ("a/.wh..", T::Regular, ""),
    ] {
        let (_root, dest, outside) = sandbox();
        let mut t = Vec::new();
        raw(&mut t, path, kind, link, b"evil");
        let err = unpack(&finish(t), &dest).unwrap_err();
        assert!(matches!(err, UnpackError::Escapes { .. }), "{path}: {err}");
        assert_outside_untouched(&outside);
    }
}

#[test]
fn symlinks_are_never_followed() {
    use tar::EntryType as T;
    let cases: [&[(&str, T, &str)]; 4] = [
        // Write through a symlinked directory.
        &[("s", T::Symlink, "../outside"), ("s/evil", T::Regular, "")],
        // Absolute symlink target.
        &[("s", T::Symlink, "/"), ("s/evil", T::Regular, "")],
        // Hardlink through a symlinked directory.
        &[("s", T::Symlink, "../outside"), ("h", T::Link, "s/secret")],
        // Directory entry below a symlink.
        &[("s", T::Symlink, "../outside"), ("s/d/", T::Directory, "")],
    ];
    for entries in cases {
        let (_root, dest, outside) = sandbox();
        let mut t = Vec::new();
        for (p, k, l) in entries {
            raw(
                &mut t,
                p,
                *k,
                l,
                if *k == T::Regular { b"evil" } else { b"" },
            );
        }
        let err = unpack(&finish(t), &dest).unwrap_err();
        assert!(
            matches!(err, UnpackError::NotADirectory { .. }),
            "{entries:?}: {err}"
        );
        assert!(err.to_string().contains("\"s\""), "{err}");
        assert_outside_untouched(&outside);
    }
}

#[test]
fn a_file_replaces_a_symlink_instead_of_writing_through_it() {
    use tar::EntryType as T;
    let (_root, dest, outside) = sandbox();
    let target = outside.join("secret");
    let mut t = Vec::new();
    raw(&mut t, "f", T::Symlink, target.to_str().unwrap(), b"");
    raw(&mut t, "f", T::Regular, "", b"mine");
    unpack(&finish(t), &dest).unwrap();
    assert_outside_untouched(&outside);
    let md = fs::symlink_metadata(dest.join("f")).unwrap();
    assert!(md.is_file());
    assert_eq!(fs::read(dest.join("f")).unwrap(), b"mine");
}

#[test]
fn whiteouts_and_opaque_markers_become_overlay_form() {
    if !buildd_testkit::require_root("whiteout devices") {
        return;
    }
    use tar::EntryType as T;
    let dest = tempfile::tempdir().unwrap();
    let mut t = Vec::new();
    raw(&mut t, "d/", T::Directory, "", b"");
    raw(&mut t, "d/.wh..wh..opq", T::Regular, "", b"");
    raw(&mut t, "d/.wh.old", T::Regular, "", b"");
    raw(&mut t, ".wh..wh.plnk", T::Regular, "", b"");
    unpack(&finish(t), dest.path()).unwrap();
    let old = fs::symlink_metadata(dest.path().join("d/old")).unwrap();
    assert!(old.file_type().is_char_device() && old.rdev() == 0);
    assert_eq!(
        get_xattr(&dest.path().join("d"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    let mut names: Vec<_> = fs::read_dir(dest.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["d"]);
}

#[test]
fn corrupt_archives_are_reported() {
    let dest = tempfile::tempdir().unwrap();
    let err = unpack_layer(&b"not gzip at all"[..], Compression::Gzip, dest.path()).unwrap_err();
    assert!(matches!(err, UnpackError::Archive(_)), "{err}");
    let mut t = Vec::new();
    raw(&mut t, "f", tar::EntryType::Regular, "", b"data");
    t[148] ^= 1; // break the checksum
    assert!(matches!(
        unpack(&finish(t), dest.path()),
        Err(UnpackError::Archive(_))
    ));
}
