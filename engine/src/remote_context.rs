//! Remote build contexts: a git repository or an http(s) URL (an archive, or a
//! plain Dockerfile), fetched through the solver (so cached by commit or
//! content, as ADD's sources) into a layer that the build then reads as its
//! context, in place: layers never change, so COPY may link from it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use buildd_snapshot::Snapshot;

use crate::build::{BuildError, BuildRequest};
use crate::engine::Engine;
use crate::ops::Ref;
use crate::solver::{BuildCtx, Graph, ProgressSender, SolveError, SolveRequest};

/// A fetched context; the layer stays in use while this lives.
pub struct RemoteContext {
    pub dir: PathBuf,
    /// The Dockerfile when the URL served one, not a context.
    pub lone_dockerfile: Option<PathBuf>,
    _snapshot: Snapshot,
    /// The empty context a lone Dockerfile builds with.
    _empty: Option<tempfile::TempDir>,
}

pub async fn fetch(
    engine: &Engine,
    url: &str,
    req: &BuildRequest,
    registry: Option<Arc<buildd_registry::Client>>,
    progress: Option<ProgressSender>,
) -> Result<RemoteContext, BuildError> {
    let (def, git) = buildd_frontend::remote_context(url, &buildd_oci::host_platform())
        .ok_or_else(|| {
            BuildError::Context(format!(
                "{url} is neither a directory nor a git or http(s) URL"
            ))
        })?;
    let graph = Arc::new(Graph::load(&def).map_err(SolveError::from)?);
    let ctx = Arc::new(BuildCtx {
        locals: Default::default(),
        immutable_locals: true,
        local_versions: Default::default(),
        no_cache: req.no_cache,
        allow_network_host: false,
        allow_insecure: false,
        secrets: req.secrets.clone(),
        ssh: req.ssh.clone(),
        registry,
        build_permits: None,
        cache_imports: None,
    });
    let result = graph.result;
    let all = engine
        .solver
        .solve_all(SolveRequest {
            graph,
            ctx,
            progress,
        })
        .await?;
    let Ref::Snapshot(snapshot) = &all[result].output else {
        return Err(BuildError::Internal(
            "a remote context is not a snapshot".to_owned(),
        ));
    };
    // One layer on scratch: its directory is the whole filesystem.
    let layers: Vec<_> = snapshot.iter_top_down().collect();
    let [layer] = layers.as_slice() else {
        return Err(BuildError::Internal(format!(
            "a remote context of {} layers",
            layers.len()
        )));
    };
    let dir = engine.root.layers.diff_dir(layer);
    let lone_dockerfile = match git {
        true => None,
        false => lone_file(&dir).map_err(|source| BuildError::Read {
            path: dir.clone(),
            source,
        })?,
    };
    let (dir, empty) = match &lone_dockerfile {
        Some(_) => {
            let tmp = engine.root.path.join("tmp");
            let empty = std::fs::create_dir_all(&tmp)
                .and_then(|()| {
                    tempfile::Builder::new()
                        .prefix("solve-ctx-")
                        .tempdir_in(&tmp)
                })
                .map_err(|source| BuildError::Read {
                    path: tmp.clone(),
                    source,
                })?;
            (empty.path().to_owned(), Some(empty))
        }
        None => (dir, None),
    };
    Ok(RemoteContext {
        dir,
        lone_dockerfile,
        _snapshot: snapshot.clone(),
        _empty: empty,
    })
}

/// A URL that served a text file, not an archive, is the Dockerfile, as
/// `docker build URL` takes it: the context is then empty.
fn lone_file(dir: &Path) -> std::io::Result<Option<PathBuf>> {
    let mut entries = std::fs::read_dir(dir)?;
    match (entries.next().transpose()?, entries.next()) {
        (Some(only), None) if only.file_type()?.is_file() => Ok(Some(only.path())),
        _ => Ok(None),
    }
}

impl RemoteContext {
    /// The Dockerfile to read: `rel` (default `Dockerfile`) inside the context,
    /// its symlinks resolved within it, so a repository cannot name a host file.
    pub fn dockerfile(&self, rel: Option<&Path>) -> Result<PathBuf, BuildError> {
        if let Some(lone) = &self.lone_dockerfile {
            return Ok(lone.clone());
        }
        let rel = rel.map_or("Dockerfile".into(), |p| p.to_string_lossy());
        confined(&self.dir, &rel)
    }
}

/// `rel` inside `root`, symlinks resolved there.
pub fn confined(root: &Path, rel: &str) -> Result<PathBuf, BuildError> {
    let inside = buildd_fsutil::confine::resolve_in_root(root, rel, true)
        .map_err(|e| BuildError::Context(format!("{rel}: {e}")))?;
    Ok(root.join(inside))
}
