//! Images from and to a real registry (Debian's Distribution v2 `docker-registry`):
//! a busybox base pushed by buildd itself, FROM it with RUN, a whiteout, the cache
//! keyed by the manifest digest, basic auth, and a push checked with skopeo.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use buildd_engine::Engine;
use buildd_engine::build::{BuildRequest, build};
use buildd_engine::export::OutputSpec;
use buildd_engine::solver::{ProgressEvent, SolverConfig};
use buildd_registry::{
    Client, Credential, CredentialSource, NoCredentials, RegistryConfig, StaticCredentials,
};
use buildd_testkit::require_tool;
use buildd_tests::registry::{TestRegistry, auth_registry_available, registry_available};
use common::fixture;

fn engine(root: &Path, creds: Arc<dyn CredentialSource>) -> Engine {
    let client = Client::new(RegistryConfig::default(), creds).unwrap();
    Engine::open_with_registry(root, SolverConfig::default(), Some(Arc::new(client))).unwrap()
}

async fn build_to(
    engine: &Engine,
    ctx: &Path,
    dockerfile: &str,
    outputs: Vec<OutputSpec>,
) -> Result<Vec<ProgressEvent>, String> {
    fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let req = BuildRequest {
        context: ctx.to_owned(),
        outputs,
        ..Default::default()
    };
    let result = build(engine, &req, Some(tx)).await;
    let mut events = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        events.push(ev);
    }
    result.map(|_| events).map_err(|e| e.to_string())
}

fn push(name: &str) -> Vec<OutputSpec> {
    vec![format!("type=image,name={name},push=true").parse().unwrap()]
}

fn from_cached(events: &[ProgressEvent]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, ProgressEvent::Cached { name, .. } if name.contains("FROM")))
}

fn skopeo_inspect(image: &str) -> serde_json::Value {
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{image}"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_run_push_and_cache_by_manifest_digest() {
    let Some(f) = fixture() else { return };
    if !registry_available() || !require_tool("skopeo") || !require_tool("umoci") {
        return;
    }
    let reg = TestRegistry::start();
    let host = reg.host();
    let engine = engine(&f.dir.path().join("reg-root"), Arc::new(NoCredentials));
    let base = format!("{host}/busybox:latest");

    // The base image, pushed by buildd's own exporter.
    build_to(
        &engine,
        &f.ctx(),
        "FROM scratch\nCOPY rootfs/ /\n",
        push(&base),
    )
    .await
    .unwrap();
    let base_layers = skopeo_inspect(&base)["Layers"].clone();
    assert_eq!(base_layers.as_array().unwrap().len(), 1, "{base_layers}");

    // FROM it in a fresh root: pulled, RUN on top, a deleted base file.
    let puller = engine_in(&f, "pull-root");
    let app = format!("{host}/app:1");
    let dockerfile = format!("FROM {base}\nRUN rm /bin/true && echo hi > /hi\nCMD [\"/bin/sh\"]\n");
    let events = build_to(&puller, &f.ctx(), &dockerfile, push(&app))
        .await
        .unwrap();
    assert!(!from_cached(&events), "{events:#?}");
    let pushed = skopeo_inspect(&app);
    let layers = pushed["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "{pushed}");
    // The base layer is the registry's own blob, not a re-compressed copy.
    assert_eq!(layers[0], base_layers[0]);

    // What was pushed unpacks (umoci) without the deleted file and with the new one.
    let layout = f.dir.path().join("layout");
    let copy = Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{app}"))
        .arg(format!("oci:{}:app", layout.display()))
        .output()
        .unwrap();
    assert!(
        copy.status.success(),
        "{}",
        String::from_utf8_lossy(&copy.stderr)
    );
    let bundle = f.dir.path().join("bundle");
    let unpack = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:app", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        unpack.status.success(),
        "{}",
        String::from_utf8_lossy(&unpack.stderr)
    );
    assert!(!bundle.join("rootfs/bin/true").exists());
    assert!(bundle.join("rootfs/bin/busybox").is_file());
    assert_eq!(
        fs::read_to_string(bundle.join("rootfs/hi")).unwrap(),
        "hi\n"
    );

    // Same tag, same content: the image source is a cache hit.
    let events = build_to(&puller, &f.ctx(), &dockerfile, vec![])
        .await
        .unwrap();
    assert!(from_cached(&events), "{events:#?}");

    // The tag moves: the next build sees the new content.
    fs::write(f.ctx().join("moved"), "moved\n").unwrap();
    build_to(
        &engine,
        &f.ctx(),
        "FROM scratch\nCOPY rootfs/ /\nCOPY moved /moved\n",
        push(&base),
    )
    .await
    .unwrap();
    let events = build_to(
        &puller,
        &f.ctx(),
        &format!("FROM {base}\nRUN test -f /moved\n"),
        vec![],
    )
    .await
    .unwrap();
    assert!(!from_cached(&events), "{events:#?}");
}

