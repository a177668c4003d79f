//! Builds with RUN through the daemon: shared work between concurrent clients,
//! and a client that goes away mid-build. Skipped without runc or busybox.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use buildd_proto::control::{StatusRequest, StatusResponse};
use support::*;
use tokio_stream::StreamExt;

async fn executed(client: &Client) -> (u64, u32) {
    let i = info(client).await;
    (i.executed_ops, i.running_builds)
}

/// Executed (not cached) vertices of a build and their start times, by digest;
/// the daemon's own transfer steps are not ops.
fn executed_vertices(events: &[StatusResponse]) -> BTreeMap<String, (String, i64)> {
    let mut out = BTreeMap::new();
    for v in events.iter().flat_map(|e| &e.vertexes) {
        if v.completed_ns > 0 && !v.cached && v.error.is_empty() && !v.name.contains("transferring")
        {
            out.insert(v.digest.clone(), (v.name.clone(), v.started_ns));
        }
    }
    out
}

fn status_of(client: &Client, build_ref: &str) -> tokio::task::JoinHandle<Vec<StatusResponse>> {
    let mut c = client.clone();
    let r = build_ref.to_owned();
    tokio::spawn(async move {
        let s = c
            .status(StatusRequest { r#ref: r })
            .await
            .unwrap()
            .into_inner();
        s.filter_map(Result::ok).collect().await
    })
}

fn context(dockerfile: &str) -> Option<tempfile::TempDir> {
    let ctx = tempfile::tempdir().unwrap();
    busybox_rootfs(ctx.path())?;
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    Some(ctx)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_clients_building_the_same_dockerfile_execute_each_vertex_once() {
    let Some(ctx) = context("FROM scratch\nCOPY rootfs/ /\nRUN sleep 2 && echo built > /built\n")
    else {
        return;
    };
    let d = Daemon::start(&[]);
    let client = d.client().await;
    let (before, _) = executed(&client).await;
    // Two clients (sessions) sending the same directory, as two CI jobs of one
    // checkout on one runner would.
    let a = TestSession::open(&client, "client-a", served(ctx.path())).await;
    let b = TestSession::open(&client, "client-b", served(ctx.path())).await;
    let (sa, sb) = (status_of(&client, "ra"), status_of(&client, "rb"));
    let (ra, rb) = tokio::join!(
        solve(&client, dockerfile_solve("ra", &a, "shared-checkout")),
        solve(&client, dockerfile_solve("rb", &b, "shared-checkout")),
    );
    ra.unwrap();
    rb.unwrap();
    let (after, running) = executed(&client).await;
    assert_eq!(running, 0);
    let (ea, eb) = (
        executed_vertices(&sa.await.unwrap()),
        executed_vertices(&sb.await.unwrap()),
    );
    assert!(ea.values().any(|(n, _)| n.contains("RUN")), "{ea:?}");
    // Both saw the same executions (one start time per vertex), and the daemon
    // executed each once.
    assert_eq!(ea, eb);
    assert_eq!(after - before, ea.len() as u64, "{ea:?}");
}

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_killed_mid_build_cancels_it_and_the_daemon_stays_healthy() {
    let Some(ctx) = context("FROM scratch\nCOPY rootfs/ /\nRUN sleep 417\n") else {
        return;
    };
    let d = Daemon::start(&[]);
    let client = d.client().await;
    let session = TestSession::open(&client, "doomed", served(ctx.path())).await;
    let c = client.clone();
    let req = dockerfile_solve("doomed", &session, "doomed-key");
    let build = tokio::spawn(async move { solve(&c, req).await });
    wait_until("the RUN runs", async || process_running("sleep 417")).await;

    // The client dies: its Solve call and its session go.
    build.abort();
    drop(session);
    wait_until("the build is cancelled", async || {
        executed(&client).await.1 == 0
    })
    .await;
    wait_until("the container is gone", async || {
        !process_running("sleep 417")
    })
    .await;

    // Another build goes through.
    let ok = context_at(
        ctx.path(),
        "FROM scratch\nCOPY rootfs/ /\nRUN echo fine > /fine\n",
    );
    let session = TestSession::open(&client, "next", served(&ok)).await;
    solve(&client, dockerfile_solve("next", &session, "next-key"))
        .await
        .unwrap();
}

/// The same context with another Dockerfile.
fn context_at(ctx: &Path, dockerfile: &str) -> std::path::PathBuf {
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    ctx.to_owned()
}

/// Every `<root>/layers/*/<rel>`, with content and permission bits.
fn layer_files(root: &Path, rel: &str) -> Vec<(std::path::PathBuf, String, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for e in std::fs::read_dir(root.join("layers")).unwrap() {
        let p = e.unwrap().path().join(rel);
        if let Ok(md) = std::fs::symlink_metadata(&p) {
            out.push((
                p.clone(),
                std::fs::read_to_string(&p).unwrap(),
                md.mode() & 0o7777,
            ));
        }
    }
    out
}

/// COPY from the context links the mirror's file into the layer. Neither a RUN
/// writing to the copy nor the client changing the file's mode may reach the
/// mirror's file or the committed layer.
#[tokio::test(flavor = "multi_thread")]
async fn linked_copies_stay_as_committed_when_a_run_or_the_client_changes_the_file() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Some(ctx) = context(
        "FROM scratch\nCOPY rootfs/ /\nCOPY data.txt /data.txt\n\
         RUN echo changed >> /data.txt && chmod 600 /data.txt\n",
    ) else {
        return;
    };
    let data = ctx.path().join("data.txt");
    std::fs::write(&data, "original\n").unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o644)).unwrap();
    let d = Daemon::start(&[]);
    let client = d.client().await;
    let s = TestSession::open(&client, "linker", served(ctx.path())).await;
    solve(&client, dockerfile_solve("r1", &s, "linked"))
        .await
        .unwrap();

    let mirror = buildd_daemon::context_sync::mirror_dir(&d.root(), "linked").join("data.txt");
    let mirror_ino = std::fs::metadata(&mirror).unwrap().ino();
    let copies = layer_files(&d.root(), "data.txt");
    let copied: Vec<_> = copies
        .iter()
        .filter(|(_, c, _)| c == "original\n")
        .collect();
    assert_eq!(copied.len(), 1, "{copies:?}");
    let (copy_path, _, copy_mode) = copied[0].clone();
    assert_eq!(copy_mode, 0o644);
    // Shared storage, not a copy of the bytes.
    assert_eq!(std::fs::metadata(&copy_path).unwrap().ino(), mirror_ino);
    // The RUN wrote to its own copy (overlayfs copy-up).
    assert!(
        copies
            .iter()
            .any(|(_, c, m)| c == "original\nchanged\n" && *m == 0o600),
        "{copies:?}"
    );
    assert_eq!(std::fs::read_to_string(&mirror).unwrap(), "original\n");

    // A mode change on the client only changes metadata: the mirror's file gets
    // a copy of its own, the committed layer keeps what it had.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o640)).unwrap();
    solve(&client, dockerfile_solve("r2", &s, "linked"))
        .await
        .unwrap();
    let md = std::fs::metadata(&copy_path).unwrap();
    assert_eq!((md.mode() & 0o7777, md.ino()), (0o644, mirror_ino));
    assert_eq!(std::fs::read_to_string(&copy_path).unwrap(), "original\n");
    let mirror_md = std::fs::metadata(&mirror).unwrap();
    assert_eq!(mirror_md.mode() & 0o7777, 0o640);
    assert_ne!(mirror_md.ino(), mirror_ino);
}
