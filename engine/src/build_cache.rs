//! A build's `--cache-from` and `--cache-to`, each a progress step as BuildKit
//! shows them ("importing cache manifest from …", "exporting cache to …").

use std::collections::BTreeSet;
use std::sync::Arc;

use buildd_proto::Digest;
use buildd_registry::Client;
use buildd_snapshot::Snapshot;

use crate::build::{BuildError, ExportStep};
use crate::cache::remote::{
    CacheExport, CacheImport, CacheLocation, CacheMountBlob, Imported, RemoteStore, ResultRef,
    cache_mount_blob, export_cache, inline_cache, open_store,
};
use crate::engine::Engine;
use crate::solver::ProgressSender;

/// Loads the records of every import. A cache that is missing, unreachable or
/// not a buildd cache is a warning: the build runs without it.
pub(crate) async fn import_caches(
    _engine: &Engine,
    imports: &[CacheImport],
    registry: Option<&Arc<Client>>,
    progress: Option<&ProgressSender>,
) -> Result<Option<Arc<Imported>>, BuildError> {
    if imports.is_empty() {
        return Ok(None);
    }
    let mut stores: Vec<Arc<dyn RemoteStore>> = Vec::new();
    for import in imports {
        stores.push(open_store(&import.location, registry).map_err(BuildError::Cache)?);
    }
    let mut imported = Imported::default();
    for store in stores {
        let step = ExportStep::named(
            progress,
            format!("importing cache manifest from {}", store.describe()),
        );
        let one = Imported::load(vec![store.clone()], &mut |w| {
            tracing::warn!("cache import: {w}");
            step.log(&format!("WARNING: {w}"));
        })
        .await;
        step.log(&format!("{} records", one.len()));
        step.finish(Ok(None));
        imported.extend(one);
    }
    Ok(Some(Arc::new(imported)))
}

/// Writes every export. A failed one fails the build unless it says
/// `ignore-error=true`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn export_caches(
    engine: &Engine,
    exports: &[CacheExport],
    results: Vec<(Digest, ResultRef)>,
    result: &Snapshot,
    definition: &buildd_proto::llb::Definition,
    registry: Option<&Arc<Client>>,
    source_date_epoch: Option<i64>,
    progress: Option<&ProgressSender>,
) -> Result<(), BuildError> {
    let results: Vec<(Digest, Arc<ResultRef>)> =
        results.into_iter().map(|(k, r)| (k, Arc::new(r))).collect();
    // An inline cache went into the image config before the image was written.
    for export in exports
        .iter()
        .filter(|e| e.location != CacheLocation::Inline)
    {
        let store = open_store(&export.location, registry).map_err(BuildError::Cache)?;
        let step = ExportStep::named(progress, format!("exporting cache to {}", store.describe()));
        let started = std::time::Instant::now();
        let mounts = match export.cache_mounts {
            // Only an export that asks for them reads the graph's cache mounts.
            true => cache_mount_blobs(engine, &cache_mount_ids(definition), export, &step).await?,
            false => Vec::new(),
        };
        let written = export_cache(
            &engine.root,
            results
                .iter()
                .map(|(k, r)| (*k, r.as_ref().clone_ref()))
                .collect(),
            &ResultRef::Local(result.clone()),
            export,
            store.as_ref(),
            source_date_epoch,
            mounts,
        )
        .await;
        match written {
            Ok(stats) => {
                step.log(&format!(
                    "{} records, {} layers ({} bytes, {} already there) in {:.2}s",
                    stats.records,
                    stats.layers,
                    stats.layer_bytes,
                    stats.reused,
                    started.elapsed().as_secs_f64()
                ));
                step.finish(Ok(None));
            }
            Err(e) => {
                let err =
                    BuildError::Cache(format!("exporting cache to {}: {e}", store.describe()));
                if export.ignore_error {
                    tracing::warn!("{err}");
                    step.log(&format!("WARNING: {err}"));
                    step.finish(Ok(None));
                } else {
                    step.finish(Err(&err));
                    return Err(err);
                }
            }
        }
    }
    Ok(())
}

/// The inline cache (`--cache-to type=inline`) for the image config, as a
/// progress step; a failure fails the build (the image would silently lack it).
pub(crate) async fn inline_cache_step(
    engine: &Engine,
    results: &[(Digest, ResultRef)],
    result: &Snapshot,
    source_date_epoch: Option<i64>,
    progress: Option<&ProgressSender>,
) -> Result<serde_json::Value, BuildError> {
    let step = ExportStep::named(progress, "preparing inline cache".to_owned());
    let cache = inline_cache(
        &engine.root,
        results.iter().map(|(k, r)| (*k, r.clone_ref())).collect(),
        result,
        source_date_epoch,
    )
    .await
    .map_err(|e| BuildError::Cache(format!("inline cache: {e}")));
    let cache = match cache {
        Ok(c) => c,
        Err(e) => {
            step.finish(Err(&e));
            return Err(e);
        }
    };
    step.log(&format!("{} records", cache.records.len()));
    step.finish(Ok(None));
    serde_json::to_value(cache).map_err(|e| BuildError::Internal(e.to_string()))
}

/// The identities of the cache mounts a build's RUN steps use (the id, or the
/// target when it names none, with any owner options), for `cache-mounts=true`.
fn cache_mount_ids(definition: &buildd_proto::llb::Definition) -> BTreeSet<String> {
    use buildd_proto::llb::{MountType, Op, op};
    use prost::Message as _;
    let mut ids = BTreeSet::new();
    for bytes in &definition.def {
        let Ok(Op {
            op: Some(op::Op::Exec(exec)),
            ..
        }) = Op::decode(bytes.as_slice())
        else {
            continue;
        };
        for m in exec
            .mounts
            .iter()
            // A `from=` mount is a cache of its stage's content, whose key only
            // the run knows: not exported.
            .filter(|m| {
                m.mount_type() == MountType::Cache && m.input == buildd_proto::llb::NO_INPUT
            })
        {
            ids.insert(crate::ops::cache_mount_identity(m));
        }
    }
    ids
}

/// Each cache mount the build used, archived as a blob. One that is being
/// written meanwhile (a concurrent build's RUN) is left out, with a warning.
async fn cache_mount_blobs(
    engine: &Engine,
    ids: &BTreeSet<String>,
    export: &CacheExport,
    step: &ExportStep,
) -> Result<Vec<CacheMountBlob>, BuildError> {
    let mut blobs = Vec::new();
    for id in ids {
        let (root, id2, compression) = (engine.root.clone(), id.clone(), export.compression);
        let blob = tokio::task::spawn_blocking(move || cache_mount_blob(&root, &id2, compression))
            .await
            .map_err(|e| BuildError::Internal(format!("cache mount task: {e}")))?;
        match blob {
            Ok(Some(b)) => {
                step.log(&format!("cache mount {id:?}: {} bytes", b.desc.size));
                blobs.push(b);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!("cache mount {id:?} not exported: {e}");
                step.log(&format!("WARNING: cache mount {id:?} not exported: {e}"));
            }
        }
    }
    Ok(blobs)
}
