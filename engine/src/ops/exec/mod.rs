//! ExecOp (Dockerfile `RUN`): a process in a container over the input's layers,
//! whose changes become one new layer.

mod cache;
mod content_key;
mod mounts;
mod output;
mod secrets;
mod session;
mod ssh;
pub(crate) use cache::{
    CacheSeed, exported_dir as cache_mount_dir, identity as cache_mount_identity,
};
pub(crate) use ssh::AgentProxy;
mod user;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use buildd_executor::{Executor, Network, RunSpec, RuncExecutor, Security, Snapshotter};
use buildd_proto::Digest;
use buildd_proto::llb::{ExecOp, Meta, MountType, NO_INPUT, NetMode, SecurityMode, op};
use buildd_snapshot::Snapshot;

use super::worker::{Ref, Selections, blocking};
use crate::root::Root;
use crate::solver::{BuildCtx, LogSink, OpError, Resolved, Vertex};
use cache::{CacheMounts, RunCaches};
pub(crate) use content_key::exec_op as content_key;
use mounts::{MountSources, Prepared};
use output::RunOutput;
use session::SessionMounts;

/// What RUNs share across a worker: the executor, made on first use so that
/// builds without RUN need no OCI runtime, and which cache mount instances
/// runs hold.
#[derive(Default)]
pub(crate) struct ExecState {
    config: RuntimeConfig,
    executor: OnceLock<Arc<RuncExecutor>>,
    caches: Arc<CacheMounts>,
}

/// How RUN steps run.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// The OCI runtime binary (`runc`, `crun` or a path); `None`: runc, else crun,
    /// from `PATH`.
    pub runtime: Option<PathBuf>,
    pub snapshotter: Snapshotter,
    /// The slirp4netns binary; `None`: from `PATH`.
    pub slirp4netns: Option<PathBuf>,
    /// Where slirp4netns is missing, a RUN that wants its own network gets the
    /// host's (with a warning) instead of failing. The one-shot CLI's caller owns
    /// the machine and opts in; a daemon only with `--network-fallback host`.
    pub network_fallback_host: bool,
}

/// What RUN steps run with, as a daemon reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// The OCI runtime binary; `None` when none was found.
    pub runtime: Option<PathBuf>,
    /// `overlayfs` or `copy`.
    pub snapshotter: &'static str,
    /// How a RUN's private network is made: `slirp4netns`, `host (fallback,
    /// slirp4netns missing)` or `unavailable (slirp4netns missing)`.
    pub network: String,
    /// What the host lacks, in words for an operator.
    pub warnings: Vec<String>,
}

impl RuntimeConfig {
    /// The slirp4netns binary this configuration uses, if it exists.
    pub fn find_slirp4netns(&self) -> Option<PathBuf> {
        match &self.slirp4netns {
            Some(p) => p.is_file().then(|| p.clone()),
            None => buildd_executor::find_in_path("slirp4netns"),
        }
    }
}

impl ExecState {
    pub(crate) fn new(config: RuntimeConfig) -> Self {
        Self {
            config,
            ..Default::default()
        }
    }

    fn executor(&self, root: &Root) -> Result<Arc<RuncExecutor>, OpError> {
        if let Some(e) = self.executor.get() {
            return Ok(e.clone());
        }
        let runtime = match &self.config.runtime {
            Some(r) => r.clone(),
            None => RuncExecutor::find_runtime()
                .ok_or_else(|| OpError::new("RUN needs an OCI runtime (runc or crun) on PATH"))?,
        };
        let made = Arc::new(
            RuncExecutor::new(runtime, root.path.join("runc"), root.path.join("exec"))
                .with_snapshotter(self.config.snapshotter)
                .with_slirp4netns(self.config.find_slirp4netns())
                .with_network_fallback_host(self.config.network_fallback_host)
                .with_bundle_dir(root.bundles()),
        );
        Ok(self.executor.get_or_init(|| made).clone())
    }

