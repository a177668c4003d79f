//! The `buildd` binary's surface. (Keeping an integration test in this package also
//! makes `cargo test --workspace` build the binary the workspace tests run.)

use std::process::Command;

fn buildd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_buildd"))
}

#[test]
fn help_lists_the_subcommands() {
    let out = buildd().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("build"), "{text}");
    assert!(text.contains("debug"), "{text}");
}

#[test]
fn bad_output_spec_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = buildd()
        .args(["build", "-o", "type=docker,dest=x"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown type \"docker\""), "{err}");
}

#[test]
fn dump_llb_prints_the_graph_without_building() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\nCOPY a /a\n").unwrap();
    let out = buildd()
        .args(["debug", "dump-llb"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("local://context"), "{text}");
    assert!(text.contains("COPY a /a"), "{text}");
}

#[test]
fn outline_lists_stages_and_args() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "ARG BASE=scratch\nFROM scratch AS build\nARG VERSION=1.0\nFROM build\n",
    )
    .unwrap();
    let out = buildd()
        .args(["debug", "outline"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("build"), "{text}");
    assert!(text.contains("VERSION"), "{text}");
    assert!(text.contains("1.0"), "{text}");
}
