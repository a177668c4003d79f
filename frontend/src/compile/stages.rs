//! Splitting instructions into stages, global ARGs, and resolving the references
//! between stages (`FROM <stage>`, `COPY --from`).

use super::Ctx;
use crate::ResolvedImage;
use crate::error::Error;
use crate::instructions::{Command, FromCmd, Instruction, Located};
use crate::parser::{Node, Span};

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Base {
    Scratch,
    Stage(usize),
    Image(String),
}

/// What `COPY --from` or `RUN --mount=from=` refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Stage(usize),
    Image(String),
}

/// A resolved reference and the span of the flag that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceRef {
    pub source: Source,
    pub span: Span,
}

pub(crate) struct Stage<'a> {
    pub index: usize,
    pub from: Instruction<'a>,
    /// The lower-cased `AS` name.
    pub name: Option<String>,
    pub base: Base,
    pub commands: Vec<Instruction<'a>>,
    /// By command index: the resolved `--from` of a COPY (one entry, none
    /// without the flag), or the `from=` of each `--mount` of a RUN; empty for
    /// other instructions.
    pub sources: Vec<Vec<Option<SourceRef>>>,
    /// The base image, once resolved (only for stages the target needs).
    pub resolved: Option<ResolvedImage>,
    /// The base's ONBUILD triggers (an image's, or the ONBUILD instructions of
    /// a base stage), run right after FROM.
    pub triggers: Vec<Trigger>,
    /// Whether `triggers` has been worked out (only for stages the target needs).
    pub triggers_known: bool,
}

/// An ONBUILD trigger of a base image, parsed and checked to type; its node
/// is located at the stage's FROM. It is typed again where it is dispatched,
/// as the typed instruction borrows from the node.
pub(crate) struct Trigger {
    pub node: Node,
    /// As [`Stage::sources`] for one command.
    pub sources: Vec<Option<SourceRef>>,
}

impl<'a> Stage<'a> {
    fn base_cmd(&self) -> &FromCmd<'a> {
        match &self.from.command {
            Command::From(f) => f,
            _ => unreachable!("a stage starts with FROM"),
        }
    }
}

/// Global ARGs (before the first FROM) and the stages.
pub(crate) struct Stages<'a> {
    pub meta_args: Vec<(String, Option<String>)>,
    pub stages: Vec<Stage<'a>>,
}

pub(crate) fn split<'a>(
    ctx: &mut Ctx,
    instructions: Vec<Instruction<'a>>,
) -> Result<Stages<'a>, Error> {
    let mut meta_args: Vec<(String, Option<String>)> = Vec::new();
    // The size of each stage, so that its instructions are moved only once.
    let mut sizes = Vec::new();
    for ins in &instructions {
        match (&ins.command, sizes.last_mut()) {
            (Command::From(_), _) => sizes.push(0),
            (_, Some(n)) => *n += 1,
            (_, None) => {}
        }
    }
    let mut stages: Vec<Stage<'a>> = Vec::with_capacity(sizes.len());
    for ins in instructions {
        match (&ins.command, stages.last_mut()) {
            (Command::From(f), _) => {
                let name = f.name.as_ref().map(|(lower, _)| lower.clone());
                let index = stages.len();
                stages.push(Stage {
                    index,
                    from: ins,
                    name,
                    base: Base::Scratch,
                    commands: Vec::with_capacity(sizes[index]),
                    sources: Vec::new(),
                    resolved: None,
                    triggers: Vec::new(),
                    triggers_known: false,
                });
            }
            (Command::Arg(args), None) => {
                for (key, default) in args {
                    let env = ctx.meta_env(&meta_args);
                    let default = match default {
                        Some(d) => Some(ctx.expand(ins.node, d, &env)?),
                        None => None,
                    };
                    let value = ctx.opts.build_args.get(*key).cloned().or(default);
                    ctx.consumed.insert((*key).to_owned());
                    meta_args.retain(|(k, _)| k != key);
                    meta_args.push(((*key).to_owned(), value));
                }
            }
            (_, None) => {
                return Err(ctx.error(
                    ins.node,
                    "no build stage in current context, add FROM first".to_owned(),
                ));
            }
            (_, Some(stage)) => stage.commands.push(ins),
        }
    }
    if stages.is_empty() {
        return Err(Error {
            file: ctx.file.clone(),
            line: 0,
            column: 0,
            instruction: None,
            message: "the Dockerfile has no FROM instruction".to_owned(),
        });
    }
    let mut out = Stages { meta_args, stages };
    resolve(ctx, &mut out)?;
    Ok(out)
}

