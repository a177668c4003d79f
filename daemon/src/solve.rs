//! A Solve: syncs what the build reads from the client, runs the build on the
//! engine, sends the outputs back.
//!
//! For `dockerfile.v0` the daemon fetches the Dockerfile and its .dockerignore,
//! compiles it to learn exactly which context paths the build can read (the local
//! source's follow paths, minus the .dockerignore excludes), syncs only those into
//! the client directory's mirror, and runs [`buildd_engine::build::build`] on it.
//! A raw definition is solved as is, each `local://` source synced with its own
//! patterns.

use buildd_engine::cache::remote::{CacheExport, CacheImport, CacheLocation};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use buildd_engine::build::{BuildError, BuildRequest, CONTEXT_NAME};
use buildd_engine::export::OutputSpec;
use buildd_engine::solver::{Graph, ProgressEvent};
use buildd_proto::Digest;
use buildd_proto::control::{
    ExporterResponse, SolveRequest, SolveResponse, TransferStats, Warning,
};
use buildd_proto::llb::{Definition, op};
use prost::Message;
use tokio::sync::mpsc;

use crate::context_sync::{self, Selection, SyncError, SyncedMirror};
use crate::credentials::SessionCredentials;
use crate::daemon::Daemon;
use crate::exporters::{self, ExporterError, Plan};
use crate::peer::Peer;
use crate::secrets::SessionSecrets;
use crate::session::{Session, SessionError};
use crate::ssh::SessionSsh;
use crate::status::{Publisher, StatusError, now_ns};

pub const DOCKERFILE_FRONTEND: &str = "dockerfile.v0";
/// The local holding the Dockerfile.
pub const DOCKERFILE_NAME: &str = "dockerfile";
/// Largest Dockerfile or .dockerignore accepted.
const MAX_DOCKERFILE: u64 = 4 << 20;
const ENTITLEMENTS: [&str; 2] = ["network.host", "security.insecure"];

