//! Secrets through the daemon: `bctl build --secret` keeps the value on the client,
//! the daemon asks for it over the session when a RUN mounts it, and afterwards
//! nothing under the daemon's root, in its log, in the output or in the progress
//! holds it.

use std::fs;
use std::path::Path;

use buildd_tests::daemon::Daemon;
use buildd_tests::{Workspace, busybox_context};
use sha2::{Digest, Sha256};

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(meta) = fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            found.extend(files_containing(&p, needle));
        } else if meta.is_file()
            && let Ok(bytes) = fs::read(&p)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            found.push(p.display().to_string());
        }
    }
    found
}

#[test]
fn a_secret_reaches_the_run_through_the_session_and_nothing_else() {
    let ws = Workspace::new();
    if !busybox_context(&ws, &["sh", "test", "printf", "sha256sum", "cut", "cat"]) {
        return;
    }
    // Made at run time, so no file of the test or the Dockerfile holds it.
    let value = format!("buildd-secret-{}-{:x}", std::process::id(), rand_ish());
    let hash = hex::encode(Sha256::digest(value.as_bytes()));
    let secret_file = ws.path("tok.txt");
    fs::write(&secret_file, &value).unwrap();
    ws.dockerfile(&format!(
        "FROM scratch\nCOPY rootfs/ /\n\
         RUN --mount=type=secret,id=tok,required=true \
         test \"$(sha256sum /run/secrets/tok | cut -d' ' -f1)\" = {hash}\n\
         RUN --mount=type=secret,id=tok,env=TOK \
         test \"$(printf %s \"$TOK\" | sha256sum | cut -d' ' -f1)\" = {hash}\n"
    ));
    let daemon = Daemon::start(&ws);
    let out = ws.path("out.tar");
    let secret = format!("id=tok,src={}", secret_file.display());
    let oci = format!("type=oci,dest={}", out.display());
    let run = daemon
        .build(&ws, &["--secret", &secret, "-o", &oci])
        .success();

    let needle = value.as_bytes();
    assert!(!run.stderr.contains(&value) && !run.stdout.contains(&value));
    assert_eq!(files_containing(&ws.root(), needle), Vec::<String>::new());
    assert_eq!(files_containing(&out, needle), Vec::<String>::new());
    let log = fs::read_to_string(ws.path("buildd.log")).unwrap();
    assert!(!log.contains(&value), "the daemon logged the secret");

    // Without the secret, the required mount fails and names it.
    let failed = daemon.build(&ws, &["--no-cache", "-o", &oci]);
    assert!(!failed.ok);
    assert!(failed.stderr.contains("tok"), "{}", failed.stderr);
}

fn rand_ish() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}
