//! RUN mounts, heredocs, COPY --link and ADD sources, checked on the ops.

mod common;

use buildd_frontend::compile;
use buildd_proto::llb::{ExecOp, FileOp, Op, file_action, op};
use common::opts;
use prost::Message;

fn ops(text: &str) -> Vec<Op> {
    let c = compile(text, &opts()).unwrap_or_else(|e| panic!("{e}"));
    c.definition
        .def
        .iter()
        .map(|b| Op::decode(b.as_slice()).unwrap())
        .collect()
}

fn execs(text: &str) -> Vec<ExecOp> {
    ops(text)
        .into_iter()
        .filter_map(|o| match o.op {
            Some(op::Op::Exec(e)) => Some(e),
            _ => None,
        })
        .collect()
}

fn files(text: &str) -> Vec<FileOp> {
    ops(text)
        .into_iter()
        .filter_map(|o| match o.op {
            Some(op::Op::File(f)) => Some(f),
            _ => None,
        })
        .collect()
}

#[test]
fn cache_mount_options_reach_the_op() {
    let e = execs(
        "FROM scratch\nRUN --mount=type=cache,target=/c,uid=1000,gid=2000,mode=0750,sharing=private true\n",
    );
    let m = &e[0].mounts[1];
    let c = m.cache_opt.as_ref().unwrap();
    assert_eq!(
        (c.id.as_str(), c.uid, c.gid, c.mode),
        ("/c", Some(1000), Some(2000), Some(0o750))
    );
    assert_eq!(c.sharing, 1, "private");
    assert!(!m.readonly);
}

#[test]
fn secrets_carry_only_ids() {
    let mut o = opts();
    o.build_args.insert("TOKEN".into(), "s3cr3t-value".into());
    let text = "FROM scratch\nARG TOKEN\nRUN --mount=type=secret,id=${TOKEN:+api},env=API_TOKEN --mount=type=secret,source=npmrc true\n";
    let c = compile(text, &o).unwrap();
    let op = c
        .definition
        .def
        .iter()
        .map(|b| Op::decode(b.as_slice()).unwrap())
        .find_map(|o| match o.op {
            Some(op::Op::Exec(e)) => Some(e),
            _ => None,
        })
        .unwrap();
    assert_eq!(op.secret_env.len(), 1);
    assert_eq!(
        (op.secret_env[0].id.as_str(), op.secret_env[0].name.as_str()),
        ("api", "API_TOKEN")
    );
    assert!(op.secret_env[0].optional);
    let meta = op.meta.unwrap();
    assert!(!meta.env.iter().any(|e| e.starts_with("API_TOKEN=")));
    let file = op
        .mounts
        .iter()
        .find_map(|m| m.secret_opt.as_ref())
        .unwrap();
    assert_eq!((file.id.as_str(), file.mode), ("npmrc", 0o400));
    assert_eq!(op.mounts[1].dest, "/run/secrets/npmrc");
}

#[test]
fn mount_from_a_stage_makes_it_needed() {
    let text = "FROM scratch AS tools\nCOPY t /t\nFROM scratch AS unused\nCOPY u /u\nFROM scratch\nRUN --mount=from=tools,target=/tools /tools/t\n";
    let c = compile(text, &opts()).unwrap();
    let local = c
        .definition
        .def
        .iter()
        .map(|b| Op::decode(b.as_slice()).unwrap())
        .find_map(|o| match o.op {
            Some(op::Op::Source(s)) => Some(s),
            _ => None,
        })
        .unwrap();
    assert_eq!(local.follow_paths, ["t"]);
}

#[test]
fn copy_link_layer_does_not_depend_on_its_base() {
    // Different bases (the context source is shared, so vary something else).
    let layer = |base: &str| {
        let text = format!("FROM scratch\nWORKDIR {base}\nCOPY --link app /app\n");
        let c = compile(&text, &opts()).unwrap();
        let merge = Op::decode(c.definition.def.last().unwrap().as_slice()).unwrap();
        assert!(matches!(merge.op, Some(op::Op::Merge(_))));
        assert_eq!(merge.inputs.len(), 2);
        merge.inputs[1].digest.clone()
    };
    assert_eq!(layer("/one"), layer("/two"));
}

#[test]
fn heredoc_sources_and_scripts() {
    let f =
        files("FROM scratch\nARG V=1\nCOPY --chmod=755 <<run.sh /bin/\necho $V \"$V\"\nrun.sh\n");
    let Some(file_action::Action::Mkfile(m)) = &f[0].actions[0].action else {
        panic!("expected mkfile")
    };
    assert_eq!((m.path.as_str(), m.mode), ("/run.sh", 0o644));
    assert_eq!(m.data, b"echo 1 \"1\"\n");
    let Some(file_action::Action::Copy(c)) = &f[1].actions[0].action else {
        panic!("expected copy")
    };
    assert_eq!(
        (c.src.as_str(), c.dest.as_str(), c.mode),
        ("/run.sh", "/bin/", Some(0o755))
    );

    let e = execs("FROM scratch\nRUN python3 <<EOF\nprint(1)\nEOF\n");
    let args = &e[0].meta.as_ref().unwrap().args;
    assert_eq!(args, &["/bin/sh", "-c", "python3 <<EOF\nprint(1)\nEOF"]);
    // Exec form never takes heredocs.
    let e = execs("FROM scratch\nRUN [\"echo\", \"<<EOF\"]\n");
    assert_eq!(e[0].meta.as_ref().unwrap().args, ["echo", "<<EOF"]);
}

#[test]
fn add_unpacks_local_archives_only_by_default() {
    let unpack = |text: &str| {
        files(text)
            .iter()
            .flat_map(|f| &f.actions)
            .filter_map(|a| match &a.action {
                Some(file_action::Action::Copy(c)) => Some(c.attempt_unpack),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(unpack("FROM scratch\nADD a.tar /\n"), [true]);
    assert_eq!(unpack("FROM scratch\nCOPY a.tar /\n"), [false]);
    assert_eq!(
        unpack("FROM scratch\nADD --unpack=false a.tar /\n"),
        [false]
    );
    assert_eq!(
        unpack("FROM scratch\nADD https://x.example/a.tar /\n"),
        [false]
    );
    assert_eq!(
        unpack("FROM scratch\nADD --unpack https://x.example/a.tar /\n"),
        [true]
    );
}

#[test]
fn heredoc_names_stay_inside_their_filesystem() {
    let f = files("FROM scratch\nCOPY <<../../etc/passwd /x/\nroot\n../../etc/passwd\n");
    let Some(file_action::Action::Mkfile(m)) = &f[0].actions[0].action else {
        panic!("expected mkfile")
    };
    assert_eq!(m.path, "/etc/passwd");
    let e = execs("FROM scratch\nRUN <<../x\n#!/bin/sh\n../x\n");
    assert_eq!(
        e[0].meta.as_ref().unwrap().args,
        ["/bin/sh", "-c", "/dev/pipes/x"]
    );
}
