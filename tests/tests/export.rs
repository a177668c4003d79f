//! A real build of examples/hello, checked with skopeo and umoci.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use buildd_testkit::require_tool;
use buildd_tests::*;

fn example() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello"))
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs::copy(e.path(), &dest).unwrap();
        }
    }
}

fn hello_workspace() -> Workspace {
    let ws = Workspace::new();
    copy_dir(example(), &ws.ctx());
    ws
}

#[test]
fn oci_archive_passes_skopeo_and_umoci() {
    if !require_tool("skopeo") || !require_tool("umoci") {
        return;
    }
    let ws = hello_workspace();
    let out = ws.path("hello.tar");
    ws.build(&[
        "-o",
        &format!("type=oci,dest={},name=latest", out.display()),
    ])
    .success();

    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o644,
        "the archive is an ordinary readable file"
    );
    let config = skopeo_config(&out);
    let c = &config["config"];
    assert_eq!(c["Entrypoint"], serde_json::json!(["/usr/local/bin/hello"]));
    assert_eq!(c["Cmd"], serde_json::json!(["--loud"]));
    assert_eq!(c["WorkingDir"], "/work");
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["ExposedPorts"], serde_json::json!({"8080/tcp": {}}));
    assert_eq!(c["Labels"]["org.opencontainers.image.title"], "hello");
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"APP_HOME=/work"), "{env:?}");
    assert!(env.iter().any(|e| e.starts_with("PATH=")), "{env:?}");
    // One diff_id per layer, and one non-empty history entry per layer.
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap().len();
    let with_layer = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["empty_layer"] != serde_json::json!(true))
        .count();
    assert_eq!(diff_ids, with_layer, "{config:#}");

    let layout = ws.path("layout");
    untar(&out, &layout);
    let rootfs = umoci_unpack(&layout, "latest", &ws.path("bundle"));
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/greeting.txt")).unwrap(),
        "hello from buildd\n"
    );
    let hello = fs::metadata(rootfs.join("usr/local/bin/hello")).unwrap();
    assert_eq!(hello.permissions().mode() & 0o7777, 0o755);
    assert!(rootfs.join("work").is_dir());
    // Only what the final stage copies: the assets stage's notes stay behind.
    assert!(!rootfs.join("src").exists());
}

#[test]
fn local_output_is_the_merged_filesystem() {
    let ws = hello_workspace();
    let dest = ws.path("out");
    ws.build(&["-o", &format!("type=local,dest={}", dest.display())])
        .success();
    assert_eq!(
        fs::read_to_string(dest.join("etc/greeting.txt")).unwrap(),
        "hello from buildd\n"
    );
    assert!(dest.join("usr/local/bin/hello").is_file());
    assert!(dest.join("work").is_dir());
}

#[test]
fn dockerignore_keeps_files_out_of_the_image() {
    let ws = Workspace::new();
    ws.dockerfile("FROM scratch\nCOPY . /ctx/\n")
        .file(
            ".dockerignore",
            "secret*\n!secret-but-public\nlogs/**\n",
            0o644,
        )
        .file("keep.txt", "keep", 0o644)
        .file("secret.key", "nope", 0o600)
        .file("secret-but-public", "fine", 0o644)
        .file("logs/a/b.log", "noise", 0o644);
    let dest = ws.path("out");
    ws.build(&["-o", &format!("type=local,dest={}", dest.display())])
        .success();
    assert!(dest.join("ctx/keep.txt").is_file());
    assert!(dest.join("ctx/secret-but-public").is_file());
    assert!(!dest.join("ctx/secret.key").exists());
    assert!(!dest.join("ctx/logs/a/b.log").exists());
}

#[test]
fn same_input_gives_byte_identical_layers_from_cold_roots() {
    let ws = hello_workspace();
    let mut layers = Vec::new();
    for n in 0..2 {
        let dir = ws.path(&format!("layout-{n}"));
        ws.build_in(
            &ws.path(&format!("root-{n}")),
            &["-o", &format!("type=oci,tar=false,dest={}", dir.display())],
        )
        .success();
        layers.push(layer_digests(&dir));
    }
    assert!(!layers[0].is_empty());
    assert_eq!(layers[0], layers[1]);
}

