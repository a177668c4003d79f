//! ADD's archive extraction: tar sources (plain, gzip, zstd) unpack into the
//! destination directory; nothing in an archive lands outside it.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use buildd_proto::llb::{ChownOpt, FileActionCopy, file_action::Action};
use buildd_snapshot::{CopySource, FileOpError, LayeredView, Snapshot};
use common::{apply, has, layer, line, top, write};

const MTIME: u64 = 1_609_459_200;

/// One archive entry: name, type, mode, data or link target.
struct E<'a>(&'a str, tar::EntryType, u32, &'a str);

fn dir(name: &str) -> E<'_> {
    E(name, tar::EntryType::Directory, 0o755, "")
}

fn file<'a>(name: &'a str, mode: u32, data: &'a str) -> E<'a> {
    E(name, tar::EntryType::Regular, mode, data)
}

fn symlink<'a>(name: &'a str, target: &'a str) -> E<'a> {
    E(name, tar::EntryType::Symlink, 0o777, target)
}

fn hardlink<'a>(name: &'a str, target: &'a str) -> E<'a> {
    E(name, tar::EntryType::Link, 0o644, target)
}

/// A tar stream with the names exactly as given (the tar crate's builder refuses
/// `..`, which these tests need), owned by 7:8.
fn tar_of(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for E(name, kind, mode, data) in entries {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(*mode);
        h.set_uid(7);
        h.set_gid(8);
        h.set_mtime(MTIME);
        let body: &[u8] = if kind.is_file() {
            data.as_bytes()
        } else {
            h.as_old_mut().linkname[..data.len()].copy_from_slice(data.as_bytes());
            b""
        };
        h.set_size(body.len() as u64);
        h.set_cksum();
        b.append(&h, body).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn pkg() -> Vec<u8> {
    tar_of(&[
        dir("pkg/"),
        file("pkg/cfg", 0o644, "cfg\n"),
        dir("pkg/bin/"),
        file("pkg/bin/tool", 0o755, "tool\n"),
    ])
}

/// A build context holding `files`.
fn context(files: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, data) in files {
        std::fs::write(d.path().join(name), data).unwrap();
    }
    d
}

fn add(src: &str, dest: &str) -> FileActionCopy {
    FileActionCopy {
        attempt_unpack: true,
        ..common::copy(0, src, dest)
    }
}

fn run(
    base: &Snapshot,
    ctx: &Path,
    actions: Vec<FileActionCopy>,
) -> (
    tempfile::TempDir,
    buildd_snapshot::LayerStore,
    Result<Snapshot, FileOpError>,
) {
    let (d, store) = common::store();
    let sel = BTreeMap::new();
    let src = [CopySource::Dir {
        root: ctx,
        excludes: None,
        selections: &sel,
        immutable: false,
    }];
    let actions = actions.into_iter().map(Action::Copy).collect();
    let r = apply(&store, base, "02", actions, &src);
    (d, store, r)
}

#[test]
fn tar_and_tar_gz_extract_into_new_directories() {
    let ctx = context(&[("pkg.tar", pkg()), ("pkg.tar.gz", gzip(&pkg()))]);
    let actions = vec![add("pkg.tar", "/opt/"), add("pkg.tar.gz", "/opt2")];
    let (_d, store, r) = run(&Snapshot::scratch(), ctx.path(), actions);
    let t = top(&store, &r.unwrap());
    let m = format!("mtime={MTIME}.000000000");
    for root in ["opt", "opt2"] {
        assert_eq!(
            line(&t, root),
            format!("{root} dir 755 0:0 mtime=0.000000000")
        );
        assert_eq!(
            line(&t, &format!("{root}/pkg")),
            format!("{root}/pkg dir 755 7:8 {m}")
        );
        assert!(
            line(&t, &format!("{root}/pkg/bin/tool"))
                .starts_with(&format!("{root}/pkg/bin/tool file 5 \"tool\\n\""))
        );
        assert!(line(&t, &format!("{root}/pkg/bin/tool")).ends_with(&format!(" 755 7:8 {m}")));
        assert!(line(&t, &format!("{root}/pkg/cfg")).ends_with(&format!(" 644 7:8 {m}")));
    }
    assert!(!has(&t, "pkg.tar") && !has(&t, "opt/pkg.tar"));
}

#[test]
fn zstd_archives_merge_into_an_existing_directory() {
    let ctx = context(&[("pkg.tar.zst", zstd::encode_all(&pkg()[..], 3).unwrap())]);
    let (_d, store) = common::store();
    let base = layer(&store, &Snapshot::scratch(), "01", |p| {
        write(p, "opt/keep", "k");
        write(p, "opt/pkg/old", "o");
    });
    let sel = BTreeMap::new();
    let src = [CopySource::Dir {
        root: ctx.path(),
        excludes: None,
        selections: &sel,
        immutable: false,
    }];
    let s = apply(
        &store,
        &base,
        "02",
        vec![Action::Copy(add("pkg.tar.zst", "/opt"))],
        &src,
    )
    .unwrap();
    let view = LayeredView::new(&store, &s).unwrap();
    for p in [
        "/opt/keep",
        "/opt/pkg/old",
        "/opt/pkg/cfg",
        "/opt/pkg/bin/tool",
    ] {
        assert!(view.lstat(Path::new(p)).unwrap().is_some(), "{p} missing");
    }
    let t = top(&store, &s);
    // The existing directory takes the archive's metadata, as Docker's unpack does.
    assert!(line(&t, "opt/pkg").starts_with("opt/pkg dir 755 7:8"));
    assert!(!has(&t, "opt/keep"));
}

#[test]
fn chown_overrides_archive_owners_and_chmod_does_not_apply() {
    let ctx = context(&[("pkg.tar", pkg())]);
    let mut a = add("pkg.tar", "/opt/");
    a.owner = Some(ChownOpt {
        uid: Some(42),
        gid: Some(43),
        ..Default::default()
    });
    a.mode = Some(0o600);
    let (_d, store, r) = run(&Snapshot::scratch(), ctx.path(), vec![a]);
    let t = top(&store, &r.unwrap());
    assert!(line(&t, "opt").starts_with("opt dir 755 42:43"));
    assert!(line(&t, "opt/pkg").starts_with("opt/pkg dir 755 42:43"));
    assert!(line(&t, "opt/pkg/bin/tool").contains(" 755 42:43 "));
    assert!(line(&t, "opt/pkg/cfg").contains(" 644 42:43 "));
}

#[test]
fn absolute_names_and_symlinked_parents_stay_in_the_destination() {
    let ar = tar_of(&[
        file("/abs", 0o644, "a"),
        symlink("up", "/"),
        file("up/etc/passwd", 0o644, "p"),
        symlink("rel", "../../.."),
        file("rel/r", 0o644, "r"),
        file("./pkg/../cfg", 0o644, "c"),
        hardlink("same", "/up/etc/passwd"),
    ]);
    let ctx = context(&[("x.tar", ar)]);
    let (_d, store) = common::store();
    let base = layer(&store, &Snapshot::scratch(), "01", |p| {
        write(p, "etc/passwd", "root");
    });
    let sel = BTreeMap::new();
    let src = [CopySource::Dir {
        root: ctx.path(),
        excludes: None,
        selections: &sel,
        immutable: false,
    }];
    let s = apply(
        &store,
        &base,
        "02",
        vec![Action::Copy(add("x.tar", "/d"))],
        &src,
    )
    .unwrap();
    let t = top(&store, &s);
    assert!(line(&t, "d/abs").starts_with("d/abs file 1 \"a\""));
    assert!(line(&t, "d/up").starts_with("d/up link -> /"));
    assert!(line(&t, "d/etc/passwd").starts_with("d/etc/passwd file 1 \"p\""));
    assert_eq!(ino(line(&t, "d/same")), ino(line(&t, "d/etc/passwd")));
    assert!(line(&t, "d/r").starts_with("d/r file 1 \"r\""));
    assert!(line(&t, "d/cfg").starts_with("d/cfg file 1 \"c\""));
    assert!(!has(&t, "etc/passwd") && !has(&t, "r") && !has(&t, "abs"));
}

/// The inode token of a listing line, which hard links share.
fn ino(line: &str) -> &str {
    line.split(' ').find(|w| w.starts_with("ino")).unwrap()
}

fn extract_err(entries: &[E<'_>]) -> String {
    let ctx = context(&[("x.tar", tar_of(entries))]);
    let (_d, store) = common::store();
    let base = layer(&store, &Snapshot::scratch(), "01", |p| {
        write(p, "d/lower", "l");
    });
    let sel = BTreeMap::new();
    let src = [CopySource::Dir {
        root: ctx.path(),
        excludes: None,
        selections: &sel,
        immutable: false,
    }];
    let action = vec![Action::Copy(add("x.tar", "/d/"))];
    apply(&store, &base, "02", action, &src)
        .unwrap_err()
        .to_string()
}

#[test]
fn escaping_entries_are_rejected() {
    assert_eq!(
        extract_err(&[file("../x", 0o644, "x")]),
        "copy \"../x\": archive entry escapes the destination"
    );
    assert_eq!(
        extract_err(&[file("a/../../x", 0o644, "x")]),
        "copy \"a/../../x\": archive entry escapes the destination"
    );
    assert_eq!(
        extract_err(&[hardlink("h", "../etc/passwd")]),
        "copy \"h\": archive entry escapes the destination"
    );
    // Below the destination, but not something this archive wrote.
    assert_eq!(
        extract_err(&[hardlink("h", "lower")]),
        "copy \"h\": hard link target \"lower\" is not an earlier entry of the archive"
    );
    // A symlink cannot take a hard link's target out either.
    assert_eq!(
        extract_err(&[symlink("up", "/.."), hardlink("h", "up/etc/passwd")]),
        "copy \"h\": parent directory \"/d/etc\" does not exist"
    );
    assert_eq!(
        extract_err(&[file("pkg/.wh.cfg", 0o644, "x")]),
        "copy \"pkg/.wh.cfg\": file names starting with \".wh.\" are reserved for whiteouts"
    );
}

#[test]
fn other_files_are_copied_as_they_are() {
    let not_tar = gzip(b"just some text, not a tar stream");
    let ctx = context(&[("notes.txt", b"hi".to_vec()), ("data.gz", not_tar.clone())]);
    let actions = vec![add("notes.txt", "/notes/"), add("data.gz", "/d.gz")];
    let (_d, store, r) = run(&Snapshot::scratch(), ctx.path(), actions);
    let t = top(&store, &r.unwrap());
    assert!(line(&t, "notes/notes.txt").starts_with("notes/notes.txt file 2 \"hi\""));
    assert!(line(&t, "d.gz").starts_with(&format!("d.gz file {} ", not_tar.len())));
}

#[test]
fn bzip2_and_xz_archives_unpack_and_broken_ones_are_copied_whole() {
    use std::io::Write as _;
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    bz.write_all(&pkg()).unwrap();
    let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
    xz.write_all(&pkg()).unwrap();
    let ctx = context(&[
        ("pkg.tar.bz2", bz.finish().unwrap()),
        ("pkg.tar.xz", xz.finish().unwrap()),
        ("broken.tar.xz", b"\xfd7zXZ\x00\x00".to_vec()),
    ]);
    for name in ["pkg.tar.bz2", "pkg.tar.xz"] {
        let (_d, store, r) = run(&Snapshot::scratch(), ctx.path(), vec![add(name, "/opt/")]);
        let t = top(&store, &r.unwrap());
        assert!(has(&t, "opt/pkg/bin/tool"), "{name}: {t:?}");
    }
    // As Docker: what does not decompress to a tar is a file like any other.
    let (_d, store, r) = run(
        &Snapshot::scratch(),
        ctx.path(),
        vec![add("broken.tar.xz", "/opt/")],
    );
    assert!(has(&top(&store, &r.unwrap()), "opt/broken.tar.xz"));
}

#[test]
fn copy_without_unpack_keeps_the_archive_whole() {
    let ctx = context(&[("pkg.tar", pkg())]);
    let (_d, store, r) = run(
        &Snapshot::scratch(),
        ctx.path(),
        vec![common::copy(0, "pkg.tar", "/opt/")],
    );
    let t = top(&store, &r.unwrap());
    assert!(has(&t, "opt/pkg.tar"));
    assert!(!has(&t, "opt/pkg"));
}
