use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use buildd_fsutil::dockerignore::PatternMatcher;
use buildd_fsutil::select::Selection;
use buildd_proto::Digest;
use buildd_proto::llb::{NetMode, SecurityMode, op};
use buildd_snapshot::Snapshot;
use futures_util::future::{BoxFuture, FutureExt};

use crate::root::Root;
use crate::solver::{BuildCtx, LogSink, OpError, Resolved, Vertex, Worker};

/// Context selections by copy action index.
pub type Selections = BTreeMap<usize, Selection>;

/// What a vertex yields.
#[derive(Debug, Clone)]
pub enum Ref {
    /// A filesystem in the layer store.
    Snapshot(Snapshot),
    /// A client directory, read in place; consumers hash what they select from it.
    Local(Arc<LocalDir>),
    /// A result found in an imported cache, fetched only when a step that runs
    /// on it, or the build's result, needs its content ([`materialize_inputs`]).
    Remote(Arc<crate::cache::remote::RemoteResult>),
}

#[derive(Debug)]
pub struct LocalDir {
    pub root: PathBuf,
    pub excludes: Option<PatternMatcher>,
    /// Files are replaced by rename, never changed in place (see
    /// [`crate::solver::BuildCtx::immutable_locals`]).
    pub immutable: bool,
    /// Names the directory's content in this process (its path, version and
    /// exclude patterns), when it has a version (see
    /// [`crate::solver::BuildCtx::local_versions`]).
    pub content_id: Option<[u8; 32]>,
}

impl Ref {
    pub(crate) fn snapshot(&self, what: &str) -> Result<&Snapshot, OpError> {
        match self {
            Ref::Snapshot(s) => Ok(s),
            Ref::Remote(_) => Err(OpError::new(format!(
                "internal error: {what} was not fetched from the cache"
            ))),
            Ref::Local(_) => Err(OpError::new(format!(
                "{what} must be a filesystem, not a local directory"
            ))),
        }
    }
}

/// Runs ops against one root's stores.
#[derive(Clone)]
pub struct BuildWorker {
    pub(crate) root: Arc<Root>,
    exec: Arc<super::exec::ExecState>,
    /// Where images the local store does not hold come from; `None`: nowhere.
    registry: Option<Arc<buildd_registry::Client>>,
}

impl BuildWorker {
    pub fn new(
        root: Arc<Root>,
        registry: Option<Arc<buildd_registry::Client>>,
        runtime: super::RuntimeConfig,
    ) -> Self {
        Self {
            root,
            exec: Arc::new(super::exec::ExecState::new(runtime)),
            registry,
        }
    }

    /// The runtime, snapshotter and network RUN steps get.
    pub fn runtime_info(&self) -> super::RuntimeInfo {
        self.exec.info()
    }
}

/// Set when the job that started some blocking work is cancelled: the thread cannot
/// be stopped, but it can decline to commit what it made.
#[derive(Clone, Default)]
pub(crate) struct Cancelled(Arc<AtomicBool>);

impl Cancelled {
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

struct SetOnDrop(Cancelled);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.0.store(true, Ordering::SeqCst);
    }
}

/// Replaces imported results with snapshots here, fetching their layers.
pub(crate) async fn materialize_inputs(
    root: &Arc<Root>,
    inputs: Vec<Arc<Resolved<Ref>>>,
) -> Result<Vec<Arc<Resolved<Ref>>>, OpError> {
    let mut out = Vec::with_capacity(inputs.len());
    for r in inputs {
        match &r.output {
            Ref::Remote(remote) => out.push(Arc::new(Resolved {
                output: Ref::Snapshot(remote.materialize(root).await?),
                cache_key: r.cache_key,
                cached: r.cached,
            })),
            _ => out.push(r),
        }
    }
    Ok(out)
}

/// [`blocking`] for work that cannot be cancelled halfway.
pub(crate) async fn blocking_op<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OpError> + Send + 'static,
) -> Result<T, OpError> {
    blocking(move |_| f()).await
}

/// Runs blocking filesystem work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce(Cancelled) -> Result<T, OpError> + Send + 'static,
) -> Result<T, OpError> {
    let cancelled = Cancelled::default();
    // Dropped with this future: if that happens before the work ends, the work was
    // cancelled; after, setting the flag changes nothing.
    let _guard = SetOnDrop(cancelled.clone());
    tokio::task::spawn_blocking(move || f(cancelled))
        .await
        .unwrap_or_else(|e| Err(OpError::new(format!("internal error: {e}"))))
}

/// What computing a content key learned that execution reuses.
#[derive(Default)]
pub struct Prepared {
    /// Per copy action (FileOp) or bind mount (ExecOp), by index: the context
    /// selection its cache key hashed.
    selections: Selections,
    /// An http source's body, fetched to key it.
    fetched: Option<super::http::Fetched>,
    /// The commit a git source's ref resolved to, its key.
    git: Option<super::git::Resolved>,
}

impl From<Selections> for Prepared {
    fn from(selections: Selections) -> Self {
        Self {
            selections,
            ..Self::default()
        }
    }
}

impl Worker for BuildWorker {
    type Output = Ref;
    type Prepared = Prepared;

    fn validate(&self, vertex: &Vertex, ctx: &BuildCtx) -> Result<(), OpError> {
        let Some(op::Op::Exec(e)) = &vertex.op.op else {
            return Ok(());
        };
        if e.network() == NetMode::Host && !ctx.allow_network_host {
            return Err(OpError::new(
                "RUN --network=host is not allowed: build with --allow network.host",
            ));
        }
        if e.security() == SecurityMode::Insecure && !ctx.allow_insecure {
            return Err(OpError::new(
                "RUN --security=insecure is not allowed: build with --allow security.insecure",
            ));
        }
        Ok(())
    }