    /// The runtime, snapshotter and network RUN steps get (or will get).
    pub(crate) fn info(&self) -> RuntimeInfo {
        let runtime = match (&self.executor.get(), &self.config.runtime) {
            (Some(r), _) => Some(r.runtime().to_owned()),
            (None, Some(r)) => Some(r.clone()),
            (None, None) => RuncExecutor::find_runtime(),
        };
        let snapshotter = match (self.executor.get(), self.config.snapshotter) {
            (Some(r), _) => r.snapshotter_in_use(),
            (None, Snapshotter::Copy) => "copy",
            (None, _) => "overlayfs",
        };
        let mut warnings = Vec::new();
        if runtime.is_none() {
            warnings.push("no OCI runtime (runc or crun) on PATH: RUN steps fail".to_owned());
        }
        let network = match (
            self.config.find_slirp4netns(),
            self.config.network_fallback_host,
        ) {
            (Some(_), _) => "slirp4netns".to_owned(),
            (None, fallback) => {
                let (mode, what) = if fallback {
                    (
                        "host (fallback, slirp4netns missing)",
                        "get the host's network",
                    )
                } else {
                    ("unavailable (slirp4netns missing)", "fail")
                };
                warnings.push(format!(
                    "slirp4netns is not installed: RUN steps that want their own network {what} (apt-get install slirp4netns)"
                ));
                mode.to_owned()
            }
        };
        RuntimeInfo {
            runtime,
            snapshotter,
            network,
            warnings,
        }
    }
}

#[allow(clippy::too_many_arguments)] // what the worker hands on, as Worker::execute
pub(crate) async fn run(
    root: Arc<Root>,
    state: &ExecState,
    vertex: Arc<Vertex>,
    inputs: Vec<Arc<Resolved<Ref>>>,
    selections: Selections,
    cache_key: Digest,
    ctx: Arc<BuildCtx>,
    log: LogSink,
) -> Result<Ref, OpError> {
    let Some(op::Op::Exec(exec)) = &vertex.op.op else {
        unreachable!("dispatched on op kind")
    };
    let meta = exec
        .meta
        .as_ref()
        .ok_or_else(|| OpError::new("exec op has no meta"))?;
    let base = root_input(exec, &inputs)?;
    let executor = state.executor(&root)?;

    // Held until the run ends: `locked` caches may wait here for other runs.
    let from_keys: Vec<Digest> = inputs.iter().map(|r| r.cache_key).collect();
    let caches = RunCaches::acquire(&state.caches, &root.path, &exec.mounts, &from_keys).await;
    let seeds = cache::seeds(&root, &caches, &ctx).await;
    let session = SessionMounts::prepare(&root.path, exec, &ctx).await?;
    let prepared = {
        let (root, vertex, inputs, base) = (root.clone(), vertex.clone(), inputs, base.clone());
        let (instances, sources) = (caches.instances.clone(), session.sources.clone());
        let cache_ids = caches.ids.clone();
        blocking(move |_| {
            let Some(op::Op::Exec(exec)) = &vertex.op.op else {
                unreachable!("dispatched on op kind")
            };
            let sources = MountSources {
                cache_instances: &instances,
                cache_ids: &cache_ids,
                cache_seeds: &seeds,
                session: &sources,
            };
            Prepared::new(&root, exec, &base, &inputs, selections, &sources)
        })
        .await?
    };
    // Removing layers and copies is blocking work; on every way out it happens
    // off the async threads.
    let prepared = OffThread(Some(prepared));
    let p = prepared.0.as_ref().expect("set until dropped");

    let spec = run_spec(exec, meta, p, &session.env)?;
    let out = RunOutput::new(log);
    let status = executor
        .run(&p.rootfs, &spec, &out)
        .await
        .map_err(|e| OpError::new(e.to_string()))?;
    // The secrets and agents go as soon as the process has, and the caches are
    // free for other runs.
    drop((session, caches));
    if !status.success() {
        return Err(OpError::new(failure_message(
            &meta.args,
            status.code,
            &out.tail(),
        )));
    }

    let mut prepared = prepared;
    let p = prepared.0.take().expect("set until dropped");
    let id = super::fresh_layer_id(cache_key);
    let committed = id.clone();
    blocking(move |cancelled| {
        let Prepared { upper, copies, .. } = p;
        drop(copies);
        if cancelled.is_set() {
            return Err(OpError::new("cancelled"));
        }
        upper
            .commit(&committed)
            .map_err(|e| OpError::new(format!("committing layer: {e}")))
    })
    .await?;
    Ok(Ref::Snapshot(base.with_layer(id)))
}

