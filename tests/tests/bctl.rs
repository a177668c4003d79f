//! `bctl` against a real `buildd` daemon on a temporary socket: builds with OCI
//! and local outputs, incremental context upload, failures, and the storage
//! commands.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use buildd_testkit::require_tool;
use buildd_tests::daemon::Daemon;
use buildd_tests::{Run, Workspace, bctl_bin, busybox_context, skopeo_config};

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn build_exports_oci_and_local_outputs_and_lists_the_image() {
    let ws = Workspace::new();
    ws.dockerfile("FROM scratch\nCOPY app /app\nCOPY top.txt /\n")
        .file("app/bin/run", "#!/bin/sh\necho hi\n", 0o755)
        .file("app/name with space é.txt", "unicode", 0o644)
        .file("app/secret.key", "must not leave the client", 0o600)
        .file("app/logs/drop.log", "dropped", 0o644)
        .file("app/logs/keep.log", "kept", 0o644)
        .file("top.txt", "top", 0o644)
        .file("unused/big.bin", "not selected by any COPY", 0o644)
        .file(
            ".dockerignore",
            "app/secret.key\napp/logs\n!app/logs/keep.log\n",
            0o644,
        );
    fs::create_dir_all(ws.ctx().join("app/empty")).unwrap();
    symlink("bin/run", ws.ctx().join("app/link")).unwrap();
    let daemon = Daemon::start(&ws);
    let oci = ws.path("image.tar");
    let local = ws.path("out");
    let meta = ws.path("meta.json");
    let run = daemon
        .build(
            &ws,
            &[
                "-t",
                "bctl-e2e:1",
                "-o",
                &format!("type=oci,dest={},name=bctl-e2e:1", oci.display()),
                "-o",
                &format!("type=local,dest={}", local.display()),
                "--metadata-file",
                path_str(&meta),
            ],
        )
        .success();
    assert!(run.stderr.contains("DONE"), "{}", run.stderr);

    // The local output: modes, symlinks, empty dirs and names survived; the
    // .dockerignore applied, with its exception.
    let app = local.join("app");
    assert_eq!(
        fs::metadata(app.join("bin/run"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    assert_eq!(
        fs::read_link(app.join("link")).unwrap(),
        Path::new("bin/run")
    );
    assert!(app.join("empty").is_dir());
    assert_eq!(
        fs::read_to_string(app.join("name with space é.txt")).unwrap(),
        "unicode"
    );
    assert_eq!(
        fs::read_to_string(app.join("logs/keep.log")).unwrap(),
        "kept"
    );
    assert!(!app.join("logs/drop.log").exists());
    assert!(!app.join("secret.key").exists());
    assert_eq!(fs::read_to_string(local.join("top.txt")).unwrap(), "top");

    // The OCI archive is complete and readable, and its digest is in the metadata.
    if require_tool("skopeo") {
        let config = skopeo_config(&oci);
        assert_eq!(config["rootfs"]["type"], "layers", "{config}");
    }
    let meta: serde_json::Value = serde_json::from_slice(&fs::read(&meta).unwrap()).unwrap();
    let digest = meta["containerimage.digest"].as_str().unwrap();
    assert!(digest.starts_with("sha256:"), "{meta}");
    // No temporary file is left beside the archive.
    let leftovers: Vec<_> = fs::read_dir(ws.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let images = daemon.bctl(&["images"]).success();
    assert!(images.stdout.starts_with("NAME"), "{}", images.stdout);
    assert!(images.stdout.contains("bctl-e2e:1"), "{}", images.stdout);

    let info = daemon.bctl(&["info"]).success();
    assert!(info.stdout.contains("Version:"), "{}", info.stdout);
    assert!(
        info.stdout.contains(path_str(&ws.root())),
        "{}",
        info.stdout
    );

    let du = daemon.bctl(&["du"]).success();
    assert!(du.stdout.contains("context"), "{}", du.stdout);
    assert!(du.stdout.contains("Total:"), "{}", du.stdout);

    let pruned = daemon.bctl(&["prune", "--all", "-v"]).success();
    assert!(pruned.stdout.contains("Total:"), "{}", pruned.stdout);
    // The image store is never pruned.
    let images = daemon.bctl(&["images"]).success();
    assert!(images.stdout.contains("bctl-e2e:1"), "{}", images.stdout);
}

/// The line `#N transferring context: …` that bctl prints after a plain build.
fn transfer_line(run: &Run) -> &str {
    run.stderr
        .lines()
        .find(|l| l.contains(" transferring context: "))
        .unwrap_or_else(|| panic!("no transfer summary in:\n{}", run.stderr))
}

#[test]
fn a_rebuild_after_editing_one_file_sends_only_that_file() {
    let ws = Workspace::new();
    ws.dockerfile("FROM scratch\nCOPY src /src\n");
    for i in 0..50 {
        ws.file(&format!("src/f{i:02}.txt"), &format!("file {i}\n"), 0o644);
    }
    let daemon = Daemon::start(&ws);
    let first = daemon.build(&ws, &[]).success();
    assert!(
        transfer_line(&first).contains(": 50 files, "),
        "{}",
        transfer_line(&first)
    );
    let same = daemon.build(&ws, &[]).success();
    assert!(
        transfer_line(&same).contains(": 0 files, 0B"),
        "{}",
        transfer_line(&same)
    );
    ws.file("src/f07.txt", "edited!\n", 0o644);
    let second = daemon.build(&ws, &[]).success();
    assert!(
        transfer_line(&second).contains(": 1 file, 8B"),
        "{}",
        transfer_line(&second)
    );
    let out = ws.path("out");
    daemon
        .build(&ws, &["-o", &format!("type=local,dest={}", out.display())])
        .success();
    assert_eq!(
        fs::read_to_string(out.join("src/f07.txt")).unwrap(),
        "edited!\n"
    );
}

#[test]
fn a_missing_copy_source_fails_naming_it() {
    let ws = Workspace::new();
    ws.dockerfile("FROM scratch\nCOPY not-there.txt /\n");
    let daemon = Daemon::start(&ws);
    let run = daemon.build(&ws, &[]);
    assert!(!run.ok, "the build should fail:\n{}", run.stderr);
    assert!(run.stderr.contains("ERROR"), "{}", run.stderr);
    assert!(run.stderr.contains("not-there.txt"), "{}", run.stderr);
    // The daemon keeps serving.
    ws.dockerfile("FROM scratch\nCOPY Dockerfile /\n");
    daemon.build(&ws, &[]).success();
}

#[test]
fn warnings_and_quiet_output_follow_docker_build() {
    let ws = Workspace::new();
    ws.dockerfile("FROM scratch\nCOPY Dockerfile /\nCMD echo hi\n");
    let daemon = Daemon::start(&ws);
    let run = daemon.build(&ws, &[]).success();
    assert!(
        run.stderr
            .contains("1 warning found:\n - JSONArgsRecommended: "),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("(line 3)"), "{}", run.stderr);
    let ctx = ws.ctx();
    let oci = ws.path("q.tar");
    let quiet = daemon
        .bctl(&[
            "build",
            "--progress=quiet",
            "-o",
            &format!("type=oci,dest={}", oci.display()),
            path_str(&ctx),
        ])
        .success();
    assert!(quiet.stderr.is_empty(), "{}", quiet.stderr);
    assert!(
        quiet.stdout.trim().starts_with("sha256:"),
        "{}",
        quiet.stdout
    );
}

#[test]
fn an_unreachable_daemon_is_named() {
    let ws = Workspace::new();
    let addr = format!("unix://{}", ws.path("nobody.sock").display());
    let out = Command::new(bctl_bin())
        .args(["--addr", &addr, "info"])
        .output()
        .unwrap();
    let run = Run::of(out);
    assert!(!run.ok);
    assert!(
        run.stderr.contains(&addr) && run.stderr.contains("is buildd running?"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_daemon_pushes_to_and_pulls_from_a_registry() {
    if !buildd_tests::registry::registry_available() || !require_tool("skopeo") {
        return;
    }
    let reg = buildd_tests::registry::TestRegistry::start();
    let image = format!("{}/pushed:1", reg.host());
    let ws = Workspace::new();
    ws.file("a.txt", "from the base\n", 0o644);
    ws.dockerfile("FROM scratch\nCOPY a.txt /\n");
    let daemon = Daemon::start(&ws);
    let push = format!("type=image,name={image},push=true");
    daemon.build(&ws, &["-o", &push]).success();
    let inspect = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{image}"))
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );

    // Another daemon, another root: FROM what was pushed.
    let other = Workspace::new();
    other.file("b.txt", "added on top\n", 0o644);
    other.dockerfile(&format!("FROM {image}\nCOPY b.txt /\n"));
    let daemon = Daemon::start(&other);
    let out = other.path("out");
    let local = format!("type=local,dest={}", out.display());
    daemon.build(&other, &["-o", &local]).success();
    assert_eq!(
        fs::read_to_string(out.join("a.txt")).unwrap(),
        "from the base\n"
    );
    assert_eq!(
        fs::read_to_string(out.join("b.txt")).unwrap(),
        "added on top\n"
    );
}

#[test]
fn registry_credentials_come_from_the_client_over_the_session() {
    if !buildd_tests::registry::auth_registry_available() {
        return;
    }
    let reg = buildd_tests::registry::TestRegistry::start_with_basic_auth("ci", "pw");
    let image = format!("{}/private:1", reg.host());
    let ws = Workspace::new();
    // The client's docker config holds the credentials; the daemon has none.
    let config = ws.path("docker-config");
    fs::create_dir_all(&config).unwrap();
    // base64("ci:pw")
    fs::write(
        config.join("config.json"),
        format!(
            r#"{{"auths": {{"{}": {{"auth": "Y2k6cHc="}}}}}}"#,
            reg.host()
        ),
    )
    .unwrap();
    let empty = ws.path("no-config");
    fs::create_dir_all(&empty).unwrap();
    ws.file("a.txt", "private base\n", 0o644);
    ws.dockerfile("FROM scratch\nCOPY a.txt /\n");
    let daemon = Daemon::start(&ws);
    let push = format!("type=image,name={image},push=true");
    let denied = daemon.bctl_with_env(
        &[("DOCKER_CONFIG", &empty)],
        &[
            "build",
            "--progress=plain",
            "-o",
            &push,
            path_str(&ws.ctx()),
        ],
    );
    assert!(!denied.ok);
    assert!(
        denied.stderr.contains("authentication required"),
        "{}",
        denied.stderr
    );
    daemon
        .bctl_with_env(
            &[("DOCKER_CONFIG", &config)],
            &[
                "build",
                "--progress=plain",
                "-o",
                &push,
                path_str(&ws.ctx()),
            ],
        )
        .success();

    // A daemon whose image store does not hold it yet (a pushed image is also named
    // locally, and FROM finds local images first).
    drop(daemon);
    let ws2 = Workspace::new();
    let daemon = Daemon::start(&ws2);
    ws.dockerfile(&format!("FROM {image}\n"));
    let out = ws.path("out");
    let local = format!("type=local,dest={}", out.display());
    let ctx = ws.ctx();
    let args = ["build", "--progress=plain", "-o", &local, path_str(&ctx)];
    let denied = daemon.bctl_with_env(&[("DOCKER_CONFIG", &empty)], &args);
    assert!(!denied.ok);
    assert!(
        denied.stderr.contains("authentication required"),
        "{}",
        denied.stderr
    );
    daemon
        .bctl_with_env(&[("DOCKER_CONFIG", &config)], &args)
        .success();
    assert_eq!(
        fs::read_to_string(out.join("a.txt")).unwrap(),
        "private base\n"
    );
}

/// A client for the RUN: busybox's `nc` cannot connect to a unix socket, so a
/// static helper sends its argument as a line to `$SSH_AUTH_SOCK` and prints
/// what comes back until the agent closes, as an ssh client keeps its agent
/// connection open while it waits for the answer.
const AGENT_CLIENT_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *path = getenv("SSH_AUTH_SOCK");
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (argc != 2 || !path || strlen(path) >= sizeof addr.sun_path) {
        fprintf(stderr, "usage: SSH_AUTH_SOCK=PATH agent-ping LINE\n");
        return 2;
    }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror(path);
        return 1;
    }
    dprintf(fd, "%s\n", argv[1]);
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        fwrite(buf, 1, n, stdout);
    }
    return n < 0;
}
"#;

/// A fake SSH agent: answers each connection's first line with `pong:<line>`
/// and closes it; returns the lines it has seen.
fn pong_agent(path: &Path) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut line = String::new();
            if BufReader::new(&conn).read_line(&mut line).is_err() {
                continue;
            }
            record.lock().unwrap().push(line.clone());
            let _ = conn.write_all(format!("pong:{line}").as_bytes());
        }
    });
    seen
}

