//! The daemon's trust model with a real `buildd`: entitlements need the
//! operator's consent, sessions and build status belong to the caller that made
//! them, the socket and root are private.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use buildd_proto::control::{InfoRequest, StatusRequest};
use support::*;
use tokio_stream::StreamExt;
use tonic::Code;

/// A gid no test machine gives anyone; the other caller's ids.
const GROUP: u32 = 47_110;
const OTHER_UID: u32 = 47_111;

fn context(dockerfile: &str, rootfs: bool) -> Option<tempfile::TempDir> {
    let ctx = tempfile::tempdir().unwrap();
    if rootfs {
        busybox_rootfs(ctx.path())?;
    }
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(ctx.path().join("hello"), "hello").unwrap();
    Some(ctx)
}

#[tokio::test(flavor = "multi_thread")]
async fn entitlements_need_the_daemons_consent_also_for_cached_results() {
    let Some(ctx) = context(
        "FROM scratch\nCOPY rootfs/ /\nRUN --network=host echo host > /net\n",
        true,
    ) else {
        return;
    };
    let mut d = Daemon::start(&["--allow-insecure-entitlement", "network.host"]);
    let client = d.client().await;
    assert_eq!(info(&client).await.allowed_entitlements, ["network.host"]);
    let session = TestSession::open(&client, "consented", served(ctx.path())).await;
    let mut req = dockerfile_solve("consented", &session, "k");
    req.entitlements = vec!["network.host".into()];
    solve(&client, req.clone()).await.unwrap();
    drop(session);

    // The same root, now without the operator's consent: the cached result is
    // refused too, before anything runs.
    d.stop();
    d.restart(&[]);
    let client = d.client().await;
    let session = TestSession::open(&client, "asked", served(ctx.path())).await;
    req.r#ref = "asked".into();
    req.session_id = session.id.clone();
    let err = solve(&client, req.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message()
            .contains("start buildd with --allow-insecure-entitlement network.host"),
        "{}",
        err.message()
    );
    for ent in ["security.insecure"] {
        req.entitlements = vec![ent.into()];
        let err = solve(&client, req.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
        assert!(err.message().contains(ent), "{}", err.message());
    }
    // Not asking at all meets the build's own check, also before the cache.
    req.entitlements.clear();
    let err = solve(&client, req).await.unwrap_err();
    assert!(err.message().contains("network.host"), "{}", err.message());
    // Nothing ran in this daemon.
    assert_eq!(info(&client).await.executed_ops, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_and_its_builds_serve_only_the_caller_that_opened_it() {
    let Some(ctx) = context(SECRET_DOCKERFILE, true) else {
        return;
    };
    let d = Daemon::start(&["--group", &GROUP.to_string()]);
    // The socket is root's and the group's only.
    let meta = std::fs::metadata(&d.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), GROUP);
    // A caller outside the group cannot even connect.
    let outsider = connect_unix_as(&d.socket, OTHER_UID, OTHER_UID + 1).await;
    let outsider = match outsider {
        Err(_) => None,
        Ok(c) => Some(c.clone().info(InfoRequest {}).await),
    };
    assert!(
        !matches!(outsider, Some(Ok(_))),
        "a caller outside the socket's group was served"
    );

    let owner = d.client().await;
    let mut s = served(ctx.path());
    s.secrets.insert("tok".into(), b"owner-secret".to_vec());
    let session = TestSession::open(&owner, &"a".repeat(32), s).await;

    // Another user in the socket's group, holding the stolen session id.
    let thief = connect_unix_as(&d.socket, OTHER_UID, GROUP).await.unwrap();
    let mut req = dockerfile_solve("thief-build", &session, "thief-key");
    let err = solve(&thief, req.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains("belongs to another client"),
        "{}",
        err.message()
    );
    // A raw-definition solve takes the session too, and is refused the same way.
    req.frontend.clear();
    req.definition = definition(SECRET_DOCKERFILE);
    let err = solve(&thief, req).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert_eq!(
        session
            .served
            .secrets_asked
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(
        session
            .served
            .files_served
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    // The owner builds; the thief cannot read its progress.
    let req = dockerfile_solve("owner-build", &session, "owner-key");
    solve(&owner, req).await.unwrap();
    assert_eq!(
        session
            .served
            .secrets_asked
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let err = thief
        .clone()
        .status(StatusRequest {
            r#ref: "owner-build".into(),
        })
        .await
        .expect_err("status of another client's build is refused");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let mine: Vec<_> = owner
        .clone()
        .status(StatusRequest {
            r#ref: "owner-build".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .collect()
        .await;
    assert!(
        !mine.is_empty() && mine.iter().all(Result::is_ok),
        "{mine:?}"
    );

    // The other user's own session works for it.
    let own = TestSession::open(&thief, &"b".repeat(32), served(ctx.path())).await;
    let mut req = dockerfile_solve("other-build", &own, "other-key");
    req.frontend_attrs
        .insert("filename".into(), "Dockerfile.plain".into());
    std::fs::write(
        ctx.path().join("Dockerfile.plain"),
        "FROM scratch\nCOPY hello /x\n",
    )
    .unwrap();
    solve(&thief, req).await.unwrap();
}

/// Fails unless the secret reaches it.
const SECRET_DOCKERFILE: &str = "FROM scratch\nCOPY rootfs/ /\nCOPY hello /hello\n\
    RUN --mount=type=secret,id=tok,required=true cat /run/secrets/tok\n";

/// `dockerfile` compiled to a raw LLB definition reading local `context`.
fn definition(dockerfile: &str) -> Vec<u8> {
    use prost::Message;
    let mut opts = buildd_frontend::BuildOptions::new(buildd_oci::host_platform());
    opts.context_name = "context".into();
    buildd_frontend::compile(dockerfile, &opts)
        .unwrap()
        .definition
        .encode_to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_raw_definition_gets_secrets_from_the_callers_session() {
    let Some(ctx) = context(SECRET_DOCKERFILE, true) else {
        return;
    };
    let d = Daemon::start(&[]);
    let client = d.client().await;
    let mut s = served(ctx.path());
    s.secrets.insert("tok".into(), b"raw-secret".to_vec());
    let session = TestSession::open(&client, &"c".repeat(32), s).await;
    let mut req = dockerfile_solve("raw", &session, "raw-key");
    req.frontend.clear();
    req.definition = definition(SECRET_DOCKERFILE);
    solve(&client, req).await.unwrap();
    assert_eq!(
        session
            .served
            .secrets_asked
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_socket_is_private_by_default_and_the_root_is_0700() {
    let d = Daemon::start(&[]);
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let mode = std::fs::metadata(d.root()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    // No staging directory is left beside the socket.
    let beside: Vec<_> = std::fs::read_dir(d.socket.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, ["buildd.sock"]);
}

/// Every regular file under `dir` whose bytes contain `needle`, split by whether
/// it lives on a tmpfs (memory) or a persistent filesystem. Mount points are
/// crossed: a RUN's overlay rootfs is searched too.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> (Vec<String>, Vec<String>) {
    let (mut memory, mut disk) = (Vec::new(), Vec::new());
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(t) = e.file_type() else { continue };
            let p = e.path();
            if t.is_dir() {
                stack.push(p);
            } else if t.is_file()
                && std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
            {
                let on_tmpfs = {
                    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
                    // SAFETY: statfs into a zeroed struct we own.
                    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
                    let ok = unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0;
                    ok && st.f_type == libc::TMPFS_MAGIC
                };
                let name = p.display().to_string();
                if on_tmpfs {
                    memory.push(name)
                } else {
                    disk.push(name)
                }
            }
        }
    }
    (memory, disk)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_env_secret_is_never_written_to_a_disk() {
    const VALUE: &str = "env-secret-7f3a9c";
    let Some(ctx) = context(
        "FROM scratch\nCOPY rootfs/ /\n\
         RUN --mount=type=secret,id=tok,env=TOK,required=true \
         sh -c 'case \"$TOK\" in env-*-7f3a9c) sleep 4188;; *) exit 1;; esac'\n",
        true,
    ) else {
        return;
    };
    let d = Daemon::start(&[]);
    let client = d.client().await;
    let mut s = served(ctx.path());
    s.secrets.insert("tok".into(), VALUE.as_bytes().to_vec());
    let session = TestSession::open(&client, &"d".repeat(32), s).await;
    let c = client.clone();
    let req = dockerfile_solve("env-secret", &session, "env-key");
    let build = tokio::spawn(async move { solve(&c, req).await });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !process_running("sleep 4188") {
        assert!(
            std::time::Instant::now() < deadline,
            "the RUN never started: {}",
            d.log()
        );
        assert!(!build.is_finished(), "{:?}", build.await);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // While the RUN sleeps with the secret in its environment: the runtime's
    // bundle holds it on the private tmpfs, and no persistent file does.
    let (memory, disk) = files_containing(&d.root(), VALUE.as_bytes());
    assert!(disk.is_empty(), "secret on disk in {disk:?}");
    assert!(
        memory.iter().any(|p| p.ends_with("config.json")),
        "the search found the live bundle: {memory:?}"
    );
    let bundles = d.root().join("bundles");
    let mode = std::fs::metadata(&bundles).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);

    // Cancel: the client goes.
    build.abort();
    drop(session);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while process_running("sleep 4188") {
        assert!(
            std::time::Instant::now() < deadline,
            "the RUN outlived its client"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (memory, disk) = files_containing(&d.root(), VALUE.as_bytes());
    assert!(memory.is_empty() && disk.is_empty(), "{memory:?} {disk:?}");
    assert!(!d.log().contains(VALUE));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_slirp4netns_a_run_fails_unless_the_operator_chose_the_host_network() {
    let Some(ctx) = context("FROM scratch\nCOPY rootfs/ /\nRUN echo ran > /ran\n", true) else {
        return;
    };
    let missing = ["--slirp4netns", "/nonexistent/slirp4netns"];
    let mut d = Daemon::start(&missing);
    assert!(
        d.log().contains("slirp4netns is not installed"),
        "{}",
        d.log()
    );
    let client = d.client().await;
    let about = info(&client).await;
    let w = &about.workers[0];
    assert!(w.network.starts_with("unavailable"), "{w:?}");
    assert!(
        w.warnings.iter().any(|m| m.contains("slirp4netns")),
        "{w:?}"
    );
    assert!(
        w.runtime.ends_with("runc") || w.runtime.ends_with("crun"),
        "{w:?}"
    );
    assert_eq!(w.snapshotter, "overlayfs");
    let session = TestSession::open(&client, &"e".repeat(32), served(ctx.path())).await;
    let err = solve(&client, dockerfile_solve("no-net", &session, "k"))
        .await
        .unwrap_err();
    assert!(
        err.message().contains("slirp4netns is not installed")
            && err.message().contains("--network-fallback host"),
        "{}",
        err.message()
    );
    drop(session);

    d.stop();
    let mut args = missing.to_vec();
    args.extend(["--network-fallback", "host"]);
    d.restart(&args);
    let client = d.client().await;
    let about = info(&client).await;
    assert!(about.workers[0].network.starts_with("host"), "{about:?}");
    let session = TestSession::open(&client, &"f".repeat(32), served(ctx.path())).await;
    solve(&client, dockerfile_solve("host-net", &session, "k"))
        .await
        .unwrap();
}
