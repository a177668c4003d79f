//! A whole build: Dockerfile → frontend → solver → exporters. The one-shot `buildd
//! build` and (later) the daemon's Solve both go through [`build`].

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use buildd_frontend::BuildOptions;
use buildd_oci::{Descriptor, ImageConfig};
use buildd_registry::Client;
use buildd_snapshot::Snapshot;

use crate::build_cache::{export_caches, import_caches, inline_cache_step};
use crate::cache::remote::{CacheExport, CacheImport, CacheLocation, Imported, ResultRef};
use crate::engine::Engine;
use crate::export::{
    ArchiveFormat, ExportError, OciExport, OutputSpec, build_image, export_local, export_oci,
    export_oci_stream, export_tar, push_image, record_blob_sources,
};
use crate::images::{ImageRecord, normalize_name, now_rfc3339};
use crate::ops::Ref;
use crate::resolver::BuildResolver;
use crate::session::{SecretStore, SshStore};
use crate::solver::{BuildCtx, Graph, ProgressEvent, ProgressSender, SolveError, SolveRequest};

/// The name of the build context as a local source.
pub const CONTEXT_NAME: &str = "context";

#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    pub context: PathBuf,
    /// A remote context (a git or http(s) URL), fetched and used instead of
    /// `context`; `dockerfile` is then a path inside it.
    pub context_url: Option<String>,
    /// The Dockerfile; `<context>/Dockerfile` when not given.
    pub dockerfile: Option<PathBuf>,
    pub target: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub outputs: Vec<OutputSpec>,
    pub no_cache: bool,
    /// Pins every timestamp in exported images (SOURCE_DATE_EPOCH).
    pub source_date_epoch: Option<i64>,
    /// Names to store the result under in the local image store.
    pub tags: Vec<String>,
    /// Entitlements (`--allow`): `network.host` and `security.insecure`.
    pub allow: Vec<String>,
    /// Secrets for `RUN --mount=type=secret`; never part of a cache key.
    pub secrets: Option<Arc<dyn SecretStore>>,
    /// SSH agents for `RUN --mount=type=ssh`.
    pub ssh: Option<Arc<dyn SshStore>>,
    /// The registry client for this build, e.g. one with the credentials of a
    /// daemon's client ([`Engine::registry_with`]); `None` uses the engine's.
    pub registry: Option<Arc<Client>>,
    /// At most this many of the build's steps execute at once (within the engine's
    /// own bound); `None`: only the engine's bound.
    pub max_parallelism: Option<usize>,
    /// The resolver for `FROM`, when the caller already resolved with it (its
    /// answers are kept, so both see the same digests); `None` makes one.
    pub resolver: Option<Arc<BuildResolver>>,
    /// The context is immutable per file (a daemon's mirror: files are replaced
    /// by rename, never changed in place), so COPY may link its files.
    pub immutable_context: bool,
    /// Names the context's content in this process (see
    /// [`BuildCtx::local_versions`]).
    pub context_version: Option<u64>,
    /// The caller makes the build's records durable later ([`Engine::flush`], a
    /// daemon's background flusher); by default the build does before returning.
    pub defer_flush: bool,
    /// `--cache-from`: caches whose records the solve may hit.
    pub cache_from: Vec<CacheImport>,
    /// `--cache-to`: where to write this build's cache.
    pub cache_to: Vec<CacheExport>,
}