    fn content_key(
        &self,
        vertex: Arc<Vertex>,
        inputs: Vec<Arc<Resolved<Ref>>>,
        ctx: Arc<BuildCtx>,
    ) -> BoxFuture<'static, Result<(Option<Digest>, Prepared), OpError>> {
        let root = self.root.clone();
        // An unpinned URL is keyed by what it serves now.
        if let Some(op::Op::Source(src)) = &vertex.op.op
            && super::http::is_http(src)
            && !super::http::pinned(src)
        {
            return async move {
                let Some(op::Op::Source(src)) = &vertex.op.op else {
                    unreachable!("checked above")
                };
                let fetched = super::http::fetch(&root, src, None).await?;
                Ok((
                    Some(fetched.digest),
                    Prepared {
                        fetched: Some(fetched),
                        ..Prepared::default()
                    },
                ))
            }
            .boxed();
        }
        // A git ref is keyed by the commit it names now.
        if let Some(op::Op::Source(src)) = &vertex.op.op
            && super::git::is_git(src)
        {
            return async move {
                let Some(op::Op::Source(src)) = &vertex.op.op else {
                    unreachable!("checked above")
                };
                let resolved = super::git::resolve(&root, src, &ctx).await?;
                Ok((
                    Some(resolved.key()),
                    Prepared {
                        git: Some(resolved),
                        ..Prepared::default()
                    },
                ))
            }
            .boxed();
        }
        // Only local directories are read beyond the inputs' keys: without one,
        // there is nothing to hash and no reason to leave this thread (a warm
        // chain pays a thread hop per step otherwise).
        if !inputs.iter().any(|i| matches!(i.output, Ref::Local(_))) {
            return futures_util::future::ready(Ok((None, Prepared::default()))).boxed();
        }
        async move {
            let (digest, selections) = match &vertex.op.op {
                Some(op::Op::File(_)) => {
                    blocking(move |_| super::content_key::file_op(&root, &vertex, &inputs)).await?
                }
                Some(op::Op::Exec(_)) => {
                    blocking(move |_| super::exec::content_key(&root, &vertex, &inputs)).await?
                }
                _ => (None, Selections::new()),
            };
            Ok((digest, selections.into()))
        }
        .boxed()
    }

    fn execute(
        &self,
        vertex: Arc<Vertex>,
        inputs: Vec<Arc<Resolved<Ref>>>,
        prepared: Prepared,
        cache_key: Digest,
        ctx: Arc<BuildCtx>,
        log: LogSink,
    ) -> BoxFuture<'static, Result<Ref, OpError>> {
        let Prepared {
            selections,
            fetched,
            git,
        } = prepared;
        let root = self.root.clone();
        let exec = self.exec.clone();
        let registry = ctx.registry.clone().or_else(|| self.registry.clone());
        async move {
            let inputs = materialize_inputs(&root, inputs).await?;
            match &vertex.op.op {
                Some(op::Op::Source(src)) if super::http::is_http(src) => {
                    let fetched = match fetched {
                        Some(f) => f,
                        None => super::http::fetch(&root, src, Some(&log)).await?,
                    };
                    super::http::snapshot(root, src, fetched).await
                }
                Some(op::Op::Source(src)) if super::git::is_git(src) => {
                    let resolved = match git {
                        Some(r) => r,
                        None => super::git::resolve(&root, src, &ctx).await?,
                    };
                    super::git::checkout(root, src, resolved, &ctx, &log).await
                }
                Some(op::Op::Source(src)) => match src.identifier.strip_prefix("docker-image://") {
                    Some(reference) => super::source::image(root, registry, reference, log).await,
                    None => super::source::resolve(src, &ctx),
                },
                Some(op::Op::File(_)) => {
                    blocking(move |cancelled| {
                        super::file::run(
                            &root,
                            &vertex,
                            &inputs,
                            &selections,
                            cache_key,
                            &cancelled,
                        )
                    })
                    .await
                }
                Some(op::Op::Merge(_)) => super::merge::merge(&inputs),
                Some(op::Op::Diff(d)) => super::merge::diff(d, &inputs),
                Some(op::Op::Exec(_)) => {
                    super::exec::run(
                        root,
                        &exec,
                        vertex.clone(),
                        inputs,
                        selections,
                        cache_key,
                        ctx,
                        log,
                    )
                    .await
                }
                None => Err(OpError::new("empty op")),
            }
        }
        .boxed()
    }

    fn encode(&self, output: &Ref) -> Option<Vec<u8>> {
        match output {
            Ref::Snapshot(s) => {
                let root = &self.root;
                crate::cache::snapshots::encode(root.index.as_ref(), &root.layers, s)
                    .inspect_err(|e| tracing::warn!("not caching a result: {e}"))
                    .ok()
            }
            Ref::Local(_) | Ref::Remote(_) => None,
        }
    }

    fn import(&self, key: &Digest, ctx: &BuildCtx) -> Option<Ref> {
        let remote = ctx.cache_imports.as_ref()?.get(key)?;
        Some(Ref::Remote(Arc::new(remote)))
    }

    fn decode(&self, record: &[u8]) -> Option<Ref> {
        let root = &self.root;
        crate::cache::snapshots::decode(root.index.as_ref(), &root.layers, record)
            .inspect_err(|e| tracing::warn!("reading a cached result: {e}"))
            .ok()
            .flatten()
            .map(Ref::Snapshot)
    }
}
