//! `ADD URL` against a real HTTP server on loopback (a small one in this test,
//! serving what the test sets): the file, its mode and mtime, `--checksum`, and
//! caching by content.

use std::os::unix::fs::MetadataExt;

use buildd_tests::Workspace;
use buildd_tests::http::Server;

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

#[test]
fn add_url_fetches_the_file_and_refetches_only_changed_content() {
    let server = Server::start(b"hello web\n");
    let ws = Workspace::new();
    let out = ws.path("out");
    let local = format!("type=local,dest={}", out.display());
    ws.dockerfile(&format!(
        "FROM scratch\nADD {} /web/\nADD --checksum={} {} /pinned.txt\n",
        server.url("dir/hello.txt"),
        sha256(b"hello web\n"),
        server.url("hello.txt"),
    ));
    let first = ws.build(&["-o", &local]).success();
    assert_eq!(
        first.status_of("ADD http"),
        Some("DONE"),
        "{}",
        first.stderr
    );
    let file = out.join("web/hello.txt");
    assert_eq!(std::fs::read(&file).unwrap(), b"hello web\n");
    // As BuildKit: mode 0600, the mtime of Last-Modified.
    let md = std::fs::metadata(&file).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o600);
    assert_eq!(md.mtime(), 1_700_000_000);
    assert_eq!(
        std::fs::read(out.join("pinned.txt")).unwrap(),
        b"hello web\n"
    );

    let again = ws.build(&[]).success();
    assert_eq!(
        again.status_of("ADD http"),
        Some("CACHED"),
        "{}",
        again.stderr
    );

    // New content behind the same URL: the unpinned ADD misses; the pinned one
    // is keyed by its checksum and hits without asking.
    *server.body.lock().unwrap() = b"changed\n".to_vec();
    ws.dockerfile(&format!(
        "FROM scratch\nADD {} /web/\n",
        server.url("dir/hello.txt")
    ));
    let changed = ws.build(&["-o", &local]).success();
    assert_eq!(
        changed.status_of("ADD http"),
        Some("DONE"),
        "{}",
        changed.stderr
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"changed\n");
}

#[test]
fn a_wrong_checksum_or_an_unreachable_url_fails_naming_it() {
    let server = Server::start(b"content\n");
    let ws = Workspace::new();
    let wrong = format!("sha256:{}", "0".repeat(64));
    ws.dockerfile(&format!(
        "FROM scratch\nADD --checksum={wrong} {} /x\n",
        server.url("f")
    ));
    let run = ws.build(&[]).failure();
    assert!(run.stderr.contains(&wrong), "{}", run.stderr);
    assert!(run.stderr.contains(&sha256(b"content\n")), "{}", run.stderr);
    assert!(run.stderr.contains("checksum mismatch"), "{}", run.stderr);

    let port = server.port;
    drop(server);
    let url = format!("http://127.0.0.1:{port}/gone");
    ws.dockerfile(&format!("FROM scratch\nADD {url} /x\n"));
    let run = ws.build(&[]).failure();
    assert!(
        run.stderr.contains(&format!("fetching {url}")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Connection refused"), "{}", run.stderr);
}
