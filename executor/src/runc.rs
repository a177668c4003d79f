//! [`Executor`] over an OCI runtime command line (runc, or crun which accepts the same).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::copying::CopiedRootfs;
use crate::error::ExecError;
use crate::etc;
use crate::flatten;
use crate::netns::SlirpNetns;
use crate::overlay::{Overlay, remove_all, strip_overlay_xattrs};
use crate::spec::{self, Files, NetNs};
use crate::stubs::Stubs;
use crate::{
    Executor, ExitStatus, MountSpec, Network, OutputSink, RootfsPlan, RunSpec, Snapshotter,
};

/// Runs containers with an OCI runtime binary.
#[derive(Debug, Clone)]
pub struct RuncExecutor {
    runtime: PathBuf,
    state_dir: PathBuf,
    scratch_dir: PathBuf,
    slirp4netns: Option<PathBuf>,
    /// A RUN that wants its own network gets the host's where slirp4netns is
    /// missing, rather than failing.
    network_fallback_host: bool,
    /// Where bundles (`config.json`, which holds secret env values, and the
    /// runtime's log) go: a private tmpfs. `None`: beside the rootfs, and runs
    /// with secret env are refused.
    bundle_dir: Option<PathBuf>,
    snapshotter: Snapshotter,
    /// Set once an overlay mount failed in a way that means overlayfs is unusable
    /// here; [`Snapshotter::Auto`] then copies.
    overlay_unusable: Arc<AtomicBool>,
}

impl RuncExecutor {
    /// `runtime` is the runc or crun binary (a bare name is looked up in `PATH`),
    /// `state_dir` the runtime's `--root` and `scratch_dir` where bundles, rootfs mount
    /// points and flattened layers live during a run. slirp4netns is looked up in `PATH`.
    pub fn new(
        runtime: impl Into<PathBuf>,
        state_dir: impl Into<PathBuf>,
        scratch_dir: impl Into<PathBuf>,
    ) -> Self {
        RuncExecutor {
            runtime: runtime.into(),
            state_dir: state_dir.into(),
            scratch_dir: scratch_dir.into(),
            slirp4netns: find_in_path("slirp4netns"),
            network_fallback_host: false,
            bundle_dir: None,
            snapshotter: Snapshotter::Auto,
            overlay_unusable: Arc::default(),
        }
    }

    /// How root filesystems are made; [`Snapshotter::Auto`] by default.
    pub fn with_snapshotter(mut self, snapshotter: Snapshotter) -> Self {
        self.snapshotter = snapshotter;
        self
    }

    /// The snapshotter runs use now: `overlayfs` or `copy`.
    pub fn snapshotter_in_use(&self) -> &'static str {
        if self.copies() { "copy" } else { "overlayfs" }
    }

    fn copies(&self) -> bool {
        match self.snapshotter {
            Snapshotter::Overlay => false,
            Snapshotter::Copy => true,
            Snapshotter::Auto => self.overlay_unusable.load(Ordering::Relaxed),
        }
    }

    /// Overrides the slirp4netns binary; `None`: [`Network::Default`] runs fail,
    /// or get the host's network with [`Self::with_network_fallback_host`].
    pub fn with_slirp4netns(mut self, slirp4netns: Option<PathBuf>) -> Self {
        self.slirp4netns = slirp4netns;
        self
    }

    /// Whether [`Network::Default`] runs get the host's network (with a warning)
    /// when slirp4netns is missing; otherwise they fail.
    pub fn with_network_fallback_host(mut self, fallback: bool) -> Self {
        self.network_fallback_host = fallback;
        self
    }

    /// Keeps bundles under `dir`, which must be a private tmpfs: `config.json`
    /// holds the process's environment, secrets included.
    pub fn with_bundle_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.bundle_dir = dir;
        self
    }

    /// The runtime binary.
    pub fn runtime(&self) -> &Path {
        &self.runtime
    }

    /// runc or else crun, from `PATH`.
    pub fn find_runtime() -> Option<PathBuf> {
        find_in_path("runc").or_else(|| find_in_path("crun"))
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    async fn run_inner(
        &self,
        rootfs: &RootfsPlan,
        spec: &RunSpec,
        out: &dyn OutputSink,
    ) -> Result<ExitStatus, ExecError> {
        let id = container_id();
        let (me, plan, rs, id2) = (self.clone(), rootfs.clone(), spec.clone(), id.clone());
        // If this future is dropped while preparing, the task still finishes and its
        // result, dropped unclaimed, cleans up after itself.
        let mut run = blocking(move || Prepared::new(&me, &plan, &rs, id2)).await?;

        let mut cmd = Command::new(&self.runtime);
        cmd.arg("--root")
            .arg(&self.state_dir)
            .arg("--log")
            .arg(run.bundle.join("runtime.log"))
            .args(["--log-format", "json", "run", "--bundle"])
            .arg(&run.bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ExecError::RuntimeNotFound {
                path: self.runtime.clone(),
            },
            _ => ExecError::io("start", &self.runtime)(e),
        })?;
        run.container = Some(Container {
            runtime: self.runtime.clone(),
            state_dir: self.state_dir.clone(),
            id,
        });
        let (stdout, stderr) = (
            child.stdout.take().expect("piped"),
            child.stderr.take().expect("piped"),
        );
        let (o, e, status) = tokio::join!(pump(stdout, 1, out), pump(stderr, 2, out), child.wait());
        let status = status.map_err(ExecError::io("wait for", &self.runtime))?;
        o.and(e)
            .map_err(ExecError::io("read output of", &self.runtime))?;
        let code = status.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            128 + status.signal().unwrap_or(0)
        });

        let runtime = self.runtime.clone();
        blocking(move || {
            let failure = (code != 0).then(|| run.runtime_error()).flatten();
            run.finish()?;
            match failure {
                Some(message) => Err(ExecError::Runtime { runtime, message }),
                None => Ok(ExitStatus { code }),
            }
        })
        .await
    }
}

