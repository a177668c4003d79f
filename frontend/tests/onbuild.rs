//! ONBUILD triggers of a base image run right after FROM, in the new stage,
//! located at the FROM; FROM of a stage inherits its triggers without running them.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use buildd_frontend::{Compiled, ImageResolver, Platform, ResolvedImage, compile};
use buildd_oci::ImageConfig;
use buildd_proto::llb::{ExecOp, Op, file_action, op};
use common::opts;
use prost::Message;

/// Images by reference, each with the given ONBUILD triggers.
struct Triggers(BTreeMap<&'static str, Vec<&'static str>>);

impl ImageResolver for Triggers {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, String> {
        let triggers = self
            .0
            .get(reference)
            .ok_or_else(|| format!("{reference}: not found"))?;
        let mut config = ImageConfig {
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            ..Default::default()
        };
        config.config.on_build = triggers.iter().map(|t| t.to_string()).collect();
        Ok(ResolvedImage {
            reference: format!("docker.io/library/{reference}@sha256:0123"),
            config,
        })
    }
}

fn build(images: &[(&'static str, Vec<&'static str>)], text: &str) -> Result<Compiled, String> {
    let mut o = opts();
    o.resolver = Some(Arc::new(Triggers(images.iter().cloned().collect())));
    compile(text, &o).map_err(|e| e.to_string())
}

/// Each vertex's progress name with its line range.
fn vertices(c: &Compiled) -> Vec<(String, Option<(i32, i32)>)> {
    let mut out: Vec<_> = c
        .definition
        .metadata
        .values()
        .map(|m| {
            let lines = m.locations.first().map(|l| {
                let r = &l.ranges[0];
                (r.start.unwrap().line, r.end.unwrap().line)
            });
            (m.description["llb.customname"].clone(), lines)
        })
        .collect();
    out.sort();
    out
}

fn ops(c: &Compiled) -> Vec<Op> {
    c.definition
        .def
        .iter()
        .map(|b| Op::decode(b.as_slice()).unwrap())
        .collect()
}

fn execs(c: &Compiled) -> Vec<ExecOp> {
    ops(c)
        .into_iter()
        .filter_map(|o| match o.op {
            Some(op::Op::Exec(e)) => Some(e),
            _ => None,
        })
        .collect()
}

fn node_base() -> (&'static str, Vec<&'static str>) {
    (
        "node-onbuild",
        vec!["COPY . /app", "ENV X=1", "RUN echo hi"],
    )
}

#[test]
fn triggers_run_after_from_at_its_location() {
    let text = "FROM scratch AS unused\n\nFROM node-onbuild AS app\nRUN echo own $X\nONBUILD RUN echo child\n";
    let c = build(&[node_base()], text).unwrap();
    let at_from = Some((3, 3));
    assert_eq!(
        vertices(&c),
        [
            (
                "[app 1/4] FROM docker.io/library/node-onbuild@sha256:0123".to_owned(),
                at_from
            ),
            ("[app 2/4] ONBUILD COPY . /app".to_owned(), at_from),
            ("[app 3/4] ONBUILD RUN echo hi".to_owned(), at_from),
            ("[app 4/4] RUN echo own 1".to_owned(), Some((4, 4))),
            ("[internal] load build context".to_owned(), None),
        ]
    );
    // The COPY reads the build context, the RUNs see the trigger's ENV.
    let copies: Vec<_> = ops(&c)
        .into_iter()
        .filter_map(|o| match o.op {
            Some(op::Op::File(f)) => Some(f.actions),
            _ => None,
        })
        .flatten()
        .filter_map(|a| match a.action {
            Some(file_action::Action::Copy(c)) => Some((c.src, c.dest)),
            _ => None,
        })
        .collect();
    assert_eq!(copies, [("/".to_owned(), "/app".to_owned())]);
    let runs = execs(&c);
    assert_eq!(runs.len(), 2);
    for run in &runs {
        assert!(run.meta.as_ref().unwrap().env.contains(&"X=1".to_owned()));
    }
    // The base's triggers are consumed; the stage's own ONBUILD is kept.
    assert_eq!(c.image.config.on_build, ["RUN echo child"]);
    assert!(c.image.config.env.contains(&"X=1".to_owned()));
    let history: Vec<_> = c
        .image
        .history
        .iter()
        .filter_map(|h| h.created_by.as_deref())
        .collect();
    assert_eq!(history[0], "COPY . /app # buildkit");
    assert_eq!(history[1], "ENV X=1");
}

#[test]
fn base_triggers_are_consumed_whether_the_base_is_an_image_or_a_stage() {
    let c = build(&[node_base()], "FROM node-onbuild\n").unwrap();
    assert!(c.image.config.on_build.is_empty());
    assert_eq!(execs(&c).len(), 1);
    // FROM a stage runs the stage's ONBUILD instructions and does not pass them
    // on, as the reference BuildKit does (tests/parity/cases/onbuild-stage).
    let c = build(&[], "FROM scratch AS p\nONBUILD RUN x\nFROM p\n").unwrap();
    assert!(c.image.config.on_build.is_empty());
    assert_eq!(execs(&c).len(), 1);
    // The stage itself, as the target, keeps them.
    let c = build(&[], "FROM scratch AS p\nONBUILD RUN x\n").unwrap();
    assert_eq!(c.image.config.on_build, ["RUN x"]);
    assert!(execs(&c).is_empty());
}

#[test]
fn a_trigger_can_read_a_stage_the_target_did_not_need() {
    let base = ("with-assets", vec!["COPY --from=assets /assets /srv"]);
    let text = "FROM scratch AS assets\nCOPY assets /assets\nFROM with-assets\n";
    let c = build(&[base], text).unwrap();
    let names: Vec<_> = vertices(&c).into_iter().map(|(n, _)| n).collect();
    assert!(
        names.contains(&"[assets 1/1] COPY assets /assets".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"[stage-1 2/2] ONBUILD COPY --from=assets /assets /srv".to_owned()),
        "{names:?}"
    );
}

#[test]
fn refused_triggers_point_at_the_from() {
    let cases = [
        ("FROM alpine", "FROM isn't allowed as an ONBUILD trigger"),
        (
            "MAINTAINER me",
            "MAINTAINER isn't allowed as an ONBUILD trigger",
        ),
        (
            "ONBUILD RUN x",
            "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
        ),
        ("BOGUS x", "unknown instruction: BOGUS"),
        ("COPY --nope a b", "unknown flag: --nope"),
        (
            "RUN <<EOF",
            "unterminated heredoc \"EOF\": no line holds only its delimiter",
        ),
        (
            "RUN a\nRUN b",
            "onbuild trigger should be a single expression",
        ),
    ];
    for (trigger, message) in cases {
        let base = ("bad", vec![trigger]);
        let e = build(&[base], "FROM scratch\n\n  FROM bad\nRUN x\n").unwrap_err();
        assert_eq!(
            e,
            format!(
                "Dockerfile:3:3: FROM: ONBUILD trigger {trigger:?} of docker.io/library/bad@sha256:0123: {message}"
            )
        );
    }
    // An error while dispatching a trigger is located at the FROM too.
    let base = ("bad", vec!["COPY --chmod=u+q a /"]);
    let e = build(&[base], "FROM bad\n").unwrap_err();
    assert!(
        e.starts_with("Dockerfile:1:1: COPY: invalid --chmod"),
        "{e}"
    );
}
