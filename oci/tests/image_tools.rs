//! Checks layouts against real OCI tooling: skopeo reads the tar form and umoci unpacks the
//! directory form.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use buildd_oci::{
    ANNOTATION_REF_NAME, Compression, Descriptor, ImageConfig, Index, LayerOptions, LayoutTarget,
    LayoutWriter, MEDIA_TYPE_CONFIG, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, Manifest,
    host_platform, json_blob, rfc3339, write_layer,
};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Writes a one-layer image holding `hello.txt` to `target`, and as root every kind
/// of entry ([`common::build_diff`]); returns whether it holds those (without root
/// that part of the test is skipped, said through `buildd_testkit`).
#[track_caller]
fn write_image(work: &Path, target: LayoutTarget) -> bool {
    let diff = work.join("diff");
    fs::create_dir(&diff).unwrap();
    fs::write(diff.join("hello.txt"), b"hello from buildd\n").unwrap();
    let every_kind = buildd_testkit::require_root(
        "an image with devices, whiteouts, ownership and trusted xattrs",
    );
    if every_kind {
        // PAX ids and names, hardlinks, devices and overlay markers, read by Go's tar.
        common::build_diff(&diff, false);
    }
    let layer_path = work.join("layer.tar.gz");
    let opts = LayerOptions {
        compression: Compression::Gzip,
        source_date_epoch: Some(0),
    };
    let layer = write_layer(&diff, &opts, fs::File::create(&layer_path).unwrap()).unwrap();

    let platform = host_platform();
    let mut config = ImageConfig {
        created: Some(rfc3339(0)),
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
        ..Default::default()
    };
    config.config.cmd = Some(vec!["/bin/sh".to_owned()]);
    config.rootfs.diff_ids.push(layer.diff_id.to_string());

    let mut w = LayoutWriter::new(target).unwrap();
    w.add_blob_file(layer.digest, layer.size, &layer_path)
        .unwrap();
    let config_bytes = json_blob(&config);
    let config_digest = w.add_blob_bytes(&config_bytes).unwrap();
    let manifest = Manifest {
        schema_version: 2,
        media_type: MEDIA_TYPE_MANIFEST.to_owned(),
        config: Descriptor::new(MEDIA_TYPE_CONFIG, config_digest, config_bytes.len() as u64),
        layers: vec![Descriptor::new(layer.media_type, layer.digest, layer.size)],
        annotations: BTreeMap::new(),
    };
    let manifest_bytes = json_blob(&manifest);
    let manifest_digest = w.add_blob_bytes(&manifest_bytes).unwrap();
    let mut desc = Descriptor::new(
        MEDIA_TYPE_MANIFEST,
        manifest_digest,
        manifest_bytes.len() as u64,
    );
    desc.platform = Some(platform);
    desc.annotations
        .insert(ANNOTATION_REF_NAME.to_owned(), "latest".to_owned());
    let index = Index {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_INDEX.to_owned()),
        manifests: vec![desc],
        annotations: BTreeMap::new(),
    };
    w.finish(&index).unwrap();
    every_kind
}

#[test]
fn skopeo_reads_the_tar_layout() {
    if !buildd_testkit::require_tool("skopeo") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let tar = work.path().join("image.tar");
    write_image(work.path(), LayoutTarget::Tar(tar.clone()));
    let out = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}", tar.display())));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Os"], "linux");
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1);
    assert_eq!(v["Created"], "1970-01-01T00:00:00Z");
}

#[test]
fn umoci_unpacks_the_dir_layout() {
    if !buildd_testkit::require_tool("umoci") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("layout");
    let every_kind = write_image(work.path(), LayoutTarget::Dir(dir.clone()));
    let bundle = work.path().join("bundle");
    let mut cmd = Command::new("umoci");
    cmd.arg("unpack")
        .arg("--image")
        .arg(format!("{}:latest", dir.display()))
        .arg(&bundle);
    if !common::is_root() {
        cmd.arg("--rootless");
    }
    run(&mut cmd);
    assert_eq!(
        fs::read_to_string(bundle.join("rootfs/hello.txt")).unwrap(),
        "hello from buildd\n"
    );
    if every_kind {
        use std::os::unix::fs::MetadataExt;
        let rootfs = bundle.join("rootfs");
        let tool = fs::metadata(rootfs.join("bin/tool")).unwrap();
        assert_eq!((tool.uid(), tool.gid()), (1000, 3_000_000));
        assert_eq!(
            tool.ino(),
            fs::metadata(rootfs.join("bin/tool2")).unwrap().ino()
        );
        let long = rootfs.join(common::LONG_DIR).join(common::LONG_FILE);
        assert_eq!(fs::read(long).unwrap(), b"long");
        assert!(fs::symlink_metadata(rootfs.join("gone")).is_err());
        assert_eq!(fs::read(rootfs.join("opq/keep")).unwrap(), b"kept");
    }
}
