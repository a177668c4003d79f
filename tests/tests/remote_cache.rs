//! Remote caches against real parts: a `docker-registry` on loopback shared by
//! two daemons with separate roots, and local OCI layout caches for the one-shot
//! `buildd build`. The second builder of a graph runs no step and fetches only
//! the layers of the result.

use std::fs;
use std::path::Path;

use buildd_tests::daemon::Daemon;
use buildd_tests::registry::{TestRegistry, registry_available};
use buildd_tests::{Run, Workspace, busybox_context};

/// A builder stage whose layer the final image does not hold: an importer that
/// hits throughout has no reason to fetch it.
const DOCKERFILE: &str = "\
FROM scratch AS base
COPY rootfs/ /
RUN echo a > /a
FROM base AS builder
RUN echo built > /built && echo more > /more
FROM base
ARG SOURCE_DATE_EPOCH
RUN echo b > /b
COPY --from=builder /built /out
";

/// Needles for `status_of`, each matching one step only (`RUN echo b` would
/// also match `RUN echo built`, whichever is printed first).
const STEPS: [&str; 5] = [
    "COPY rootfs/",
    "RUN echo a >",
    "RUN echo built",
    "RUN echo b >",
    "COPY --from=builder",
];

fn context() -> Option<Workspace> {
    let ws = Workspace::new();
    if !busybox_context(&ws, &["sh", "echo"]) {
        return None;
    }
    ws.dockerfile(DOCKERFILE);
    Some(ws)
}

/// Layer directories a root holds.
fn layer_count(root: &Path) -> usize {
    fs::read_dir(root.join("layers"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| !e.file_name().to_string_lossy().starts_with('.'))
            })
            .count()
        })
        .unwrap_or(0)
}

/// The steps whose results are the final image's layers (not the builder's).
const IMAGE_STEPS: [&str; 4] = [
    "COPY rootfs/",
    "RUN echo a >",
    "RUN echo b >",
    "COPY --from=builder",
];

fn assert_steps(run: &Run, steps: &[&str], status: &str) {
    for step in steps {
        assert_eq!(run.status_of(step), Some(status), "{step}: {}", run.stderr);
    }
}

fn assert_all(run: &Run, status: &str) {
    assert_steps(run, &STEPS, status);
}

/// The config blob of `image` as stored: skopeo's parsed form drops fields it
/// does not know.
fn raw_config(image: &str) -> serde_json::Value {
    buildd_tests::skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        "--config",
        &format!("docker://{image}"),
    ])
}

#[test]
fn a_second_daemon_builds_from_the_registry_cache_without_running_a_step() {
    if !registry_available() {
        return;
    }
    let reg = TestRegistry::start();
    let (Some(ws1), Some(ws2)) = (context(), context()) else {
        return;
    };
    let cache = format!("{}/cache/app:buildcache", reg.host());
    let epoch = ["--build-arg", "SOURCE_DATE_EPOCH=1700000000"];
    let (first_d, second_d) = (Daemon::start(&ws1), Daemon::start(&ws2));
    let oci1 = ws1.path("one.tar");
    let mut args = epoch.to_vec();
    let cache_to = format!("type=registry,ref={cache},mode=max");
    let out1 = format!("type=oci,dest={}", oci1.display());
    args.extend(["--cache-to", &cache_to, "-o", &out1]);
    let first = first_d.build(&ws1, &args).success();
    assert_all(&first, "DONE");
    assert!(
        first.stderr.contains("exporting cache to registry"),
        "{}",
        first.stderr
    );

    let oci2 = ws2.path("two.tar");
    let mut args = epoch.to_vec();
    let cache_from = format!("type=registry,ref={cache}");
    let out2 = format!("type=oci,dest={}", oci2.display());
    args.extend(["--cache-from", &cache_from, "-o", &out2]);
    let second = second_d.build(&ws2, &args).success();
    assert_all(&second, "CACHED");
    // The same image, byte for byte.
    assert_eq!(fs::read(&oci1).unwrap(), fs::read(&oci2).unwrap());
    // Only the result's four layers were fetched: not the builder's.
    assert_eq!(layer_count(&ws2.root()), 4, "{}", second.stderr);
    assert!(layer_count(&ws1.root()) > 4);
    drop(second_d);

    // A restarted daemon hits in its own index for what it fetched, with no
    // import. The builder stage's result was never fetched, and without the
    // import the solver computes it to key the COPY that reads it.
    let again = Daemon::start(&ws2).build(&ws2, &epoch).success();
    assert_steps(&again, &IMAGE_STEPS, "CACHED");
}

