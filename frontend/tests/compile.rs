//! Compilation behaviour: determinism, pruning, scoping, inheritance, images.

mod common;

use std::sync::Arc;

use buildd_frontend::{ImageResolver, Platform, ResolvedImage, compile};
use buildd_oci::{History, ImageConfig};
use buildd_proto::llb::{Op, file_action, op};
use common::{opts, result_digest};
use prost::Message;

fn ops(c: &buildd_frontend::Compiled) -> Vec<Op> {
    c.definition
        .def
        .iter()
        .map(|b| Op::decode(b.as_slice()).unwrap())
        .collect()
}

#[test]
fn same_input_gives_identical_bytes() {
    let text =
        "FROM scratch AS a\nCOPY x /x\nFROM scratch\nWORKDIR /w\nCOPY --from=a /x y\nRUN true\n";
    let a = compile(text, &opts()).unwrap();
    let b = compile(text, &opts()).unwrap();
    assert_eq!(a.definition.encode_to_vec(), b.definition.encode_to_vec());
    assert_eq!(a.definition, b.definition);
    // Inputs come before the vertices that use them.
    let mut seen = std::collections::HashSet::new();
    for bytes in &a.definition.def {
        let op = Op::decode(bytes.as_slice()).unwrap();
        assert!(op.inputs.iter().all(|i| seen.contains(&i.digest)));
        seen.insert(buildd_proto::Digest::of(bytes).to_string());
    }
}

#[test]
fn stage_order_unused_stages_and_comments_do_not_change_the_result() {
    let one = "FROM scratch AS lib\nCOPY lib /lib\n\nFROM scratch AS bin\nCOPY bin /bin\n\nFROM scratch\nCOPY --from=lib /lib /lib\nCOPY --from=bin /bin /bin\n";
    let two = "# reordered, with an unused stage\nFROM scratch AS bin\n# the binary\nCOPY bin /bin\nFROM scratch AS unused\nCOPY other /other\nFROM scratch AS lib\nCOPY lib /lib\nFROM scratch\nCOPY --from=lib /lib /lib\nCOPY --from=bin /bin /bin\n";
    let a = compile(one, &opts()).unwrap();
    let b = compile(two, &opts()).unwrap();
    assert_eq!(result_digest(&a), result_digest(&b));
    assert_eq!(a.definition.def, b.definition.def);
    // The unused stage's source path is not transferred.
    let local = ops(&b).into_iter().find_map(|o| match o.op {
        Some(op::Op::Source(s)) => Some(s),
        _ => None,
    });
    assert_eq!(local.unwrap().follow_paths, ["bin", "lib"]);
}

