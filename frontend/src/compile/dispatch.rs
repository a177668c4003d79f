//! Dispatching one stage: each instruction updates the stage's filesystem state
//! (adding LLB vertices) and its image config.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use buildd_oci::ImageConfig;
use buildd_proto::llb::{self, FileAction, FileActionMkDir, file_action};

use super::Ctx;
use super::encode;
use super::graph::{Graph, Output, State};
use super::image::{self, add_history, resolve_path};
use super::stages::{Base, Source, SourceRef, Stages};
use crate::error::{Error, Warning};
use crate::instructions::{self, Command, Instruction};
use crate::parser::Node;
use crate::shell::Env;
use crate::{BuildOptions, ResolvedImage};

mod config;
mod copy;
mod run;

/// A dispatched stage.
#[derive(Debug, Clone)]
pub(crate) struct Built {
    pub state: State,
    pub image: ImageConfig,
    /// A WORKDIR of the build set the working directory.
    pub workdir_set: bool,
    /// The stage's ARGs at its end: a stage built FROM it starts with them, as in
    /// BuildKit (global ARGs, by contrast, must be declared again).
    pub args: Vec<(String, Option<String>)>,
}

/// The one `local://` source of the build; its follow paths are known only once
/// every needed COPY has been seen.
#[derive(Default)]
pub(crate) struct ContextSource {
    vertex: Option<Output>,
    paths: BTreeSet<String>,
}

impl ContextSource {
    /// The context's vertex; its op is written by [`Self::finish`].
    fn get(&mut self, graph: &mut Graph) -> Output {
        *self.vertex.get_or_insert_with(|| {
            graph.add(
                graph.op_writer(&[]),
                Vec::new(),
                "[internal] load build context".to_owned(),
                None,
            )
        })
    }

    /// Writes the context's source op with BuildKit's follow paths: the
    /// sorted COPY sources relative to the context root, or none at all when
    /// one of them is the root itself.
    pub(crate) fn finish(self, opts: &BuildOptions, graph: &mut Graph) {
        let Some(v) = self.vertex else { return };
        let paths: Vec<&str> = if self.paths.contains("/") {
            Vec::new()
        } else {
            self.paths
                .iter()
                .map(|p| p.trim_start_matches('/'))
                .collect()
        };
        let identifier = format!("local://{}", opts.context_name);
        let mut op = graph.op_writer(&[]);
        encode::source(
            &mut op,
            &identifier,
            &BTreeMap::new(),
            &opts.dockerignore,
            &paths,
        );
        graph.set_op(v, op);
    }
}

/// The variables word expansion sees in a stage: its ARGs, overridden by ENV.
/// Looked up in place, as most instructions expand several words and change
/// no variable.
#[derive(Clone, Copy)]
pub(super) struct StageEnv<'d> {
    args: &'d [(String, Option<String>)],
    env: &'d [String],
}

impl<'d> StageEnv<'d> {
    /// The names of the variables with a value: ARGs, then ENV.
    fn names(self) -> impl Iterator<Item = &'d str> {
        let args = self
            .args
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k.as_str());
        let env = self
            .env
            .iter()
            .map(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k));
        args.chain(env)
    }
}

impl Env for StageEnv<'_> {
    /// The last ENV entry of that name (one without `=` is empty), else the
    /// last ARG of that name with a value.
    fn get(&self, name: &str) -> Option<&str> {
        let env = self.env.iter().rev().find_map(|e| match e.split_once('=') {
            Some((k, v)) => (k == name).then_some(v),
            None => (e == name).then_some(""),
        });
        env.or_else(|| {
            self.args
                .iter()
                .rev()
                .find_map(|(k, v)| if k == name { v.as_deref() } else { None })
        })
    }
}