#[test]
fn ssh_agents_are_forwarded_from_the_client_over_the_session() {
    let ws = Workspace::new();
    if !busybox_context(&ws, &["sh", "cat", "test"]) || !require_tool("cc") {
        return;
    }
    let rootfs = ws.ctx().join("rootfs");
    let source = ws.path("agent-ping.c");
    fs::write(&source, AGENT_CLIENT_C).unwrap();
    let compiled = Command::new("cc")
        .args(["-static", "-O", "-o"])
        .arg(rootfs.join("bin/agent-ping"))
        .arg(&source)
        .output()
        .unwrap();
    assert!(
        compiled.status.success(),
        "{}",
        String::from_utf8_lossy(&compiled.stderr)
    );
    let agent = ws.path("agent.sock");
    let seen = pong_agent(&agent);
    // Two connections from one RUN: each is its own forwarded connection.
    ws.dockerfile(
        "FROM scratch\nCOPY rootfs/ /\n\
         RUN --mount=type=ssh,required /bin/agent-ping first > /first \
             && /bin/agent-ping second > /second && test -s /second\n",
    );
    let daemon = Daemon::start(&ws);

    // Without --ssh the required agent is named; a key file is refused up front.
    let missing = daemon.build(&ws, &[]);
    assert!(!missing.ok);
    assert!(
        missing.stderr.contains("no ssh agent \"default\""),
        "{}",
        missing.stderr
    );
    let key = ws.path("id_ed25519");
    fs::write(&key, "not a socket").unwrap();
    let refused = daemon.build(&ws, &["--ssh", &format!("default={}", key.display())]);
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains("is not a socket") && refused.stderr.contains("ssh-add"),
        "{}",
        refused.stderr
    );

    let out = ws.path("out");
    daemon
        .build(
            &ws,
            &[
                "--ssh",
                &format!("default={}", agent.display()),
                "-o",
                &format!("type=local,dest={}", out.display()),
            ],
        )
        .success();
    assert_eq!(
        fs::read_to_string(out.join("first")).unwrap(),
        "pong:first\n"
    );
    assert_eq!(
        fs::read_to_string(out.join("second")).unwrap(),
        "pong:second\n"
    );
    assert_eq!(*seen.lock().unwrap(), ["first\n", "second\n"]);
    // The agent socket was the run's alone: nothing of it is in the image.
    assert!(!out.join("run/buildkit").exists());
}