#[test]
fn copying_the_whole_context_drops_follow_paths() {
    let c = compile("FROM scratch\nCOPY a /a\nCOPY . /src\n", &opts()).unwrap();
    let sources: Vec<_> = ops(&c)
        .into_iter()
        .filter_map(|o| match o.op {
            Some(op::Op::Source(s)) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(sources.len(), 1, "one shared context source");
    assert!(sources[0].follow_paths.is_empty());
}

#[test]
fn global_args_need_redeclaring_in_a_stage() {
    let text = "ARG V=1\nARG W=2\nFROM scratch\nARG V\nENV A=$V B=${W:-unset}\n";
    let c = compile(text, &opts()).unwrap();
    assert!(c.image.config.env.contains(&"A=1".to_owned()));
    assert!(c.image.config.env.contains(&"B=unset".to_owned()));
    let mut o = opts();
    o.build_args.insert("V".into(), "9".into());
    let c = compile(text, &o).unwrap();
    assert!(c.image.config.env.contains(&"A=9".to_owned()));
}

#[test]
fn env_overrides_arg_and_values_see_previous_env() {
    let text = "FROM scratch\nENV X=env\nARG X=arg\nENV Y=$X X=new Z=$X\n";
    let c = compile(text, &opts()).unwrap();
    let env = &c.image.config.env;
    assert!(env.contains(&"Y=env".to_owned()));
    assert!(env.contains(&"Z=env".to_owned()));
    assert!(env.contains(&"X=new".to_owned()));
}

#[test]
fn from_stage_inherits_config_and_entrypoint_resets_cmd() {
    let text =
        "FROM scratch AS base\nENV A=1\nCMD [\"run\"]\nLABEL a=b\nFROM base\nENTRYPOINT [\"/e\"]\n";
    let c = compile(text, &opts()).unwrap();
    assert!(c.image.config.env.contains(&"A=1".to_owned()));
    assert_eq!(
        c.image.config.labels.get("a").map(String::as_str),
        Some("b")
    );
    assert_eq!(c.image.config.cmd, None);
    assert_eq!(c.image.history.len(), 4);
    assert!(c.image.history.iter().all(|h| h.empty_layer));
    assert!(
        c.definition.result.is_none(),
        "config-only stages have no filesystem"
    );
    let text = "FROM scratch\nCMD [\"keep\"]\nENTRYPOINT [\"/e\"]\n";
    let c = compile(text, &opts()).unwrap();
    assert_eq!(c.image.config.cmd, Some(vec!["keep".to_owned()]));
}

#[test]
fn copy_flags_and_destinations() {
    let text = "FROM scratch\nWORKDIR /app\nCOPY --chown=app:1 --chmod=640 a b sub\nCOPY c .\nCOPY d ../e\n";
    let c = compile(text, &opts()).unwrap();
    let copies: Vec<_> = ops(&c)
        .into_iter()
        .filter_map(|o| match o.op {
            Some(op::Op::File(f)) => Some(f),
            _ => None,
        })
        .flat_map(|f| f.actions)
        .filter_map(|a| match a.action {
            Some(file_action::Action::Copy(c)) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(copies.len(), 4);
    assert_eq!(copies[0].dest, "/app/sub/");
    assert_eq!(copies[0].mode, Some(0o640));
    let owner = copies[0].owner.clone().unwrap();
    assert_eq!((owner.user_name.as_str(), owner.gid), ("app", Some(1)));
    assert_eq!(copies[2].dest, "/app/");
    assert_eq!(copies[3].dest, "/e");
}

#[test]
fn progress_names_and_locations() {
    let text = "FROM scratch AS build\nARG D=/out\nCOPY \\\n  a $D\n";
    let c = compile(text, &opts()).unwrap();
    let (digest, meta) = c
        .definition
        .metadata
        .iter()
        .find(|(_, m)| !m.locations.is_empty())
        .unwrap();
    assert_eq!(
        Some(digest),
        c.definition.result.as_ref().map(|r| &r.digest)
    );
    assert_eq!(
        meta.description["llb.customname"],
        "[build 1/1] COPY   a /out"
    );
    let range = &meta.locations[0].ranges[0];
    assert_eq!((range.start.unwrap().line, range.end.unwrap().line), (3, 4));
    assert_eq!(c.definition.sources[0].filename, "Dockerfile");
    assert_eq!(c.definition.sources[0].data, text.as_bytes());
}

struct FakeResolver;

impl ImageResolver for FakeResolver {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, String> {
        if reference != "alpine:3" {
            return Err(format!("{reference}: not found"));
        }
        let mut config = ImageConfig {
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            created: Some("2024-01-01T00:00:00Z".into()),
            ..Default::default()
        };
        config.config.env = vec!["PATH=/bin".into()];
        config.config.cmd = Some(vec!["/bin/sh".into()]);
        config.config.working_dir = "/root".into();
        config.history = vec![History {
            created_by: Some("base layer".into()),
            ..Default::default()
        }];
        Ok(ResolvedImage {
            reference: "docker.io/library/alpine:3@sha256:0123".into(),
            config,
        })
    }
}

#[test]
fn images_come_from_the_resolver() {
    let mut o = opts();
    o.resolver = Some(Arc::new(FakeResolver));
    let c = compile("FROM alpine:3\nCOPY a b\nENTRYPOINT [\"x\"]\n", &o).unwrap();
    let ops = ops(&c);
    let Some(op::Op::Source(s)) = &ops[0].op else {
        panic!("image source first")
    };
    assert_eq!(
        s.identifier,
        "docker-image://docker.io/library/alpine:3@sha256:0123"
    );
    assert_eq!(c.image.config.env, ["PATH=/bin"]);
    assert_eq!(c.image.config.cmd, None);
    assert_eq!(c.image.config.working_dir, "/root");
    assert_eq!(c.image.created, None);
    assert_eq!(c.image.history[0].created_by.as_deref(), Some("base layer"));
    let names: Vec<_> = c
        .definition
        .metadata
        .values()
        .map(|m| m.description["llb.customname"].clone())
        .collect();
    assert!(
        names.contains(&"[1/2] FROM docker.io/library/alpine:3@sha256:0123".to_owned()),
        "{names:?}"
    );
    assert!(names.contains(&"[2/2] COPY a b".to_owned()), "{names:?}");
    let e = compile("FROM busybox\n", &o).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Dockerfile:1:1: FROM: failed to resolve image \"busybox\": busybox: not found"
    );
}

#[test]
fn outline_lists_stages_and_args() {
    let text = "ARG BASE=scratch\n# VERSION the release to build\nARG VERSION\nFROM ${BASE} AS build\nARG NAME=app TOKEN\nFROM build\nARG EXTRA=1\n";
    let mut o = opts();
    o.build_args.insert("VERSION".into(), "2.0".into());
    o.target = Some("build".into());
    let out = buildd_frontend::outline(text, &o).unwrap();
    assert_eq!(out.target, Some(0));
    let stages: Vec<_> = out
        .stages
        .iter()
        .map(|s| (s.index, s.name.as_deref(), s.base.as_str(), s.line))
        .collect();
    assert_eq!(
        stages,
        [(0, Some("build"), "${BASE}", 4), (1, None, "build", 6)]
    );
    let args: Vec<_> = out
        .args
        .iter()
        .map(|a| (a.name.as_str(), a.default.as_deref(), a.line, a.stage))
        .collect();
    assert_eq!(
        args,
        [
            ("BASE", Some("scratch"), 1, None),
            ("VERSION", None, 3, None),
            ("NAME", Some("app"), 5, Some(0)),
            ("TOKEN", None, 5, Some(0)),
            ("EXTRA", Some("1"), 7, Some(1)),
        ]
    );
    assert_eq!(out.args[1].value.as_deref(), Some("2.0"));
    assert_eq!(
        out.args[1].description.as_deref(),
        Some("the release to build")
    );
    let shown = out.to_string();
    assert!(shown.starts_with("STAGES\n* 0   build"), "{shown}");
    assert!(shown.contains("VERSION                          line 3     global  (set to \"2.0\")  # the release to build"), "{shown}");
    o.target = Some("nope".into());
    assert!(buildd_frontend::outline(text, &o).is_err());
}

#[test]
fn big_dockerfile_parses_and_compiles() {
    let text = common::big::dockerfile();
    let start = std::time::Instant::now();
    let ast = buildd_frontend::parse(&text).unwrap();
    let parsed = start.elapsed();
    assert_eq!(ast.nodes.len(), common::big::INSTRUCTIONS);
    let froms = ast.nodes.iter().filter(|n| n.name() == "FROM").count();
    assert_eq!(froms, common::big::STAGES);
    let start = std::time::Instant::now();
    let c = compile(&text, &opts()).unwrap_or_else(|e| panic!("{e}"));
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    eprintln!(
        "big Dockerfile ({build} build): parse {parsed:?}, parse + compile {:?}",
        start.elapsed()
    );
    assert!(c.definition.def.len() > 1_000);
    assert_eq!(
        c.image.config.cmd.as_deref(),
        Some(&["/bin/app".to_owned(), "--serve".to_owned()][..])
    );
}

#[test]
fn stage_args_carry_into_stages_built_from_them() {
    let text = "FROM scratch AS first\nARG S1=stage-default\nFROM first AS second\nENV E4=${S1:-s1-not-inherited}\nARG S1=overridden\nENV E5=$S1\n";
    let c = compile(text, &opts()).unwrap();
    let env = &c.image.config.env;
    assert!(env.contains(&"E4=stage-default".to_owned()), "{env:?}");
    assert!(env.contains(&"E5=overridden".to_owned()), "{env:?}");
}