impl Executor for RuncExecutor {
    fn run<'a>(
        &'a self,
        rootfs: &'a RootfsPlan,
        spec: &'a RunSpec,
        out: &'a dyn OutputSink,
    ) -> BoxFuture<'a, Result<ExitStatus, ExecError>> {
        self.run_inner(rootfs, spec, out).boxed()
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ExecError> + Send + 'static,
) -> Result<T, ExecError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ExecError::io("run", "blocking task")(io::Error::other(e))))
}

async fn pump(mut r: impl AsyncRead + Unpin, stream: u8, out: &dyn OutputSink) -> io::Result<()> {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        out.write(stream, &buf[..n]);
    }
}

fn container_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "buildd-{:x}-{:x}-{}",
        std::process::id(),
        nanos,
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// The first executable file `name` in `PATH`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A created container, force-deleted when dropped.
#[derive(Debug)]
struct Container {
    runtime: PathBuf,
    state_dir: PathBuf,
    id: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        // A foreground `run` that returned removed the container's state itself;
        // another runtime process would only cost time (one per RUN step).
        if !self.state_dir.join(&self.id).exists() {
            return;
        }
        // Synchronous on purpose: the container must be gone before its rootfs is
        // unmounted. It only ever drops inside a `Prepared`'s teardown, which runs
        // on a blocking thread when a runtime is around.
        let res = std::process::Command::new(&self.runtime)
            .arg("--root")
            .arg(&self.state_dir)
            .args(["delete", "--force", &self.id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Err(e) = res {
            tracing::warn!("delete container {}: {e}", self.id);
        }
    }
}

/// Everything a run set up, torn down in reverse order when dropped.
#[derive(Debug)]
struct Prepared {
    dir: PathBuf,
    /// Holds `config.json` and the runtime's log: `dir`, or a directory on the
    /// bundle tmpfs.
    bundle: PathBuf,
    container: Option<Container>,
    netns: Option<SlirpNetns>,
    overlay: Option<Overlay>,
    copied: Option<CopiedRootfs>,
    /// The overlays (or, with the copying snapshotter, copies) of layer mounts.
    layer_mounts: Vec<LayerMount>,
    upper: PathBuf,
    stubs: Stubs,
    /// Set when the rootfs could not be unmounted: the directory holding it stays.
    keep_dir: bool,
}

impl Prepared {
    fn new(
        ex: &RuncExecutor,
        plan: &RootfsPlan,
        spec: &RunSpec,
        id: String,
    ) -> Result<Self, ExecError> {
        let scratch = std::path::absolute(&ex.scratch_dir)
            .map_err(ExecError::io("resolve", &ex.scratch_dir))?;
        std::fs::create_dir_all(&scratch).map_err(ExecError::io("create", &scratch))?;
        let dir = scratch.join(&id);
        if !spec.secret_env.is_empty() && ex.bundle_dir.is_none() {
            return Err(ExecError::Secret(
                "secret environment variables need a private tmpfs for the runtime bundle, and this executor has none".to_owned(),
            ));
        }
        let bundle = match &ex.bundle_dir {
            Some(b) => {
                let b = b.join(&id);
                std::fs::create_dir(&b).map_err(ExecError::io("create", &b))?;
                b
            }
            None => dir.clone(),
        };
        std::fs::create_dir(&dir).map_err(ExecError::io("create", &dir))?;
        let mut run = Prepared {
            dir,
            bundle,
            container: None,
            netns: None,
            overlay: None,
            copied: None,
            layer_mounts: Vec::new(),
            upper: plan.upper.clone(),
            stubs: Stubs::default(),
            keep_dir: false,
        };
        let dir = run.dir.clone();

        let rootfs = dir.join("rootfs");
        if !ex.copies() {
            match mount_overlay(plan, &dir, &rootfs, &id) {
                Ok(ov) => run.overlay = Some(ov),
                Err(ExecError::Mount { source, .. })
                    if ex.snapshotter == Snapshotter::Auto && overlay_unsupported(&source) =>
                {
                    if !ex.overlay_unusable.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            "overlayfs is not usable here ({source}); \
                             using the copying snapshotter, which is slower"
                        );
                    }
                    std::fs::remove_dir(&rootfs).map_err(ExecError::io("remove", &rootfs))?;
                }
                Err(e) => return Err(e),
            }
        }
        if run.overlay.is_none() {
            run.copied = Some(CopiedRootfs::prepare(&plan.lowers, &rootfs)?);
        }
        // Layer mounts become binds of their mounted (or copied) stacks.
        let mut converted;
        let spec = if spec
            .mounts
            .iter()
            .any(|m| matches!(m, MountSpec::Layers { .. }))
        {
            converted = spec.clone();
            for (i, m) in converted.mounts.iter_mut().enumerate() {
                let MountSpec::Layers {
                    lowers,
                    upper,
                    subpath,
                    dest,
                    readonly,
                } = m
                else {
                    continue;
                };
                let copy = run.overlay.is_none();
                let (mount, src) =
                    LayerMount::mount(lowers, upper.as_deref(), subpath, &dir, i, copy)?;
                run.layer_mounts.push(mount);
                *m = MountSpec::Bind {
                    src,
                    dest: std::mem::take(dest),
                    readonly: *readonly,
                };
            }
            &converted
        } else {
            spec
        };
        run.stubs = Stubs::record(&rootfs, spec::mount_destinations(spec))
            .map_err(ExecError::io("inspect", &rootfs))?;

