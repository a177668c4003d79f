//! Solving a raw LLB definition (a Solve without a frontend): the graph as
//! given, its local sources bound to their mirrors, the result exported with a
//! minimal image config for the host platform.

use std::collections::BTreeMap;
use std::sync::Arc;

use buildd_engine::build::BuildError;
use buildd_engine::export::{OciExport, OutputSpec, export_local, export_oci};
use buildd_engine::images::{ImageRecord, normalize_name, now_rfc3339};
use buildd_engine::ops::Ref;
use buildd_engine::solver::{BuildCtx, Graph, ProgressSender, SolveRequest as EngineSolve};
use buildd_oci::{Descriptor, ImageConfig};
use buildd_proto::control::SolveRequest;

use crate::context_sync::SyncedMirror;
use crate::daemon::Daemon;
use crate::solve::SolveError;

pub async fn solve_definition(
    daemon: &Daemon,
    graph: Graph,
    mirrors: &BTreeMap<String, SyncedMirror>,
    req: &SolveRequest,
    outputs: &[OutputSpec],
    tags: &[String],
    progress: ProgressSender,
) -> Result<Vec<Descriptor>, SolveError> {
    let engine = &daemon.engine;
    let ctx = Arc::new(BuildCtx {
        locals: mirrors
            .iter()
            .map(|(name, m)| (name.clone(), m.dir.clone()))
            .collect(),
        no_cache: req.no_cache,
        allow_network_host: req.entitlements.iter().any(|e| e == "network.host"),
        allow_insecure: req.entitlements.iter().any(|e| e == "security.insecure"),
        secrets: None,
        ssh: None,
        registry: None,
        build_permits: Some(Arc::new(tokio::sync::Semaphore::new(
            daemon.limits.max_build_parallelism.max(1),
        ))),
    });
    let result = engine
        .solver
        .solve(EngineSolve {
            graph: Arc::new(graph),
            ctx,
            progress: Some(progress),
        })
        .await;
    engine.flush().map_err(BuildError::from)?;
    let snapshot = match &result.map_err(BuildError::from)?.output {
        Ref::Snapshot(s) => s.clone(),
        Ref::Local(_) => return Err(BuildError::LocalResult.into()),
    };
    let platform = buildd_oci::host_platform();
    let image = ImageConfig {
        architecture: platform.architecture,
        os: platform.os,
        variant: platform.variant,
        ..Default::default()
    };
    let names = tags
        .iter()
        .map(|t| normalize_name(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(BuildError::from)?;
    for name in names {
        engine
            .root
            .images
            .put(&ImageRecord {
                name,
                layers: snapshot.layers.iter().map(|l| l.to_string()).collect(),
                config: image.clone(),
                created: now_rfc3339(),
            })
            .map_err(BuildError::from)?;
    }
    let mut manifests = Vec::new();
    for spec in outputs {
        let (root, snap, image, spec) = (
            engine.root.clone(),
            snapshot.clone(),
            image.clone(),
            spec.clone(),
        );
        let epoch = req.source_date_epoch;
        let done = tokio::task::spawn_blocking(move || match &spec {
            OutputSpec::Oci {
                dest,
                tar,
                name,
                compression,
            } => export_oci(
                &root,
                &snap,
                &image,
                &OciExport {
                    dest,
                    tar: *tar,
                    name: name.as_deref(),
                    compression: *compression,
                    source_date_epoch: epoch,
                },
            )
            .map(Some),
            OutputSpec::Local { dest } => export_local(&root.layers, &snap, dest).map(|()| None),
            // The daemon names images through `tags`, never as an engine output.
            OutputSpec::Image { .. } => Ok(None),
        })
        .await
        .map_err(|e| BuildError::Internal(format!("export task: {e}")))?;
        manifests.extend(done.map_err(BuildError::from)?);
    }
    engine.flush().map_err(BuildError::from)?;
    Ok(manifests)
}
