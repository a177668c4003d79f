//! A daemon killed with SIGKILL mid-RUN: the next one on the root reaps the
//! container, its mounts and its scratch, and builds again.

mod support;

use std::time::{Duration, Instant};

use support::*;

fn mounts_under(root: &std::path::Path) -> Vec<String> {
    let root = std::fs::canonicalize(root).unwrap();
    let prefix = format!("{}/", root.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
        .filter(|p| p.starts_with(&prefix))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_killed_mid_run_is_reaped_when_the_next_one_starts() {
    let ctx = tempfile::tempdir().unwrap();
    if busybox_rootfs(ctx.path()).is_none() {
        return;
    }
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\nRUN --mount=type=secret,id=s sleep 4199\n",
    )
    .unwrap();
    let mut d = Daemon::start(&[]);
    let client = d.client().await;
    let session = TestSession::open(&client, &"k".repeat(32), served(ctx.path())).await;
    let c = client.clone();
    let req = dockerfile_solve("killed", &session, "k");
    let build = tokio::spawn(async move { solve(&c, req).await });
    let deadline = Instant::now() + Duration::from_secs(60);
    while !process_running("sleep 4199") {
        assert!(
            Instant::now() < deadline,
            "the RUN never started: {}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    d.kill9();
    let _ = build.await;
    drop(session);
    // What the dead daemon left: the container runs on, its mounts stay.
    assert!(
        process_running("sleep 4199"),
        "the kill took the container along"
    );
    let left = mounts_under(&d.root());
    assert!(
        left.iter().any(|m| m.contains("/exec/")),
        "expected the RUN's rootfs mount: {left:?}"
    );

    d.restart(&[]);
    assert!(
        !process_running("sleep 4199"),
        "the container survived the restart"
    );
    assert_eq!(mounts_under(&d.root()), Vec::<String>::new());
    for dir in ["exec", "runc", "tmp", "secrets"] {
        let left: Vec<_> = std::fs::read_dir(d.root().join(dir))
            .map(|es| es.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{dir}: {left:?}");
    }
    assert!(
        d.log().contains("reaped what a killed buildd left"),
        "{}",
        d.log()
    );

    // And the next build works.
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\nRUN echo fine > /fine\n",
    )
    .unwrap();
    let client = d.client().await;
    let session = TestSession::open(&client, &"l".repeat(32), served(ctx.path())).await;
    solve(&client, dockerfile_solve("after", &session, "k"))
        .await
        .unwrap();
}
