//! `buildd build --secret` and `--ssh` end to end: the value reaches the RUN and
//! nothing else (the root, the output, the progress), and it is no part of the
//! cache key. The base is a busybox rootfs copied in from the context.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use buildd_tests::{Workspace, can_run_busybox};
use sha2::{Digest, Sha256};

const VALUE: &str = "e2e-s3cr3t-4b9a77";
const APPLETS: &[&str] = &["sh", "cat", "test", "sha256sum", "printf", "true"];

/// A workspace whose context holds a busybox rootfs, or None when this host
/// cannot run containers (said why through `buildd_testkit`).
fn busybox_workspace() -> Option<Workspace> {
    if !can_run_busybox() {
        return None;
    }
    let ws = Workspace::new();
    let bin = ws.ctx().join("rootfs/bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    for applet in APPLETS {
        symlink("busybox", bin.join(applet)).unwrap();
    }
    Some(ws)
}

/// Whether any file under `dir` contains `needle`.
fn found_under(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let kind = e.file_type().unwrap();
            if kind.is_dir() {
                stack.push(e.path());
            } else if kind.is_file()
                && fs::read(e.path())
                    .unwrap()
                    .windows(needle.len())
                    .any(|w| w == needle)
            {
                hits.push(e.path().display().to_string());
            }
        }
    }
    hits
}

#[test]
fn a_secret_reaches_the_run_and_nothing_else() {
    let Some(ws) = busybox_workspace() else {
        return;
    };
    let hash = hex::encode(Sha256::digest(VALUE.as_bytes()));
    ws.dockerfile(&format!(
        "FROM scratch\nCOPY rootfs/ /\n\
         RUN --mount=type=secret,id=tok test \"$(sha256sum < /run/secrets/tok)\" = \"{hash}  -\"\n\
         RUN --mount=type=secret,id=tok,env=TOK test \"$(printf %s \"$TOK\" | sha256sum)\" = \"{hash}  -\"\n"
    ));
    let secret = ws.path("secret.txt");
    fs::write(&secret, VALUE).unwrap();
    let spec = format!("id=tok,src={}", secret.display());
    let out = ws.path("out.tar");
    let out_arg = format!("type=oci,dest={}", out.display());
    let run = ws.build(&["--secret", &spec, "-o", &out_arg]).success();
    assert!(!run.stderr.contains(VALUE), "{}", run.stderr);
    assert!(!run.stdout.contains(VALUE));
    let leaks = found_under(&ws.root(), VALUE.as_bytes());
    assert!(leaks.is_empty(), "the secret reached {leaks:?}");
    // Only the secret's own file holds it: not the context, the root or the image.
    assert_eq!(
        found_under(ws.dir.path(), VALUE.as_bytes()),
        [secret.display().to_string()]
    );

    // Another value: the RUNs are cached, as in BuildKit.
    fs::write(&secret, "another-value").unwrap();
    let run = ws.build(&["--secret", &spec]).success();
    assert_eq!(
        run.status_of("sha256sum < /run/secrets/tok"),
        Some("CACHED"),
        "{}",
        run.stderr
    );
    assert_eq!(run.status_of("printf %s"), Some("CACHED"), "{}", run.stderr);

    // A required secret the build was not given is named before the RUN starts.
    ws.dockerfile("FROM scratch\nCOPY rootfs/ /\nRUN --mount=type=secret,id=tok,required true\n");
    let run = ws.build(&[]).failure();
    assert!(
        run.stderr.contains("secret \"tok\" not found"),
        "{}",
        run.stderr
    );
    let run = ws.build(&["--secret", "src=/x"]).failure();
    assert!(run.stderr.contains("missing id"), "{}", run.stderr);
}

#[test]
fn an_ssh_agent_socket_is_forwarded() {
    let Some(ws) = busybox_workspace() else {
        return;
    };
    ws.dockerfile(
        "FROM scratch\nCOPY rootfs/ /\nRUN --mount=type=ssh,required test -S \"$SSH_AUTH_SOCK\"\n",
    );
    let agent = ws.path("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&agent).unwrap();
    ws.build(&["--ssh", &format!("default={}", agent.display())])
        .success();

    // Checked when the RUN runs: a cached one needs no agent, as in BuildKit.
    let run = ws.build(&["--no-cache"]).failure();
    assert!(
        run.stderr.contains("no ssh agent \"default\""),
        "{}",
        run.stderr
    );
    let not_socket = ws.path("key");
    fs::write(&not_socket, "k").unwrap();
    let run = ws
        .build(&["--ssh", &format!("default={}", not_socket.display())])
        .failure();
    assert!(run.stderr.contains("is not a socket"), "{}", run.stderr);
}
