//! `buildd build`: one build, no daemon.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use buildd_engine::build::{BuildRequest, build};
use buildd_engine::cache::remote::{CacheExport, CacheImport};
use buildd_engine::export::OutputSpec;
use buildd_engine::progress::PlainPrinter;
use buildd_engine::solver::SolverConfig;
use buildd_engine::{Engine, EngineOptions};
use clap::{Args, ValueEnum};

use crate::args::DockerfileArgs;
use crate::registry::RegistryArgs;
use crate::runtime::RuntimeArgs;

#[derive(Args)]
pub struct BuildArgs {
    #[command(flatten)]
    dockerfile: DockerfileArgs,
    /// Output: type=oci,dest=FILE[,tar=false][,name=NAME][,compression=gzip|zstd|uncompressed],
    /// type=docker,dest=FILE[,name=NAME], type=tar,dest=FILE or type=local,dest=DIR.
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    outputs: Vec<OutputSpec>,
    /// Progress output.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    progress: Progress,
    /// Store the result in the local image store under this name (repeatable).
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    tags: Vec<String>,
    /// Write the image ID (its config's digest) to FILE, as docker build does.
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,
    /// Write the build's metadata to FILE as JSON, as buildx does
    /// (containerimage.digest, containerimage.config.digest, containerimage.descriptor).
    #[arg(long = "metadata-file", value_name = "FILE")]
    metadata_file: Option<PathBuf>,
    /// Allow an entitlement: network.host (RUN --network=host), security.insecure
    /// (RUN --security=insecure).
    #[arg(long = "allow", value_name = "ENTITLEMENT")]
    allow: Vec<String>,
    /// Secret for RUN --mount=type=secret: id=ID[,src=PATH|,env=VAR][,type=file|env]
    /// (repeatable). A bare id=ID is the environment variable ID if set, else file ID.
    #[arg(long = "secret", value_name = "SPEC")]
    secrets: Vec<String>,
    /// SSH agent for RUN --mount=type=ssh: default (the agent at $SSH_AUTH_SOCK),
    /// ID=SOCKET (repeatable).
    #[arg(long = "ssh", value_name = "ID[=SOCKET]")]
    ssh: Vec<String>,
    /// Do not use the cache.
    #[arg(long)]
    no_cache: bool,
    /// Import a cache: type=registry,ref=REF or type=local,src=DIR (repeatable).
    #[arg(long = "cache-from", value_name = "SPEC", value_parser = CacheImport::parse)]
    cache_from: Vec<CacheImport>,
    /// Export the build's cache: type=registry,ref=REF or type=local,dest=DIR, with
    /// mode=min|max, compression=gzip|zstd|uncompressed, ignore-error=true; or
    /// type=inline, in the image's config (repeatable).
    #[arg(long = "cache-to", value_name = "SPEC", value_parser = CacheExport::parse)]
    cache_to: Vec<CacheExport>,
    /// How many ops may run at once.
    #[arg(long)]
    max_parallelism: Option<usize>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Progress {
    Auto,
    Plain,
    Quiet,
}

pub fn run(
    root: &Path,
    args: BuildArgs,
    registry: &RegistryArgs,
    runtime: &RuntimeArgs,
) -> anyhow::Result<()> {
    let build_args = crate::args::build_args(&args.dockerfile.build_args);
    let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => Some(
            v.parse::<i64>()
                .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"))?,
        ),
        _ => None,
    };
    let (secrets, ssh) = crate::args::session(&args.secrets, &args.ssh)?;
    let (iidfile, metadata_file) = (args.iidfile.clone(), args.metadata_file.clone());
    let context = Context::of(&args.dockerfile.context, args.dockerfile.file.as_deref())?;
    let req = BuildRequest {
        context: context.dir.clone(),
        context_url: context.url.clone(),
        dockerfile: context.dockerfile.clone(),
        target: args.dockerfile.target,
        build_args,
        outputs: args.outputs,
        no_cache: args.no_cache,
        source_date_epoch,
        tags: args.tags,
        allow: args.allow,
        secrets,
        ssh,
        // The engine's client: this process's docker config.
        registry: None,
        // One build in this process: the engine's bound is the build's.
        max_parallelism: None,
        resolver: None,
        // The user's own directory: it may change under a layer at any time.
        immutable_context: false,
        context_version: None,
        // The process ends after this build: durable before it says done.
        defer_flush: false,
        cache_from: args.cache_from,
        cache_to: args.cache_to,
    };
    let mut config = SolverConfig::default();
    if let Some(n) = args.max_parallelism {
        config.max_parallelism = n;
    }
    let engine = Engine::open_with(
        root,
        EngineOptions {
            solver: config,
            registry: Some(registry.client()?),
            // The caller owns this machine: where slirp4netns is missing, a RUN
            // gets the host's network with a warning, as before.
            runtime: buildd_engine::ops::RuntimeConfig {
                network_fallback_host: true,
                ..runtime.config()
            },
        },
    )
    .with_context(|| format!("opening root {}", root.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let quiet = matches!(args.progress, Progress::Quiet);
    let outcome = rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
        // Finished jobs may keep a sender alive, so the printer stops on `done`
        // and then drains what is queued, rather than waiting for the channel to close.
        let printer = tokio::spawn(async move {
            let mut p = PlainPrinter::new(std::io::stderr());
            loop {
                tokio::select! {
                    ev = rx.recv() => match ev {
                        Some(ev) if !quiet => { let _ = p.print(&ev); }
                        Some(_) => {}
                        None => break,
                    },
                    _ = &mut done_rx => {
                        while let Ok(ev) = rx.try_recv() {
                            if !quiet { let _ = p.print(&ev); }
                        }
                        break;
                    }
                }
            }
        });
        let outcome = build(&engine, &req, Some(tx)).await;
        let _ = done_tx.send(());
        let _ = printer.await;
        outcome
    });
    match outcome {
        Ok(outcome) => {
            for w in &outcome.warnings {
                eprintln!("WARNING: {}: line {}: {}", w.rule, w.line, w.message);
            }
            // The manifest digest on stdout, for scripts (as `docker build -q` prints the id).
            for m in &outcome.manifests {
                println!("{}", m.digest);
            }
            // The first image's values, as bctl takes them from the first exporter.
            let values = outcome
                .manifests
                .first()
                .map(|m| buildd_engine::export::image_metadata(&engine.root, m))
                .unwrap_or_default();
            if let Some(path) = &iidfile {
                let id = values
                    .get(buildd_engine::export::CONFIG_DIGEST)
                    .context("--iidfile: no output of this build made an image (use -o type=oci|docker|image,push=true)")?;
                buildd_engine::build::write_bytes_atomic(path, id.as_bytes())
                    .with_context(|| format!("cannot write iidfile {}", path.display()))?;
            }
            if let Some(path) = &metadata_file {
                let text = buildd_engine::export::metadata_json(&values);
                buildd_engine::build::write_bytes_atomic(path, text.as_bytes())
                    .with_context(|| format!("cannot write metadata file {}", path.display()))?;
            }
            Ok(())
        }
        Err(e) => {
            if let Some(report) = crate::report::source_snippet(&e, &req) {
                eprint!("{report}");
            }
            Err(anyhow::Error::new(e).context("failed to solve"))
        }
    }
}