/// The stage a name refers to from stage `before`: the latest stage of that
/// name defined before it (names may repeat, with a DuplicateStageName
/// warning), else a later one.
fn lookup(names: &[Option<String>], word: &str, before: usize) -> Option<usize> {
    let lower = word.to_ascii_lowercase();
    let named = |j: &usize| names[*j].as_deref() == Some(lower.as_str());
    (0..before.min(names.len()))
        .rev()
        .find(named)
        .or_else(|| (before.min(names.len())..names.len()).find(named))
}

/// Resolves bases and `--from` sources, then rejects cycles and references to
/// later stages.
fn resolve(ctx: &mut Ctx, s: &mut Stages<'_>) -> Result<(), Error> {
    let env = ctx.meta_env(&s.meta_args);
    let names: Vec<Option<String>> = s.stages.iter().map(|st| st.name.clone()).collect();
    for i in 0..s.stages.len() {
        let from = s.stages[i].base_cmd();
        let (base, platform) = (from.base, from.platform);
        let node = s.stages[i].from.node;
        let expanded = ctx.expand_tracked(node, base, &env)?;
        for name in &expanded.unmatched {
            if !s.meta_args.iter().any(|(k, _)| k == name) {
                let mut message = format!("FROM argument '{name}' is not declared");
                let known = env.iter().map(|(k, _)| k.as_str());
                if let Some(hint) = super::checks::suggest(name, known) {
                    message.push_str(&format!(" (did you mean {hint}?)"));
                }
                ctx.warn(node, "UndefinedArgInFrom", message);
            }
        }
        let raw_base = base;
        let base = expanded.value;
        if base.is_empty() {
            return Err(ctx.error(node, format!("base name ({raw_base}) should not be blank")));
        }
        if let Some(p) = &platform {
            check_platform(ctx, node, p, &env)?;
        }
        s.stages[i].base = if let Some(j) = lookup(&names, &base, i).filter(|j| *j != i) {
            Base::Stage(j)
        } else if base.eq_ignore_ascii_case("scratch") {
            Base::Scratch
        } else {
            Base::Image(base)
        };
        let mut sources = Vec::with_capacity(s.stages[i].commands.len());
        for ins in &s.stages[i].commands {
            sources.push(resolve_refs(ctx, &names, &env, i, ins.node, &ins.command)?);
        }
        s.stages[i].sources = sources;
    }
    check_graph(ctx, s)
}

/// The stage names, by index, for [`resolve_refs`].
pub(crate) fn names(s: &Stages<'_>) -> Vec<Option<String>> {
    s.stages.iter().map(|st| st.name.clone()).collect()
}

/// The `--from` of a COPY or the `from=` of each mount of a RUN in stage
/// `i`, expanded with the global ARGs `env` and resolved to a stage or an image.
pub(crate) fn resolve_refs(
    ctx: &Ctx,
    names: &[Option<String>],
    env: &dyn crate::shell::Env,
    i: usize,
    node: &Node,
    command: &Command,
) -> Result<Vec<Option<SourceRef>>, Error> {
    // Each reference expanded, with the span of its flag.
    let refs: Vec<Option<(String, Span)>> = match command {
        Command::Copy(copy) => match &copy.from {
            Some(f) => vec![Some((ctx.expand(node, f.value, env)?, f.span))],
            None => Vec::new(),
        },
        Command::Run(run) => run
            .mounts
            .iter()
            .map(|m| mount_from(ctx, node, m, env))
            .collect(),
        _ => Vec::new(),
    };
    let mut resolved = Vec::with_capacity(refs.len());
    for r in refs {
        let Some((value, span)) = r else {
            resolved.push(None);
            continue;
        };
        let source = match (lookup(names, &value, i), value.parse::<usize>()) {
            (Some(j), _) => Source::Stage(j),
            (None, Ok(j)) if j < names.len() => Source::Stage(j),
            (None, Ok(j)) => {
                return Err(ctx.error_at(
                    node,
                    span,
                    format!(
                        "invalid stage index {j}, the Dockerfile has {} stages",
                        names.len()
                    ),
                ));
            }
            (None, Err(_)) => Source::Image(value),
        };
        resolved.push(Some(SourceRef { source, span }));
    }
    Ok(resolved)
}

/// Rejects cycles between stages and references to later stages.
pub(crate) fn check_graph(ctx: &Ctx, s: &Stages<'_>) -> Result<(), Error> {
    check_cycles(ctx, s)?;
    check_order(ctx, s)
}