/// A fully cached build re-exports nothing it has: its layers come from the
/// blobs recorded for them, not from tarring the layer directories again. A
/// layer changed behind the engine's back (never done outside this test) shows
/// which: the warm export still carries the blob made before the change.
#[test]
fn a_warm_build_exports_the_recorded_blobs() {
    let ws = hello_workspace();
    let root = ws.path("root");
    let export = |n: u32| {
        let dir = ws.path(&format!("layout-{n}"));
        let run = ws.build_in(
            &root,
            &["-o", &format!("type=oci,tar=false,dest={}", dir.display())],
        );
        (layer_digests(&dir), run.success())
    };
    let (cold, _) = export(0);
    let mut changed = 0;
    for layer in fs::read_dir(root.join("layers")).unwrap().flatten() {
        for f in walk_files(&layer.path()) {
            // Replaced, not written through: a layer file may be a hard link.
            fs::remove_file(&f).unwrap();
            fs::write(&f, b"changed after export").unwrap();
            changed += 1;
        }
    }
    assert!(changed > 0, "the hello build makes layers with files");
    let (warm, run) = export(1);
    assert_eq!(cold, warm);
    assert!(run.stderr.contains("CACHED"), "{}", run.stderr);
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        let t = e.file_type().unwrap();
        if t.is_dir() {
            out.extend(walk_files(&e.path()));
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    out
}

/// SOURCE_DATE_EPOCH (a build arg, or `buildd build`'s environment) pins every
/// timestamp an image carries: config and history `created`, and the mtime of
/// every file in new layers, RUN outputs and copied context files included. Two
/// builds from fresh roots, with contexts written at different times, give one
/// manifest digest.
#[test]
fn source_date_epoch_gives_one_manifest_from_fresh_roots_at_different_times() {
    const EPOCH: &str = "1700000000";
    let build = |n: u32, by_env: bool| {
        let ws = Workspace::new();
        if !busybox_context(&ws, &["sh", "mkdir", "touch"]) {
            return None;
        }
        ws.dockerfile(
            "FROM scratch\nCOPY rootfs/ /\nCOPY app.txt /app/\n\
             RUN mkdir -p /out/sub && echo made > /out/sub/file && touch /out/stamp\n",
        )
        .file("app.txt", "the app\n", 0o644);
        let dir = ws.path("layout");
        let output = format!("type=oci,tar=false,dest={}", dir.display());
        let mut cmd = std::process::Command::new(buildd_bin());
        cmd.arg("--root").arg(ws.path(&format!("root-{n}")));
        cmd.args(["build", "--progress=plain", "-o", &output]);
        if by_env {
            cmd.env("SOURCE_DATE_EPOCH", EPOCH);
        } else {
            cmd.env_remove("SOURCE_DATE_EPOCH");
            cmd.args(["--build-arg", &format!("SOURCE_DATE_EPOCH={EPOCH}")]);
        }
        Run::of(cmd.arg(ws.ctx()).output().unwrap()).success();
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
        let manifest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
        Some((ws, dir, manifest))
    };
    let Some((_ws0, first, digest0)) = build(0, false) else {
        return;
    };
    // Every wall-clock second differs between the two builds.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (_ws1, _, digest1) = build(1, true).unwrap();
    assert_eq!(
        digest0, digest1,
        "same manifest from two roots at two times"
    );

    let blob = |d: &str| {
        first
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(blob(&digest0)).unwrap()).unwrap();
    let config: serde_json::Value = serde_json::from_slice(
        &fs::read(blob(manifest["config"]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let pinned = "2023-11-14T22:13:20Z";
    assert_eq!(config["created"], pinned, "{config:#}");
    for h in config["history"].as_array().unwrap() {
        assert_eq!(h["created"], pinned, "{config:#}");
    }
    // Every entry of every layer, RUN's new files included, carries the epoch
    // (or an older time: clamped, never raised).
    let epoch: u64 = EPOCH.parse().unwrap();
    let mut entries = 0;
    for layer in manifest["layers"].as_array().unwrap() {
        let file = fs::File::open(blob(layer["digest"].as_str().unwrap())).unwrap();
        let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(file));
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            let mtime = e.header().mtime().unwrap();
            assert!(mtime <= epoch, "{:?} has mtime {mtime}", e.path().unwrap());
            entries += 1;
        }
    }
    assert!(entries > 5, "the layers hold the copied and RUN-made files");
}