#[derive(Debug)]
pub struct BuildOutcome {
    pub image: ImageConfig,
    pub snapshot: Snapshot,
    /// The manifest of each OCI output, in the order of the outputs.
    pub manifests: Vec<Descriptor>,
    pub warnings: Vec<buildd_frontend::Warning>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Frontend(#[from] buildd_frontend::Error),
    #[error(".dockerignore: {0}")]
    Dockerignore(String),
    #[error(transparent)]
    Solve(#[from] SolveError),
    #[error(transparent)]
    Root(#[from] crate::root::RootError),
    #[error(transparent)]
    Images(#[from] crate::images::ImageError),
    #[error("unknown entitlement {0:?} in --allow (known: network.host, security.insecure)")]
    UnknownEntitlement(String),
    #[error("the build result is a local directory, not a filesystem")]
    LocalResult,
    #[error("export: {0}")]
    Export(#[from] ExportError),
    #[error("{0}")]
    Cache(String),
    #[error("context {0}")]
    Context(String),
    #[error("build arg SOURCE_DATE_EPOCH={0:?} is not a number of seconds")]
    SourceDateEpoch(String),
    #[error("{0}")]
    Internal(String),
}

/// The epoch every exported timestamp is pinned to: the request's (the client's
/// environment), else a `SOURCE_DATE_EPOCH` build arg, as BuildKit's frontend takes it.
fn source_date_epoch(req: &BuildRequest) -> Result<Option<i64>, BuildError> {
    if req.source_date_epoch.is_some() {
        return Ok(req.source_date_epoch);
    }
    match req.build_args.get("SOURCE_DATE_EPOCH") {
        Some(v) if !v.is_empty() => v
            .parse()
            .map(Some)
            .map_err(|_| BuildError::SourceDateEpoch(v.clone())),
        _ => Ok(None),
    }
}

/// What the frontend needs from the context directory, read before solving.
pub struct FrontendInput {
    pub dockerfile_name: String,
    pub dockerfile: String,
    pub dockerignore: Vec<String>,
}

/// Reads the Dockerfile and the .dockerignore that applies to it
/// (`<Dockerfile>.dockerignore` next to it wins over the context's `.dockerignore`).
pub fn read_frontend_input(
    context: &Path,
    dockerfile: Option<&Path>,
) -> Result<FrontendInput, BuildError> {
    read_input(context, dockerfile, false)
}

/// [`read_frontend_input`]; with `confine`, the `.dockerignore` files are looked
/// up with symlinks resolved inside the context (one that is not the user's).
fn read_input(
    context: &Path,
    dockerfile: Option<&Path>,
    confine: bool,
) -> Result<FrontendInput, BuildError> {
    let path = dockerfile.map_or_else(|| context.join("Dockerfile"), Path::to_path_buf);
    let text = std::fs::read_to_string(&path).map_err(|source| BuildError::Read {
        path: path.clone(),
        source,
    })?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "Dockerfile".to_owned());
    let mut specific = path.with_file_name(format!("{file_name}.dockerignore"));
    let mut general = context.join(".dockerignore");
    if confine {
        let rel = |p: &Path| {
            p.strip_prefix(context)
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned()
        };
        specific = crate::remote_context::confined(context, &rel(&specific))?;
        general = crate::remote_context::confined(context, &rel(&general))?;
    }
    let ignore_path = if specific.is_file() {
        specific
    } else {
        general
    };
    let dockerignore = match std::fs::read_to_string(&ignore_path) {
        Ok(text) => buildd_fsutil::dockerignore::parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => {
            return Err(BuildError::Read {
                path: ignore_path,
                source,
            });
        }
    };
    Ok(FrontendInput {
        dockerfile_name: file_name,
        dockerfile: text,
        dockerignore,
    })
}

pub async fn build(
    engine: &Engine,
    req: &BuildRequest,
    progress: Option<ProgressSender>,
) -> Result<BuildOutcome, BuildError> {
    if let Some(unknown) = req
        .allow
        .iter()
        .find(|a| !matches!(a.as_str(), "network.host" | "security.insecure"))
    {
        return Err(BuildError::UnknownEntitlement(unknown.clone()));
    }
    let source_date_epoch = source_date_epoch(req)?;
    let registry = req.registry.clone().or_else(|| engine.registry.clone());
    let remote = match &req.context_url {
        Some(url) => Some(
            crate::remote_context::fetch(engine, url, req, registry.clone(), progress.clone())
                .await?,
        ),
        None => None,
    };
    let (context, immutable_context, input) = match &remote {
        Some(r) => (
            r.dir.clone(),
            true,
            read_input(
                &r.dir,
                Some(&r.dockerfile(req.dockerfile.as_deref())?),
                true,
            )?,
        ),
        None => (
            req.context.clone(),
            req.immutable_context,
            read_frontend_input(&req.context, req.dockerfile.as_deref())?,
        ),
    };
    buildd_fsutil::dockerignore::PatternMatcher::new(&input.dockerignore)
        .map_err(|e| BuildError::Dockerignore(e.to_string()))?;
    let resolver = match &req.resolver {
        Some(r) => r.clone(),
        None => Arc::new(BuildResolver::new(
            engine.root.images.clone(),
            registry.clone(),
            tokio::runtime::Handle::current(),
        )),
    };
    let opts = BuildOptions {
        dockerfile_name: input.dockerfile_name,
        target: req.target.clone(),
        build_args: req.build_args.clone(),
        context_name: CONTEXT_NAME.to_owned(),
        dockerignore: input.dockerignore,
        platform: buildd_oci::host_platform(),
        resolver: Some(resolver.clone()),
    };
    // Off the async threads: resolving a base image may wait for a registry.
    let dockerfile = input.dockerfile;
    let compiled =
        tokio::task::spawn_blocking(move || buildd_frontend::compile(&dockerfile, &opts))
            .await
            .map_err(|e| BuildError::Internal(format!("frontend task: {e}")))??;
    for (r, blobs) in resolver.blob_sources() {
        record_blob_sources(engine.root.index.as_ref(), &r, &blobs)?;
    }
    let imports = import_caches(
        engine,
        &req.cache_from,
        registry.as_ref(),
        progress.as_ref(),
    )
    .await?;
    let (snapshot, results) = if compiled.definition.result.is_none() {
        // A target of only scratch and config instructions: an empty filesystem.
        (Snapshot::scratch(), Vec::new())
    } else {
        let solved = solve(
            engine,
            &compiled.definition,
            req,
            (&context, immutable_context, remote.is_none()),
            registry.clone(),
            imports,
            progress.clone(),
        )
        .await;
        if solved.is_err() && !req.defer_flush {
            // Whatever happened, what was recorded must survive the process.
            engine.flush_async().await?;
        }
        solved?
    };

    // What a base image carried inline is not this image's cache.
    let mut image = compiled.image.clone();
    image.inline_cache = None;
    if req
        .cache_to
        .iter()
        .any(|c| c.location == CacheLocation::Inline)
    {
        image.inline_cache = Some(
            inline_cache_step(
                engine,
                &results,
                &snapshot,
                source_date_epoch,
                progress.as_ref(),
            )
            .await?,
        );
    }
    let manifests = export_result(
        engine,
        &snapshot,
        &image,
        &Exports {
            tags: &req.tags,
            outputs: &req.outputs,
            source_date_epoch,
            registry: registry.as_ref(),
        },
        progress.as_ref(),
    )
    .await;
    let manifests = match manifests {
        Ok(m) => export_caches(
            engine,
            &req.cache_to,
            results,
            &snapshot,
            &compiled.definition,
            registry.as_ref(),
            source_date_epoch,
            progress.as_ref(),
        )
        .await
        .map(|()| m),
        Err(e) => Err(e),
    };
    // One sync for the solve and the export.
    if !req.defer_flush {
        engine.flush_async().await?;
    }
    let manifests = manifests?;
    Ok(BuildOutcome {
        image: compiled.image,
        snapshot,
        manifests,
        warnings: compiled.warnings,
    })
}

async fn solve(
    engine: &Engine,
    definition: &buildd_proto::llb::Definition,
    req: &BuildRequest,
    (context, immutable_context, versioned): (&Path, bool, bool),
    registry: Option<Arc<Client>>,
    cache_imports: Option<Arc<Imported>>,
    progress: Option<ProgressSender>,
) -> Result<(Snapshot, Vec<(buildd_proto::Digest, ResultRef)>), BuildError> {
    let graph = Arc::new(Graph::load(definition).map_err(SolveError::from)?);
    // One directory, one spelling: builds of `.` and of its absolute path share jobs.
    let context = std::fs::canonicalize(context).map_err(|source| BuildError::Read {
        path: context.to_owned(),
        source,
    })?;
    let ctx = Arc::new(BuildCtx {
        locals: BTreeMap::from([(CONTEXT_NAME.to_owned(), context)]),
        immutable_locals: immutable_context,
        local_versions: req
            .context_version
            .filter(|_| versioned)
            .map(|v| (CONTEXT_NAME.to_owned(), v))
            .into_iter()
            .collect(),
        no_cache: req.no_cache,
        allow_network_host: req.allow.iter().any(|a| a == "network.host"),
        allow_insecure: req.allow.iter().any(|a| a == "security.insecure"),
        secrets: req.secrets.clone(),
        ssh: req.ssh.clone(),
        registry,
        build_permits: req
            .max_parallelism
            .map(|n| Arc::new(tokio::sync::Semaphore::new(n.max(1)))),
        cache_imports,
    });
    let result_index = graph.result;
    let all = engine
        .solver
        .solve_all(SolveRequest {
            graph,
            ctx,
            progress,
        })
        .await?;
    let snapshot = match &all[result_index].output {
        Ref::Snapshot(snapshot) => snapshot.clone(),
        // The result of a build that hit an imported cache: its layers are needed now.
        Ref::Remote(remote) => remote
            .materialize(&engine.root)
            .await
            .map_err(|e| BuildError::Cache(e.message))?,
        Ref::Local(_) => return Err(BuildError::LocalResult),
    };
    for r in &all {
        if let Ref::Remote(remote) = &r.output {
            remote
                .record_if_here(&engine.root)
                .map_err(|e| BuildError::Cache(e.message))?;
        }
    }
    let results = all
        .iter()
        .filter_map(|r| match &r.output {
            Ref::Snapshot(s) => Some((r.cache_key, ResultRef::Local(s.clone()))),
            Ref::Remote(remote) => Some((r.cache_key, ResultRef::Remote(remote.clone()))),
            Ref::Local(_) => None,
        })
        .collect();
    Ok((snapshot, results))
}

/// What a build's result becomes besides its snapshot.
pub struct Exports<'a> {
    /// Names in the local image store.
    pub tags: &'a [String],
    pub outputs: &'a [OutputSpec],
    /// Pins every timestamp in exported images (SOURCE_DATE_EPOCH).
    pub source_date_epoch: Option<i64>,
    /// Where `type=image,push=true` outputs go.
    pub registry: Option<&'a Arc<Client>>,
}

/// Stores the result under every tag, then writes each output, each shown as a
/// progress step as BuildKit shows "exporting to …". Returns the manifest of each
/// output that has one, in order.
pub async fn export_result(
    engine: &Engine,
    snapshot: &Snapshot,
    image: &ImageConfig,
    exports: &Exports<'_>,
    progress: Option<&ProgressSender>,
) -> Result<Vec<Descriptor>, BuildError> {
    // Validate every name before storing any, so a bad one stores nothing.
    let tags = exports
        .tags
        .iter()
        .map(|t| normalize_name(t))
        .collect::<Result<Vec<_>, _>>()?;
    for name in tags {
        store_image(engine, name, snapshot, image).await?;
    }
    let mut manifests = Vec::new();
    for out in exports.outputs {
        let step = ExportStep::start(progress, out);
        let result = export_output(
            engine,
            exports.registry,
            snapshot,
            image,
            out,
            exports.source_date_epoch,
            &|line| step.log(line),
        )
        .await;
        step.finish(result.as_ref().map(Option::as_ref));
        manifests.extend(result?);
    }
    Ok(manifests)
}

/// Stores the image record (written and fsynced on a blocking thread).
async fn store_image(
    engine: &Engine,
    name: String,
    snapshot: &Snapshot,
    image: &ImageConfig,
) -> Result<(), BuildError> {
    let created = now_rfc3339();
    let mut config = image.clone();
    config.created.get_or_insert_with(|| created.clone());
    let record = ImageRecord {
        name,
        layers: snapshot.layers().iter().map(|l| l.to_string()).collect(),
        config,
        created,
    };
    let (images, layers) = (engine.root.images.clone(), engine.root.layers.clone());
    tokio::task::spawn_blocking(move || {
        // The record names layers, and is durable at once: they must be first
        // (the cache index waits for its flush, image records do not).
        layers
            .sync()
            .map_err(|e| BuildError::Internal(format!("syncing layers: {e}")))?;
        images.put(&record).map_err(BuildError::from)
    })
    .await
    .map_err(|e| BuildError::Internal(format!("image store task: {e}")))??;
    Ok(())
}

/// One `-o` output. File work runs on a blocking thread; pushes on the runtime.
async fn export_output(
    engine: &Engine,
    registry: Option<&Arc<Client>>,
    snapshot: &Snapshot,
    image: &ImageConfig,
    spec: &OutputSpec,
    epoch: Option<i64>,
    log: &(dyn Fn(&str) + Sync),
) -> Result<Option<Descriptor>, BuildError> {
    let root = engine.root.clone();
    let (snap, image, spec) = (snapshot.clone(), image.clone(), spec.clone());
    let task = |e: tokio::task::JoinError| BuildError::Internal(format!("export task: {e}"));
    let OutputSpec::Image {
        name,
        push,
        compression,
    } = spec
    else {
        return Ok(
            tokio::task::spawn_blocking(move || export(&root, &snap, &image, &spec, epoch))
                .await
                .map_err(task)??,
        );
    };
    let registry = match (push, registry) {
        (false, _) => None,
        (true, Some(r)) => Some(r.clone()),
        (true, None) => {
            return Err(ExportError::Push {
                name,
                message: "no registry is configured".to_owned(),
            }
            .into());
        }
    };
    store_image(engine, normalize_name(&name)?, &snap, &image).await?;
    let built = tokio::task::spawn_blocking({
        let root = root.clone();
        move || build_image(&root, &snap, &image, compression, epoch)
    })
    .await
    .map_err(task)??;
    match registry {
        Some(registry) => Ok(Some(
            push_image(&root, &registry, &name, &built, log).await?,
        )),
        None => Ok(Some(built.manifest)),
    }
}

fn export(
    root: &crate::root::Root,
    snap: &Snapshot,
    image: &ImageConfig,
    spec: &OutputSpec,
    source_date_epoch: Option<i64>,
) -> Result<Option<Descriptor>, ExportError> {
    match spec {
        OutputSpec::Oci {
            dest,
            tar,
            name,
            compression,
            format,
        } => export_oci(
            root,
            snap,
            image,
            &OciExport {
                dest,
                tar: *tar,
                name: name.as_deref(),
                compression: *compression,
                source_date_epoch,
                format: *format,
            },
        )
        .map(Some),
        OutputSpec::OciStream {
            sink,
            name,
            compression,
            format,
        } => {
            let dest = Path::new("the output stream");
            let mut out = take_sink(sink)?;
            export_oci_stream(
                root,
                snap,
                image,
                &OciExport {
                    dest,
                    tar: true,
                    name: name.as_deref(),
                    compression: *compression,
                    source_date_epoch,
                    format: *format,
                },
                &mut out,
            )
            .map(Some)
        }
        OutputSpec::Tar { dest } => {
            write_file_atomic(dest, |out| export_tar(root, snap, source_date_epoch, out))
                .map(|()| None)
        }
        OutputSpec::TarStream { sink } => {
            let mut out = take_sink(sink)?;
            export_tar(root, snap, source_date_epoch, &mut out)?;
            out.flush().map_err(|source| ExportError::Io {
                path: "the output stream".into(),
                source,
            })?;
            Ok(None)
        }
        OutputSpec::Local { dest } => export_local(&root.layers, snap, dest).map(|()| None),
        OutputSpec::Image { .. } => unreachable!("images are exported by export_output"),
    }
}

fn take_sink(sink: &crate::export::StreamSink) -> Result<Box<dyn Write + Send>, ExportError> {
    sink.take().ok_or_else(|| ExportError::Io {
        path: "the output stream".into(),
        source: std::io::Error::other("the stream was already written"),
    })
}

/// [`write_file_atomic`] of `bytes` (`--iidfile`, `--metadata-file`).
pub fn write_bytes_atomic(dest: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    write_file_atomic(dest, |w| {
        w.write_all(bytes).map_err(|source| ExportError::Io {
            path: dest.to_owned(),
            source,
        })
    })
}

/// Writes `dest` whole or not at all: a temporary file beside it, synced, then
/// renamed over it.
fn write_file_atomic(
    dest: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ExportError::Io { path, source }
    };
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".buildd-out-")
        .tempfile_in(parent)
        .map_err(io(parent))?;
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file());
        write(&mut w)?;
        w.flush().map_err(io(dest))?;
    }
    use std::os::unix::fs::PermissionsExt as _;
    // tempfile creates 0600; an output is an ordinary readable file.
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(io(dest))?;
    tmp.persist(dest).map_err(|e| ExportError::Io {
        path: dest.to_owned(),
        source: e.error,
    })?;
    Ok(())
}