        let mut network = spec.network;
        if network == Network::Default && ex.slirp4netns.is_none() {
            if !ex.network_fallback_host {
                return Err(ExecError::Network(
                    "slirp4netns is not installed, so this RUN cannot get its own network \
                     (apt-get install slirp4netns; a daemon's operator may instead start \
                     buildd with --network-fallback host)"
                        .to_owned(),
                ));
            }
            tracing::warn!("slirp4netns not found: running with the host's network");
            network = Network::Host;
        }
        let hostname = if spec.hostname.is_empty() {
            "buildkitsandbox"
        } else {
            &spec.hostname
        };
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let (hosts, resolv) = (dir.join("hosts"), dir.join("resolv.conf"));
        write(&hosts, &etc::hosts(hostname, &spec.extra_hosts))?;
        write(
            &resolv,
            &etc::resolv_conf(&host_resolv, network, network == Network::Default),
        )?;

        if let (Network::Default, Some(slirp)) = (network, &ex.slirp4netns) {
            run.netns = Some(SlirpNetns::create(
                slirp,
                &dir.join("netns"),
                &dir.join("slirp.log"),
            )?);
        }
        let net = match (&run.netns, network) {
            (Some(ns), _) => NetNs::Path(ns.path()),
            (None, Network::Host) => NetNs::Host,
            (None, _) => NetNs::New,
        };
        let files = Files {
            rootfs: &rootfs,
            hosts: &hosts,
            resolv_conf: &resolv,
        };
        let config = spec::config(spec, &files, net, &id)?;
        let json = serde_json::to_string_pretty(&config).expect("json values serialize");
        write(&run.bundle.join("config.json"), &json)?;
        Ok(run)
    }

    /// The error the runtime logged, if it failed itself rather than the process.
    fn runtime_error(&self) -> Option<String> {
        let log = std::fs::read_to_string(self.bundle.join("runtime.log")).ok()?;
        let msgs: Vec<String> = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| matches!(v["level"].as_str(), Some("error" | "fatal")))
            .filter_map(|v| v["msg"].as_str().map(str::to_owned))
            .collect();
        (!msgs.is_empty()).then(|| msgs.join("; "))
    }

    /// Removes the bundle when it lives apart from the rootfs (on the tmpfs): the
    /// secrets in its `config.json` last no longer than the container.
    fn remove_bundle(&self) -> Result<(), ExecError> {
        if self.bundle != self.dir {
            match std::fs::remove_dir_all(&self.bundle) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(ExecError::io("remove", &self.bundle)(e));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Tears down in order, reporting the first failure.
    fn finish(mut self) -> Result<(), ExecError> {
        self.container.take();
        self.remove_bundle()?;
        self.bundle = self.dir.clone();
        self.netns.take();
        for m in self.layer_mounts.drain(..) {
            if let Err(e) = m.release() {
                self.keep_dir = true;
                return Err(e);
            }
        }
        if let Some(ov) = self.overlay.take() {
            let target = ov.target().to_owned();
            let stubs = self
                .stubs
                .remove(&target)
                .map_err(ExecError::io("remove mount stubs in", &target));
            if let Err(e) = ov.unmount() {
                self.keep_dir = true;
                return Err(e);
            }
            stubs?;
            strip_overlay_xattrs(&self.upper).map_err(ExecError::io("clean up", &self.upper))?;
        }
        if let Some(copied) = self.copied.take() {
            let root = self.dir.join("rootfs");
            self.stubs
                .remove(&root)
                .map_err(ExecError::io("remove mount stubs in", &root))?;
            copied.diff_into(&self.upper)?;
        }
        remove_all(&self.dir)?;
        // Gone: nothing is left for the drop to do.
        self.keep_dir = true;
        Ok(())
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        let separate = self.bundle != self.dir;
        let teardown = Teardown {
            bundle: separate.then(|| std::mem::take(&mut self.bundle)),
            dir: std::mem::take(&mut self.dir),
            container: self.container.take(),
            netns: self.netns.take(),
            overlay: self.overlay.take(),
            copied: self.copied.take(),
            layer_mounts: std::mem::take(&mut self.layer_mounts),
            keep_dir: self.keep_dir,
        };
        if teardown.is_empty() {
            return;
        }
        // Dropped inside a runtime (a cancelled run's future, on an async thread):
        // the runtime's delete (a process), the unmounts and the removal go to a
        // blocking thread, in the same order. Should the runtime refuse the task
        // (shutting down), dropping the closure tears down right here.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn_blocking(move || drop(teardown))),
            Err(_) => drop(teardown),
        }
    }
}

