//! Running build steps (Dockerfile `RUN`) in real containers.
//!
//! A run gets a root filesystem made of snapshot layers: the layers (overlayfs upper-dir
//! format) become the lowerdirs of an overlay mount whose upperdir receives exactly the
//! changes of the run. [`RuncExecutor`] drives an OCI runtime (runc or crun) over a bundle
//! it generates, streams the process's output to an [`OutputSink`] and removes every trace
//! of the container afterwards, also when the run's future is dropped.

mod caps;
mod copying;
mod error;
mod etc;
mod flatten;
mod netns;
mod overlay;
mod runc;
mod seccomp;
mod spec;
mod stubs;
mod sys;

use std::net::IpAddr;
use std::path::PathBuf;

use futures_util::future::BoxFuture;

pub use error::ExecError;
pub use runc::{RuncExecutor, find_in_path};

/// The root filesystem of a run.
#[derive(Debug, Clone)]
pub struct RootfsPlan {
    /// Layer directories, bottom first.
    pub lowers: Vec<PathBuf>,
    /// An empty directory that receives the changes of the run, in overlayfs upper-dir
    /// format. Its parent must be writable: the overlay work dir is created next to it.
    pub upper: PathBuf,
}

/// How a run's root filesystem is made from its layers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Snapshotter {
    /// overlayfs, or copying where overlayfs cannot be mounted (decided on the first
    /// run and reported once).
    #[default]
    Auto,
    /// overlayfs only.
    Overlay,
    /// Copy the layers into a plain directory and compute the diff after the run.
    Copy,
}

/// The network a run gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Network {
    /// A private network namespace with only the loopback interface.
    None,
    /// The host's network namespace.
    Host,
    /// A private network namespace with outbound access through slirp4netns, or the
    /// host's network when slirp4netns is not installed.
    #[default]
    Default,
}

/// How confined a run is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Security {
    /// Docker's defaults: its capability set, its seccomp profile, masked and
    /// read-only kernel paths.
    #[default]
    Sandbox,
    /// `RUN --security=insecure`: every capability this process has, no seccomp
    /// filter, no masked or read-only paths, a writable `/sys` and every device
    /// allowed.
    Insecure,
}

/// An extra mount in the container, for `RUN --mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSpec {
    /// A host directory or file bind-mounted at `dest`.
    Bind {
        src: PathBuf,
        dest: String,
        readonly: bool,
    },
    /// An empty tmpfs at `dest`; `size` in bytes, `None` for the kernel's default.
    Tmpfs { dest: String, size: Option<u64> },
    /// `subpath` of a layer stack (bottom first), as BuildKit mounts a snapshot:
    /// an overlay of the layers, read-only, or writable over `upper` (an empty
    /// directory whose changes the caller discards), never a copy of the files
    /// (unless the copying snapshotter is in use). `subpath` is resolved inside
    /// the stack, symlinks included.
    Layers {
        lowers: Vec<PathBuf>,
        upper: Option<PathBuf>,
        subpath: String,
        dest: String,
        readonly: bool,
    },
}

/// What to run and how.
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    /// The command line; the first element is looked up in the container's `PATH`.
    pub args: Vec<String>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    /// `KEY=value` entries of secrets: they win over `env`, are kept only on a
    /// private tmpfs while the run lasts and never shown by `Debug`.
    pub secret_env: SecretEnv,
    /// Working directory inside the container, created when missing. Empty means `/`.
    pub cwd: String,
    /// `uid[:gid]`, numeric; names are resolved by the caller. Empty means `0:0`.
    pub user: String,
    /// Supplementary groups of the process (resolved by the caller, as runc's
    /// user lookup gives them); empty: none.
    pub additional_gids: Vec<u32>,
    /// Empty means `buildkitsandbox`, as in BuildKit.
    pub hostname: String,
    pub network: Network,
    /// Extra `/etc/hosts` entries.
    pub extra_hosts: Vec<(String, IpAddr)>,
    pub mounts: Vec<MountSpec>,
    pub security: Security,
}

/// Secret environment entries, wiped from memory when dropped.
#[derive(Clone, Default)]
pub struct SecretEnv(pub Vec<zeroize::Zeroizing<String>>);

impl SecretEnv {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The variables' names, which are not secret.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .map(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n))
    }
}

impl std::fmt::Debug for SecretEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.names().map(|n| format!("{n}=<redacted>")))
            .finish()
    }
}

/// Receives the output of a run as it comes.
pub trait OutputSink: Send + Sync {
    /// `stream` is 1 for stdout and 2 for stderr.
    fn write(&self, stream: u8, data: &[u8]);
}

/// How the process of a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit code; a process killed by signal `n` reports `128 + n`, as a shell does.
    pub code: i32,
}

impl ExitStatus {
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

/// Runs processes in containers.
pub trait Executor: Send + Sync {
    /// Runs `spec` on `rootfs`, streaming output to `out`. Dropping the future kills the
    /// container and removes everything the run set up.
    fn run<'a>(
        &'a self,
        rootfs: &'a RootfsPlan,
        spec: &'a RunSpec,
        out: &'a dyn OutputSink,
    ) -> BoxFuture<'a, Result<ExitStatus, ExecError>>;
}

#[cfg(test)]
mod secret_env_tests {
    use super::*;

    #[test]
    fn debug_shows_secret_names_never_values() {
        let spec = RunSpec {
            env: vec!["PLAIN=shown".into()],
            secret_env: SecretEnv(vec![zeroize::Zeroizing::new("TOKEN=hunter2".into())]),
            ..Default::default()
        };
        let shown = format!("{spec:?}");
        assert!(shown.contains("TOKEN=<redacted>"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("PLAIN=shown"), "{shown}");
    }
}