/// Where the context comes from: a directory, a URL the engine fetches, or
/// standard input unpacked into a directory of this process.
struct Context {
    dir: PathBuf,
    url: Option<String>,
    dockerfile: Option<PathBuf>,
    _stdin: Option<tempfile::TempDir>,
}

impl Context {
    fn of(arg: &Path, file: Option<&Path>) -> anyhow::Result<Self> {
        let text = arg.to_string_lossy();
        if text == "-" {
            return Self::stdin(file);
        }
        if arg.is_dir() {
            return Ok(Self {
                dir: arg.to_owned(),
                url: None,
                dockerfile: file.map(Path::to_owned),
                _stdin: None,
            });
        }
        if text.contains("://") || text.starts_with("git@") {
            return Ok(Self {
                // Unused: the engine reads the fetched context.
                dir: PathBuf::new(),
                url: Some(text.into_owned()),
                dockerfile: file.map(Path::to_owned),
                _stdin: None,
            });
        }
        bail!("context {} is not a directory, a URL or -", arg.display())
    }

    fn stdin(file: Option<&Path>) -> anyhow::Result<Self> {
        let tmp = tempfile::Builder::new()
            .prefix("buildd-stdin-")
            .tempdir()
            .context("making a directory for the context on standard input")?;
        let dirs =
            buildd_fsutil::stdin_context::read_into(std::io::stdin().lock(), tmp.path(), file)?;
        Ok(Self {
            dir: dirs.context,
            url: None,
            dockerfile: dirs.dockerfile,
            _stdin: Some(tmp),
        })
    }
}
