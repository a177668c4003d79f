use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

use super::*;

/// Builds a tar stream by hand, so hostile names and links can be written as is.
#[derive(Default)]
struct Tar(Vec<u8>);

impl Tar {
    fn add(mut self, path: &str, kind: EntryType, mode: u32, link: &str, data: &[u8]) -> Self {
        let mut h = tar::Header::new_old();
        // set_path refuses `..`; write the name field directly, as an attacker would.
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_000_000);
        h.set_uid(0);
        h.set_gid(0);
        if !link.is_empty() {
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }
    fn file(self, path: &str, data: &str) -> Self {
        self.add(path, EntryType::Regular, 0o644, "", data.as_bytes())
    }
    fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0; 1024]);
        self.0
    }
}

#[test]
fn unpacks_files_dirs_links_and_modes() {
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("dest");
    let tar = Tar::default()
        .add("bin/", EntryType::Directory, 0o750, "", b"")
        .add("bin/run", EntryType::Regular, 0o755, "", b"#!/bin/sh\n")
        .add("bin/sh", EntryType::Symlink, 0o777, "/bin/busybox", b"")
        .add("bin/hard", EntryType::Link, 0o755, "bin/run", b"")
        .file("deep/er/name with space é", "x")
        .add("empty/", EntryType::Directory, 0o755, "", b"")
        .finish();
    unpack(&tar[..], &dest).unwrap();
    let meta = |p: &str| fs::symlink_metadata(dest.join(p)).unwrap();
    assert_eq!(meta("bin").permissions().mode() & 0o7777, 0o750);
    assert_eq!(meta("bin").mtime(), 1_000_000);
    assert_eq!(meta("bin/run").permissions().mode() & 0o7777, 0o755);
    assert_eq!(meta("bin/run").mtime(), 1_000_000);
    assert_eq!(
        fs::read_link(dest.join("bin/sh")).unwrap().to_str(),
        Some("/bin/busybox")
    );
    assert_eq!(meta("bin/hard").ino(), meta("bin/run").ino());
    assert_eq!(
        fs::read_to_string(dest.join("deep/er/name with space é")).unwrap(),
        "x"
    );
    assert!(meta("empty").is_dir());
    // Unpacking again replaces what is there.
    let tar = Tar::default().file("bin/sh", "now a file").finish();
    unpack(&tar[..], &dest).unwrap();
    assert_eq!(
        fs::read_to_string(dest.join("bin/sh")).unwrap(),
        "now a file"
    );
}

#[test]
fn refuses_dotdot_and_absolute_names() {
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("dest");
    for name in ["../evil", "a/../../evil", "/tmp/evil"] {
        let tar = Tar::default().file(name, "pwned").finish();
        let err = unpack(&tar[..], &dest).unwrap_err();
        assert!(matches!(err, UnpackError::Escape { .. }), "{name}: {err}");
    }
    assert!(!out.path().join("evil").exists());
    // A hardlink may not point outside either.
    let tar = Tar::default()
        .add("h", EntryType::Link, 0o644, "../outside", b"")
        .finish();
    assert!(matches!(
        unpack(&tar[..], &dest).unwrap_err(),
        UnpackError::Escape { .. }
    ));
}

#[test]
fn refuses_writing_through_symlinks() {
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("dest");
    let victim = out.path().join("victim");
    fs::create_dir(&victim).unwrap();
    // The archive plants an absolute symlink, then writes through it.
    let tar = Tar::default()
        .add(
            "link",
            EntryType::Symlink,
            0o777,
            victim.to_str().unwrap(),
            b"",
        )
        .file("link/pwned", "x")
        .finish();
    let err = unpack(&tar[..], &dest).unwrap_err();
    assert!(matches!(err, UnpackError::ParentNotDir { .. }), "{err}");
    assert!(!victim.join("pwned").exists());
    // A relative one that climbs out, and one already in the destination.
    let tar = Tar::default()
        .add("up", EntryType::Symlink, 0o777, "../victim", b"")
        .file("up/pwned", "x")
        .finish();
    assert!(unpack(&tar[..], &dest).is_err());
    symlink(&victim, dest.join("pre")).unwrap();
    let tar = Tar::default().file("pre/pwned", "x").finish();
    assert!(unpack(&tar[..], &dest).is_err());
    // Replacing the symlink itself with a file is fine: nothing is followed.
    let tar = Tar::default().file("pre", "replaced").finish();
    unpack(&tar[..], &dest).unwrap();
    assert!(fs::symlink_metadata(dest.join("pre")).unwrap().is_file());
    assert_eq!(fs::read_dir(&victim).unwrap().count(), 0);
}
