//! How RUN steps run: the OCI runtime and the snapshotter, for builds and the daemon.

use std::path::PathBuf;

use buildd_engine::ops::RuntimeConfig;
use buildd_executor::Snapshotter;
use clap::{Args, ValueEnum};

#[derive(Args, Debug, Clone, Default)]
pub struct RuntimeArgs {
    /// OCI runtime for RUN: `runc`, `crun` or a path (default: runc, else crun, from
    /// PATH).
    #[arg(long, global = true, env = "BUILDD_RUNTIME", value_name = "RUNTIME")]
    pub runtime: Option<PathBuf>,
    /// How a RUN's root filesystem is made: overlayfs, or copies where overlayfs
    /// cannot be mounted (auto).
    #[arg(long, global = true, value_enum, default_value_t = SnapshotterArg::Auto)]
    pub snapshotter: SnapshotterArg,
    /// The slirp4netns binary that gives RUN steps their own network (default:
    /// from PATH).
    #[arg(long, global = true, value_name = "PATH")]
    pub slirp4netns: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum SnapshotterArg {
    #[default]
    Auto,
    Overlayfs,
    Copy,
}

impl RuntimeArgs {
    pub fn config(&self) -> RuntimeConfig {
        RuntimeConfig {
            runtime: self.runtime.clone(),
            snapshotter: match self.snapshotter {
                SnapshotterArg::Auto => Snapshotter::Auto,
                SnapshotterArg::Overlayfs => Snapshotter::Overlay,
                SnapshotterArg::Copy => Snapshotter::Copy,
            },
            slirp4netns: self.slirp4netns.clone(),
            network_fallback_host: false,
        }
    }
}
