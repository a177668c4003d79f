//! The seam between the solver and what actually runs an op.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use buildd_proto::Digest;
use futures_util::future::BoxFuture;

use super::error::OpError;
use super::graph::Vertex;
use super::progress::LogSink;
use crate::session::{SecretStore, SshStore};

/// What one build brings to the vertices it runs.
#[derive(Debug, Default)]
pub struct BuildCtx {
    /// Local sources by name (`local://NAME`) → directory.
    pub locals: BTreeMap<String, PathBuf>,
    /// The local directories are immutable per file: a file is replaced by
    /// rename, its content and metadata never change in place (the daemon's context
    /// mirrors). COPY then links instead of copying. A user's own directory (the
    /// one-shot build) is not.
    pub immutable_locals: bool,
    /// Local sources whose content a number names in this process: the same name
    /// and number, the same files (the daemon's mirror between two syncs that
    /// change it). Their content keys are remembered instead of recomputed.
    pub local_versions: BTreeMap<String, u64>,
    pub no_cache: bool,
    /// `--allow network.host`: RUN --network=host may use the host's network.
    pub allow_network_host: bool,
    /// `--allow security.insecure`: RUN --security=insecure runs unconfined.
    pub allow_insecure: bool,
    /// Secrets for `RUN --mount=type=secret`; `None` when the client gave none.
    pub secrets: Option<Arc<dyn SecretStore>>,
    /// SSH agents for `RUN --mount=type=ssh`; `None` when the client gave none.
    pub ssh: Option<Arc<dyn SshStore>>,
    /// A registry client with this build's credentials (a daemon's client asks its
    /// user); `None` uses the engine's own.
    pub registry: Option<Arc<buildd_registry::Client>>,
    /// This build's own bound on executing vertices, within the solver's: a daemon
    /// gives each build fewer slots than the whole, so one huge build cannot take
    /// every slot from the others. `None`: only the solver's bound.
    pub build_permits: Option<Arc<tokio::sync::Semaphore>>,
    /// The records of the build's `--cache-from` caches.
    pub cache_imports: Option<Arc<crate::cache::remote::Imported>>,
}

/// A content digest for the cache key (if the op reads content beyond its inputs)
/// and what execution should reuse of the work that computed it.
pub type ContentKey<P> = (Option<Digest>, P);

/// A vertex's result together with its cache key.
#[derive(Debug)]
pub struct Resolved<O> {
    pub output: O,
    pub cache_key: Digest,
    pub cached: bool,
}

/// Runs ops. The solver owns scheduling, deduplication and the cache; a worker
/// only knows how to compute one vertex from its resolved inputs.
pub trait Worker: Send + Sync + 'static {
    type Output: Clone + Send + Sync + 'static;
    /// What computing the content key learned that execution must reuse, so both
    /// see the same content (e.g. the exact files a COPY selected and hashed).
    type Prepared: Send + 'static;

    /// Checks a vertex against what the build allows, before anything runs or any
    /// cache is consulted: a build must not even get a cached result of work it was
    /// not allowed to do.
    fn validate(&self, _vertex: &Vertex, _ctx: &BuildCtx) -> Result<(), OpError> {
        Ok(())
    }

    /// Digest of the content a vertex reads beyond its inputs' cache keys, e.g. the
    /// context files a COPY selects. `None` when the op and input keys say it all.
    fn content_key(
        &self,
        vertex: Arc<Vertex>,
        inputs: Vec<Arc<Resolved<Self::Output>>>,
        ctx: Arc<BuildCtx>,
    ) -> BoxFuture<'static, Result<ContentKey<Self::Prepared>, OpError>>;

    #[allow(clippy::too_many_arguments)]
    fn execute(
        &self,
        vertex: Arc<Vertex>,
        inputs: Vec<Arc<Resolved<Self::Output>>>,
        prepared: Self::Prepared,
        cache_key: Digest,
        ctx: Arc<BuildCtx>,
        log: LogSink,
    ) -> BoxFuture<'static, Result<Self::Output, OpError>>;

    /// Bytes to keep in the cache index for an output; `None` when the output must
    /// not be cached (a reference to a client directory, say).
    fn encode(&self, output: &Self::Output) -> Option<Vec<u8>>;

    /// The result an imported cache (`--cache-from`) records under `key`, if
    /// any; its content may be fetched later.
    fn import(&self, _key: &Digest, _ctx: &BuildCtx) -> Option<Self::Output> {
        None
    }

    /// The output a cache record names, or `None` when its content is gone.
    fn decode(&self, record: &[u8]) -> Option<Self::Output>;
}
