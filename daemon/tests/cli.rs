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
        .args(["build", "-o", "type=gha,dest=x"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown type \"gha\""), "{err}");
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

#[test]
fn fsck_reports_repairs_and_then_finds_the_root_clean() {
    use buildd_engine::cache::Table;
    use buildd_engine::root::Root;
    use buildd_proto::Digest;

    let dir = tempfile::tempdir().unwrap();
    let root_dir = dir.path().join("root");
    let dangling = Digest::of(b"dangling");
    let blob = {
        let root = Root::open(&root_dir).unwrap();
        let id = buildd_snapshot::LayerId::new("aa").unwrap();
        root.layers.begin().unwrap().commit(&id).unwrap();
        root.index
            .put(Table::Results, Digest::of(b"good").as_bytes(), br#"["aa"]"#)
            .unwrap();
        root.index
            .put(Table::Results, dangling.as_bytes(), br#"["aa","bb"]"#)
            .unwrap();
        let digest = root.content.put_bytes(b"hello").unwrap();
        root.content.path(&digest)
    };
    std::fs::write(&blob, b"jello").unwrap();
    let fsck = |extra: &[&str]| {
        let out = buildd()
            .arg("--root")
            .arg(&root_dir)
            .args(["debug", "fsck"])
            .args(extra)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (
            out.status.code(),
            text,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (code, text, err) = fsck(&[]);
    assert_eq!(code, Some(1), "{text}{err}");
    let missing = format!("problem: results record {dangling}: names layer bb, which is missing");
    assert!(text.contains(&missing), "{text}");
    assert!(
        text.contains(&format!(
            "problem: blob {}: content has digest",
            blob.display()
        )),
        "{text}"
    );
    assert!(
        text.ends_with("fsck: 1 blobs, 2 records, 0 images checked; 2 problems\n"),
        "{text}"
    );
    assert!(blob.exists());

    let (code, text, err) = fsck(&["--repair"]);
    assert_eq!(code, Some(1), "{text}{err}");
    assert!(text.contains("repaired: removed corrupt blob"), "{text}");
    assert!(
        text.contains(&format!("repaired: removed results record {dangling}")),
        "{text}"
    );
    assert!(!blob.exists());

    let (code, text, err) = fsck(&[]);
    assert_eq!(code, Some(0), "{text}{err}");
    assert_eq!(
        text,
        "fsck: 0 blobs, 1 records, 0 images checked; 0 problems\n"
    );

    let held = Root::open(&root_dir).unwrap();
    let (code, text, err) = fsck(&[]);
    assert_ne!(code, Some(0), "{text}");
    assert!(err.contains("in use by another buildd process"), "{err}");
    drop(held);
}
