//! An opened engine: a root and the solver over it. One per process.

use std::path::Path;
use std::sync::Arc;

use buildd_registry::{Client, CredentialSource};

use crate::ops::{BuildWorker, RuntimeConfig};
use crate::root::{Root, RootError};
use crate::solver::{Solver, SolverConfig};

/// Everything an engine is opened with besides its root.
#[derive(Default)]
pub struct EngineOptions {
    pub solver: SolverConfig,
    /// Where base images the local store lacks are pulled from; `None`: nowhere.
    pub registry: Option<Arc<Client>>,
    /// The OCI runtime and snapshotter RUN steps use.
    pub runtime: RuntimeConfig,
}

pub struct Engine {
    pub root: Arc<Root>,
    pub solver: Solver<BuildWorker>,
    /// Where base images the local store lacks are pulled from, and pushes go.
    pub registry: Option<Arc<Client>>,
}

impl Engine {
    /// An engine without registry access: images come from the local store only.
    pub fn open(root: &Path, config: SolverConfig) -> Result<Self, RootError> {
        Self::open_with_registry(root, config, None)
    }

    pub fn open_with_registry(
        root: &Path,
        config: SolverConfig,
        registry: Option<Arc<Client>>,
    ) -> Result<Self, RootError> {
        Self::open_with(
            root,
            EngineOptions {
                solver: config,
                registry,
                runtime: RuntimeConfig::default(),
            },
        )
    }

    pub fn open_with(root: &Path, opts: EngineOptions) -> Result<Self, RootError> {
        let EngineOptions {
            solver: config,
            registry,
            runtime,
        } = opts;
        let root = Arc::new(Root::open_with_runtime(root, runtime.runtime.as_deref())?);
        let worker = BuildWorker::new(root.clone(), registry.clone(), runtime);
        let solver = Solver::new(worker, root.index.clone(), config);
        Ok(Self {
            root,
            solver,
            registry,
        })
    }

    /// A registry client with the engine's settings and other credentials (those
    /// of a daemon's client, say); `None` when the engine has no registry access.
    pub fn registry_with(&self, creds: Arc<dyn CredentialSource>) -> Option<Arc<Client>> {
        self.registry
            .as_ref()
            .map(|base| Arc::new(base.with_credentials(creds)))
    }

    /// The runtime, snapshotter and network RUN steps get, and what the host lacks.
    pub fn runtime_info(&self) -> crate::ops::RuntimeInfo {
        self.solver.worker().runtime_info()
    }

    /// Makes the build's layers and then the cache index durable; called at the end
    /// of every build.
    pub fn flush(&self) -> Result<(), RootError> {
        self.root.flush()
    }

    /// [`Engine::flush`] on a blocking thread, for async callers: it syncs the
    /// layer store's filesystem and the index, which may take seconds and would
    /// stall every task of an async thread.
    pub async fn flush_async(&self) -> Result<(), RootError> {
        let root = self.root.clone();
        match tokio::task::spawn_blocking(move || root.flush()).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down and refused the task: flush here.
            Err(_) => self.root.flush(),
        }
    }
}