/// `bctl build --llb`: the definition `buildd debug dump-llb --format pb` prints
/// builds through the daemon like its Dockerfile, from a file with `--local` or
/// from stdin with CONTEXT; what is no definition fails before connecting, and a
/// definition with a dangling input gets the daemon's clear error.
#[test]
fn a_raw_llb_definition_builds_like_its_dockerfile() {
    use buildd_tests::buildd_bin;
    let ws = Workspace::new();
    ws.dockerfile("FROM scratch\nCOPY top.txt /\n")
        .file("top.txt", "top", 0o644);
    let dumped = Command::new(buildd_bin())
        .args(["debug", "dump-llb", "--format", "pb"])
        .arg(ws.ctx())
        .output()
        .unwrap();
    assert!(dumped.status.success(), "{dumped:?}");
    let def = ws.path("def.pb");
    fs::write(&def, &dumped.stdout).unwrap();
    let daemon = Daemon::start(&ws);

    let out = ws.path("out");
    let local = format!("context={}", ws.ctx().display());
    let dest = format!("type=local,dest={}", out.display());
    let llb_build = |def: &Path, more: &[&str]| {
        let mut args = vec!["build", "--progress=plain", "--llb", path_str(def)];
        args.extend_from_slice(&["--local", &local]);
        args.extend_from_slice(more);
        daemon.bctl(&args)
    };
    llb_build(&def, &["-o", &dest]).success();
    assert_eq!(fs::read_to_string(out.join("top.txt")).unwrap(), "top");

    let out2 = ws.path("out2");
    let dest2 = format!("type=local,dest={}", out2.display());
    let ctx = ws.ctx();
    daemon
        .bctl_with_stdin(
            &[
                "build",
                "--progress=plain",
                "--llb",
                "-",
                "-o",
                &dest2,
                path_str(&ctx),
            ],
            &dumped.stdout,
        )
        .success();
    assert_eq!(fs::read_to_string(out2.join("top.txt")).unwrap(), "top");

    fs::write(ws.path("junk.pb"), "FROM scratch\n").unwrap();
    let run = llb_build(&ws.path("junk.pb"), &[]);
    assert!(!run.ok);
    assert!(
        run.stderr.contains("is not a serialized Definition"),
        "{}",
        run.stderr
    );

    // Without its first op (a source: inputs come first), the COPY's input is
    // dangling.
    let bytes = &dumped.stdout;
    assert_eq!(bytes[0], 0x0a, "field 1, length-delimited");
    let (mut len, mut at) = (0usize, 1usize);
    for shift in (0..).step_by(7) {
        let b = bytes[at];
        at += 1;
        len |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
    }
    fs::write(ws.path("dangling.pb"), &bytes[at + len..]).unwrap();
    let run = llb_build(&ws.path("dangling.pb"), &[]);
    assert!(!run.ok);
    assert!(run.stderr.contains("undefined input"), "{}", run.stderr);
    // The daemon keeps serving.
    llb_build(&def, &[]).success();
}

