//! ONBUILD triggers, run as BuildKit runs them: right after the FROM of the
//! stage based on an image that has some, or on a stage that declares some, in
//! that stage and with its build context, each located at the FROM. They are
//! consumed there, not passed on. Since a trigger may read another stage
//! (`COPY --from`), bases are resolved before dispatch, and the stages the
//! target needs are recomputed until the triggers add no dependency.

use super::Ctx;
use super::stages::{self, Base, Source, Stages, Trigger};
use crate::error::Error;
use crate::instructions::{self, Command};
use crate::parser::{self, Node};

/// Resolves the image bases of the stages the target needs and parses their
/// triggers; returns which stages the target needs, triggers included.
pub(crate) fn resolve_bases(
    ctx: &Ctx,
    s: &mut Stages<'_>,
    target: usize,
) -> Result<Vec<bool>, Error> {
    loop {
        let reachable = stages::reachable(s, target);
        let mut new_deps = false;
        for (i, needed) in reachable.iter().enumerate() {
            let stage = &s.stages[i];
            if !needed || stage.triggers_known {
                continue;
            }
            let (resolved, texts, of) = match &stage.base {
                Base::Scratch => (None, Vec::new(), String::new()),
                Base::Image(reference) => {
                    let node = stage.from.node;
                    let resolved = ctx.resolve_image(node, node.span, reference)?;
                    let texts = resolved.config.config.on_build.clone();
                    let of = resolved.reference.clone();
                    (Some(resolved), texts, of)
                }
                Base::Stage(j) => {
                    let base = &s.stages[*j];
                    let texts = base
                        .commands
                        .iter()
                        .filter_map(|c| match &c.command {
                            Command::OnBuild(expr) => Some((*expr).to_owned()),
                            _ => None,
                        })
                        .collect();
                    let of = match &base.name {
                        Some(n) => format!("stage {n}"),
                        None => format!("stage {j}"),
                    };
                    (None, texts, of)
                }
            };
            let triggers = parse_triggers(ctx, s, i, &texts, &of)?;
            new_deps |= triggers.iter().any(|t| {
                t.sources
                    .iter()
                    .flatten()
                    .any(|r| matches!(r.source, Source::Stage(_)))
            });
            let stage = &mut s.stages[i];
            stage.resolved = resolved;
            stage.triggers = triggers;
            stage.triggers_known = true;
        }
        if !new_deps {
            return Ok(reachable);
        }
        stages::check_graph(ctx, s)?;
    }
}

/// The triggers `triggers` of the base (`of`) of stage `i`, typed, their
/// `--from`s resolved.
fn parse_triggers(
    ctx: &Ctx,
    s: &Stages<'_>,
    i: usize,
    triggers: &[String],
    of: &str,
) -> Result<Vec<Trigger>, Error> {
    if triggers.is_empty() {
        return Ok(Vec::new());
    }
    let from = s.stages[i].from.node;
    let names = stages::names(s);
    let env = ctx.meta_env(&s.meta_args);
    let mut out = Vec::with_capacity(triggers.len());
    for text in triggers {
        let fail = |message: String| {
            ctx.error(from, format!("ONBUILD trigger {text:?} of {of}: {message}"))
        };
        let node = parse_trigger(text, &ctx.file, from).map_err(fail)?;
        let command = instructions::parse(&node)
            .map_err(|e| fail(e.message))?
            .command;
        let sources = stages::resolve_refs(ctx, &names, &env, i, &node, &command)?;
        out.push(Trigger { node, sources });
    }
    Ok(out)
}

/// Parses one trigger into a node located at `from`: it must be a single
/// instruction other than those Docker refuses as triggers.
fn parse_trigger(text: &str, file: &str, from: &Node) -> Result<Node, String> {
    let (ast, errors) = parser::parse_all_named(text, file);
    if let Some(e) = errors.into_iter().next() {
        return Err(e.message);
    }
    let [mut node] = <[Node; 1]>::try_from(ast.nodes)
        .map_err(|_| "onbuild trigger should be a single expression".to_owned())?;
    match node.name().as_str() {
        "ONBUILD" => {
            return Err("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".to_owned());
        }
        k @ ("FROM" | "MAINTAINER") => {
            return Err(format!("{k} isn't allowed as an ONBUILD trigger"));
        }
        _ => {}
    }
    // BuildKit points a trigger, its errors and its vertices at the FROM.
    node.span = from.span;
    for f in &mut node.flags {
        f.span = from.span;
    }
    Ok(node)
}
