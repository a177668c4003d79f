//! Against a real Distribution registry: push and pull round trips, chunked
//! uploads, mounts, basic auth, platform selection, and skopeo cross-checks.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use buildd_oci::{
    MEDIA_TYPE_DOCKER_CONFIG, MEDIA_TYPE_DOCKER_LAYER_GZIP, MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_DOCKER_MANIFEST_LIST, MEDIA_TYPE_INDEX,
};
use buildd_registry::{
    BlobPush, BlobSource, Client, CredentialSource, DockerConfig, ErrorKind, NoCredentials,
    RegistryConfig,
};
use buildd_testkit::require_tool;
use buildd_tests::registry::{TestRegistry, auth_registry_available, registry_available};
use common::{image, image_typed, index, oci_index, platform, push_image, reference};

fn client(config: RegistryConfig, creds: impl CredentialSource + 'static) -> Client {
    Client::new(config, Arc::new(creds)).unwrap()
}

fn anon() -> Client {
    client(RegistryConfig::default(), NoCredentials)
}

fn docker_config(dir: &Path, host: &str, user: &str, pass: &str) -> DockerConfig {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    std::fs::write(
        dir.join("config.json"),
        format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#),
    )
    .unwrap();
    DockerConfig::from_dir(dir).unwrap()
}

#[tokio::test]
async fn anonymous_push_then_pull_round_trips() {
    if !registry_available() {
        return;
    }
    let reg = TestRegistry::start();
    let c = anon();
    let host = buildd_oci::host_platform();
    let img = image(
        &host,
        &[&[("hello.txt", b"hello\n")], &[("etc/motd", b"welcome\n")]],
    );
    let r = reference(&format!("{}/demo/app:v1", reg.host()));
    push_image(&c, &r, &img).await;

    let resolved = c.resolve(&r, &host).await.unwrap();
    assert_eq!(resolved.digest, img.digest);
    assert_eq!(resolved.root_digest, img.digest);
    assert_eq!(resolved.bytes, img.manifest_bytes);
    assert_eq!(resolved.manifest, img.manifest);
    assert_eq!(resolved.media_type, img.manifest.media_type);
    for (desc, bytes) in &img.blobs {
        let mut sink = Vec::new();
        c.fetch_blob(&r, desc, &mut sink).await.unwrap();
        assert_eq!(&sink, bytes);
    }
    // Pinned by digest, the same manifest comes back.
    let pinned = c.fetch_manifest(&r.with_digest(img.digest)).await.unwrap();
    assert_eq!(pinned.bytes, img.manifest_bytes);

    // A second push finds every blob there.
    let (desc, bytes) = &img.blobs[1];
    let again = c
        .push_blob(&r, desc, &BlobSource::Bytes(bytes.clone()), None)
        .await
        .unwrap();
    assert_eq!(again, BlobPush::Exists);

    // A missing tag is "not found", naming image and tag.
    let err = c
        .fetch_manifest(&reference(&format!("{}/demo/app:nope", reg.host())))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!("pulling {}/demo/app: manifest nope not found", reg.host())
    );

    if require_tool("skopeo") {
        let out = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{r}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, img.manifest_bytes);
    }
}

#[tokio::test]
async fn chunked_upload_from_a_file_and_cross_repository_mount() {
    if !registry_available() {
        return;
    }
    let reg = TestRegistry::start();
    let config = RegistryConfig {
        upload_chunk_size: Some(100),
        ..Default::default()
    };
    let c = client(config, NoCredentials);
    let host = buildd_oci::host_platform();
    // Incompressible content, so the layer spans several 100-byte chunks.
    let noise: Vec<u8> = (0u32..2000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let img = image(&host, &[&[("noise.bin", &noise)]]);
    let (layer, layer_bytes) = &img.blobs[1];
    assert!(layer.size > 300, "layer of {} bytes", layer.size);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layer");
    std::fs::write(&path, layer_bytes).unwrap();
    let a = reference(&format!("{}/team/a:latest", reg.host()));
    let pushed = c
        .push_blob(&a, layer, &BlobSource::Path(path.clone()), None)
        .await
        .unwrap();
    assert_eq!(pushed, BlobPush::Uploaded);
    assert_eq!(c.fetch_blob_bytes(&a, layer).await.unwrap(), *layer_bytes);

    let b = reference(&format!("{}/team/b:latest", reg.host()));
    assert!(!c.blob_exists(&b, layer).await.unwrap());
    let mounted = c
        .push_blob(&b, layer, &BlobSource::Path(path.clone()), Some("team/a"))
        .await
        .unwrap();
    assert_eq!(mounted, BlobPush::Mounted);
    assert!(c.blob_exists(&b, layer).await.unwrap());

    // A source whose size disagrees with the descriptor is refused before upload.
    std::fs::write(&path, b"short").unwrap();
    let other = reference(&format!("{}/team/c:latest", reg.host()));
    let err = c
        .push_blob(&other, layer, &BlobSource::Path(path), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "pushing {}/team/c: layer {}: size mismatch",
            reg.host(),
            layer.digest
        )),
        "{err}"
    );
}