/// `bctl bench` generates each shape, solves it through the daemon cold and then
/// warm, and reports per vertex; the warm run is served from the cache (no op
/// executes), and a second run with a fresh salt is cold again.
#[test]
fn bench_reports_cold_and_warm_runs_of_each_shape() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws);
    for (shape, size, op) in [
        ("chain", "30", "file"),
        ("wide", "30", "noop"),
        ("diamond", "102", "noop"),
        ("lattice", "36", "file"),
        ("random", "40", "file"),
    ] {
        let before = daemon.bctl(&["info"]).success().stdout;
        let run = daemon
            .bctl(&[
                "bench", "--shape", shape, "--size", size, "--op", op, "--runs", "2", "--json",
            ])
            .success();
        let report: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
        assert_eq!(report["shape"], shape, "{report}");
        assert_eq!(report["size"].to_string(), size);
        assert_eq!(report["op"], op);
        for field in [
            "cold_seconds",
            "warm_seconds",
            "cold_us_per_vertex",
            "warm_us_per_vertex",
        ] {
            assert!(report[field].as_f64().unwrap() > 0.0, "{field}: {report}");
        }
        assert!(report["peak_rss_bytes"].as_u64().unwrap() > 0, "{report}");
        let vertices = report["vertices"].as_u64().unwrap();
        let depth = report["critical_path"].as_u64().unwrap();
        assert!(vertices >= size.parse().unwrap() && depth >= 2, "{report}");
        // Two cold runs executed every op (fresh salts); the warm runs none.
        let executed = |info: &str| -> u64 {
            let line = info
                .lines()
                .find(|l| l.starts_with("Executed ops:"))
                .unwrap();
            line.split_whitespace().last().unwrap().parse().unwrap()
        };
        let after = daemon.bctl(&["info"]).success().stdout;
        assert_eq!(
            executed(&after) - executed(&before),
            2 * vertices,
            "{shape}"
        );
    }
    let svg = ws.path("sweep.svg");
    let sweep = daemon
        .bctl(&[
            "bench",
            "--size",
            "5,10",
            "--op",
            "noop",
            "--json",
            "--plot",
            path_str(&svg),
        ])
        .success();
    assert_eq!(sweep.stdout.lines().count(), 2, "{}", sweep.stdout);
    let svg = fs::read_to_string(&svg).unwrap();
    assert!(
        svg.starts_with("<svg ") && svg.contains(r#"class="warm""#),
        "{svg}"
    );
    assert_eq!(svg.matches("<circle").count(), 4, "{svg}");
    let run = daemon.bctl(&["bench", "--op", "exec"]);
    assert!(!run.ok && run.stderr.contains("--image"), "{}", run.stderr);
}
