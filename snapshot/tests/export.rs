mod common;

use std::fs;

use buildd_snapshot::{Snapshot, export_tree};
use common::{layer, listing, opaque, symlink, whiteout, write};

#[test]
fn export_merges_layers_and_never_writes_through_symlinks() {
    let (d, store) = common::store();
    let s = layer(&store, &Snapshot::scratch(), "01", |r| {
        write(r, "etc/a", "a1");
        write(r, "etc/gone", "g");
        write(r, "opq/old", "o");
        write(r, "bin/tool", "t");
        fs::hard_link(r.join("bin/tool"), r.join("bin/tool2")).unwrap();
    });
    let s = layer(&store, &s, "02", |r| {
        write(r, "etc/a", "a2");
        whiteout(&r.join("etc/gone"));
        fs::create_dir(r.join("opq")).unwrap();
        opaque(&r.join("opq"));
        write(r, "opq/new", "n");
        symlink(r, "lnk", "/etc/a");
    });
    let dest = d.path().join("out");
    let outside = d.path().join("outside");
    fs::create_dir_all(&dest).unwrap();
    fs::create_dir_all(&outside).unwrap();
    // Planted in the destination: directories the snapshot has are symlinks out.
    std::os::unix::fs::symlink(&outside, dest.join("etc")).unwrap();
    std::os::unix::fs::symlink(&outside, dest.join("opq")).unwrap();
    export_tree(&store, &s, &dest).unwrap();

    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "wrote through a planted symlink"
    );
    let l = listing(&dest);
    let names: Vec<_> = l.iter().map(|x| x.split(' ').next().unwrap()).collect();
    assert_eq!(
        names,
        [
            "bin",
            "bin/tool",
            "bin/tool2",
            "etc",
            "etc/a",
            "lnk",
            "opq",
            "opq/new"
        ]
    );
    assert_eq!(fs::read_to_string(dest.join("etc/a")).unwrap(), "a2");
    assert_eq!(
        fs::read_link(dest.join("lnk")).unwrap(),
        std::path::Path::new("/etc/a")
    );
    // Hard links within a layer survive; metadata is the layer's.
    let tool = common::line(&l, "bin/tool")
        .split(" ino")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        common::line(&l, "bin/tool2").contains(&format!(" ino{tool} ")),
        "{l:#?}"
    );
    let layer_lines = listing(&store.diff_dir(&s.layers()[1]));
    assert_eq!(
        common::line(&l, "opq/new")
            .split(" ino")
            .nth(1)
            .unwrap()
            .split_once(' ')
            .unwrap()
            .1,
        common::line(&layer_lines, "opq/new")
            .split(" ino")
            .nth(1)
            .unwrap()
            .split_once(' ')
            .unwrap()
            .1
    );

    // Exporting again over the result converges to the same tree.
    export_tree(&store, &s, &dest).unwrap();
    assert_eq!(listing(&dest), l);
}

#[test]
fn exporting_scratch_makes_an_empty_directory() {
    let (d, store) = common::store();
    let dest = d.path().join("empty");
    export_tree(&store, &Snapshot::scratch(), &dest).unwrap();
    assert_eq!(fs::read_dir(&dest).unwrap().count(), 0);
}

#[test]
fn read_only_directories_export_and_re_export_unprivileged() {
    use std::os::unix::fs::PermissionsExt;
    let (d, store) = common::store();
    let s = layer(&store, &Snapshot::scratch(), "01", |r| {
        write(r, "ro/sub/f", "f");
        for p in ["ro/sub/f", "ro/sub", "ro", ""] {
            std::os::unix::fs::lchown(r.join(p), Some(65534), Some(65534)).unwrap();
        }
        fs::set_permissions(r.join("ro/sub"), fs::Permissions::from_mode(0o555)).unwrap();
        fs::set_permissions(r.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
    });
    let dest = d.path().join("out");
    fs::create_dir(&dest).unwrap();
    std::os::unix::fs::lchown(&dest, Some(65534), Some(65534)).unwrap();
    // Credentials are per thread: this one writes as an ordinary user would, without
    // the capabilities that let root write into a 0555 directory.
    std::thread::scope(|sc| {
        sc.spawn(|| {
            unsafe {
                libc::setfsgid(65534);
                libc::setfsuid(65534);
            }
            export_tree(&store, &s, &dest).unwrap();
            export_tree(&store, &s, &dest).unwrap();
        });
    });
    let l = listing(&dest);
    assert_eq!(
        common::line(&l, "ro").split(' ').nth(2),
        Some("555"),
        "{l:#?}"
    );
    assert_eq!(fs::read_to_string(dest.join("ro/sub/f")).unwrap(), "f");
}