fn check_platform(
    ctx: &Ctx,
    node: &Node,
    p: &Located,
    env: &dyn crate::shell::Env,
) -> Result<(), Error> {
    let value = ctx.expand(node, p.value, env)?;
    let want = super::image::platform_string(&ctx.opts.platform);
    if value != want {
        return Err(ctx.error_at(node, p.span, format!(
            "--platform={value}: building for a platform other than the target ({want}) is not supported yet"
        )));
    }
    Ok(())
}

/// The `from=` of a `--mount`, found by parsing the flag with the global ARGs;
/// a flag that does not parse is reported when the RUN is dispatched.
fn mount_from(
    ctx: &Ctx,
    node: &Node,
    flag: &Located,
    env: &dyn crate::shell::Env,
) -> Option<(String, Span)> {
    let value = ctx.expand(node, flag.value, env).ok()?;
    // Keys are matched case-insensitively; most mounts have no `from`.
    let has_from = value
        .as_bytes()
        .windows(4)
        .any(|w| w.eq_ignore_ascii_case(b"from"));
    if !has_from {
        return None;
    }
    let spec = crate::instructions::mounts::parse(&value).ok()?;
    spec.from.map(|from| (from, flag.span))
}

/// The stages stage `i` depends on, with the instruction and span referring to each.
fn edges<'s>(stage: &'s Stage<'_>) -> Vec<(usize, &'s Node, Span)> {
    let mut out = Vec::new();
    if let Base::Stage(j) = stage.base {
        out.push((j, stage.from.node, stage.from.node.span));
    }
    let commands = stage
        .commands
        .iter()
        .map(|ins| ins.node)
        .zip(&stage.sources);
    let triggers = stage.triggers.iter().map(|t| (&t.node, &t.sources));
    for (node, refs) in triggers.chain(commands) {
        for r in refs.iter().flatten() {
            if let Source::Stage(j) = r.source {
                out.push((j, node, r.span));
            }
        }
    }
    out
}

fn check_cycles(ctx: &Ctx, s: &Stages<'_>) -> Result<(), Error> {
    // 0 = unvisited, 1 = on the current path, 2 = done.
    fn visit(ctx: &Ctx, s: &Stages<'_>, i: usize, marks: &mut [u8]) -> Result<(), Error> {
        marks[i] = 1;
        for (j, node, span) in edges(&s.stages[i]) {
            match marks[j] {
                1 => {
                    return Err(ctx.error_at(
                        node,
                        span,
                        format!(
                            "circular dependency detected on stage: {}",
                            display_name(s, j)
                        ),
                    ));
                }
                0 => visit(ctx, s, j, marks)?,
                _ => {}
            }
        }
        marks[i] = 2;
        Ok(())
    }
    let mut marks = vec![0u8; s.stages.len()];
    for i in 0..s.stages.len() {
        if marks[i] == 0 {
            visit(ctx, s, i, &mut marks)?;
        }
    }
    Ok(())
}

fn check_order(ctx: &Ctx, s: &Stages<'_>) -> Result<(), Error> {
    for stage in &s.stages {
        for (j, node, span) in edges(stage) {
            if j > stage.index {
                return Err(ctx.error_at(node, span, format!(
                    "stage {:?} is defined later in the Dockerfile, a stage can only use stages before it",
                    display_name(s, j)
                )));
            }
        }
    }
    Ok(())
}

/// The stage's name, or its index for unnamed stages.
pub(crate) fn display_name(s: &Stages<'_>, i: usize) -> String {
    s.stages[i].name.clone().unwrap_or_else(|| i.to_string())
}

/// The stage to build: `--target` or the last one.
pub(crate) fn target(ctx: &Ctx, s: &Stages<'_>) -> Result<usize, Error> {
    let Some(t) = &ctx.opts.target else {
        return Ok(s.stages.len() - 1);
    };
    let lower = t.to_ascii_lowercase();
    s.stages
        .iter()
        .rposition(|st| st.name.as_deref() == Some(lower.as_str()))
        .ok_or_else(|| Error {
            file: ctx.file.clone(),
            line: 0,
            column: 0,
            instruction: None,
            message: format!("target stage {t:?} could not be found"),
        })
}

/// Which stages the target needs, itself included.
pub(crate) fn reachable(s: &Stages<'_>, target: usize) -> Vec<bool> {
    let mut seen = vec![false; s.stages.len()];
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        todo.extend(edges(&s.stages[i]).into_iter().map(|(j, _, _)| j));
    }
    seen
}