/// An export shown as a progress step, as BuildKit shows "exporting to …".
pub(crate) struct ExportStep {
    tx: Option<ProgressSender>,
    vertex: buildd_proto::Digest,
    name: String,
    started: std::time::Instant,
}

fn format_step(format: ArchiveFormat) -> String {
    match format {
        ArchiveFormat::Oci => "exporting to oci image format",
        ArchiveFormat::Docker => "exporting to docker image format",
    }
    .to_owned()
}

impl ExportStep {
    /// A step of its own name, e.g. "exporting cache to registry R".
    pub(crate) fn named(tx: Option<&ProgressSender>, name: String) -> Self {
        let vertex = buildd_proto::Digest::of(format!("step\0{name}").as_bytes());
        let step = Self {
            tx: tx.cloned(),
            vertex,
            name,
            started: std::time::Instant::now(),
        };
        step.send(ProgressEvent::Started {
            vertex,
            name: step.name.clone(),
            at: std::time::SystemTime::now(),
        });
        step
    }

    /// A line of the step's log.
    pub(crate) fn log(&self, line: &str) {
        self.send(ProgressEvent::Log {
            vertex: self.vertex,
            stream: 1,
            data: format!("{line}\n").into_bytes(),
        });
    }

    fn start(tx: Option<&ProgressSender>, spec: &OutputSpec) -> Self {
        let (name, dest) = match spec {
            OutputSpec::Oci { dest, format, .. } => (format_step(*format), dest),
            OutputSpec::OciStream { format, .. } => {
                (format_step(*format), &PathBuf::from("the output stream"))
            }
            OutputSpec::Tar { dest } => ("exporting to client tarball".to_owned(), dest),
            OutputSpec::TarStream { .. } => (
                "exporting to client tarball".to_owned(),
                &PathBuf::from("the output stream"),
            ),
            OutputSpec::Local { dest } => ("exporting to client directory".to_owned(), dest),
            OutputSpec::Image { name, push, .. } => {
                let what = if *push { "pushing" } else { "naming" };
                (
                    format!("exporting to image, {what} {name}"),
                    &PathBuf::from(name),
                )
            }
        };
        let vertex = buildd_proto::Digest::of(format!("export\0{}", dest.display()).as_bytes());
        let step = Self {
            tx: tx.cloned(),
            vertex,
            name,
            started: std::time::Instant::now(),
        };
        step.send(ProgressEvent::Started {
            vertex,
            name: step.name.clone(),
            at: std::time::SystemTime::now(),
        });
        step
    }

    fn send(&self, ev: ProgressEvent) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(ev);
        }
    }

    pub(crate) fn finish(self, result: Result<Option<&Descriptor>, &BuildError>) {
        let (vertex, name, duration) = (self.vertex, self.name.clone(), self.started.elapsed());
        match result {
            Ok(manifest) => {
                if let Some(m) = manifest {
                    self.send(ProgressEvent::Log {
                        vertex,
                        stream: 1,
                        data: format!("writing manifest {} done\n", m.digest).into_bytes(),
                    });
                }
                self.send(ProgressEvent::Completed {
                    vertex,
                    name,
                    duration,
                });
            }
            Err(e) => self.send(ProgressEvent::Failed {
                vertex,
                name,
                duration,
                error: e.to_string(),
            }),
        }
    }
}
