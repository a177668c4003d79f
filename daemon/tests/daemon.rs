//! The daemon end to end: a real `buildd` process on a temp socket, driven over
//! gRPC by a test client that serves its session like `bctl` does.

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use buildd_proto::control::{
    DiskUsageRequest, InfoRequest, ListImagesRequest, PruneRequest, Stat, StatusRequest,
};
use support::*;
use tokio_stream::StreamExt;
use tonic::Code;

fn write(ctx: &Path, rel: &str, text: &str) {
    let p = ctx.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_build_streams_an_oci_archive_and_tags_an_image() {
    let d = Daemon::start(&[]);
    let client = d.client().await;
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM scratch\nCOPY a.txt dir/ /out/\n",
    );
    write(ctx.path(), "a.txt", "hello\n");
    write(ctx.path(), "dir/b c.txt", "b\n");
    write(ctx.path(), "unused.txt", "never sent\n");
    std::os::unix::fs::symlink("a.txt", ctx.path().join("dir/link")).unwrap();
    std::fs::create_dir(ctx.path().join("dir/empty")).unwrap();
    let session = TestSession::open(&client, "s1", served(ctx.path())).await;
    let mut req = dockerfile_solve("b1", &session, "k1");
    req.exporters = vec![oci_tar()];
    req.tags = vec!["daemon-test".to_owned()];
    let mut sc = client.clone();
    let status = tokio::spawn(async move {
        let stream = sc
            .status(StatusRequest { r#ref: "b1".into() })
            .await
            .unwrap();
        stream.into_inner().collect::<Vec<_>>().await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let resp = solve(&client, req).await.unwrap();
    assert!(resp.exporters[0].values["containerimage.digest"].starts_with("sha256:"));
    let transfer = resp.transfer.unwrap();
    // Dockerfile and .dockerignore are fetched apart; the context sends exactly
    // what COPY names: a.txt and dir's file (the symlink and the empty dir are
    // listed, not fetched), never unused.txt.
    assert_eq!(transfer.files_sent, 2, "{transfer:?}");

    // Status opened before the build saw it all, ending when the build did.
    let events = status.await.unwrap();
    let names: HashSet<String> = events
        .iter()
        .flat_map(|e| e.as_ref().unwrap().vertexes.iter().map(|v| v.name.clone()))
        .collect();
    assert!(
        names.iter().any(|n| n.contains("transferring context")),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n.contains("COPY")), "{names:?}");

    let archive = d.dir.path().join("out.tar");
    std::fs::write(&archive, &session.served.exports.lock().unwrap()[&0]).unwrap();
    if require_tool("skopeo") {
        let out = std::process::Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci-archive:{}", archive.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    }
    // The daemon's copy of the output is gone once streamed.
    assert_eq!(std::fs::read_dir(d.root().join("tmp")).unwrap().count(), 0);

    let images = client
        .clone()
        .list_images(ListImagesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        images.images.iter().any(|i| i.name == "daemon-test:latest"),
        "{images:?}"
    );

    let du = client
        .clone()
        .disk_usage(DiskUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    let kinds: HashSet<&str> = du.records.iter().map(|r| r.kind.as_str()).collect();
    assert!(
        kinds.contains("layer") && kinds.contains("context"),
        "{du:?}"
    );
    assert!(
        du.records.iter().any(|r| r.kind == "layer" && r.in_use),
        "image layer in use"
    );

    let pruned = client
        .clone()
        .prune(PruneRequest {
            all: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        pruned.removed.iter().any(|r| r.kind == "context"),
        "{pruned:?}"
    );
    assert!(pruned.removed.iter().all(|r| !r.in_use));
    // The image's layers stay and the image still builds from cache.
    let after = client
        .clone()
        .disk_usage(DiskUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(after.records.iter().any(|r| r.kind == "layer" && r.in_use));
    assert!(!after.records.iter().any(|r| r.kind == "context"));
    let mut again = dockerfile_solve("b2", &session, "k1");
    again.tags = vec!["daemon-test".to_owned()];
    solve(&client, again).await.unwrap();

    // The index names nothing that prune removed: fsck finds the root clean.
    drop((session, client));
    let mut d = d;
    d.stop();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_buildd"))
        .arg("--root")
        .arg(d.root())
        .args(["debug", "fsck"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// COPY links mirror files into layers, which moves their ctime: stages that
/// copy the same files side by side must still see them as the versions their
/// cache keys hashed (BuildKit builds this; buildd once failed it with "changed
/// during the build"). Each edit reaches the image (content keys are remembered
/// per mirror version).
#[tokio::test(flavor = "multi_thread")]
async fn stages_copying_the_same_context_files_build_side_by_side() {
    let d = Daemon::start(&[]);
    let client = d.client().await;
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM scratch AS a\nCOPY . /a\nFROM scratch AS b\nCOPY . /b\n\
         FROM scratch AS c\nCOPY d1 /c\nFROM scratch\nCOPY --from=a /a /a\n\
         COPY --from=b /b /b\nCOPY --from=c /c /c\n",
    );
    for i in 0..300 {
        write(ctx.path(), &format!("d{}/f{i}", i % 3), &format!("{i}\n"));
    }
    let session = TestSession::open(&client, "side", served(ctx.path())).await;
    for round in 0..3 {
        write(ctx.path(), "d1/f1", &format!("edit {round}\n"));
        solve(
            &client,
            dockerfile_solve(&format!("s{round}"), &session, "side-key"),
        )
        .await
        .unwrap_or_else(|e| panic!("round {round}: {e}"));
        // Each edit reached a layer: no content key remembered from an earlier
        // version of the mirror answered for this one.
        let copied = std::fs::read_dir(d.root().join("layers"))
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.unwrap().path().join("c/f1")).ok())
            .any(|text| text == format!("edit {round}\n"));
        assert!(copied, "round {round}: no layer holds the edit");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_after_editing_one_file_sends_one_file() {
    let d = Daemon::start(&[]);
    let client = d.client().await;
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "Dockerfile", "FROM scratch\nCOPY . /src/\n");
    for i in 0..2000 {
        write(
            ctx.path(),
            &format!("d{}/f{i}.txt", i % 20),
            &format!("file {i}\n"),
        );
    }
    let session = TestSession::open(&client, "inc", served(ctx.path())).await;
    let first = solve(&client, dockerfile_solve("i1", &session, "inc-key"))
        .await
        .unwrap();
    assert_eq!(first.transfer.unwrap().files_sent, 2001);

    std::thread::sleep(Duration::from_millis(20));
    write(ctx.path(), "d7/f7.txt", "edited\n");
    let second = solve(&client, dockerfile_solve("i2", &session, "inc-key"))
        .await
        .unwrap();
    let t = second.transfer.unwrap();
    assert_eq!(t.files_sent, 1, "{t:?}");
    assert_eq!(t.bytes_sent, "edited\n".len() as u64);

    // A removed file leaves the mirror.
    std::fs::remove_file(ctx.path().join("d3/f3.txt")).unwrap();
    let third = solve(&client, dockerfile_solve("i3", &session, "inc-key"))
        .await
        .unwrap();
    assert_eq!(third.transfer.unwrap().files_sent, 0);
    let mirror = buildd_daemon::context_sync::mirror_dir(&d.root(), "inc-key");
    assert!(mirror.join("d7/f7.txt").exists());
    assert!(!mirror.join("d3/f3.txt").exists());
    assert_eq!(
        std::fs::read_to_string(mirror.join("d7/f7.txt")).unwrap(),
        "edited\n"
    );
}

/// A raw definition with more ops than `--max-graph-vertices` is refused before
/// anything runs; one within the cap builds.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_definitions_are_refused() {
    use buildd_proto::llb::{Definition, FileAction, FileActionMkFile, FileOp, Input, Op};
    use buildd_proto::llb::{file_action, op};
    use prost::Message as _;
    let d = Daemon::start(&["--max-graph-vertices", "3"]);
    let client = d.client().await;
    let ctx = tempfile::tempdir().unwrap();
    let session = TestSession::open(&client, "big-graph", served(ctx.path())).await;
    let chain = |n: usize| {
        let mut def = Definition::default();
        let mut last: Option<Input> = None;
        for i in 0..n {
            let op = Op {
                inputs: last.clone().into_iter().collect(),
                op: Some(op::Op::File(FileOp {
                    base: if last.is_some() { 0 } else { -1 },
                    actions: vec![FileAction {
                        action: Some(file_action::Action::Mkfile(FileActionMkFile {
                            path: format!("/f{i}"),
                            mode: 0o644,
                            ..Default::default()
                        })),
                    }],
                })),
                ..Default::default()
            };
            last = Some(Input {
                digest: op.digest().to_string(),
                index: 0,
            });
            def.def.push(op.encode_to_vec());
        }
        def.result = last;
        def.encode_to_vec()
    };
    let req = |name: &str, n: usize| buildd_proto::control::SolveRequest {
        r#ref: name.to_owned(),
        session_id: session.id.clone(),
        definition: chain(n),
        ..Default::default()
    };
    let e = solve(&client, req("g4", 4)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(
        e.message(),
        "malformed definition: the definition has 4 ops, over the cap of 3 (--max-graph-vertices)"
    );
    solve(&client, req("g3", 3)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_clear_errors_and_the_daemon_keeps_serving() {
    let d = Daemon::start(&[]);
    let client = d.client().await;
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "Dockerfile", "FROM scratch\nCOPY a /a\n");
    write(ctx.path(), "a", "a\n");
    let session = TestSession::open(&client, "bad", served(ctx.path())).await;

    let mut req = dockerfile_solve("e1", &session, "bad-key");
    req.frontend = "foo".into();
    let e = solve(&client, req).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(
        e.message(),
        r#"unknown frontend "foo" (known: dockerfile.v0)"#
    );

    let mut req = dockerfile_solve("e2", &session, "bad-key");
    req.frontend = String::new();
    req.definition = vec![0xff, 0xff, 0xff];
    let e = solve(&client, req).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().starts_with("malformed definition"),
        "{}",
        e.message()
    );

    let mut req = dockerfile_solve("e3", &session, "bad-key");
    req.session_id = "nobody".into();
    let e = solve(&client, req).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains(r#"no session "nobody""#),
        "{}",
        e.message()
    );

    for (i, bad) in ["../escape", "/etc/passwd", "a/../../x", &"x/".repeat(3000)]
        .into_iter()
        .enumerate()
    {
        let mut served = served(ctx.path());
        served.extra_stats = vec![Stat {
            path: bad.to_owned(),
            mode: 0o100644,
            size: 1,
            ..Default::default()
        }];
        let evil = TestSession::open(&client, &format!("evil{i}"), served).await;
        let e = solve(
            &client,
            dockerfile_solve(&format!("e4-{i}"), &evil, "evil-key"),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad}: {e:?}");
        assert!(e.message().contains("invalid path"), "{}", e.message());
    }
    assert!(!d.root().join("escape").exists());
    assert!(!d.root().join("contexts/escape").exists());

    let e = solve(&client, {
        let mut r = dockerfile_solve("e5", &session, "bad-key");
        r.exporters = vec![buildd_proto::control::Exporter {
            r#type: "gha".into(),
            ..Default::default()
        }];
        r
    })
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented, "{e:?}");

    // Still serving, and the good build works.
    let info = client
        .clone()
        .info(InfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    solve(&client, dockerfile_solve("ok", &session, "bad-key"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn context_caps_refuse_big_contexts_and_the_daemon_keeps_serving() {
    let d = Daemon::start(&["--max-context-files", "5", "--max-context-bytes", "100"]);
    let client = d.client().await;

    // Ten files (and the Dockerfile) where five entries are allowed.
    let many = tempfile::tempdir().unwrap();
    write(many.path(), "Dockerfile", "FROM scratch\nCOPY . /\n");
    for i in 0..10 {
        write(many.path(), &format!("f{i}"), "x");
    }
    let session = TestSession::open(&client, "many", served(many.path())).await;
    let e = solve(&client, dockerfile_solve("many", &session, "many-key"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(
        e.message(),
        r#"local "context": the listing has more than 5 entries (the cap set by --max-context-files)"#
    );

    // 200 bytes of content where a build may upload 100.
    let big = tempfile::tempdir().unwrap();
    write(big.path(), "Dockerfile", "FROM scratch\nCOPY big /\n");
    write(big.path(), "big", &"y".repeat(200));
    let session = TestSession::open(&client, "big", served(big.path())).await;
    let e = solve(&client, dockerfile_solve("big", &session, "big-key"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(
        e.message(),
        r#"local "context": the build needs 200 bytes of file content, over the cap of 100 bytes per build (--max-context-bytes)"#
    );
    assert_eq!(session.served.files_served.load(Ordering::Relaxed), 1);

    // A client sending more than its listing announced.
    let small = tempfile::tempdir().unwrap();
    write(small.path(), "Dockerfile", "FROM scratch\nCOPY a /\n");
    write(small.path(), "a", "hi");
    let mut padded = served(small.path());
    padded.pad_files = [("context".to_owned(), 10)].into();
    let evil = TestSession::open(&client, "padded", padded).await;
    let e = solve(&client, dockerfile_solve("padded", &evil, "small-key"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(
        e.message(),
        r#"local "context": a: more bytes sent than the 2 its listing announced"#
    );

    // A message over the cap fails its call; one over tonic's default 4 MiB but
    // under the daemon's 16 MiB is decoded (and refused for what it says).
    let mut req = dockerfile_solve("huge", &evil, "small-key");
    req.frontend = String::new();
    req.definition = vec![0xff; 17 << 20];
    let e = solve(&client, req).await.unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{}", e.message());
    assert!(e.message().contains("16777216"), "{}", e.message());
    let mut req = dockerfile_solve("large", &evil, "small-key");
    req.frontend = String::new();
    req.definition = vec![0xff; 5 << 20];
    let e = solve(&client, req).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    assert!(
        e.message().starts_with("malformed definition"),
        "{}",
        e.message()
    );

    // Still serving: a small context builds.
    let session = TestSession::open(&client, "small", served(small.path())).await;
    let resp = solve(&client, dockerfile_solve("small", &session, "small-key"))
        .await
        .unwrap();
    assert_eq!(resp.transfer.unwrap().files_sent, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_exits_zero_and_removes_the_socket() {
    let mut d = Daemon::start(&[]);
    let client = d.client().await;
    client.clone().info(InfoRequest {}).await.unwrap();
    // A session stream that stays open must not hold the shutdown up.
    let ctx = tempfile::tempdir().unwrap();
    let _session = TestSession::open(&client, "held", served(ctx.path())).await;
    // SAFETY: kill with a pid of a child this test started.
    assert_eq!(unsafe { libc::kill(d.pid(), libc::SIGTERM) }, 0);
    let mut child = d.child.take().unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status}: {}", d.log());
    assert!(!d.socket.exists());
    assert!(!d.root().join("dirty").exists(), "root closed cleanly");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_daemon_on_a_live_socket_is_refused_and_a_stale_one_replaced() {
    let d = Daemon::start(&[]);
    let other = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_buildd"))
        .arg("--root")
        .arg(other.path())
        .arg("--addr")
        .arg(format!("unix://{}", d.socket.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another daemon answers"));
    drop(d);

    // A socket file nobody answers on is replaced.
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("run/buildd.sock");
    std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let d = Daemon::start_in(dir, &[]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "root only without --group");
    d.client().await.info(InfoRequest {}).await.unwrap();
}
