//! The archive outputs besides OCI: `type=docker` (read back with skopeo and
//! umoci), `type=tar` (the filesystem), and what `--iidfile` and the metadata
//! file record of them, through the daemon and in one-shot `buildd build`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use buildd_testkit::require_tool;
use buildd_tests::daemon::Daemon;
use buildd_tests::{Workspace, bctl_bin, umoci_unpack};

fn two_files() -> Workspace {
    let ws = Workspace::new();
    ws.dockerfile("FROM scratch\nCOPY a.txt /a.txt\nCOPY b.txt /dir/b.txt\nCMD [\"/a\"]\n")
        .file("a.txt", "a\n", 0o644)
        .file("b.txt", "b\n", 0o600);
    ws
}

/// Every entry of a tar archive: name → (bytes, mode).
fn tar_entries(bytes: &[u8]) -> BTreeMap<String, (Vec<u8>, u32)> {
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(bytes);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mode = e.header().mode().unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(name, (data, mode));
    }
    out
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Checks a docker archive as `docker load` reads it (manifest.json → config
/// and layers by path) and returns its config digest, the image ID.
fn check_docker_archive(archive: &Path, tag: &str) -> String {
    let entries = tar_entries(&fs::read(archive).unwrap());
    let manifest: serde_json::Value = serde_json::from_slice(&entries["manifest.json"].0).unwrap();
    let image = &manifest[0];
    assert_eq!(image["RepoTags"], serde_json::json!([tag]), "{manifest}");
    let config_path = image["Config"].as_str().unwrap();
    let config = &entries[config_path].0;
    let id = sha256(config);
    assert_eq!(config_path, format!("blobs/sha256/{}", &id[7..]));
    let config: serde_json::Value = serde_json::from_slice(config).unwrap();
    let layers = image["Layers"].as_array().unwrap();
    assert_eq!(
        layers.len(),
        config["rootfs"]["diff_ids"].as_array().unwrap().len()
    );
    for l in layers {
        let path = l.as_str().unwrap();
        assert_eq!(sha256(&entries[path].0)[7..], path["blobs/sha256/".len()..]);
    }
    // The OCI side of the same archive keeps OCI's media types, as BuildKit's
    // docker exporter does unless told `oci-mediatypes=false`.
    let index: serde_json::Value = serde_json::from_slice(&entries["index.json"].0).unwrap();
    let m = &index["manifests"][0];
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(m["platform"]["os"], "linux", "{index}");
    let manifest_blob = &entries[&format!(
        "blobs/sha256/{}",
        m["digest"].as_str().unwrap().trim_start_matches("sha256:")
    )]
        .0;
    let manifest_blob: serde_json::Value = serde_json::from_slice(manifest_blob).unwrap();
    assert_eq!(manifest_blob["config"]["digest"].as_str().unwrap(), id);
    assert_eq!(
        manifest_blob["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    id
}

/// skopeo reads it as a docker archive, and what it copies out unpacks (umoci)
/// to the build's files.
fn check_with_skopeo_and_umoci(ws: &Workspace, archive: &Path) {
    if !require_tool("skopeo") || !require_tool("umoci") {
        return;
    }
    let out = Command::new("skopeo")
        .args(["inspect", &format!("docker-archive:{}", archive.display())])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inspect: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2, "{inspect}");
    let layout = ws.path("copied");
    let out = Command::new("skopeo")
        .args([
            "copy",
            &format!("docker-archive:{}", archive.display()),
            &format!("oci:{}:copied", layout.display()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rootfs = umoci_unpack(&layout, "copied", &ws.path("bundle"));
    assert_eq!(fs::read_to_string(rootfs.join("a.txt")).unwrap(), "a\n");
    assert_eq!(fs::read_to_string(rootfs.join("dir/b.txt")).unwrap(), "b\n");
}

fn check_filesystem_tar(bytes: &[u8]) {
    let entries = tar_entries(bytes);
    let names: Vec<&str> = entries.keys().map(String::as_str).collect();
    // As BuildKit's tar exporter writes them: sorted, no "./", directories with a
    // trailing slash.
    assert_eq!(names, ["a.txt", "dir/", "dir/b.txt"], "{names:?}");
    assert_eq!(entries["a.txt"], (b"a\n".to_vec(), 0o644));
    assert_eq!(entries["dir/b.txt"], (b"b\n".to_vec(), 0o600));
}

/// Checks `--iidfile` and `--metadata-file` of an image whose ID is `id`: as
/// `docker build --iidfile`, the ID is the config's digest; the metadata is
/// buildx's. Returns the metadata.
fn check_id_files(iid: &Path, meta: &Path, id: &str) -> serde_json::Value {
    assert_eq!(fs::read_to_string(iid).unwrap(), id);
    let meta: serde_json::Value = serde_json::from_slice(&fs::read(meta).unwrap()).unwrap();
    assert_eq!(meta["containerimage.config.digest"], id, "{meta}");
    let descriptor = &meta["containerimage.descriptor"];
    assert_eq!(
        descriptor["digest"], meta["containerimage.digest"],
        "{meta}"
    );
    assert_eq!(
        descriptor["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(descriptor["platform"]["os"], "linux", "{meta}");
    meta
}

#[test]
fn the_daemon_writes_docker_and_tar_outputs_and_the_image_id() {
    let ws = two_files();
    let daemon = Daemon::start(&ws);
    let (docker, fs_tar) = (ws.path("image.tar"), ws.path("fs.tar"));
    let (iid, meta) = (ws.path("iid"), ws.path("meta.json"));
    daemon
        .build(
            &ws,
            &[
                "-o",
                &format!(
                    "type=docker,dest={},name=example.com/app:1",
                    docker.display()
                ),
                "-o",
                &format!("type=tar,dest={}", fs_tar.display()),
                "--iidfile",
                iid.to_str().unwrap(),
                "--metadata-file",
                meta.to_str().unwrap(),
            ],
        )
        .success();
    let id = check_docker_archive(&docker, "example.com/app:1");
    check_filesystem_tar(&fs::read(&fs_tar).unwrap());
    check_id_files(&iid, &meta, &id);
    check_with_skopeo_and_umoci(&ws, &docker);

    // The filesystem to stdout, as `-o type=tar,dest=- > fs.tar`.
    let out = Command::new(bctl_bin())
        .args(["--addr", daemon.addr(), "build", "--progress=quiet"])
        .args(["-o", "type=tar,dest=-"])
        .arg(ws.ctx())
        .env_remove("BUILDD_ADDR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_filesystem_tar(&out.stdout);

    // A build that made no image has no ID to write.
    let run = daemon
        .build(
            &ws,
            &[
                "-o",
                &format!("type=tar,dest={}", fs_tar.display()),
                "--iidfile",
                iid.to_str().unwrap(),
            ],
        )
        .failure();
    assert!(run.stderr.contains("--iidfile"), "{}", run.stderr);
}

#[test]
fn one_shot_builds_write_docker_and_tar_outputs() {
    let ws = two_files();
    let (docker, fs_tar) = (ws.path("image.tar"), ws.path("fs.tar"));
    let (iid, meta) = (ws.path("iid"), ws.path("meta.json"));
    let run = ws
        .build(&[
            "-o",
            &format!("type=docker,dest={},name=app", docker.display()),
            "-o",
            &format!("type=tar,dest={}", fs_tar.display()),
            "--iidfile",
            iid.to_str().unwrap(),
            "--metadata-file",
            meta.to_str().unwrap(),
        ])
        .success();
    // A Docker Hub name is written short, as docker does.
    let id = check_docker_archive(&docker, "app:latest");
    // The same files as bctl writes.
    let meta = check_id_files(&iid, &meta, &id);
    assert_eq!(meta["containerimage.digest"], run.stdout.trim(), "{meta}");

    // A build that made no image has no ID to write.
    let run = ws
        .build(&[
            "-o",
            &format!("type=tar,dest={}", fs_tar.display()),
            "--iidfile",
            ws.path("no-iid").to_str().unwrap(),
        ])
        .failure();
    assert!(
        run.stderr.contains("--iidfile: no output"),
        "{}",
        run.stderr
    );
    assert!(!ws.path("no-iid").exists());
    check_filesystem_tar(&fs::read(&fs_tar).unwrap());
    let index: serde_json::Value =
        serde_json::from_slice(&tar_entries(&fs::read(&docker).unwrap())["index.json"].0).unwrap();
    let annotations = &index["manifests"][0]["annotations"];
    assert_eq!(
        annotations["io.containerd.image.name"],
        "docker.io/library/app:latest"
    );
    assert_eq!(annotations["org.opencontainers.image.ref.name"], "latest");
}