#[derive(Debug, thiserror::Error)]
pub enum SolveError {
    #[error("unknown frontend {0:?} (known: dockerfile.v0)")]
    UnknownFrontend(String),
    #[error("malformed definition: {0}")]
    Definition(String),
    #[error("{0}")]
    Invalid(String),
    #[error(
        "entitlement {0} is not allowed by this daemon: its operator must start buildd with --allow-insecure-entitlement {0}"
    )]
    EntitlementDenied(String),
    #[error("cache import and export are not supported for LLB definitions yet")]
    CacheUnsupported,
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Exporter(#[from] ExporterError),
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("build cancelled: {0}")]
    Cancelled(&'static str),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// Runs one Solve to its end. Dropping the future cancels the build's share of the
/// work (jobs other builds also wait for go on).
pub async fn solve(
    daemon: &Daemon,
    req: SolveRequest,
    caller: &Peer,
) -> Result<SolveResponse, SolveError> {
    if req.frontend.is_empty() && (!req.cache_imports.is_empty() || !req.cache_exports.is_empty()) {
        return Err(SolveError::CacheUnsupported);
    }
    if let Some(bad) = req
        .entitlements
        .iter()
        .find(|e| !ENTITLEMENTS.contains(&e.as_str()))
    {
        return Err(SolveError::Invalid(format!(
            "unknown entitlement {bad:?} (known: network.host, security.insecure)"
        )));
    }
    // The daemon's operator consents, not the client: asking is not enough.
    if let Some(denied) = req
        .entitlements
        .iter()
        .find(|e| !daemon.policy.entitlements.contains(e.as_str()))
    {
        return Err(SolveError::EntitlementDenied(denied.clone()));
    }
    match req.frontend.as_str() {
        DOCKERFILE_FRONTEND => {}
        "" => {
            let def = Definition::decode(req.definition.as_slice())
                .map_err(|e| SolveError::Definition(e.to_string()))?;
            let cap = daemon.limits.max_graph_vertices;
            if def.def.len() > cap {
                return Err(SolveError::Definition(format!(
                    "the definition has {} ops, over the cap of {cap} (--max-graph-vertices)",
                    def.def.len()
                )));
            }
            Graph::load(&def).map_err(|e| SolveError::Definition(e.to_string()))?;
        }
        other => return Err(SolveError::UnknownFrontend(other.to_owned())),
    }
    let session = daemon.sessions.get(&req.session_id, caller)?;
    let scratch_parent = daemon.root.join("tmp");
    std::fs::create_dir_all(&scratch_parent).map_err(|source| SolveError::Io {
        what: scratch_parent.display().to_string(),
        source,
    })?;
    let scratch = exporters::Scratch::new(&scratch_parent).map_err(|source| SolveError::Io {
        what: scratch_parent.display().to_string(),
        source,
    })?;
    let plans = exporters::plan(&req.exporters, scratch.path())?;
    let publisher = Mutex::new(daemon.status.publish(&req.r#ref, caller)?);

    let _permit = daemon.builds.acquire().await.expect("never closed");
    let _storage = daemon.storage.read().await;
    daemon.running.fetch_add(1, Ordering::Relaxed);
    let _running = RunningGuard(daemon);

    let mut shutdown = daemon.shutdown.clone();
    let work = run(daemon, &session, &req, &plans, scratch.path(), &publisher);
    let result = tokio::select! {
        r = work => r,
        _ = session.closed() => Err(SolveError::Cancelled("the client's session closed")),
        _ = shutdown.wait_for(|s| *s) => Err(SolveError::Cancelled("the daemon is shutting down")),
    };
    scratch.remove().await;
    result
}

struct RunningGuard<'a>(&'a Daemon);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn run(
    daemon: &Daemon,
    session: &Arc<Session>,
    req: &SolveRequest,
    plans: &[Plan],
    scratch: &Path,
    publisher: &Mutex<Publisher>,
) -> Result<SolveResponse, SolveError> {
    let mut transfer = TransferStats::default();
    let mut tags = req.tags.clone();
    let mut outputs = Vec::new();
    for plan in plans {
        match plan {
            Plan::Stream { spec, .. } | Plan::Live { spec, .. } => outputs.push(spec.clone()),
            Plan::Image { names, push: false } => tags.extend(names.iter().cloned()),
            Plan::Image { names, push: true } => {
                outputs.extend(names.iter().map(|name| OutputSpec::Image {
                    name: name.clone(),
                    push: true,
                    compression: Default::default(),
                }))
            }
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let (manifests, warnings, live, _mirrors) = if req.frontend.is_empty() {
        let def = Definition::decode(req.definition.as_slice())
            .map_err(|e| SolveError::Definition(e.to_string()))?;
        let graph = Graph::load(&def).map_err(|e| SolveError::Definition(e.to_string()))?;
        let mut mirrors = BTreeMap::new();
        for (name, sel) in local_sources(&graph) {
            let m = sync_local(daemon, session, req, &sel, publisher, &mut transfer).await?;
            mirrors.insert(name, m);
        }
        let build = crate::definition::solve_definition(
            daemon, session, graph, &mirrors, req, &outputs, &tags, tx,
        );
        let (manifests, live) = forward(build, rx, publisher, session, plans).await?;
        (manifests, Vec::new(), live, mirrors.into_values().collect())
    } else {
        let (build_req, mirror, file) = prepare_dockerfile(
            daemon,
            session,
            req,
            scratch,
            outputs,
            tags,
            publisher,
            &mut transfer,
        )
        .await?;
        let build = buildd_engine::build::build(&daemon.engine, &build_req, Some(tx));
        let (outcome, live) = forward(
            async {
                let built = build.await;
                // Whatever happened, what was recorded becomes durable, later.
                daemon.durability.request();
                built.map_err(SolveError::from)
            },
            rx,
            publisher,
            session,
            plans,
        )
        .await?;
        let warnings: Vec<Warning> = outcome
            .warnings
            .iter()
            .map(|w| Warning {
                rule: w.rule.clone(),
                message: w.message.clone(),
                line: w.line,
                file: file.clone(),
                ..Default::default()
            })
            .collect();
        publisher.lock().unwrap().warnings(warnings.clone());
        (
            outcome.manifests,
            warnings,
            live,
            mirror.into_iter().collect::<Vec<_>>(),
        )
    };

    let mut responses = Vec::new();
    let mut oci = manifests.iter();
    let mut live = live.into_iter();
    for plan in plans {
        let mut values = BTreeMap::new();
        match plan {
            Plan::Stream {
                index,
                spec,
                path,
                directory,
            } => {
                if matches!(spec, OutputSpec::Oci { .. })
                    && let Some(m) = oci.next()
                {
                    image_values(&daemon.engine, m, &mut values);
                }
                exporters::send(session, *index, path, *directory).await?;
                // The client has it: the daemon's copy goes now, not with the build.
                exporters::discard(path.clone(), *directory).await;
            }
            Plan::Live { index, spec, .. } => {
                if matches!(spec, OutputSpec::OciStream { .. })
                    && let Some(m) = oci.next()
                {
                    image_values(&daemon.engine, m, &mut values);
                }
                // The bytes went while the build ran; now the output ends.
                match live.next() {
                    Some(f) if f.index() == *index => f.finish().await?,
                    _ => {
                        return Err(ExporterError::Invalid {
                            index: *index,
                            message: "its stream was not forwarded".to_owned(),
                        }
                        .into());
                    }
                }
            }
            Plan::Image { names, push } => {
                values.insert("image.name".to_owned(), names.join(","));
                if *push {
                    // One manifest per pushed name, all the same image.
                    for _ in names {
                        if let Some(m) = oci.next() {
                            image_values(&daemon.engine, m, &mut values);
                        }
                    }
                }
            }
        }
        responses.push(ExporterResponse { values });
    }
    Ok(SolveResponse {
        exporters: responses,
        transfer: Some(transfer),
        warnings,
    })
}

/// Runs `build` while passing its progress events to the publisher and the live
/// outputs' bytes to the client as the build exports them.
async fn forward<'s, T>(
    build: impl std::future::Future<Output = Result<T, SolveError>>,
    mut rx: mpsc::UnboundedReceiver<ProgressEvent>,
    publisher: &Mutex<Publisher>,
    session: &'s Session,
    plans: &[Plan],
) -> Result<(T, Vec<exporters::Forwarded<'s>>), SolveError> {
    let live = exporters::forward_live(session, plans);
    tokio::pin!(build);
    tokio::pin!(live);
    let mut streamed = None;
    loop {
        tokio::select! {
            biased;
            Some(ev) = rx.recv() => publisher.lock().unwrap().event(ev),
            s = &mut live, if streamed.is_none() => streamed = Some(s),
            r = &mut build => {
                // Jobs shared with other builds may keep the sender alive: take
                // what is there and stop.
                while let Ok(ev) = rx.try_recv() {
                    publisher.lock().unwrap().event(ev);
                }
                let r = r?;
                // Every live output is exported by now; a writer the engine did
                // not take goes too, so forwarding ends.
                for plan in plans {
                    if let Plan::Live { spec: OutputSpec::OciStream { sink, .. }, .. } = plan {
                        drop(sink.take());
                    }
                }
                let streamed = match streamed {
                    Some(s) => s,
                    None => live.await,
                };
                return Ok((r, streamed?));
            }
        }
    }
}

/// The `local://` sources of a graph and what each selects.
fn local_sources(graph: &Graph) -> BTreeMap<String, Selection> {
    let mut out = BTreeMap::new();
    for v in &graph.vertices {
        if let Some(op::Op::Source(src)) = &v.op.op
            && let Some(name) = src.identifier.strip_prefix("local://")
        {
            out.insert(
                name.to_owned(),
                Selection {
                    name: name.to_owned(),
                    include_patterns: src.include_patterns.clone(),
                    exclude_patterns: src.exclude_patterns.clone(),
                    follow_paths: src.follow_paths.clone(),
                },
            );
        }
    }
    out
}

/// Syncs local `sel.name` into its mirror, shown as a "transferring" vertex.
async fn sync_local(
    daemon: &Daemon,
    session: &Session,
    req: &SolveRequest,
    sel: &Selection,
    publisher: &Mutex<Publisher>,
    transfer: &mut TransferStats,
) -> Result<SyncedMirror, SolveError> {
    let key = req.local_keys.get(&sel.name).ok_or_else(|| {
        SolveError::Invalid(format!("no local key for local source {:?}", sel.name))
    })?;
    let dir = context_sync::mirror_dir(&daemon.root, key);
    let vertex = Digest::of(format!("transfer\0{}\0{}", req.r#ref, sel.name).as_bytes());
    let name = format!("[internal] transferring {}", sel.name);
    let started = now_ns();
    publisher.lock().unwrap().event(ProgressEvent::Started {
        vertex,
        name: name.clone(),
        at: SystemTime::now(),
    });
    let counter = |done: u64, total: u64| {
        publisher
            .lock()
            .unwrap()
            .counter(&vertex, &name, done, total, started, false);
    };
    let (limits, received) = (&daemon.limits.context, transfer.bytes_sent);
    let result = context_sync::sync(
        session,
        &daemon.mirrors,
        &daemon.durability,
        &dir,
        sel,
        limits,
        received,
        &counter,
    )
    .await;
    let event = match &result {
        Ok((_, stats)) => {
            publisher.lock().unwrap().counter(
                &vertex,
                &name,
                stats.bytes_sent,
                stats.bytes_sent,
                started,
                true,
            );
            ProgressEvent::Completed {
                vertex,
                name,
                duration: Default::default(),
            }
        }
        Err(e) => ProgressEvent::Failed {
            vertex,
            name,
            duration: Default::default(),
            error: e.to_string(),
        },
    };
    publisher.lock().unwrap().event(event);
    let (mirror, stats) = result?;
    transfer.entries_listed += stats.entries_listed;
    transfer.files_sent += stats.files_sent;
    transfer.bytes_sent += stats.bytes_sent;
    Ok(mirror)
}

/// Fetches the Dockerfile and .dockerignore, compiles once to learn what the build
/// reads from the context, syncs that, and returns the engine's request.
#[allow(clippy::too_many_arguments)]
async fn prepare_dockerfile(
    daemon: &Daemon,
    session: &Arc<Session>,
    req: &SolveRequest,
    scratch: &Path,
    outputs: Vec<OutputSpec>,
    tags: Vec<String>,
    publisher: &Mutex<Publisher>,
    transfer: &mut TransferStats,
) -> Result<(BuildRequest, Option<SyncedMirror>, String), SolveError> {
    let attrs = &req.frontend_attrs;
    let filename = attrs
        .get("filename")
        .filter(|f| !f.is_empty())
        .map_or("Dockerfile", String::as_str);
    crate::paths::validate(filename).map_err(|e| SolveError::Invalid(format!("filename: {e}")))?;
    if let Some(p) = attrs.get("platform").filter(|p| !p.is_empty()) {
        let host = buildd_oci::host_platform();
        let host = format!("{}/{}", host.os, host.architecture);
        if *p != host {
            return Err(SolveError::Invalid(format!(
                "platform {p:?} is not supported (this daemon builds for {host})"
            )));
        }
    }
    if let Some(url) = attrs.get("context").filter(|c| !c.is_empty()) {
        let build_req = remote_context_request(
            daemon,
            session,
            req,
            scratch,
            url,
            filename,
            (outputs, tags),
        )?;
        return Ok((build_req, None, filename.to_owned()));
    }
    let ignore_name = format!("{filename}.dockerignore");
    let files = context_sync::fetch_small(
        session,
        &Selection {
            name: DOCKERFILE_NAME.to_owned(),
            include_patterns: vec![filename.to_owned(), ignore_name.clone()],
            ..Default::default()
        },
        MAX_DOCKERFILE,
    )
    .await?;
    let dockerfile = files.get(filename).ok_or_else(|| {
        SolveError::Invalid(format!("the client's dockerfile local has no {filename:?}"))
    })?;
    let dockerignore = match files.get(&ignore_name) {
        Some(text) => text.clone(),
        None => context_sync::fetch_small(
            session,
            &Selection {
                name: CONTEXT_NAME.to_owned(),
                include_patterns: vec![".dockerignore".to_owned()],
                ..Default::default()
            },
            MAX_DOCKERFILE,
        )
        .await?
        .remove(".dockerignore")
        .unwrap_or_default(),
    };
    let text = String::from_utf8(dockerfile.clone())
        .map_err(|_| SolveError::Invalid(format!("{filename} is not UTF-8")))?;
    let ignore_text = String::from_utf8_lossy(&dockerignore).into_owned();
    let base = filename.rsplit('/').next().unwrap_or(filename).to_owned();

    let common = common_request(daemon, session, req)?;
    // One resolver for both compiles, so they agree on every base image's digest.
    let resolver = Arc::new(buildd_engine::resolver::BuildResolver::new(
        daemon.engine.root.images.clone(),
        common.registry.clone(),
        tokio::runtime::Handle::current(),
    ));
    let opts = buildd_frontend::BuildOptions {
        dockerfile_name: base.clone(),
        target: common.target.clone(),
        build_args: common.build_args.clone(),
        context_name: CONTEXT_NAME.to_owned(),
        dockerignore: buildd_fsutil::dockerignore::parse(&ignore_text),
        platform: buildd_oci::host_platform(),
        resolver: Some(resolver.clone()),
    };
    // Off the async threads: resolving a base image may wait for a registry.
    let source = text.clone();
    let compiled = tokio::task::spawn_blocking(move || buildd_frontend::compile(&source, &opts))
        .await
        .map_err(|e| BuildError::Internal(format!("frontend task: {e}")))?
        .map_err(BuildError::from)?;
    let graph = match compiled.definition.result {
        Some(_) => Some(
            Graph::load(&compiled.definition).map_err(|e| SolveError::Definition(e.to_string()))?,
        ),
        None => None,
    };
    let locals = graph.as_ref().map(local_sources).unwrap_or_default();
    if let Some(other) = locals.keys().find(|n| *n != CONTEXT_NAME) {
        return Err(SolveError::Invalid(format!(
            "the Dockerfile reads local source {other:?}; only {CONTEXT_NAME:?} is served"
        )));
    }
    let mirror = match locals.get(CONTEXT_NAME) {
        Some(sel) => Some(sync_local(daemon, session, req, sel, publisher, transfer).await?),
        None => None,
    };
    // The engine reads the Dockerfile and the .dockerignore next to it (which wins
    // over the context's) from a scratch directory, never from the mirror.
    let staged = scratch.join("dockerfile");
    let empty_context = scratch.join("empty-context");
    for dir in [&staged, &empty_context] {
        std::fs::create_dir_all(dir).map_err(|source| SolveError::Io {
            what: dir.display().to_string(),
            source,
        })?;
    }
    let dockerfile_path = staged.join(&base);
    for (path, bytes) in [
        (dockerfile_path.clone(), text.as_bytes()),
        (
            staged.join(format!("{base}.dockerignore")),
            ignore_text.as_bytes(),
        ),
    ] {
        std::fs::write(&path, bytes).map_err(|source| SolveError::Io {
            what: path.display().to_string(),
            source,
        })?;
    }
    let context: PathBuf = mirror.as_ref().map_or(empty_context, |m| m.dir.clone());
    let build_req = BuildRequest {
        context,
        dockerfile: Some(dockerfile_path),
        outputs,
        tags,
        resolver: Some(resolver),
        // A mirror, or the empty context.
        immutable_context: daemon.link_mirrors,
        context_version: mirror.as_ref().map(|m| m.version),
        ..common
    };
    Ok((build_req, mirror, filename.to_owned()))
}

/// What every Dockerfile build of this daemon asks of the engine, from the
/// request and the session: the rest depends on where the context comes from.
fn common_request(
    daemon: &Daemon,
    session: &Arc<Session>,
    req: &SolveRequest,
) -> Result<BuildRequest, SolveError> {
    let (cache_from, cache_to) = cache_options(req)?;
    let attrs = &req.frontend_attrs;
    Ok(BuildRequest {
        target: attrs.get("target").filter(|t| !t.is_empty()).cloned(),
        build_args: attrs
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("build-arg:")?.to_owned(), v.clone())))
            .collect(),
        no_cache: req.no_cache,
        source_date_epoch: req.source_date_epoch,
        allow: req.entitlements.clone(),
        secrets: Some(Arc::new(SessionSecrets {
            session: session.clone(),
        })),
        ssh: SessionSsh::for_session(session)
            .map(|s| Arc::new(s) as Arc<dyn buildd_engine::session::SshStore>),
        // Registry access with the client's credentials, asked over its session.
        registry: daemon.engine.registry_with(Arc::new(SessionCredentials {
            session: session.clone(),
            handle: tokio::runtime::Handle::current(),
        })),
        max_parallelism: Some(daemon.limits.max_build_parallelism),
        defer_flush: true,
        cache_from,
        cache_to,
        ..BuildRequest::default()
    })
}

/// A build whose context is a git or http(s) URL (`context` frontend attr, as
/// buildx sends it): the engine fetches it and reads `filename` from it; the
/// client's session serves no files, only secrets, agents and credentials.
fn remote_context_request(
    daemon: &Daemon,
    session: &Arc<Session>,
    req: &SolveRequest,
    scratch: &Path,
    url: &str,
    filename: &str,
    (outputs, tags): (Vec<OutputSpec>, Vec<String>),
) -> Result<BuildRequest, SolveError> {
    let empty = scratch.join("empty-context");
    std::fs::create_dir_all(&empty).map_err(|source| SolveError::Io {
        what: empty.display().to_string(),
        source,
    })?;
    Ok(BuildRequest {
        context: empty,
        context_url: Some(url.to_owned()),
        dockerfile: Some(PathBuf::from(filename)),
        outputs,
        tags,
        ..common_request(daemon, session, req)?
    })
}

/// The request's caches. A `type=local` directory is the client's, which this
/// daemon does not write or read for it: only registries (and inline) are taken.
fn cache_options(req: &SolveRequest) -> Result<(Vec<CacheImport>, Vec<CacheExport>), SolveError> {
    let local = |spec: &str| {
        SolveError::Invalid(format!(
            "cache {spec}: type=local is for the one-shot `buildd build`; a daemon takes type=registry"
        ))
    };
    let invalid =
        |e: buildd_engine::cache::remote::CacheSpecError| SolveError::Invalid(e.to_string());
    let mut from = Vec::new();
    for c in &req.cache_imports {
        let import = CacheImport::from_attrs(&c.r#type, c.attrs.clone().into_iter().collect())
            .map_err(invalid)?;
        if let CacheLocation::Local(_) = import.location {
            return Err(local("import"));
        }
        from.push(import);
    }
    let mut to = Vec::new();
    for c in &req.cache_exports {
        let export = CacheExport::from_attrs(&c.r#type, c.attrs.clone().into_iter().collect())
            .map_err(invalid)?;
        if let CacheLocation::Local(_) = export.location {
            return Err(local("export"));
        }
        to.push(export);
    }
    Ok((from, to))
}

/// What buildx's metadata file records of an exported image.
fn image_values(
    engine: &buildd_engine::Engine,
    manifest: &buildd_oci::Descriptor,
    values: &mut BTreeMap<String, String>,
) {
    values.extend(buildd_engine::export::image_metadata(
        &engine.root,
        manifest,
    ));
}