/// The filesystem the process runs on: mount 0, which must be `/` and output 0.
fn root_input(exec: &ExecOp, inputs: &[Arc<Resolved<Ref>>]) -> Result<Snapshot, OpError> {
    let m = exec
        .mounts
        .first()
        .filter(|m| m.dest == "/" && m.mount_type() == MountType::Bind)
        .ok_or_else(|| OpError::new("exec op: the first mount must be the root filesystem"))?;
    if m.output != 0 {
        return Err(OpError::new(format!(
            "exec op: the root filesystem must be output 0, not {}",
            m.output
        )));
    }
    if let Some(other) = exec.mounts[1..].iter().find(|m| m.output != NO_INPUT) {
        return Err(OpError::new(format!(
            "exec op: mount {} has an output; only the root filesystem's changes can be kept for now",
            other.dest
        )));
    }
    if m.input == NO_INPUT {
        return Ok(Snapshot::scratch());
    }
    Ok(mounts::input(inputs, m.input, "RUN root filesystem")?
        .snapshot("RUN root filesystem")?
        .clone())
}

fn run_spec(
    exec: &ExecOp,
    meta: &Meta,
    p: &Prepared,
    secret_env: &[zeroize::Zeroizing<String>],
) -> Result<RunSpec, OpError> {
    if meta.args.is_empty() {
        return Err(OpError::new("exec op has no command"));
    }
    let extra_hosts = meta
        .extra_hosts
        .iter()
        .map(|h| {
            let ip: IpAddr = h.ip.parse().map_err(|_| {
                OpError::new(format!("extra host {}: invalid address {:?}", h.host, h.ip))
            })?;
            Ok((h.host.clone(), ip))
        })
        .collect::<Result<_, OpError>>()?;
    let mut env = meta.env.clone();
    if let Some(proxy) = &meta.proxy_env {
        // Passed to the process but, like BuildKit, kept out of the cache key.
        for (name, value) in [
            ("HTTP_PROXY", &proxy.http_proxy),
            ("HTTPS_PROXY", &proxy.https_proxy),
            ("FTP_PROXY", &proxy.ftp_proxy),
            ("NO_PROXY", &proxy.no_proxy),
            ("ALL_PROXY", &proxy.all_proxy),
        ] {
            if !value.is_empty() {
                env.push(format!("{name}={value}"));
                env.push(format!("{}={value}", name.to_ascii_lowercase()));
            }
        }
    }
    Ok(RunSpec {
        args: meta.args.clone(),
        env,
        secret_env: buildd_executor::SecretEnv(secret_env.to_vec()),
        cwd: if meta.cwd.is_empty() {
            "/".to_owned()
        } else {
            meta.cwd.clone()
        },
        user: p.user.id.clone(),
        additional_gids: p.user.groups.clone(),
        hostname: meta.hostname.clone(),
        network: match exec.network() {
            NetMode::None => Network::None,
            NetMode::Host => Network::Host,
            NetMode::Unset => Network::Default,
        },
        extra_hosts,
        mounts: p.mounts.clone(),
        security: match exec.security() {
            SecurityMode::Insecure => Security::Insecure,
            SecurityMode::Sandbox => Security::Sandbox,
        },
    })
}

/// BuildKit's message for a process that failed, with the end of its output.
fn failure_message(args: &[String], code: i32, tail: &[String]) -> String {
    let mut msg = format!(
        "process {:?} did not complete successfully: exit code: {code}",
        args.join(" ")
    );
    if !tail.is_empty() {
        msg.push_str("\n------\n");
        msg.push_str(&tail.join("\n"));
        msg.push_str("\n------");
    }
    msg
}

/// `<pid>-<n>`: a directory of one run, named so that what an earlier process
/// left is told apart from this one's.
fn run_dir_name(seq: &AtomicU64) -> String {
    format!(
        "{}-{}",
        std::process::id(),
        seq.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes what runs of earlier processes left in `parent` (entries not named for
/// this process), the first time this process uses it.
fn clear_stale_once(parent: &Path, clear: impl Fn(&Path)) {
    static CLEARED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
    if !CLEARED.lock().unwrap().insert(parent.to_owned()) {
        return;
    }
    let mine = format!("{}-", std::process::id());
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(&mine) {
            clear(&e.path());
        }
    }
}

/// Drops its value on a blocking thread when a runtime is there to take it.
struct OffThread(Option<Prepared>);

impl Drop for OffThread {
    fn drop(&mut self) {
        let Some(p) = self.0.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(move || drop(p));
            }
            Err(_) => drop(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_names_the_command_and_shows_the_tail() {
        let args = ["/bin/sh".to_owned(), "-c".to_owned(), "exit 3".to_owned()];
        assert_eq!(
            failure_message(&args, 3, &[]),
            "process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3"
        );
        let msg = failure_message(&args, 3, &["boom".to_owned()]);
        assert!(msg.ends_with("exit code: 3\n------\nboom\n------"), "{msg}");
    }
}