/// What a [`Prepared`] still holds when it drops, torn down (in this order) when
/// this drops: the container deleted before its network and rootfs go.
struct Teardown {
    /// The bundle on the tmpfs, when not removed yet.
    bundle: Option<PathBuf>,
    dir: PathBuf,
    container: Option<Container>,
    netns: Option<SlirpNetns>,
    overlay: Option<Overlay>,
    copied: Option<CopiedRootfs>,
    layer_mounts: Vec<LayerMount>,
    keep_dir: bool,
}

impl Teardown {
    fn is_empty(&self) -> bool {
        self.layer_mounts.is_empty()
            && self.container.is_none()
            && self.bundle.is_none()
            && self.netns.is_none()
            && self.overlay.is_none()
            && self.copied.is_none()
            && self.keep_dir
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        self.container.take();
        if let Some(bundle) = self.bundle.take()
            && let Err(e) = std::fs::remove_dir_all(&bundle)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!("remove {}: {e}", bundle.display());
        }
        self.netns.take();
        for m in self.layer_mounts.drain(..) {
            self.keep_dir |= m.release().inspect_err(|e| tracing::warn!("{e}")).is_err();
        }
        if let Some(ov) = self.overlay.take() {
            self.keep_dir |= ov.unmount().inspect_err(|e| tracing::warn!("{e}")).is_err();
        }
        self.copied.take();
        // Never recurse into a rootfs that may still be mounted.
        if !self.keep_dir
            && let Err(e) = remove_all(&self.dir)
        {
            tracing::warn!("{e}");
        }
    }
}

