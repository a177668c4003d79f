//! Contexts that are not a local directory: a git repository (`git daemon` on
//! loopback) built by the one-shot `buildd build URL` and through the daemon with
//! `bctl build URL`; an http(s) archive or Dockerfile (an HTTP server on
//! loopback); and standard input (a tar archive or a Dockerfile).

use std::path::Path;

use buildd_tests::daemon::Daemon;
use buildd_tests::git::GitServer;
use buildd_tests::http::Server;
use buildd_tests::{Workspace, skopeo_config};

fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A repository with a Dockerfile at its root and another in `app/`, with a
/// `.dockerignore` there and a symlink to a host file.
fn repository() -> GitServer {
    let server = GitServer::start();
    server.commit(
        &[
            ("Dockerfile", "FROM scratch\nCOPY a.txt /from-root.txt\n"),
            ("app/Dockerfile", "FROM scratch\nCOPY . /app/\n"),
            ("app/hello.txt", "hello from git\n"),
            ("app/ignored.txt", "not copied\n"),
            ("app/.dockerignore", "ignored.txt\n"),
        ],
        "dockerfiles",
    );
    std::os::unix::fs::symlink("/etc/passwd", server.repo().join("app/evil")).unwrap();
    server.git(&["add", "-A"]);
    server.git(&["commit", "-q", "-m", "a symlink out"]);
    server
}

fn gzip_tar(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, path, data.as_bytes()).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &b.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

#[test]
fn a_git_url_is_a_context_for_the_one_shot_build() {
    let server = repository();
    let url = server.url();
    let ws = Workspace::new();
    let out = ws.path("out");
    let local = format!("type=local,dest={}", out.display());

    ws.build_from(&["-o", &local], &url, b"").success();
    assert_eq!(read(&out, "from-root.txt"), "two\n");

    let sub = format!("{url}#main:app");
    let run = ws.build_from(&["-o", &local], &sub, b"").success();
    assert_eq!(read(&out, "app/hello.txt"), "hello from git\n");
    assert!(
        !out.join("app/ignored.txt").exists(),
        "the repository's .dockerignore applies"
    );
    assert_eq!(
        run.status_of("load remote build context"),
        Some("DONE"),
        "{}",
        run.stderr
    );
    let again = ws.build_from(&[], &sub, b"").success();
    assert_eq!(
        again.status_of("load remote build context"),
        Some("CACHED"),
        "{}",
        again.stderr
    );
    assert_eq!(
        again.status_of("COPY . /app/"),
        Some("CACHED"),
        "{}",
        again.stderr
    );

    // A Dockerfile that is a symlink to a host file names nothing outside the
    // repository: it resolves inside it, where there is no /etc/passwd.
    let run = ws.build_from(&["-f", "evil"], &sub, b"").failure();
    assert!(!run.stderr.contains("root:x:0:0"), "{}", run.stderr);
    assert!(run.stderr.contains("etc/passwd"), "{}", run.stderr);
}

#[test]
fn bctl_sends_a_git_url_for_the_daemon_to_fetch() {
    let server = repository();
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws);
    let out = ws.path("out");
    let local = format!("type=local,dest={}", out.display());
    let sub = format!("{}#main:app", server.url());
    let run = daemon.bctl(&["build", "--progress=plain", "-o", &local, &sub]);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(read(&out, "app/hello.txt"), "hello from git\n");
    assert!(!out.join("app/ignored.txt").exists());

    server.commit(&[("app/hello.txt", "moved on\n")], "moved");
    let run = daemon.bctl(&["build", "--progress=plain", "-o", &local, &sub]);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(read(&out, "app/hello.txt"), "moved on\n");

    let run = daemon.bctl(&["build", "-f", "../Dockerfile", &sub]);
    assert!(!run.ok);
    assert!(run.stderr.contains("filename"), "{}", run.stderr);
}

#[test]
fn http_archives_and_dockerfiles_are_contexts() {
    let archive = gzip_tar(&[
        ("Dockerfile", "FROM scratch\nCOPY f.txt /\n"),
        ("f.txt", "from a tarball\n"),
    ]);
    let server = Server::start(&archive);
    let ws = Workspace::new();
    let out = ws.path("out");
    let local = format!("type=local,dest={}", out.display());
    ws.build_from(&["-o", &local], &server.url("ctx.tar.gz"), b"")
        .success();
    assert_eq!(read(&out, "f.txt"), "from a tarball\n");

    // A URL serving text is the Dockerfile, with an empty context.
    *server.body.lock().unwrap() = b"FROM scratch\nENV FROM_URL=yes\n".to_vec();
    let oci = ws.path("image.tar");
    let dest = format!("type=oci,dest={}", oci.display());
    ws.build_from(&["-o", &dest], &server.url("Dockerfile.txt"), b"")
        .success();
    let env = skopeo_config(&oci)["config"]["Env"].to_string();
    assert!(env.contains("FROM_URL=yes"), "{env}");
}

#[test]
fn standard_input_holds_an_archive_or_a_dockerfile() {
    let ws = Workspace::new();
    let out = ws.path("out");
    let local = format!("type=local,dest={}", out.display());
    let archive = gzip_tar(&[
        ("Dockerfile", "FROM scratch\nCOPY f.txt /\n"),
        ("f.txt", "from stdin\n"),
    ]);
    ws.build_from(&["-o", &local], "-", &archive).success();
    assert_eq!(read(&out, "f.txt"), "from stdin\n");

    let oci = ws.path("image.tar");
    let dest = format!("type=oci,dest={}", oci.display());
    ws.build_from(&["-o", &dest], "-", b"FROM scratch\nENV FROM_STDIN=1\n")
        .success();
    let env = skopeo_config(&oci)["config"]["Env"].to_string();
    assert!(env.contains("FROM_STDIN=1"), "{env}");

    // The same through the daemon: bctl unpacks and uploads it.
    let daemon = Daemon::start(&ws);
    let out2 = ws.path("out2");
    let local2 = format!("type=local,dest={}", out2.display());
    let run = daemon.bctl_with_stdin(&["build", "-o", &local2, "-"], &archive);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(read(&out2, "f.txt"), "from stdin\n");
}