fn engine_in(f: &common::Fixture, name: &str) -> Engine {
    engine(&f.dir.path().join(name), Arc::new(NoCredentials))
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_registry_needs_the_right_credentials() {
    let Some(f) = fixture() else { return };
    if !auth_registry_available() {
        return;
    }
    let reg = TestRegistry::start_with_basic_auth("ci", "s3cret");
    let host = reg.host();
    let creds = |password: &str| -> Arc<dyn CredentialSource> {
        Arc::new(StaticCredentials(
            [(
                host.clone(),
                Credential {
                    username: "ci".into(),
                    secret: password.into(),
                },
            )]
            .into(),
        ))
    };
    let base = format!("{host}/busybox:latest");
    let owner = engine(&f.dir.path().join("owner"), creds("s3cret"));
    build_to(
        &owner,
        &f.ctx(),
        "FROM scratch\nCOPY rootfs/ /\n",
        push(&base),
    )
    .await
    .unwrap();

    let dockerfile = format!("FROM {base}\nRUN true\n");
    let anonymous = engine(&f.dir.path().join("anon"), Arc::new(NoCredentials));
    let err = build_to(&anonymous, &f.ctx(), &dockerfile, vec![])
        .await
        .unwrap_err();
    assert!(err.contains(&host), "{err}");
    assert!(
        err.contains("unauthorized") || err.contains("authentication"),
        "{err}"
    );
    let wrong = engine(&f.dir.path().join("wrong"), creds("nope"));
    let err = build_to(&wrong, &f.ctx(), &dockerfile, vec![])
        .await
        .unwrap_err();
    assert!(
        err.contains("unauthorized") || err.contains("authentication"),
        "{err}"
    );
    let right = engine(&f.dir.path().join("right"), creds("s3cret"));
    build_to(&right, &f.ctx(), &dockerfile, vec![])
        .await
        .unwrap();
}

/// The lines the export steps logged.
fn export_log(events: &[ProgressEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            ProgressEvent::Log { data, .. } => Some(String::from_utf8_lossy(data).into_owned()),
            _ => None,
        })
        .collect()
}

/// How the push log shows a layer: `sha256:` and 12 hex digits.
fn short(digest: &str) -> &str {
    &digest[..19]
}

#[tokio::test(flavor = "multi_thread")]
async fn pushes_mount_base_layers_from_the_repository_they_came_from() {
    let Some(f) = fixture() else { return };
    if !registry_available() {
        return;
    }
    let reg = TestRegistry::start();
    let host = reg.host();
    let owner = engine_in(&f, "mount-owner");
    let base = format!("{host}/team/base:1");
    let events = build_to(
        &owner,
        &f.ctx(),
        "FROM scratch\nCOPY rootfs/ /\n",
        push(&base),
    )
    .await
    .unwrap();
    let client = Client::new(RegistryConfig::default(), Arc::new(NoCredentials)).unwrap();
    let platform = buildd_oci::host_platform();
    let resolved = client
        .resolve(&base.parse().unwrap(), &platform)
        .await
        .unwrap();
    let layer = resolved.manifest.layers[0].digest.clone();
    let log = export_log(&events);
    assert!(
        log.contains(&format!("{}: pushed ", short(&layer))),
        "{log}"
    );

    // A fresh root resolves the base in the registry and mounts its layer from
    // there; only the new layer and the config are uploaded.
    fs::write(f.ctx().join("extra"), "extra\n").unwrap();
    let dockerfile = format!("FROM {base}\nCOPY extra /extra\n");
    let puller = engine_in(&f, "mount-puller");
    let app = format!("{host}/team/app:1");
    let events = build_to(&puller, &f.ctx(), &dockerfile, push(&app))
        .await
        .unwrap();
    let log = export_log(&events);
    assert!(
        log.contains(&format!("{}: mounted from team/base", short(&layer))),
        "{log}"
    );
    assert_eq!(log.matches(": pushed ").count(), 2, "{log}");
    let pushed = client
        .resolve(&app.parse().unwrap(), &platform)
        .await
        .unwrap();
    assert_eq!(pushed.manifest.layers[0].digest, layer);
    let mut blob = Vec::new();
    client
        .fetch_blob(&app.parse().unwrap(), &pushed.manifest.layers[0], &mut blob)
        .await
        .unwrap();

    // The owner's root finds the base in its image store, not the registry: the
    // push of the base remembered where its layer is.
    let other = format!("{host}/other:1");
    let events = build_to(&owner, &f.ctx(), &dockerfile, push(&other))
        .await
        .unwrap();
    let log = export_log(&events);
    assert!(
        log.contains(&format!("{}: mounted from team/base", short(&layer))),
        "{log}"
    );

    // Pushed again, everything is there.
    let events = build_to(&puller, &f.ctx(), &dockerfile, push(&app))
        .await
        .unwrap();
    let log = export_log(&events);
    assert_eq!(log.matches(": exists").count(), 3, "{log}");
}