#[test]
fn a_missing_or_foreign_cache_is_a_warning_and_the_build_runs() {
    if !registry_available() {
        return;
    }
    let reg = TestRegistry::start();
    let Some(ws) = context() else {
        return;
    };
    let daemon = Daemon::start(&ws);
    let missing = format!("type=registry,ref={}/nothing:here", reg.host());
    let run = daemon.build(&ws, &["--cache-from", &missing]).success();
    assert!(run.stderr.contains("no cache there yet"), "{}", run.stderr);
    assert_all(&run, "DONE");

    // An image without an inline cache is not a cache: it is ignored, with the reason.
    let image = format!("{}/app:1", reg.host());
    let push = format!("type=image,name={image},push=true");
    daemon.build(&ws, &["-o", &push]).success();
    let foreign = format!("type=registry,ref={image}");
    let run = daemon
        .build(&ws, &["--no-cache", "--cache-from", &foreign])
        .success();
    assert!(
        run.stderr
            .contains("ignored: an image without an inline buildd cache"),
        "{}",
        run.stderr
    );

    // A daemon does not read or write the client's directories for it.
    let local = format!("type=local,dest={}", ws.path("c").display());
    let run = daemon.build(&ws, &["--cache-to", &local]).failure();
    assert!(
        run.stderr.contains("type=local is for the one-shot"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_inline_cache_rides_in_the_pushed_image_and_another_daemon_hits_it() {
    if !registry_available() {
        return;
    }
    let reg = TestRegistry::start();
    let (Some(ws1), Some(ws2)) = (context(), context()) else {
        return;
    };
    let image = format!("{}/inline/app:1", reg.host());
    let push = format!("type=image,name={image},push=true");
    let first = Daemon::start(&ws1)
        .build(&ws1, &["--cache-to", "type=inline", "-o", &push])
        .success();
    assert_all(&first, "DONE");
    let config = raw_config(&image);
    let inline = &config["buildd.cache.v1"];
    // mode=min: the four steps whose results are the image's layers (a prefix
    // of them each), not the builder stage's.
    assert_eq!(
        inline["records"].as_array().map(Vec::len),
        Some(4),
        "{config}"
    );

    let from = format!("type=registry,ref={image}");
    let second = Daemon::start(&ws2)
        .build(&ws2, &["--cache-from", &from, "-o", &push])
        .success();
    assert_steps(&second, &IMAGE_STEPS, "CACHED");
    // The builder stage is not in the image, so not in its cache: it runs to key
    // the COPY that reads it, which then hits.
    assert_eq!(
        second.status_of("RUN echo built"),
        Some("DONE"),
        "{}",
        second.stderr
    );
    // Its image, built without --cache-to type=inline, carries no cache: what
    // the config it was built from held does not leak into it.
    let again = raw_config(&image);
    assert!(again.get("buildd.cache.v1").is_none(), "{again}");
}

#[test]
fn one_shot_builds_share_a_local_cache_and_ignore_a_corrupt_one() {
    let Some(ws) = context() else {
        return;
    };
    let dir = ws.path("cache");
    let to = format!("type=local,dest={},mode=min", dir.display());
    let first = ws
        .build_in(&ws.path("root-a"), &["--cache-to", &to])
        .success();
    assert_all(&first, "DONE");
    assert!(dir.join("index.json").is_file());

    let from = format!("type=local,src={}", dir.display());
    let second = ws
        .build_in(&ws.path("root-b"), &["--cache-from", &from])
        .success();
    // mode=min holds the final stage's steps, so the builder stage runs.
    assert_steps(&second, &IMAGE_STEPS, "CACHED");

    // A config blob that does not match its digest is never a wrong result.
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifest = index["manifests"][0]["digest"].as_str().unwrap()[7..].to_owned();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("blobs/sha256").join(manifest)).unwrap())
            .unwrap();
    let config = manifest["config"]["digest"].as_str().unwrap()[7..].to_owned();
    fs::write(dir.join("blobs/sha256").join(config), b"{\"records\": []}").unwrap();
    let third = ws
        .build_in(&ws.path("root-c"), &["--cache-from", &from])
        .success();
    assert!(
        third.stderr.contains("content does not match its digest"),
        "{}",
        third.stderr
    );
    assert_all(&third, "DONE");
}

#[test]
fn cache_mounts_travel_only_with_cache_mounts_true() {
    let ws = Workspace::new();
    if !busybox_context(&ws, &["sh", "echo", "cat"]) {
        return;
    }
    let mount = "RUN --mount=type=cache,target=/var/cache/app,uid=1000,mode=0700";
    ws.dockerfile(&format!(
        "FROM scratch\nCOPY rootfs/ /\n{mount} sh -c 'echo warm > /var/cache/app/state'\n"
    ));
    let with = ws.path("with-mounts");
    let without = ws.path("without-mounts");
    let to_with = format!("type=local,dest={},cache-mounts=true", with.display());
    let to_without = format!("type=local,dest={}", without.display());
    let first = ws
        .build_in(
            &ws.path("root-a"),
            &["--cache-to", &to_with, "--cache-to", &to_without],
        )
        .success();
    assert!(
        first
            .stderr
            .contains("cache mount \"/var/cache/app;uid=1000;gid=-;mode=700\": "),
        "{}",
        first.stderr
    );

    // Another root reads the mount: seeded from the cache that carries it, empty
    // from the one that does not.
    ws.dockerfile(&format!(
        "FROM scratch\nCOPY rootfs/ /\n{mount} sh -c 'cat /var/cache/app/state > /seen || echo cold > /seen'\n"
    ));
    for (cache, root, want) in [(&with, "root-b", "warm\n"), (&without, "root-c", "cold\n")] {
        let out = ws.path(&format!("out-{root}"));
        let from = format!("type=local,src={}", cache.display());
        let dest = format!("type=local,dest={}", out.display());
        ws.build_in(&ws.path(root), &["--cache-from", &from, "-o", &dest])
            .success();
        assert_eq!(
            fs::read_to_string(out.join("seen")).unwrap(),
            want,
            "{root}"
        );
    }
}
