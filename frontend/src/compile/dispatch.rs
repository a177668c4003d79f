//! Dispatching one stage: each instruction updates the stage's filesystem state
//! (adding LLB vertices) and its image config.

use std::collections::BTreeSet;

use buildd_oci::ImageConfig;
use buildd_proto::llb::{
    self, ExecOp, FileAction, FileActionCopy, FileActionMkDir, FileOp, Meta, Mount, Op, SourceOp,
    file_action, op,
};

use super::Ctx;
use super::graph::{Graph, Output, State};
use super::image::{self, add_history, resolve_path};
use super::stages::{Base, Source, Stages};
use crate::ResolvedImage;
use crate::error::Error;
use crate::instructions::{Command, CommandLine, CopyCmd, Instruction};
use crate::parser::Node;

mod config;

/// A dispatched stage.
#[derive(Debug, Clone)]
pub(crate) struct Built {
    pub state: State,
    pub image: ImageConfig,
}

/// The one `local://` source of the build; its follow paths are known only once
/// every needed COPY has been seen.
#[derive(Default)]
pub(crate) struct ContextSource {
    vertex: Option<Output>,
    paths: BTreeSet<String>,
}

impl ContextSource {
    fn get(&mut self, ctx: &Ctx, graph: &mut Graph) -> Output {
        *self.vertex.get_or_insert_with(|| {
            let source = SourceOp {
                identifier: format!("local://{}", ctx.opts.context_name),
                exclude_patterns: ctx.opts.dockerignore.clone(),
                ..Default::default()
            };
            let op = Op {
                op: Some(op::Op::Source(source)),
                ..Default::default()
            };
            graph.add(
                op,
                Vec::new(),
                "[internal] load build context".to_owned(),
                None,
            )
        })
    }

    /// Sets BuildKit's follow paths: the sorted COPY sources relative to the
    /// context root, or none at all when one of them is the root itself.
    pub(crate) fn finish(self, graph: &mut Graph) {
        let Some(v) = self.vertex else { return };
        let paths: Vec<String> = if self.paths.contains("/") {
            Vec::new()
        } else {
            self.paths
                .iter()
                .map(|p| p.trim_start_matches('/').to_owned())
                .collect()
        };
        if let Some(op::Op::Source(s)) = &mut graph.op_mut(v).op {
            s.follow_paths = paths;
        }
    }
}

pub(crate) struct Dispatcher<'c, 'o, 'a> {
    pub(super) ctx: &'c mut Ctx<'o>,
    graph: &'c mut Graph,
    context: &'c mut ContextSource,
    stages: &'c Stages<'a>,
    built: &'c [Option<Built>],
    label: Option<String>,
    step: usize,
    total: usize,
    state: State,
    pub(super) image: ImageConfig,
    /// ARGs declared in this stage, in order, with their values.
    pub(super) args: Vec<(String, Option<String>)>,
    pub(super) cmd_set: bool,
}

pub(crate) fn stage(
    ctx: &mut Ctx,
    stages: &Stages<'_>,
    i: usize,
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
    let total = st
        .commands
        .iter()
        .filter(|c| {
            matches!(
                c.command,
                Command::Run(_) | Command::Copy(_) | Command::Workdir(_)
            )
        })
        .count()
        + usize::from(matches!(st.base, Base::Image(_)));
    let ctx_platform = ctx.opts.platform.clone();
    let mut d = Dispatcher {
        ctx,
        graph,
        context,
        stages,
        built,
        label,
        step: 0,
        total,
        state: None,
        image: image::scratch(&ctx_platform),
        args: Vec::new(),
        cmd_set: false,
    };
    d.init_base(st.from.node, &st.base)?;
    for (ins, source) in st.commands.iter().zip(&st.copy_sources) {
        d.dispatch(ins, source.as_ref())?;
    }
    Ok(Built {
        state: d.state,
        image: d.image,
    })
}

