//! The `bctl` binary itself, without a daemon: the client-side commands and how it
//! reports what it cannot do. (Builds through a daemon are in tests/tests/bctl.rs.)

use std::process::Command;

use buildd_proto::llb::{Definition, Input, Op, SourceOp, op};
use prost::Message;

fn bctl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bctl"))
        .args(args)
        .env_remove("BUILDD_ADDR")
        .output()
        .expect("run bctl")
}

fn definition() -> Definition {
    let source = Op {
        op: Some(op::Op::Source(SourceOp {
            identifier: "docker-image://127.0.0.1:5000/busybox:latest".into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let digest = source.digest().to_string();
    Definition {
        def: vec![source.encode_to_vec()],
        result: Some(Input { digest, index: 0 }),
        ..Default::default()
    }
}

#[test]
fn dump_llb_prints_a_definition_from_a_file_and_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("def.pb");
    std::fs::write(&file, definition().encode_to_vec()).unwrap();
    let file = file.to_str().unwrap();

    let out = bctl(&["debug", "dump-llb", file]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("docker-image://127.0.0.1:5000/busybox:latest"),
        "{text}"
    );

    let out = bctl(&["debug", "dump-llb", "--format", "json", file]);
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json.to_string().contains("busybox"), "{json}");
}

#[test]
fn bad_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"\xff\xff\xff not protobuf").unwrap();
    let out = bctl(&["debug", "dump-llb", junk.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not an encoded LLB definition"), "{err}");

    let out = bctl(&["--addr", "ftp://nowhere", "images"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("want unix://PATH or tcp://HOST:PORT"), "{err}");
}

/// `build --llb` takes the place of the context and Dockerfile; what cannot work
/// fails before connecting (no daemon runs here), with what is wrong.
#[test]
fn build_llb_checks_its_input_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let def = dir.path().join("def.pb");
    std::fs::write(&def, definition().encode_to_vec()).unwrap();
    let def = def.to_str().unwrap();
    let dirs = dir.path().to_str().unwrap();
    let unreachable = ["--addr", "unix:///nonexistent/buildd.sock"];
    let fails = |args: &[&str], says: &str| {
        let mut all = unreachable.to_vec();
        all.extend_from_slice(args);
        let out = bctl(&all);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    };
    fails(&["build"], "CONTEXT");
    fails(&["build", "--local", &format!("x={dirs}"), dirs], "--llb");
    fails(
        &["build", "--llb", def, "-f", "Dockerfile"],
        "cannot be used with",
    );
    fails(
        &["build", "--llb", def, "--local", "noequals"],
        "expected NAME=DIR",
    );
    fails(
        &["build", "--llb", def, "--local", "a=/nonexistent-dir"],
        "nonexistent-dir",
    );
    let twice = format!("context={dirs}");
    fails(
        &["build", "--llb", def, "--local", &twice, dirs],
        "given twice",
    );
    fails(&["build", "--llb", dirs], "reading the LLB definition");
    // A valid definition gets as far as connecting.
    fails(&["build", "--llb", def], "nonexistent");
}
