//! The local image store: `buildd import`, `FROM NAME`, `-t NAME`, `buildd images`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use buildd_testkit::require_tool;
use buildd_tests::*;

/// A small root filesystem tarball with a user `app` (1000:1000).
fn rootfs_tar(path: &std::path::Path) {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    ));
    let mut add = |name: &str, mode: u32, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(if name.ends_with('/') {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        b.append_data(&mut h, name, data).unwrap();
    };
    add("etc/", 0o755, b"");
    add(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
    );
    add("etc/group", 0o644, b"root:x:0:\napp:x:1000:\n");
    add("home/", 0o755, b"");
    add("bin/", 0o755, b"");
    add("bin/tool", 0o755, b"#!/bin/sh\necho tool\n");
    b.into_inner().unwrap().finish().unwrap();
}

fn buildd(ws: &Workspace, args: &[&str]) -> Run {
    Run::of(
        Command::new(buildd_bin())
            .arg("--root")
            .arg(ws.root())
            .args(args)
            .output()
            .unwrap(),
    )
}

#[test]
fn import_then_build_from_the_local_store() {
    let ws = Workspace::new();
    let tarball = ws.path("rootfs.tar.gz");
    rootfs_tar(&tarball);
    let imported = buildd(&ws, &["import", tarball.to_str().unwrap(), "base"]).success();
    assert!(
        imported.stdout.trim().starts_with("sha256:"),
        "{}",
        imported.stdout
    );

    ws.dockerfile(
        "FROM base\nCOPY --chown=app:app hello.txt /home/app/\nUSER app\nENV GREETING=hi\n",
    )
    .file("hello.txt", "hello", 0o644);
    let out = ws.path("out");
    ws.build(&[
        "-t",
        "app:1",
        "-o",
        &format!("type=local,dest={}", out.display()),
    ])
    .success();
    assert_eq!(
        fs::read_to_string(out.join("bin/tool")).unwrap(),
        "#!/bin/sh\necho tool\n"
    );
    let hello = fs::metadata(out.join("home/app/hello.txt")).unwrap();
    assert_eq!(
        (hello.uid(), hello.gid()),
        (1000, 1000),
        "--chown by name through the base's passwd"
    );

    let list = buildd(&ws, &["images"]).success();
    assert!(list.stdout.contains("base:latest"), "{}", list.stdout);
    assert!(list.stdout.contains("app:1"), "{}", list.stdout);

    // The tagged result is itself a base, config included.
    ws.dockerfile("FROM app:1\nCOPY hello.txt /again.txt\n");
    let oci = ws.path("img.tar");
    ws.build(&["-o", &format!("type=oci,dest={}", oci.display())])
        .success();
    if require_tool("skopeo") {
        let config = skopeo_config(&oci);
        assert_eq!(config["config"]["User"], "app");
        let env = config["config"]["Env"].to_string();
        assert!(
            env.contains("GREETING=hi") && env.contains("PATH="),
            "{env}"
        );
        // base layer + COPY + COPY
        assert_eq!(
            config["rootfs"]["diff_ids"].as_array().unwrap().len(),
            3,
            "{config:#}"
        );
    }
}

#[test]
fn from_an_unknown_image_says_where_it_looked() {
    let ws = Workspace::new();
    // A loopback registry nobody serves: refused at once, no DNS or network needed.
    ws.dockerfile("FROM 127.0.0.1:1/nothere:1\n");
    let run = ws.build(&[]).failure();
    assert!(run.stderr.contains("Dockerfile:1"), "{}", run.stderr);
    assert!(
        run.stderr.contains("not in the local image store")
            && run.stderr.contains("pulling 127.0.0.1:1/nothere"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_image_names_are_refused_before_building() {
    let ws = Workspace::new();
    ws.dockerfile("FROM scratch\n");
    let run = ws.build(&["-t", "bad name"]).failure();
    assert!(run.stderr.contains("invalid image name"), "{}", run.stderr);
}