impl Dispatcher<'_, '_, '_> {
    fn init_base(&mut self, node: &Node, base: &Base) -> Result<(), Error> {
        let platform = self.ctx.opts.platform.clone();
        match base {
            Base::Scratch => self.image = image::scratch(&platform),
            Base::Stage(j) => {
                let b = self.built[*j]
                    .clone()
                    .expect("stages are dispatched in order");
                self.state = b.state;
                self.image = b.image;
            }
            Base::Image(reference) => {
                let resolved = self.resolve_image(node, node.span, reference)?;
                self.image = resolved.config.clone();
                self.image.created = None;
                let name = self.progress_text(format!("FROM {}", resolved.reference));
                self.state = Some(self.image_vertex(&resolved, name, node));
            }
        }
        if !self.image.config.on_build.is_empty() {
            return Err(self.ctx.error(
                node,
                "ONBUILD triggers of the base are not supported yet".to_owned(),
            ));
        }
        self.image.os = platform.os;
        self.image.architecture = platform.architecture;
        self.image.variant = platform.variant;
        Ok(())
    }

    fn resolve_image(
        &self,
        node: &Node,
        span: crate::parser::Span,
        reference: &str,
    ) -> Result<ResolvedImage, Error> {
        let Some(resolver) = &self.ctx.opts.resolver else {
            let message = if node.name() == "FROM" {
                format!(
                    "FROM {reference}: pulling images needs the registry client, not available yet"
                )
            } else {
                format!("stage {reference:?} not found")
            };
            return Err(self.ctx.error_at(node, span, message));
        };
        resolver
            .resolve(reference, &self.ctx.opts.platform)
            .map_err(|e| {
                self.ctx.error_at(
                    node,
                    span,
                    format!("failed to resolve image {reference:?}: {e}"),
                )
            })
    }

    fn image_vertex(&mut self, resolved: &ResolvedImage, name: String, node: &Node) -> Output {
        let op = Op {
            op: Some(op::Op::Source(SourceOp {
                identifier: format!("docker-image://{}", resolved.reference),
                ..Default::default()
            })),
            ..Default::default()
        };
        self.graph.add(op, Vec::new(), name, Some(lines(node)))
    }

    /// BuildKit's progress name: `[stage 2/5] COPY . /app`.
    fn progress_text(&mut self, text: String) -> String {
        if self.total == 0 {
            return text;
        }
        self.step += 1;
        let width = self.total.to_string().len();
        let label = self
            .label
            .as_ref()
            .map(|l| format!("{l} "))
            .unwrap_or_default();
        format!("[{label}{:>width$}/{}] {text}", self.step, self.total)
    }

    /// The instruction as written, variables expanded, keyword upper-cased.
    fn progress(&mut self, node: &Node) -> String {
        let env = self.expand_env();
        let text = self
            .ctx
            .lexer
            .process_word(&node.original, &env)
            .unwrap_or_else(|_| node.original.clone());
        let text = match text.split_once(' ') {
            Some((kw, rest)) => format!("{} {rest}", kw.to_ascii_uppercase()),
            None => text.to_ascii_uppercase(),
        };
        self.progress_text(text)
    }

    /// Variables for word expansion: the stage's ARGs, overridden by ENV.
    pub(super) fn expand_env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .args
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
            .collect();
        env.extend(
            self.image
                .config
                .env
                .iter()
                .map(|e| match e.split_once('=') {
                    Some((k, v)) => (k.to_owned(), v.to_owned()),
                    None => (e.clone(), String::new()),
                }),
        );
        env
    }

    pub(super) fn expand(&self, node: &Node, word: &str) -> Result<String, Error> {
        let env = self.expand_env();
        self.ctx.expand(node, word, &env)
    }

    pub(super) fn workdir(&self) -> String {
        match self.image.config.working_dir.as_str() {
            "" => "/".to_owned(),
            w => w.to_owned(),
        }
    }

    fn dispatch(&mut self, ins: &Instruction<'_>, source: Option<&Source>) -> Result<(), Error> {
        let node = ins.node;
        match &ins.command {
            Command::From(_) => unreachable!("FROM starts a stage"),
            Command::Copy(c) => self.copy(node, c, source),
            Command::Run(c) => self.run(node, c),
            Command::Workdir(p) => self.workdir_cmd(node, p),
            Command::Arg(args) => self.arg(node, args),
            Command::Env(pairs) => self.env(node, pairs),
            Command::Label(pairs) => self.label(node, pairs),
            Command::Cmd(c) => self.cmd(c, false),
            Command::Entrypoint(c) => self.cmd(c, true),
            Command::Shell(s) => {
                self.image.config.shell = s.clone();
                add_history(&mut self.image, format!("SHELL [{}]", s.join(" ")), true);
                Ok(())
            }
            Command::User(u) => {
                let u = self.expand(node, u)?;
                add_history(&mut self.image, format!("USER {u}"), true);
                self.image.config.user = u;
                Ok(())
            }
            Command::Expose(ports) => self.expose(node, ports),
            Command::Volume(v) => self.volume(node, v),
            Command::StopSignal(s) => self.stop_signal(node, s),
            Command::Maintainer(m) => {
                self.ctx.warn(
                    node,
                    "MaintainerDeprecated",
                    "Maintainer instruction is deprecated in favor of using label".to_owned(),
                );
                self.image.author = Some(m.clone());
                add_history(&mut self.image, format!("MAINTAINER {m}"), true);
                Ok(())
            }
            Command::Healthcheck(h) => self.healthcheck(node, h),
            Command::OnBuild(expr) => {
                self.image.config.on_build.push(expr.clone());
                add_history(&mut self.image, format!("ONBUILD {expr}"), true);
                Ok(())
            }
        }
    }

    fn add_file_op(&mut self, node: &Node, extra: Option<Output>, actions: Vec<FileAction>) {
        let mut inputs: Vec<Output> = self.state.into_iter().collect();
        let base = if self.state.is_some() {
            0
        } else {
            llb::NO_INPUT
        };
        inputs.extend(extra);
        let op = Op {
            op: Some(op::Op::File(FileOp { base, actions })),
            ..Default::default()
        };
        let name = self.progress(node);
        self.state = Some(self.graph.add(op, inputs, name, Some(lines(node))));
    }

    fn copy(&mut self, node: &Node, c: &CopyCmd, source: Option<&Source>) -> Result<(), Error> {
        let sources = c
            .sources
            .iter()
            .map(|s| self.expand(node, s))
            .collect::<Result<Vec<_>, _>>()?;
        let dest_raw = self.expand(node, &c.dest)?;
        let owner = match &c.chown {
            Some(l) => {
                let v = self.expand(node, &l.value)?;
                Some(image::parse_chown(&v).map_err(|m| self.ctx.error_at(node, l.span, m))?)
            }
            None => None,
        };
        let mode = match &c.chmod {
            Some(l) => {
                let v = self.expand(node, &l.value)?;
                Some(image::parse_chmod(&v).map_err(|m| self.ctx.error_at(node, l.span, m))?)
            }
            None => None,
        };
        let src_state = match source {
            None => {
                for s in &sources {
                    self.context.paths.insert(resolve_path("/", s));
                }
                self.context.get(self.ctx, self.graph)
            }
            Some(Source::Stage(j)) => {
                let b = self.built[*j]
                    .as_ref()
                    .expect("stages are dispatched in order");
                b.state.ok_or_else(|| {
                    let name = super::stages::display_name(self.stages, *j);
                    let span = c.from.as_ref().map_or(node.span, |f| f.span);
                    self.ctx.error_at(
                        node,
                        span,
                        format!("stage {name:?} has an empty filesystem, there is nothing to copy"),
                    )
                })?
            }
            Some(Source::Image(r)) => {
                let span = c.from.as_ref().map_or(node.span, |f| f.span);
                let resolved = self.resolve_image(node, span, r)?;
                let name = format!("[internal] load image {}", resolved.reference);
                self.image_vertex(&resolved, name, node)
            }
        };
        let mut dest = resolve_path(&self.workdir(), &dest_raw);
        let dir_dest =
            dest_raw.is_empty() || dest_raw == "." || dest_raw.ends_with('/') || sources.len() > 1;
        if dir_dest && !dest.ends_with('/') {
            dest.push('/');
        }
        let source_input = if self.state.is_some() { 1 } else { 0 };
        let actions = sources
            .iter()
            .map(|s| FileAction {
                action: Some(file_action::Action::Copy(FileActionCopy {
                    source_input,
                    src: resolve_path("/", s),
                    dest: dest.clone(),
                    owner: owner.clone(),
                    mode,
                    follow_symlink: true,
                    dir_copy_contents: true,
                    create_dest_path: true,
                    allow_wildcard: true,
                    allow_empty_wildcard: false,
                    ..Default::default()
                })),
            })
            .collect();
        self.add_file_op(node, Some(src_state), actions);
        add_history(
            &mut self.image,
            format!("COPY {} {dest_raw} # buildkit", sources.join(" ")),
            false,
        );
        Ok(())
    }

    fn run(&mut self, node: &Node, c: &CommandLine) -> Result<(), Error> {
        let args = self.with_shell(c);
        let env = self.run_env();
        let meta = Meta {
            args: args.clone(),
            env,
            cwd: self.workdir(),
            user: self.image.config.user.clone(),
            ..Default::default()
        };
        let mount = Mount {
            input: if self.state.is_some() {
                0
            } else {
                llb::NO_INPUT
            },
            dest: "/".to_owned(),
            output: 0,
            ..Default::default()
        };
        let op = Op {
            op: Some(op::Op::Exec(ExecOp {
                meta: Some(meta),
                mounts: vec![mount],
                ..Default::default()
            })),
            ..Default::default()
        };
        let name = self.progress(node);
        let inputs = self.state.into_iter().collect();
        self.state = Some(self.graph.add(op, inputs, name, Some(lines(node))));
        let created_by = format!("RUN {} # buildkit", self.run_command_string(&args));
        add_history(&mut self.image, created_by, false);
        Ok(())
    }

    /// The process environment: ENV, then ARGs that ENV does not override.
    fn run_env(&self) -> Vec<String> {
        let mut env = self.image.config.env.clone();
        for (k, v) in &self.args {
            let Some(v) = v else { continue };
            let shadowed = env
                .iter()
                .any(|e| e.split_once('=').map_or(e.as_str(), |(ek, _)| ek) == k);
            if !shadowed {
                env.push(format!("{k}={v}"));
            }
        }
        env
    }

    /// BuildKit's history form of RUN: `|N K=V ... args`.
    fn run_command_string(&self, args: &[String]) -> String {
        let env = self.expand_env();
        let mut parts: Vec<String> = self
            .args
            .iter()
            .map(|(k, v)| {
                let value = crate::shell::Env::get(&env, k)
                    .map(str::to_owned)
                    .or_else(|| v.clone())
                    .unwrap_or_default();
                format!("{k}={value}")
            })
            .collect();
        if !parts.is_empty() {
            parts.insert(0, format!("|{}", parts.len()));
        }
        parts.extend(args.iter().cloned());
        parts.join(" ")
    }

    fn workdir_cmd(&mut self, node: &Node, p: &str) -> Result<(), Error> {
        let p = self.expand(node, p)?;
        let wd = resolve_path(&self.workdir(), &p);
        self.image.config.working_dir = wd.clone();
        if wd == "/" {
            add_history(&mut self.image, format!("WORKDIR {wd}"), true);
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
        self.add_file_op(node, None, vec![mkdir]);
        add_history(&mut self.image, format!("WORKDIR {wd}"), false);
        Ok(())
    }

    fn with_shell(&self, c: &CommandLine) -> Vec<String> {
        if !c.shell_form {
            return c.args.clone();
        }
        let mut args = if self.image.config.shell.is_empty() {
            vec!["/bin/sh".to_owned(), "-c".to_owned()]
        } else {
            self.image.config.shell.clone()
        };
        args.extend(c.args.iter().cloned());
        args
    }
}

/// The instruction's line range for vertex metadata.
fn lines(node: &Node) -> (u32, u32) {
    (node.span.start.line, node.span.end.line)
}