#[tokio::test]
async fn index_resolves_to_the_requested_platform() {
    if !registry_available() {
        return;
    }
    let reg = TestRegistry::start();
    let c = anon();
    let amd = platform("linux", "amd64", None);
    let arm = platform("linux", "arm64", Some("v8"));
    let img_amd = image(&amd, &[&[("arch", b"amd64")]]);
    let img_arm = image(&arm, &[&[("arch", b"arm64")]]);
    let r = reference(&format!("{}/multi:1", reg.host()));
    for img in [&img_amd, &img_arm] {
        push_image(&c, &r.at_digest(img.digest), img).await;
    }
    let (idx, idx_digest) = oci_index(&[(&img_amd, amd.clone()), (&img_arm, arm.clone())]);
    assert_eq!(
        c.push_manifest(&r, MEDIA_TYPE_INDEX, &idx).await.unwrap(),
        idx_digest
    );

    for (plat, img) in [(&amd, &img_amd), (&arm, &img_arm)] {
        let got = c.resolve(&r, plat).await.unwrap();
        assert_eq!(got.digest, img.digest, "{plat:?}");
        assert_eq!(got.root_digest, idx_digest);
        assert_eq!(got.manifest.config, img.manifest.config);
    }
    let top = c.fetch_manifest(&r).await.unwrap();
    assert_eq!(
        (top.digest, top.media_type.as_str()),
        (idx_digest, MEDIA_TYPE_INDEX)
    );

    let err = c
        .resolve(&r, &platform("linux", "s390x", None))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "pulling {}/multi: no manifest for platform linux/s390x in index {idx_digest} \
             (it has linux/amd64, linux/arm64/v8)",
            reg.host()
        )
    );
}

#[tokio::test]
async fn docker_v2_manifest_list_is_understood() {
    if !registry_available() {
        return;
    }
    let reg = TestRegistry::start();
    let c = anon();
    let amd = platform("linux", "amd64", None);
    let img = image_typed(
        &amd,
        &[&[("f", b"docker")]],
        MEDIA_TYPE_DOCKER_MANIFEST,
        MEDIA_TYPE_DOCKER_CONFIG,
        MEDIA_TYPE_DOCKER_LAYER_GZIP,
    );
    let r = reference(&format!("{}/dockerish:latest", reg.host()));
    push_image(&c, &r.at_digest(img.digest), &img).await;
    let (list, list_digest) = index(&[(&img, amd.clone())], MEDIA_TYPE_DOCKER_MANIFEST_LIST);
    c.push_manifest(&r, MEDIA_TYPE_DOCKER_MANIFEST_LIST, &list)
        .await
        .unwrap();
    let got = c.resolve(&r, &amd).await.unwrap();
    assert_eq!(got.media_type, MEDIA_TYPE_DOCKER_MANIFEST);
    assert_eq!(got.digest, img.digest);
    assert_eq!(got.root_digest, list_digest);
    let config = c.fetch_blob_bytes(&r, &got.manifest.config).await.unwrap();
    assert_eq!(config, img.blobs[0].1);
}

