//! RUN: an ExecOp over the stage's filesystem, with its `--mount`s, network
//! and security mode, and heredoc scripts.

use std::fmt::Write as _;

use buildd_proto::llb::{
    self, CacheOpt, CacheSharingOpt, Mount, MountType as LlbMount, NetMode, SecretEnv, SecretOpt,
    SecurityMode, SshOpt, TmpfsOpt,
};

use super::{Dispatcher, lines};
use crate::compile::encode::{self, EnvVar, Process};
use crate::compile::graph::{Output, State};
use crate::compile::image::{clean_path, resolve_path};
use crate::compile::stages::SourceRef;
use crate::error::Error;
use crate::instructions::mounts::{self, MountSpec, MountType, Sharing};
use crate::instructions::{Located, RunCmd};
use crate::parser::{Node, parse_heredoc_marker};

/// Where a script heredoc (`RUN <<EOF` starting with `#!`) is mounted.
const PIPES_DIR: &str = "/dev/pipes/";

/// The inputs of the ExecOp being built: the root first, then mount sources.
struct Inputs {
    list: Vec<Output>,
}

impl Inputs {
    fn index(&mut self, state: State) -> i64 {
        let Some(out) = state else {
            return llb::NO_INPUT;
        };
        let i = match self.list.iter().position(|o| *o == out) {
            Some(i) => i,
            None => {
                self.list.push(out);
                self.list.len() - 1
            }
        };
        i as i64
    }
}

