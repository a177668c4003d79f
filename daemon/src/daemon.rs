//! What every request handler shares: the engine, the sessions, the status board
//! and the limits.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use buildd_engine::Engine;
use tokio::sync::{RwLock, Semaphore, watch};

use crate::context_sync::MirrorLocks;
use crate::durability::Durability;
use crate::session::SessionRegistry;
use crate::status::StatusBoard;

/// Largest gRPC message the daemon decodes (a Solve request with its definition,
/// one session message), as BuildKit's 16 MiB. The largest legitimate ones stay
/// far below: file chunks are 64 KiB, listings go in chunks of at most 4096
/// entries and about 1 MiB of names, a Dockerfile's definition is some KiB per
/// step. A bigger message fails its call (ResourceExhausted), not the daemon.
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Default `--max-context-files`: entries one listing of a client directory may
/// have (as `context_sync::MAX_ENTRIES`).
pub const DEFAULT_MAX_CONTEXT_FILES: usize = crate::context_sync::MAX_ENTRIES;
/// Ops one raw LLB definition may have by default (`--max-graph-vertices`).
pub const DEFAULT_MAX_GRAPH_VERTICES: usize = 1_000_000;
/// Default `--max-context-bytes`: file content one build may upload, over all its
/// local sources (64 GiB).
pub const DEFAULT_MAX_CONTEXT_BYTES: u64 = 64 << 30;

/// Limits and settings the daemon was started with.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_parallelism: usize,
    /// RUN steps executing at once across builds; not held to the cores, as a
    /// RUN mostly waits.
    pub max_parallel_runs: usize,
    /// CPU-bound steps one build may execute at once, at most `max_parallelism`.
    pub max_build_parallelism: usize,
    pub max_concurrent_builds: usize,
    /// What one build may upload from its client.
    pub context: crate::context_sync::ContextLimits,
    /// Ops one raw LLB definition may have.
    pub max_graph_vertices: usize,
}

impl Limits {
    /// The default share of one build: three quarters of the slots (at least one),
    /// so a second build always finds some free.
    pub fn default_build_parallelism(max_parallelism: usize) -> usize {
        (max_parallelism * 3 / 4).max(1)
    }
}

/// What the daemon's operator consents to; a client can ask for no more.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Entitlements builds may be granted (`--allow-insecure-entitlement`):
    /// `network.host`, `security.insecure`. A client's `--allow` asks for one;
    /// only this grants it.
    pub entitlements: BTreeSet<String>,
}

pub struct Daemon {
    pub engine: Arc<Engine>,
    pub root: PathBuf,
    pub limits: Limits,
    pub policy: Policy,
    pub sessions: Arc<SessionRegistry>,
    pub status: StatusBoard,
    pub mirrors: MirrorLocks,
    /// Makes what builds wrote durable in the background.
    pub durability: Arc<Durability>,
    /// Builds beyond the limit wait here.
    pub builds: Semaphore,
    pub running: AtomicU32,
    /// Builds hold it shared; prune takes it exclusively, so it never removes what
    /// a running build uses.
    pub storage: RwLock<()>,
    /// Becomes true when the daemon is shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// COPY may hard-link mirror files into layers: the filesystem holding the
    /// mirrors records birth times, which tell a file's versions apart when the
    /// links move its ctime (see `buildd_fsutil::select::Stamp`).
    pub link_mirrors: bool,
}

impl Daemon {
    pub fn new(
        engine: Arc<Engine>,
        limits: Limits,
        policy: Policy,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let engine_root_contexts = engine.root.path.join("contexts");
        Self {
            policy,
            root: engine.root.path.clone(),
            engine,
            builds: Semaphore::new(limits.max_concurrent_builds.max(1)),
            limits,
            sessions: Arc::default(),
            status: StatusBoard::default(),
            mirrors: MirrorLocks::default(),
            durability: Arc::default(),
            running: AtomicU32::new(0),
            storage: RwLock::new(()),
            shutdown,
            link_mirrors: records_birth_times(&engine_root_contexts),
        }
    }
}

/// Whether the filesystem at `dir` (created if missing) records birth times.
fn records_birth_times(dir: &std::path::Path) -> bool {
    let probe = || -> std::io::Result<bool> {
        std::fs::create_dir_all(dir)?;
        let fd = buildd_fsutil::dirfd::DirFd::open(dir)?;
        Ok(fd.lstat_born(c".")?.is_some_and(|(_, born)| born.is_some()))
    };
    match probe() {
        Ok(true) => true,
        Ok(false) => {
            tracing::info!(dir = %dir.display(), "no birth times here: COPY copies context files instead of linking them");
            false
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), "checking for birth times: {e}; COPY copies context files");
            false
        }
    }
}
