//! git sources against a real `git daemon` on loopback: `ADD git://…` by branch,
//! tag and HEAD, `#ref:subdir`, `--keep-git-dir`, `--checksum`, caching by the
//! commit a ref resolves to, and the errors of a bad ref or an unreachable remote.

use std::path::Path;
use std::process::Command;

use buildd_tests::git::GitServer;
use buildd_tests::{Workspace, list_files};

fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn add_git_checks_out_refs_and_refetches_only_moved_ones() {
    let server = GitServer::start();
    let url = server.url();
    let ws = Workspace::new();
    let out = ws.path("out");
    let local = format!("type=local,dest={}", out.display());
    ws.dockerfile(&format!(
        "FROM scratch\n\
         ADD {url}#v1 /tag/\n\
         ADD {url}#v2:sub /annotated-sub/\n\
         ADD --keep-git-dir {url}#main /kept/\n\
         ADD {url} /head/\n"
    ));
    let first = ws.build(&["-o", &local]).success();
    assert_eq!(read(&out, "tag/a.txt"), "one\n");
    assert_eq!(read(&out, "tag/sub/b.txt"), "b\n");
    assert_eq!(list_files(&out.join("annotated-sub")), vec!["b.txt"]);
    assert_eq!(read(&out, "head/a.txt"), "two\n");
    assert!(!out.join("tag/.git").exists() && !out.join("head/.git").exists());
    // As BuildKit: a detached checkout of the commit, the ref kept as a tag.
    let head = server.git(&["rev-parse", "main"]);
    assert_eq!(read(&out, "kept/.git/HEAD").trim(), head);
    let kept = Command::new("git")
        .arg("-C")
        .arg(out.join("kept"))
        .args(["rev-parse", "refs/tags/main"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&kept.stdout).trim(), head);
    assert!(
        first.stderr.contains(&format!("fetching {url} at {head}")),
        "{}",
        first.stderr
    );

    let again = ws.build(&[]).success();
    assert_eq!(
        again.status_of("ADD --keep-git-dir"),
        Some("CACHED"),
        "{}",
        again.stderr
    );

    // main moves: what follows main fetches again; the tags do not.
    let moved = server.commit(&[("a.txt", "three\n")], "three");
    let third = ws.build(&["-o", &local]).success();
    assert_eq!(
        third.status_of("#v1 /tag/"),
        Some("CACHED"),
        "{}",
        third.stderr
    );
    assert_eq!(
        third.status_of("#main /kept/"),
        Some("DONE"),
        "{}",
        third.stderr
    );
    assert_eq!(read(&out, "head/a.txt"), "three\n");
    assert_eq!(read(&out, "kept/.git/HEAD").trim(), moved);
    assert_eq!(read(&out, "tag/a.txt"), "one\n");

    // A pinned commit is keyed without asking the remote.
    let v1 = server.git(&["rev-parse", "v1"]);
    ws.dockerfile(&format!(
        "FROM scratch\nADD --checksum={} {url}#v1 /pinned/\n",
        &v1[..12]
    ));
    ws.build(&["-o", &local]).success();
    assert_eq!(read(&out, "pinned/a.txt"), "one\n");
}

#[test]
fn bad_refs_checksums_and_remotes_fail_naming_the_url() {
    let server = GitServer::start();
    let url = server.url();
    let ws = Workspace::new();

    ws.dockerfile(&format!("FROM scratch\nADD {url}#nope /x/\n"));
    let run = ws.build(&[]).failure();
    assert!(
        run.stderr.contains(&format!(
            "git source {url}#nope: no branch, tag or ref \"nope\""
        )),
        "{}",
        run.stderr
    );

    let v2 = server.git(&["rev-parse", "v2^{commit}"]);
    let wrong = "0123456789abcdef";
    ws.dockerfile(&format!(
        "FROM scratch\nADD --checksum={wrong} {url}#v2 /x/\n"
    ));
    let run = ws.build(&[]).failure();
    assert!(
        run.stderr.contains(&format!(
            "checksum mismatch: --checksum={wrong}, the ref is at commit {v2}"
        )),
        "{}",
        run.stderr
    );

    ws.dockerfile(&format!("FROM scratch\nADD {url}#v1:missing /x/\n"));
    let run = ws.build(&[]).failure();
    assert!(
        run.stderr.contains("subdirectory \"missing\""),
        "{}",
        run.stderr
    );

    // A port nobody listens on (the daemon's own may linger in its children).
    let port = buildd_tests::free_port();
    let gone = format!("git://127.0.0.1:{port}/repo.git");
    ws.dockerfile(&format!("FROM scratch\nADD {gone}#main /x/\n"));
    let run = ws.build(&[]).failure();
    assert!(
        run.stderr.contains(&format!("git source {gone}#main")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Connection refused"), "{}", run.stderr);
}
