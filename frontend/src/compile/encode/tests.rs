//! Every encoder against prost's encoding of the same op, with fields set to
//! defaults, to zero where `optional` keeps them, and to long values.

use std::collections::BTreeMap;

use buildd_proto::llb::{
    CacheOpt, ChownOpt, ExecOp, FileAction, FileActionCopy, FileActionMkDir, FileActionMkFile,
    FileActionRm, FileActionSymlink, FileOp, MergeOp, Meta, Mount, NetMode, Op, SecretEnv,
    SecretOpt, SecurityMode, SourceOp, SshOpt, TmpfsOpt, file_action, op,
};
use prost::Message;

use super::{EnvVar, Process};
use crate::compile::wire::Writer;

/// What `encode` writes into a fresh writer.
fn written(f: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::default();
    f(&mut w);
    w.into_bytes()
}

fn prost_body(op: op::Op) -> Vec<u8> {
    Op {
        op: Some(op),
        ..Default::default()
    }
    .encode_to_vec()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn source_ops() {
    let cases = [
        ("", vec![], vec![], vec![]),
        (
            "local://context",
            vec![],
            vec!["*.md", ""],
            vec!["a", "b/c"],
        ),
        (
            "https://example.com/x.tgz",
            vec![("http.filename", "x.tgz"), ("empty", ""), ("", "no key")],
            vec![],
            vec![],
        ),
    ];
    for (identifier, attrs, exclude, follow) in cases {
        let attrs: BTreeMap<String, String> = attrs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let want = prost_body(op::Op::Source(SourceOp {
            identifier: identifier.to_owned(),
            attrs: attrs.clone(),
            include_patterns: Vec::new(),
            exclude_patterns: strings(&exclude),
            follow_paths: strings(&follow),
        }));
        let got = written(|w| {
            super::source(w, identifier, &attrs, &strings(&exclude), &strings(&follow))
        });
        assert_eq!(got, want, "{identifier:?}");
    }
}

#[test]
fn merge_op() {
    assert_eq!(written(super::merge), prost_body(op::Op::Merge(MergeOp {})));
}

fn mounts() -> Vec<Mount> {
    vec![
        Mount {
            input: 0,
            dest: "/".to_owned(),
            output: 0,
            ..Default::default()
        },
        Mount {
            input: 3,
            selector: "/sub".to_owned(),
            dest: "/src".to_owned(),
            output: -1,
            readonly: true,
            ..Default::default()
        },
        Mount {
            input: -1,
            dest: "/cache".to_owned(),
            output: -1,
            mount_type: 3,
            cache_opt: Some(CacheOpt {
                id: "c".to_owned(),
                sharing: 2,
                uid: Some(0),
                gid: Some(1000),
                mode: None,
            }),
            ..Default::default()
        },
        Mount {
            input: -1,
            dest: "/cache2".to_owned(),
            output: -1,
            mount_type: 3,
            cache_opt: Some(CacheOpt::default()),
            ..Default::default()
        },
        Mount {
            input: -1,
            dest: "/tmp".to_owned(),
            output: -1,
            mount_type: 4,
            tmpfs_opt: Some(TmpfsOpt { size: 1 << 40 }),
            ..Default::default()
        },
        Mount {
            dest: "/tmp0".to_owned(),
            mount_type: 4,
            tmpfs_opt: Some(TmpfsOpt { size: 0 }),
            ..Default::default()
        },
        Mount {
            input: -1,
            dest: "/run/secrets/s".to_owned(),
            output: -1,
            mount_type: 1,
            secret_opt: Some(SecretOpt {
                id: "s".to_owned(),
                uid: 1,
                gid: 0,
                mode: 0o400,
                optional: true,
            }),
            ..Default::default()
        },
        Mount {
            input: -1,
            dest: "/run/buildkit/ssh_agent.0".to_owned(),
            output: -1,
            mount_type: 2,
            ssh_opt: Some(SshOpt {
                id: "default".to_owned(),
                uid: 0,
                gid: 7,
                mode: 0o600,
                optional: false,
            }),
            ..Default::default()
        },
    ]
}

#[test]
fn exec_ops() {
    let long = "x".repeat(5000);
    let env = [
        EnvVar::Line("PATH=/usr/bin"),
        EnvVar::Pair("VERSION", "1.0"),
        EnvVar::Pair("EMPTY", ""),
        EnvVar::Line(""),
        EnvVar::Pair("LONG", &long),
    ];
    let secret_env = vec![
        SecretEnv {
            id: "tok".to_owned(),
            name: "TOKEN".to_owned(),
            optional: true,
        },
        SecretEnv::default(),
    ];
    let modes = [
        (NetMode::Unset, SecurityMode::Sandbox),
        (NetMode::Host, SecurityMode::Insecure),
        (NetMode::None, SecurityMode::Sandbox),
    ];
    for (args, cwd, user, mounts, secret_env, (network, security)) in [
        (vec![], "", "", vec![], vec![], modes[0]),
        (
            vec!["/bin/sh", "-c", "", &long],
            "/app",
            "1000:1000",
            mounts(),
            secret_env.clone(),
            modes[1],
        ),
        (vec!["true"], "/", "", mounts(), vec![], modes[2]),
    ] {
        let env_len = if args.is_empty() { 0 } else { env.len() };
        let process = Process {
            args: &args,
            env: &env[..env_len],
            cwd,
            user,
        };
        let want = prost_body(op::Op::Exec(ExecOp {
            meta: Some(Meta {
                args: strings(&args),
                env: env[..env_len]
                    .iter()
                    .map(|e| match e {
                        EnvVar::Line(l) => (*l).to_owned(),
                        EnvVar::Pair(k, v) => format!("{k}={v}"),
                    })
                    .collect(),
                cwd: cwd.to_owned(),
                user: user.to_owned(),
                ..Default::default()
            }),
            mounts: mounts.clone(),
            network: network as i32,
            security: security as i32,
            secret_env: secret_env.clone(),
        }));
        let got = written(|w| super::exec(w, &process, &mounts, network, security, &secret_env));
        assert_eq!(got, want, "{args:?}");
    }
}

fn owner(uid: Option<u32>, name: &str) -> Option<ChownOpt> {
    Some(ChownOpt {
        uid,
        gid: uid.map(|u| u + 1),
        user_name: name.to_owned(),
        group_name: name.to_uppercase(),
    })
}

fn copies() -> Vec<FileActionCopy> {
    vec![
        FileActionCopy::default(),
        FileActionCopy {
            source_input: 2,
            src: "/a/./b".to_owned(),
            dest: "/dest/".to_owned(),
            owner: owner(Some(0), ""),
            mode: Some(0),
            follow_symlink: true,
            dir_copy_contents: true,
            create_dest_path: true,
            allow_wildcard: true,
            allow_empty_wildcard: true,
            timestamp: Some(0),
            include_patterns: strings(&["*.go", ""]),
            exclude_patterns: strings(&["*.md"]),
            attempt_unpack: true,
            parents: true,
            always_replace_existing_dest_paths: true,
            mode_str: "u+x,g-r".to_owned(),
        },
        FileActionCopy {
            source_input: 1,
            src: "s".repeat(300),
            owner: owner(None, "app"),
            mode: Some(0o755),
            timestamp: Some(-1),
            ..Default::default()
        },
    ]
}

#[test]
fn file_ops() {
    use file_action::Action;
    let mut actions: Vec<Action> = copies().into_iter().map(Action::Copy).collect();
    actions.extend([
        Action::Mkfile(FileActionMkFile::default()),
        Action::Mkfile(FileActionMkFile {
            path: "/f".to_owned(),
            mode: 0o644,
            data: vec![0; 200],
            owner: owner(Some(5), "u"),
            timestamp: Some(0),
        }),
        Action::Mkdir(FileActionMkDir::default()),
        Action::Mkdir(FileActionMkDir {
            path: "/d".to_owned(),
            mode: 0o755,
            make_parents: true,
            owner: owner(None, ""),
            timestamp: Some(1_700_000_000_000_000_000),
        }),
        Action::Rm(FileActionRm::default()),
        Action::Rm(FileActionRm {
            path: "/r".to_owned(),
            allow_not_found: true,
            allow_wildcard: true,
        }),
        Action::Symlink(FileActionSymlink::default()),
        Action::Symlink(FileActionSymlink {
            oldpath: "/o".to_owned(),
            newpath: "/n".to_owned(),
            owner: owner(Some(0), "root"),
            timestamp: Some(3),
        }),
    ]);
    let actions: Vec<FileAction> = actions
        .into_iter()
        .map(|a| FileAction { action: Some(a) })
        .collect();
    for base in [-1, 0, 1] {
        for n in [0, 1, actions.len()] {
            let want = prost_body(op::Op::File(FileOp {
                base,
                actions: actions[..n].to_vec(),
            }));
            let got = written(|w| super::file(w, base, &actions[..n]));
            assert_eq!(got, want, "{n} actions");
        }
        let want = prost_body(op::Op::File(FileOp {
            base,
            actions: copies()
                .into_iter()
                .map(|c| FileAction {
                    action: Some(Action::Copy(c)),
                })
                .collect(),
        }));
        assert_eq!(written(|w| super::file_copies(w, base, &copies())), want);
    }
}