impl Dispatcher<'_, '_, '_> {
    pub(super) fn run(
        &mut self,
        node: &Node,
        c: &RunCmd,
        refs: &[Option<SourceRef>],
    ) -> Result<(), Error> {
        let mut inputs = Inputs {
            list: Vec::with_capacity(c.mounts.len() + 2),
        };
        let root = inputs.index(self.state);
        // The root, a heredoc script and the `--mount`s.
        let mut mounts = Vec::with_capacity(c.mounts.len() + 2);
        mounts.push(Mount {
            input: root,
            dest: "/".to_owned(),
            output: 0,
            ..Default::default()
        });
        let mut secret_env = Vec::new();
        let mut summary = None;
        // The command, when a heredoc rewrites it.
        let mut rewritten = None;
        if let Some(script) = self.heredoc_script(node, c, &mut rewritten, &mut summary)? {
            mounts.push(Mount {
                input: inputs.index(Some(script)),
                selector: "/".to_owned(),
                dest: PIPES_DIR.to_owned(),
                output: llb::NO_INPUT,
                readonly: true,
                ..Default::default()
            });
        }
        let mut ssh_count = 0;
        for (i, flag) in c.mounts.iter().enumerate() {
            let spec = self.mount_spec(node, flag)?;
            let from = refs.get(i).and_then(Option::as_ref);
            if spec.kind == MountType::Secret && spec.env.is_some() {
                secret_env.push(SecretEnv {
                    id: secret_id(&spec),
                    name: spec.env.clone().unwrap_or_default(),
                    optional: !spec.required,
                });
                if spec.target.is_none() {
                    continue;
                }
            }
            let mount = self.mount(node, flag, &spec, from, &mut inputs, &mut ssh_count)?;
            mounts.push(mount);
        }
        // Parents before children, deterministically; the root stays first.
        mounts[1..].sort_by(|a, b| a.dest.cmp(&b.dest));
        let network = match &c.network {
            Some(l) => match &*self.expand(node, l.value)? {
                "default" => NetMode::Unset,
                "none" => NetMode::None,
                "host" => NetMode::Host,
                v => return Err(self.flag_error(node, l, "network", v, "default, none or host")),
            },
            None => NetMode::Unset,
        };
        let security = match &c.security {
            Some(l) => match &*self.expand(node, l.value)? {
                "sandbox" => SecurityMode::Sandbox,
                "insecure" => SecurityMode::Insecure,
                v => return Err(self.flag_error(node, l, "security", v, "sandbox or insecure")),
            },
            None => SecurityMode::Sandbox,
        };
        let args = match &rewritten {
            Some(cmd) => self.shell_args(c.line.shell_form, std::slice::from_ref(cmd)),
            None => self.shell_args(c.line.shell_form, c.line.args),
        };
        let mut env = self.run_env();
        if let Some(sock) = mounts
            .iter()
            .find_map(|m| m.ssh_opt.as_ref().map(|_| m.dest.as_str()))
            && !env.iter().any(|e| e.name() == "SSH_AUTH_SOCK")
        {
            env.push(EnvVar::Pair("SSH_AUTH_SOCK", sock));
        }
        let created_by = self
            .keep_history
            .then(|| format!("RUN {} # buildkit", self.run_command_string(&args)));
        let process = Process {
            args: &args,
            env: &env,
            cwd: self.workdir(),
            user: &self.image.config.user,
        };
        let mut op = self.graph.op_writer(&inputs.list);
        encode::exec(&mut op, &process, &mounts, network, security, &secret_env);
        let mut name = self.progress(node);
        if let Some(s) = summary {
            name = format!("{name} ({s})");
        }
        self.state = Some(self.graph.add(op, inputs.list, name, Some(lines(node))));
        if let Some(created_by) = created_by {
            self.history(false, || created_by);
        }
        Ok(())
    }

    fn flag_error(&self, node: &Node, l: &Located, flag: &str, v: &str, want: &str) -> Error {
        self.ctx.error_at(
            node,
            l.span,
            format!("invalid --{flag} value {v:?}, expected {want}"),
        )
    }

    fn mount_spec(&self, node: &Node, flag: &Located) -> Result<MountSpec, Error> {
        let value = self.expand(node, flag.value)?;
        mounts::parse(&value)
            .map_err(|m| self.ctx.error_at(node, flag.span, format!("--mount: {m}")))
    }

    /// BuildKit's heredoc forms of RUN: a lone `<<EOF` runs its body (as a
    /// script file when it starts with `#!`); otherwise the bodies are appended
    /// to the command for the shell to read. Sets the command that replaces
    /// the written one; returns the script's filesystem.
    fn heredoc_script(
        &mut self,
        node: &Node,
        c: &RunCmd,
        rewritten: &mut Option<String>,
        summary: &mut Option<String>,
    ) -> Result<Option<Output>, Error> {
        if c.files.is_empty() {
            return Ok(None);
        }
        let [cmd] = c.line.args else {
            return Err(self
                .ctx
                .error(node, "heredocs need the shell form of RUN".to_owned()));
        };
        if parse_heredoc_marker(cmd).is_none() {
            let mut cmd = cmd.clone();
            for f in c.files {
                cmd.push('\n');
                cmd.push_str(&f.content);
                cmd.push_str(&f.name);
            }
            *rewritten = Some(cmd);
            return Ok(None);
        }
        let file = &c.files[0];
        let data = file.data();
        *summary = Some(summarize(&file.content));
        if !data.starts_with("#!") {
            *rewritten = Some(data);
            return Ok(None);
        }
        // The delimiter names the file; cleaning keeps it inside the mount.
        let path = resolve_path("/", &file.name);
        let out = self.inline_file(node, &path, 0o755, data);
        *rewritten = Some(format!("{PIPES_DIR}{}", path.trim_start_matches('/')));
        Ok(Some(out))
    }

    fn mount(
        &mut self,
        node: &Node,
        flag: &Located,
        spec: &MountSpec,
        from: Option<&SourceRef>,
        inputs: &mut Inputs,
        ssh_count: &mut usize,
    ) -> Result<Mount, Error> {
        let default = match spec.kind {
            MountType::Secret => format!("/run/secrets/{}", base_name(&secret_id(spec))),
            MountType::Ssh => format!("/run/buildkit/ssh_agent.{ssh_count}"),
            _ => self.workdir().to_owned(),
        };
        let dest = match &spec.target {
            Some(t) => resolve_path(self.workdir(), t),
            None => default,
        };
        if dest == "/" {
            return Err(self.ctx.error_at(
                node,
                flag.span,
                format!("--mount: invalid mount target {dest:?}"),
            ));
        }
        let selector = spec
            .source
            .as_deref()
            .map(|s| resolve_path("/", s))
            .filter(|s| s != "/")
            .unwrap_or_default();
        let mut m = Mount {
            dest,
            input: llb::NO_INPUT,
            output: llb::NO_INPUT,
            readonly: spec.readonly,
            ..Default::default()
        };
        match spec.kind {
            MountType::Bind => {
                let state = match from {
                    Some(r) => self.source_state(node, r)?,
                    None => {
                        let path = if selector.is_empty() { "/" } else { &selector };
                        self.context.paths.insert(path.to_owned());
                        Some(self.context.get(self.graph))
                    }
                };
                m.input = inputs.index(state);
                m.selector = selector;
            }
            MountType::Cache => {
                if let Some(r) = from {
                    m.input = inputs.index(self.source_state(node, r)?);
                    m.selector = selector;
                }
                m.mount_type = LlbMount::Cache as i32;
                let sharing = match spec.sharing {
                    None | Some(Sharing::Shared) => CacheSharingOpt::CacheSharingShared,
                    Some(Sharing::Private) => CacheSharingOpt::CacheSharingPrivate,
                    Some(Sharing::Locked) => CacheSharingOpt::CacheSharingLocked,
                };
                m.cache_opt = Some(CacheOpt {
                    id: spec.id.clone().unwrap_or_else(|| clean_path(&m.dest)),
                    sharing: sharing as i32,
                    uid: spec.uid,
                    gid: spec.gid,
                    mode: spec.mode,
                });
            }
            MountType::Tmpfs => {
                m.mount_type = LlbMount::Tmpfs as i32;
                m.tmpfs_opt = Some(TmpfsOpt {
                    size: spec.size.unwrap_or(0),
                });
            }
            MountType::Secret => {
                let id = secret_id(spec);
                m.readonly = false;
                m.mount_type = LlbMount::Secret as i32;
                m.secret_opt = Some(SecretOpt {
                    id,
                    uid: spec.uid.unwrap_or(0),
                    gid: spec.gid.unwrap_or(0),
                    mode: spec.mode.unwrap_or(0o400),
                    optional: !spec.required,
                });
            }
            MountType::Ssh => {
                *ssh_count += 1;
                m.readonly = false;
                m.mount_type = LlbMount::Ssh as i32;
                m.ssh_opt = Some(SshOpt {
                    id: spec.id.clone().unwrap_or_else(|| "default".to_owned()),
                    uid: spec.uid.unwrap_or(0),
                    gid: spec.gid.unwrap_or(0),
                    mode: spec.mode.unwrap_or(0o600),
                    optional: !spec.required,
                });
            }
        }
        Ok(m)
    }

    /// The process environment: ENV, then ARGs that ENV (or an earlier
    /// ARG of the same name) does not override.
    fn run_env(&self) -> Vec<EnvVar<'_>> {
        let env = &self.image.config.env;
        let mut out = Vec::with_capacity(env.len() + self.args.len() + 1);
        out.extend(env.iter().map(|e| EnvVar::Line(e)));
        for (k, v) in &self.args {
            let Some(v) = v else { continue };
            if !out.iter().any(|e| e.name() == k) {
                out.push(EnvVar::Pair(k, v));
            }
        }
        out
    }

    /// BuildKit's history form of RUN: `|N K=V ... args`.
    fn run_command_string(&self, args: &[&str]) -> String {
        let env = self.expand_env();
        let mut out = String::new();
        if !self.args.is_empty() {
            write!(out, "|{}", self.args.len()).expect("writing to a String");
        }
        for (k, v) in &self.args {
            let value = crate::shell::Env::get(&env, k).or(v.as_deref());
            write!(out, " {k}={}", value.unwrap_or_default()).expect("writing to a String");
        }
        for (i, a) in args.iter().enumerate() {
            if i > 0 || !self.args.is_empty() {
                out.push(' ');
            }
            out.push_str(a);
        }
        out
    }

    /// The process arguments: `args` as they are in exec form, after the
    /// stage's shell in shell form.
    pub(super) fn with_shell(&self, shell_form: bool, args: &[String]) -> Vec<String> {
        self.shell_args(shell_form, args)
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// [`Self::with_shell`], borrowed.
    fn shell_args<'s>(&'s self, shell_form: bool, args: &'s [String]) -> Vec<&'s str> {
        if !shell_form {
            return args.iter().map(String::as_str).collect();
        }
        let shell = &self.image.config.shell;
        let mut out = Vec::with_capacity(shell.len().max(2) + args.len());
        if shell.is_empty() {
            out.extend(["/bin/sh", "-c"]);
        } else {
            out.extend(shell.iter().map(String::as_str));
        }
        out.extend(args.iter().map(String::as_str));
        out
    }
}

/// A secret's id: `id=`, else `source=`, else the target's file name.
fn secret_id(spec: &MountSpec) -> String {
    spec.id
        .clone()
        .or_else(|| spec.source.clone())
        .or_else(|| spec.target.as_deref().map(base_name))
        .unwrap_or_default()
}

fn base_name(p: &str) -> String {
    let p = p.trim_end_matches('/');
    p.rsplit('/').next().unwrap_or(p).to_owned()
}

/// BuildKit's `summarizeHeredoc`: the first line, with `...` when there are more.
fn summarize(doc: &str) -> String {
    let doc = doc.trim().replace("\r\n", "\n");
    match doc.split_once('\n') {
        Some((first, _)) => format!("{first}..."),
        None => doc,
    }
}
