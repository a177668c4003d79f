//! Solving a raw LLB definition (a Solve without a frontend): the graph as
//! given, its local sources bound to their mirrors, the result exported with a
//! minimal image config for the host platform.

use std::collections::BTreeMap;
use std::sync::Arc;

use buildd_engine::build::{BuildError, Exports, export_result};
use buildd_engine::export::OutputSpec;
use buildd_engine::ops::Ref;
use buildd_engine::solver::{BuildCtx, Graph, ProgressSender, SolveRequest as EngineSolve};
use buildd_oci::{Descriptor, ImageConfig};
use buildd_proto::control::SolveRequest;

use crate::context_sync::SyncedMirror;
use crate::credentials::SessionCredentials;
use crate::daemon::Daemon;
use crate::secrets::SessionSecrets;
use crate::session::Session;
use crate::solve::SolveError;
use crate::ssh::SessionSsh;

#[allow(clippy::too_many_arguments)]
pub async fn solve_definition(
    daemon: &Daemon,
    session: &Arc<Session>,
    graph: Graph,
    mirrors: &BTreeMap<String, SyncedMirror>,
    req: &SolveRequest,
    outputs: &[OutputSpec],
    tags: &[String],
    progress: ProgressSender,
) -> Result<Vec<Descriptor>, SolveError> {
    let engine = &daemon.engine;
    // What the build borrows from its client comes over the caller's session, as
    // for Dockerfile builds: never the daemon's own credentials.
    let registry = engine.registry_with(Arc::new(SessionCredentials {
        session: session.clone(),
        handle: tokio::runtime::Handle::current(),
    }));
    let ctx = Arc::new(BuildCtx {
        locals: mirrors
            .iter()
            .map(|(name, m)| (name.clone(), m.dir.clone()))
            .collect(),
        // Mirrors replace files by rename and never change one a layer links.
        immutable_locals: daemon.link_mirrors,
        local_versions: mirrors
            .iter()
            .map(|(name, m)| (name.clone(), m.version))
            .collect(),
        no_cache: req.no_cache,
        allow_network_host: req.entitlements.iter().any(|e| e == "network.host"),
        allow_insecure: req.entitlements.iter().any(|e| e == "security.insecure"),
        secrets: Some(Arc::new(SessionSecrets {
            session: session.clone(),
        })),
        ssh: SessionSsh::for_session(session)
            .map(|s| Arc::new(s) as Arc<dyn buildd_engine::session::SshStore>),
        registry: registry.clone(),
        build_permits: Some(Arc::new(tokio::sync::Semaphore::new(
            daemon.limits.max_build_parallelism.max(1),
        ))),
        // Refused for definitions before this point (see `solve`).
        cache_imports: None,
    });
    let result = engine
        .solver
        .solve(EngineSolve {
            graph: Arc::new(graph),
            ctx,
            progress: Some(progress.clone()),
        })
        .await;
    daemon.durability.request();
    let snapshot = match &result.map_err(BuildError::from)?.output {
        Ref::Snapshot(s) => s.clone(),
        Ref::Local(_) | Ref::Remote(_) => return Err(BuildError::LocalResult.into()),
    };
    let platform = buildd_oci::host_platform();
    let image = ImageConfig {
        architecture: platform.architecture,
        os: platform.os,
        variant: platform.variant,
        ..Default::default()
    };
    let manifests = export_result(
        engine,
        &snapshot,
        &image,
        &Exports {
            tags,
            outputs,
            source_date_epoch: req.source_date_epoch,
            registry: registry.as_ref(),
        },
        Some(&progress),
    )
    .await?;
    daemon.durability.request();
    Ok(manifests)
}
