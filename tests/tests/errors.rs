//! Bad input: a clear error naming file and line, a non-zero exit, and nothing
//! half-written.

use buildd_tests::*;

fn fails_with(dockerfile: &str, args: &[&str], expect: &[&str]) -> Workspace {
    let ws = Workspace::new();
    ws.dockerfile(dockerfile).file("present.txt", "x", 0o644);
    let out = ws.path("out.tar");
    let mut all = vec!["-o".to_owned(), format!("type=oci,dest={}", out.display())];
    all.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let run = ws.build(&refs).failure();
    for e in expect {
        assert!(run.stderr.contains(e), "expected {e:?} in:\n{}", run.stderr);
    }
    assert!(!out.exists(), "a failed build wrote its output");
    // Nothing half-written: no pending blobs or layers.
    for leftover in list_files(&ws.root()) {
        assert!(
            !leftover.starts_with("ingest/") && !leftover.contains(".tmp-"),
            "left behind: {leftover}"
        );
    }
    ws
}

#[test]
fn missing_copy_source_names_the_path_and_line() {
    fails_with(
        "FROM scratch\nCOPY present.txt /\nCOPY missing.txt /\n",
        &[],
        &["missing.txt", "not found", "Dockerfile:3"],
    );
}

#[test]
fn unknown_stage_in_from_flag() {
    fails_with(
        "FROM scratch\nCOPY --from=nowhere /x /x\n",
        &[],
        &["Dockerfile:2", "nowhere"],
    );
}

#[test]
fn cyclic_stage_reference() {
    fails_with(
        "FROM scratch AS a\nCOPY --from=b /x /x\nFROM scratch AS b\nCOPY --from=a /y /y\n",
        &[],
        &["Dockerfile:"],
    );
}

#[test]
fn unknown_target() {
    fails_with("FROM scratch AS only\n", &["--target", "other"], &["other"]);
}

#[test]
fn unknown_instruction() {
    fails_with(
        "FROM scratch\nFROBNICATE now\n",
        &[],
        &["Dockerfile:2", "FROBNICATE"],
    );
}