pub(crate) struct Dispatcher<'c, 'o, 'a> {
    pub(super) ctx: &'c mut Ctx<'o>,
    graph: &'c mut Graph,
    context: &'c mut ContextSource,
    stages: &'c Stages<'a>,
    built: &'c [Option<Built>],
    label: Option<String>,
    /// The instruction being dispatched is an ONBUILD trigger of the base.
    on_build: bool,
    /// The stage's image is part of the result (it is the target or one of
    /// its bases): only then is its history written.
    keep_history: bool,
    step: usize,
    total: usize,
    state: State,
    pub(super) image: ImageConfig,
    /// ARGs declared in this stage, in order, with their values.
    pub(super) args: Vec<(String, Option<String>)>,
    pub(super) cmd_set: bool,
    workdir_set: bool,
    /// Warnings found while expanding words, which borrows `self` immutably.
    pending: RefCell<Vec<Warning>>,
}

pub(crate) fn stage(
    ctx: &mut Ctx,
    stages: &Stages<'_>,
    i: usize,
    keep_history: bool,
    built: &[Option<Built>],
    graph: &mut Graph,
    context: &mut ContextSource,
) -> Result<Built, Error> {
    let st = &stages.stages[i];
    let label = match &st.name {
        Some(n) => Some(n.clone()),
        None if stages.stages.len() > 1 => Some(format!("stage-{i}")),
        None => None,
    };
    // The triggers typed already when their base was resolved.
    let triggers = st
        .triggers
        .iter()
        .map(|t| {
            instructions::parse(&t.node)
                .map(|ins| (ins, t.sources.as_slice()))
                .map_err(|e| ctx.error(&t.node, e.message))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let steps = |c: &Command| matches!(c, Command::Run(_) | Command::Copy(_) | Command::Workdir(_));
    let total = st.commands.iter().filter(|c| steps(&c.command)).count()
        + triggers.iter().filter(|(t, _)| steps(&t.command)).count()
        + usize::from(matches!(st.base, Base::Image(_)));
    let ctx_platform = ctx.opts.platform.clone();
    let mut d = Dispatcher {
        ctx,
        graph,
        context,
        stages,
        built,
        label,
        on_build: false,
        keep_history,
        step: 0,
        total,
        state: None,
        image: image::scratch(&ctx_platform),
        args: Vec::new(),
        cmd_set: false,
        workdir_set: false,
        pending: RefCell::new(Vec::new()),
    };
    d.init_base(st.from.node, &st.base, st.resolved.as_ref())?;
    if keep_history {
        // Every instruction but FROM records one history entry.
        d.image.history.reserve(triggers.len() + st.commands.len());
    }
    for (ins, refs) in &triggers {
        d.on_build = true;
        d.dispatch(ins, refs)?;
        d.on_build = false;
    }
    for (ins, refs) in st.commands.iter().zip(&st.sources) {
        d.dispatch(ins, refs)?;
    }
    d.ctx.warnings.append(d.pending.get_mut());
    Ok(Built {
        state: d.state,
        image: d.image,
        workdir_set: d.workdir_set,
        args: d.args,
    })
}

impl Dispatcher<'_, '_, '_> {
    fn init_base(
        &mut self,
        node: &Node,
        base: &Base,
        resolved: Option<&ResolvedImage>,
    ) -> Result<(), Error> {
        let platform = self.ctx.opts.platform.clone();
        match base {
            Base::Scratch => self.image = image::scratch(&platform),
            Base::Stage(j) => {
                let b = self.built[*j]
                    .clone()
                    .expect("stages are dispatched in order");
                self.state = b.state;
                self.image = b.image;
                // The base stage's triggers run in this stage (see
                // `onbuild::resolve_bases`) and are not passed on.
                self.image.config.on_build.clear();
                self.workdir_set = b.workdir_set;
                self.args = b.args;
            }
            Base::Image(reference) => {
                let resolved = match resolved {
                    Some(r) => r.clone(),
                    None => self.ctx.resolve_image(node, node.span, reference)?,
                };
                self.image = resolved.config.clone();
                self.image.created = None;
                // The triggers run in this stage (see `onbuild::resolve_bases`)
                // and are not passed on.
                self.image.config.on_build.clear();
                let name = self.progress_text(&format!("FROM {}", resolved.reference));
                self.state = Some(self.image_vertex(&resolved, name, node));
            }
        }
        self.image.os = platform.os;
        self.image.architecture = platform.architecture;
        self.image.variant = platform.variant;
        Ok(())
    }

    fn image_vertex(&mut self, resolved: &ResolvedImage, name: String, node: &Node) -> Output {
        let identifier = format!("docker-image://{}", resolved.reference);
        let mut op = self.graph.op_writer(&[]);
        encode::source(
            &mut op,
            &identifier,
            &BTreeMap::new(),
            encode::NO_PATHS,
            encode::NO_PATHS,
        );
        self.graph.add(op, Vec::new(), name, Some(lines(node)))
    }

    /// BuildKit's progress name: `[stage 2/5] COPY . /app`.
    fn progress_text(&mut self, text: &str) -> String {
        if self.total == 0 {
            return text.to_owned();
        }
        self.step += 1;
        let label = self.label.as_deref().unwrap_or_default();
        let mut out = String::with_capacity(label.len() + text.len() + 16);
        out.push('[');
        if !label.is_empty() {
            out.push_str(label);
            out.push(' ');
        }
        let width = decimal_width(self.total);
        write!(out, "{:>width$}/{}] ", self.step, self.total).expect("writing to a String");
        if self.on_build {
            out.push_str("ONBUILD ");
        }
        out.push_str(text);
        out
    }

    /// The instruction as written, variables expanded, keyword upper-cased.
    fn progress(&mut self, node: &Node) -> String {
        let lexer = self.ctx.lexer;
        let text = if lexer.is_literal(&node.original) {
            Cow::Borrowed(node.original.as_str())
        } else {
            let expanded = lexer.process_word(&node.original, &self.expand_env());
            Cow::Owned(expanded.unwrap_or_else(|_| node.original.clone()))
        };
        let mut out = self.progress_text(&text);
        // The text ends the progress line.
        let start = out.len() - text.len();
        let keyword_len = text.find(' ').unwrap_or(text.len());
        out[start..start + keyword_len].make_ascii_uppercase();
        out
    }

    /// Variables for word expansion: the stage's ARGs, overridden by ENV.
    pub(super) fn expand_env(&self) -> StageEnv<'_> {
        StageEnv {
            args: &self.args,
            env: &self.image.config.env,
        }
    }

    /// Expands a word of the instruction, noting variables used undefined
    /// (UndefinedVar): declared ARGs count as defined even without a value.
    /// A word without variables, quotes or escapes is itself.
    pub(super) fn expand<'w>(&self, node: &Node, word: &'w str) -> Result<Cow<'w, str>, Error> {
        if self.ctx.lexer.is_literal(word) {
            return Ok(Cow::Borrowed(word));
        }
        let env = self.expand_env();
        let expanded = self.ctx.expand_tracked(node, word, &env)?;
        for name in &expanded.unmatched {
            if self.args.iter().any(|(k, _)| k == name) {
                continue;
            }
            let mut message = format!("Usage of undefined variable '${name}'");
            if let Some(hint) = super::checks::suggest(name, env.names()) {
                message.push_str(&format!(" (did you mean ${hint}?)"));
            }
            self.pending.borrow_mut().push(Warning {
                rule: "UndefinedVar".to_owned(),
                line: node.span.start.line,
                message,
            });
        }
        Ok(Cow::Owned(expanded.value))
    }

    /// Adds an entry to the image's history; `created_by` is called only
    /// when the history is kept.
    pub(super) fn history(&mut self, empty_layer: bool, created_by: impl FnOnce() -> String) {
        if self.keep_history {
            add_history(&mut self.image, created_by(), empty_layer);
        }
    }

    /// The working directory, `/` when unset.
    pub(super) fn workdir(&self) -> &str {
        match self.image.config.working_dir.as_str() {
            "" => "/",
            w => w,
        }
    }

    /// The filesystem a `--from` or mount `from=` names; `None` for a stage
    /// that is an empty filesystem.
    pub(super) fn source_state(&mut self, node: &Node, r: &SourceRef) -> Result<State, Error> {
        match &r.source {
            Source::Stage(j) => Ok(self.built[*j]
                .as_ref()
                .expect("stages are dispatched in order")
                .state),
            Source::Image(reference) => {
                let resolved = self.ctx.resolve_image(node, r.span, reference)?;
                let name = format!("[internal] load image {}", resolved.reference);
                Ok(Some(self.image_vertex(&resolved, name, node)))
            }
        }
    }

    fn dispatch(&mut self, ins: &Instruction<'_>, refs: &[Option<SourceRef>]) -> Result<(), Error> {
        let node = ins.node;
        match &ins.command {
            Command::From(_) => unreachable!("FROM starts a stage"),
            Command::Copy(c) => self.copy(node, c, refs.first().and_then(Option::as_ref)),
            Command::Run(c) => self.run(node, c, refs),
            Command::Workdir(p) => self.workdir_cmd(node, p),
            Command::Arg(args) => self.arg(node, args),
            Command::Env(pairs) => self.env(node, pairs),
            Command::Label(pairs) => self.label(node, pairs),
            Command::Cmd(c) => self.cmd(node, c, false),
            Command::Entrypoint(c) => self.cmd(node, c, true),
            Command::Shell(s) => {
                self.image.config.shell = s.to_vec();
                self.history(true, || format!("SHELL [{}]", s.join(" ")));
                Ok(())
            }
            Command::User(u) => {
                let u = self.expand(node, u)?.into_owned();
                self.history(true, || format!("USER {u}"));
                self.image.config.user = u;
                Ok(())
            }
            Command::Expose(ports) => self.expose(node, ports),
            Command::Volume(v) => self.volume(node, v),
            Command::StopSignal(s) => self.stop_signal(node, s),
            Command::Maintainer(m) => {
                self.image.author = Some((*m).to_owned());
                self.history(true, || format!("MAINTAINER {m}"));
                Ok(())
            }
            Command::Healthcheck(h) => self.healthcheck(node, h),
            Command::OnBuild(expr) => {
                self.image.config.on_build.push((*expr).to_owned());
                self.history(true, || format!("ONBUILD {expr}"));
                Ok(())
            }
        }
    }

    fn add_file_op(&mut self, node: &Node, actions: Vec<FileAction>) {
        let inputs: Vec<Output> = self.state.into_iter().collect();
        let base = if self.state.is_some() {
            0
        } else {
            llb::NO_INPUT
        };
        let mut op = self.graph.op_writer(&inputs);
        encode::file(&mut op, base, &actions);
        let name = self.progress(node);
        self.state = Some(self.graph.add(op, inputs, name, Some(lines(node))));
    }

    fn workdir_cmd(&mut self, node: &Node, p: &str) -> Result<(), Error> {
        let p = self.expand(node, p)?;
        if !self.workdir_set && !p.starts_with('/') {
            self.ctx.warn(
                node,
                "WorkdirRelativePath",
                format!(
                    "Relative workdir {p:?} can have unexpected results if the base image changes"
                ),
            );
        }
        self.workdir_set = true;
        // As BuildKit: an absolute path is kept as written (`/a/b/` stays so in
        // the config); a relative one is joined to the current one and cleaned.
        let wd = if p.starts_with('/') {
            p.to_string()
        } else {
            resolve_path(self.workdir(), &p)
        };
        self.image.config.working_dir = wd.clone();
        if wd == "/" {
            self.history(true, || format!("WORKDIR {wd}"));
            return Ok(());
        }
        let owner = match self.image.config.user.as_str() {
            "" => None,
            u => Some(image::parse_chown(u).map_err(|m| self.ctx.error(node, m))?),
        };
        let mkdir = FileAction {
            action: Some(file_action::Action::Mkdir(FileActionMkDir {
                path: wd.clone(),
                mode: 0o755,
                make_parents: true,
                owner,
                timestamp: None,
            })),
        };
        self.add_file_op(node, vec![mkdir]);
        self.history(false, || format!("WORKDIR {wd}"));
        Ok(())
    }
}

/// How many decimal digits `n` has.
fn decimal_width(mut n: usize) -> usize {
    let mut width = 1;
    while n >= 10 {
        n /= 10;
        width += 1;
    }
    width
}

/// The instruction's line range for vertex metadata.
fn lines(node: &Node) -> (u32, u32) {
    (node.span.start.line, node.span.end.line)
}
