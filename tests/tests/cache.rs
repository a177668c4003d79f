//! The persistent cache, seen from the command line: every `buildd build` is a new
//! process, so every second build here is also a build after a restart.

use std::fs;
use std::time::{Duration, SystemTime};

use buildd_tests::*;

const DOCKERFILE: &str = "\
FROM scratch
COPY a.txt /a.txt
COPY b.txt /b.txt
WORKDIR /w
COPY . /all/
";

fn workspace() -> Workspace {
    let ws = Workspace::new();
    ws.dockerfile(DOCKERFILE)
        .file("a.txt", "a", 0o644)
        .file("b.txt", "b", 0o644);
    ws
}

#[test]
fn second_build_is_all_cached_after_restart() {
    let ws = workspace();
    let first = ws.build(&[]).success();
    assert_eq!(
        first.status_of("COPY a.txt"),
        Some("DONE"),
        "{}",
        first.stderr
    );
    let second = ws.build(&[]).success();
    for step in ["COPY a.txt", "COPY b.txt", "WORKDIR /w", "COPY . /all/"] {
        assert_eq!(
            second.status_of(step),
            Some("CACHED"),
            "{step}:\n{}",
            second.stderr
        );
    }
}

#[test]
fn changing_one_file_reruns_only_what_depends_on_it() {
    let ws = workspace();
    ws.build(&[]).success();
    ws.file("b.txt", "b changed", 0o644);
    let run = ws.build(&[]).success();
    assert_eq!(
        run.status_of("COPY a.txt"),
        Some("CACHED"),
        "{}",
        run.stderr
    );
    assert_eq!(run.status_of("COPY b.txt"), Some("DONE"), "{}", run.stderr);
    assert_eq!(
        run.status_of("COPY . /all/"),
        Some("DONE"),
        "{}",
        run.stderr
    );
}

#[test]
fn changing_only_mtimes_reruns_nothing() {
    let ws = workspace();
    ws.build(&[]).success();
    let later = SystemTime::now() + Duration::from_secs(3600);
    for f in ["a.txt", "b.txt", "Dockerfile"] {
        fs::File::options()
            .write(true)
            .open(ws.ctx().join(f))
            .unwrap()
            .set_modified(later)
            .unwrap();
    }
    let run = ws.build(&[]).success();
    for step in ["COPY a.txt", "COPY b.txt", "COPY . /all/"] {
        assert_eq!(
            run.status_of(step),
            Some("CACHED"),
            "{step}:\n{}",
            run.stderr
        );
    }
}

#[test]
fn no_cache_rebuilds_everything() {
    let ws = workspace();
    ws.build(&[]).success();
    let run = ws.build(&["--no-cache"]).success();
    assert_eq!(run.status_of("COPY a.txt"), Some("DONE"), "{}", run.stderr);
}

#[test]
fn a_root_in_use_is_refused() {
    let ws = workspace();
    fs::create_dir_all(ws.root()).unwrap();
    let lock = fs::File::create(ws.root().join("lock")).unwrap();
    // SAFETY: flock on our own descriptor.
    let rc = unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&lock),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    };
    assert_eq!(rc, 0);
    let run = ws.build(&[]).failure();
    assert!(run.stderr.contains("in use"), "{}", run.stderr);
    drop(lock);
    ws.build(&[]).success();
}