/// A layer mount's stack, mounted as an overlay (read-only, or over the
/// caller's upper dir) or copied with the copying snapshotter, under the run's
/// directory; released before that directory goes.
#[derive(Debug)]
enum LayerMount {
    Overlay(Overlay),
    Copied(PathBuf),
}

impl LayerMount {
    /// Mounts (or copies) `lowers` as mount `i` of the run in `dir`; returns it
    /// and the path of `subpath` in it, resolved inside it.
    fn mount(
        lowers: &[PathBuf],
        upper: Option<&Path>,
        subpath: &str,
        dir: &Path,
        i: usize,
        copy: bool,
    ) -> Result<(Self, PathBuf), ExecError> {
        let target = dir.join(format!("m{i}"));
        let mut lowers = flatten::reduce(lowers, dir)?;
        if lowers.is_empty() {
            let empty = dir.join(format!("m{i}-empty"));
            std::fs::create_dir(&empty).map_err(ExecError::io("create", &empty))?;
            lowers.push(empty);
        }
        let mount = if copy {
            // What a copy holds of its source is all the run sees: the copy
            // itself is discarded, so a writable mount's changes go with it.
            CopiedRootfs::prepare(&lowers, &target)?;
            LayerMount::Copied(target.clone())
        } else {
            std::fs::create_dir(&target).map_err(ExecError::io("create", &target))?;
            let work = upper.map(|u| {
                let name = u.file_name().unwrap_or_default().to_string_lossy();
                u.with_file_name(format!(".{name}-work"))
            });
            let upper = upper.zip(work.as_deref());
            LayerMount::Overlay(Overlay::mount(
                &lowers,
                upper,
                &target,
                &dir.join(format!("m{i}-l")),
            )?)
        };
        let inside = buildd_fsutil::confine::resolve_in_root(&target, subpath, true)
            .map_err(|e| ExecError::InvalidSpec(format!("mount source {subpath}: {e}")))?;
        let src = target.join(inside);
        if std::fs::symlink_metadata(&src).is_err() {
            let _ = mount.release();
            return Err(ExecError::InvalidSpec(format!(
                "mount source {subpath} does not exist"
            )));
        }
        Ok((mount, src))
    }

    fn release(self) -> Result<(), ExecError> {
        match self {
            LayerMount::Overlay(ov) => ov.unmount(),
            LayerMount::Copied(dir) => remove_all(&dir),
        }
    }
}

/// The overlay a run's rootfs is: the layers (reduced when too many) below, the
/// run's upper dir above.
fn mount_overlay(
    plan: &RootfsPlan,
    dir: &Path,
    rootfs: &Path,
    id: &str,
) -> Result<Overlay, ExecError> {
    let mut lowers = flatten::reduce(&plan.lowers, dir)?;
    if lowers.is_empty() {
        let empty = dir.join("empty");
        std::fs::create_dir(&empty).map_err(ExecError::io("create", &empty))?;
        lowers.push(empty);
    }
    let name = plan.upper.file_name().unwrap_or_default().to_string_lossy();
    let work = plan.upper.with_file_name(format!(".{name}-work-{id}"));
    std::fs::create_dir(rootfs).map_err(ExecError::io("create", rootfs))?;
    Overlay::mount(&lowers, Some((&plan.upper, &work)), rootfs, &dir.join("l"))
}

/// Mount errors that mean overlayfs cannot work here at all (not compiled in, the
/// upper dir's filesystem refused, no permission in this namespace), as opposed to
/// a problem of this one mount.
fn overlay_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENODEV | libc::EINVAL | libc::EPERM | libc::EOPNOTSUPP)
    )
}

fn write(path: &Path, content: &str) -> Result<(), ExecError> {
    std::fs::write(path, content).map_err(ExecError::io("write", path))
}

#[cfg(test)]
#[path = "runc_tests.rs"]
mod tests;
