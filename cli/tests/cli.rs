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
