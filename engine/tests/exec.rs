//! RUN through the whole engine: Dockerfile → solver → runc → layers → local export.
//! The base image is a busybox rootfs copied in from the context, so no registry or
//! image store is needed. Skipped (failing under CI) without runc or busybox.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use buildd_engine::build::BuildRequest;
use common::{fixture, run_steps};

const STEPS: &str = r#"RUN echo hi > /hello
RUN ["/bin/sh", "-c", "echo exec-form > /exec"]
ENV FOO=bar
WORKDIR /work
RUN echo "$FOO" > /foo && pwd > /pwd
RUN --network=none cat /proc/net/dev > /netdev
USER app
RUN id -u > /tmp/ids && id -g >> /tmp/ids
"#;

#[tokio::test(flavor = "multi_thread")]
async fn run_sees_env_workdir_user_and_network_and_rebuilds_from_cache() {
    let Some(f) = fixture() else { return };
    let (result, events) = f.build(STEPS).await;
    result.unwrap();
    assert_eq!(f.read("hello"), "hi\n");
    assert_eq!(f.read("exec"), "exec-form\n");
    assert_eq!(f.read("foo"), "bar\n");
    assert_eq!(f.read("pwd"), "/work\n");
    assert_eq!(f.read("tmp/ids"), "1000\n1000\n");
    // A private network namespace has only the loopback interface.
    let netdev = f.read("netdev");
    let interfaces: Vec<&str> = netdev.lines().skip(2).collect();
    assert_eq!(interfaces.len(), 1, "{netdev}");
    assert!(interfaces[0].trim_start().starts_with("lo:"), "{netdev}");
    assert_eq!(run_steps(&events, false).len(), 5, "{events:#?}");

    let (result, events) = f.build(STEPS).await;
    result.unwrap();
    assert!(run_steps(&events, false).is_empty(), "{events:#?}");
    assert_eq!(run_steps(&events, true).len(), 5, "{events:#?}");
    assert_eq!(f.read("tmp/ids"), "1000\n1000\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_run_names_the_command_its_exit_code_and_last_output() {
    let Some(f) = fixture() else { return };
    let (result, _) = f
        .build("RUN echo first; echo last-words >&2; exit 3\n")
        .await;
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains(
            r#"process "/bin/sh -c echo first; echo last-words >&2; exit 3" did not complete successfully: exit code: 3"#
        ),
        "{err}"
    );
    assert!(err.contains("last-words"), "{err}");
    // Nothing of the failed run is left in the layer store's staging area.
    assert!(f.staging().is_empty(), "{:?}", f.staging());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_run_is_killed_and_leaves_nothing() {
    let Some(f) = fixture() else { return };
    let started = std::time::Instant::now();
    let build = f.build("RUN sleep 60 && touch /done\n");
    let timed_out = tokio::time::timeout(std::time::Duration::from_secs(3), build).await;
    assert!(timed_out.is_err(), "the build should still be running");
    // Cleanup runs on blocking threads after the drop; give it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !f.staging().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(f.staging().is_empty(), "{:?}", f.staging());
    let containers = fs::read_dir(f.dir.path().join("root/runc"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(containers, 0, "runc still has container state");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_user_is_named() {
    let Some(f) = fixture() else { return };
    let (result, _) = f.build("USER nobody\nRUN true\n").await;
    let err = result.unwrap_err().to_string();
    assert!(err.contains("unable to find user nobody"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn entitlements_are_needed_also_for_cached_results() {
    let Some(f) = fixture() else { return };
    for (step, entitlement) in [
        ("RUN --network=host true\n", "network.host"),
        ("RUN --security=insecure true\n", "security.insecure"),
    ] {
        let allowed = BuildRequest {
            allow: vec![entitlement.to_owned()],
            ..Default::default()
        };
        f.build_with(step, allowed).await.0.unwrap();
        // The result is in the cache now; a build without the entitlement still
        // must not get it.
        let (result, _) = f.build(step).await;
        let err = result.unwrap_err().to_string();
        assert!(err.contains(&format!("--allow {entitlement}")), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_base_file_makes_a_whiteout() {
    let Some(f) = fixture() else { return };
    fs::write(f.ctx().join("victim"), "x").unwrap();
    let (result, _) = f.build("COPY victim /victim\nRUN rm /victim\n").await;
    let outcome = result.unwrap();
    assert!(!f.out().join("victim").exists());
    assert!(f.out().join("bin/busybox").is_file());
    let top = outcome.snapshot.top().unwrap();
    let whiteout = f.engine.root.layers.diff_dir(top).join("victim");
    let meta = fs::symlink_metadata(&whiteout).unwrap();
    assert!(meta.file_type().is_char_device(), "{meta:?}");
    assert_eq!(meta.rdev(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn mounts_bind_the_context_share_caches_and_discard_tmpfs() {
    let Some(f) = fixture() else { return };
    fs::create_dir(f.ctx().join("data")).unwrap();
    fs::write(f.ctx().join("data/x"), "from-context\n").unwrap();
    fs::write(f.ctx().join("data/secret"), "ignored\n").unwrap();
    fs::write(f.ctx().join(".dockerignore"), "data/secret\n").unwrap();
    let dockerfile = "RUN --mount=type=bind,source=data,target=/data cat /data/x > /bound && ls /data > /listed\n\
         RUN --mount=type=cache,target=/c,id=k echo a >> /c/log\n\
         RUN --mount=type=cache,target=/c,id=k,sharing=locked cat /c/log > /from-cache\n\
         RUN --mount=type=tmpfs,target=/t touch /t/y && ls /t > /in-tmpfs\n";
    let (result, _) = f.build(dockerfile).await;
    result.unwrap();
    assert_eq!(f.read("bound"), "from-context\n");
    assert_eq!(f.read("listed"), "x\n");
    assert_eq!(f.read("from-cache"), "a\n");
    assert_eq!(f.read("in-tmpfs"), "y\n");
    assert!(!f.out().join("data/x").exists());
    assert!(!f.out().join("c/log").exists());
    assert!(!f.out().join("t/y").exists());

    // What a bind mount reads from the context is part of the RUN's cache key;
    // an ignored file is not.
    fs::write(f.ctx().join("data/secret"), "changed\n").unwrap();
    let (result, events) = f.build(dockerfile).await;
    result.unwrap();
    assert!(run_steps(&events, false).is_empty(), "{events:#?}");
    fs::write(f.ctx().join("data/x"), "changed\n").unwrap();
    let (result, events) = f.build(dockerfile).await;
    result.unwrap();
    assert_eq!(f.read("bound"), "changed\n");
    assert_eq!(run_steps(&events, false).len(), 4, "{events:#?}");
}

/// Past what one overlay mount can name (BuildKit fails near 450 layers): a RUN
/// over 600 layers sees the stack merged as it is, whiteouts and all, and so does
/// the RUN after it, over the squash the first one made.
#[tokio::test(flavor = "multi_thread")]
async fn run_over_a_stack_deeper_than_an_overlay_sees_it_whole() {
    let Some(f) = fixture() else { return };
    let mut df = String::new();
    for i in 0..600 {
        df.push_str(&format!("COPY <<EOF /d/f{i}\n{i}\nEOF\n"));
    }
    df.push_str("COPY <<EOF /d/f7\nseven\nEOF\nRUN rm /d/f3\n");
    for i in 600..650 {
        df.push_str(&format!("COPY <<EOF /d/f{i}\n{i}\nEOF\n"));
    }
    df.push_str("RUN ls /d | wc -l > /count && cat /d/f7 /d/f599 /d/f649 > /seen\n");
    df.push_str("RUN test ! -e /d/f3 && cat /count /seen > /again\n");
    let (result, _) = f.build(&df).await;
    let outcome = result.unwrap();
    assert!(outcome.snapshot.len() > 600);
    assert_eq!(f.read("count").trim(), "649");
    assert_eq!(f.read("seen"), "seven\n599\n649\n");
    assert_eq!(f.read("again"), "649\nseven\n599\n649\n");
}