#[tokio::test]
async fn basic_auth_with_docker_config_credentials() {
    if !auth_registry_available() {
        return;
    }
    let reg = TestRegistry::start_with_basic_auth("alice", "s3cret");
    let host = buildd_oci::host_platform();
    let img = image(&host, &[&[("private", b"data")]]);
    let r = reference(&format!("{}/private/app:v1", reg.host()));

    let dir = tempfile::tempdir().unwrap();
    let good = client(
        RegistryConfig::default(),
        docker_config(dir.path(), &reg.host(), "alice", "s3cret"),
    );
    push_image(&good, &r, &img).await;
    let got = good.resolve(&r, &host).await.unwrap();
    assert_eq!(got.digest, img.digest);
    let layer = &img.blobs[1];
    assert_eq!(good.fetch_blob_bytes(&r, &layer.0).await.unwrap(), layer.1);

    let err = anon().resolve(&r, &host).await.unwrap_err();
    assert!(matches!(err.kind, ErrorKind::AuthRequired { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "pulling {0}/private/app: authentication required: {0} asks for credentials \
             and none are configured",
            reg.host()
        )
    );

    let dir = tempfile::tempdir().unwrap();
    let wrong = client(
        RegistryConfig::default(),
        docker_config(
            dir.path(),
            &format!("http://{}/v2/", reg.host()),
            "alice",
            "wrong",
        ),
    );
    let err = wrong.resolve(&r, &host).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "pulling {0}/private/app: unauthorized: {0} rejected the credentials of user \"alice\"",
            reg.host()
        )
    );
    let err = wrong
        .push_manifest(&r, &img.manifest.media_type, &img.manifest_bytes)
        .await
        .unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Unauthorized { .. }), "{err}");
}

#[tokio::test]
async fn pulls_what_skopeo_pushed() {
    if !registry_available() || !require_tool("skopeo") {
        return;
    }
    let reg = TestRegistry::start();
    let host = buildd_oci::host_platform();
    let img = image(&host, &[&[("bin/tool", b"#!/bin/sh\necho hi\n")]]);

    // An OCI layout written by buildd-oci, copied by skopeo into the registry.
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let mut w =
        buildd_oci::LayoutWriter::new(buildd_oci::LayoutTarget::Dir(layout.clone())).unwrap();
    for (_, bytes) in &img.blobs {
        w.add_blob_bytes(bytes).unwrap();
    }
    w.add_blob_bytes(&img.manifest_bytes).unwrap();
    let (idx, _) = oci_index(&[(&img, host.clone())]);
    let mut idx: buildd_oci::Index = serde_json::from_slice(&idx).unwrap();
    idx.manifests[0]
        .annotations
        .insert(buildd_oci::ANNOTATION_REF_NAME.into(), "v1".into());
    w.finish(&idx).unwrap();
    let out = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v1", layout.display()))
        .arg(format!("docker://{}/from-skopeo:v1", reg.host()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let c = anon();
    let r = reference(&format!("{}/from-skopeo:v1", reg.host()));
    let got = c.resolve(&r, &host).await.unwrap();
    assert_eq!(got.manifest.layers, img.manifest.layers);
    for (desc, bytes) in &img.blobs {
        assert_eq!(&c.fetch_blob_bytes(&r, desc).await.unwrap(), bytes);
    }
}

#[tokio::test]
async fn real_mirror_serves_first_and_the_origin_backs_it_up() {
    if !registry_available() {
        return;
    }
    let full = TestRegistry::start();
    let empty = TestRegistry::start();
    let host = buildd_oci::host_platform();
    let img = image(&host, &[&[("m", b"mirrored")]]);
    push_image(
        &anon(),
        &reference(&format!("{}/lib/app:v1", full.host())),
        &img,
    )
    .await;

    // The origin lacks the image, its mirror has it.
    let mut config = RegistryConfig::default();
    config.mirrors.insert(empty.host(), vec![full.host()]);
    let c = client(config, NoCredentials);
    let r = reference(&format!("{}/lib/app:v1", empty.host()));
    assert_eq!(c.resolve(&r, &host).await.unwrap().digest, img.digest);
    let (layer, bytes) = &img.blobs[1];
    assert_eq!(&c.fetch_blob_bytes(&r, layer).await.unwrap(), bytes);

    // The mirror lacks it (404), the origin has it.
    let mut config = RegistryConfig::default();
    config.mirrors.insert(full.host(), vec![empty.host()]);
    let c = client(config, NoCredentials);
    let r = reference(&format!("{}/lib/app:v1", full.host()));
    assert_eq!(c.resolve(&r, &host).await.unwrap().digest, img.digest);
    assert_eq!(&c.fetch_blob_bytes(&r, layer).await.unwrap(), bytes);
}
