//! `bctl build`: a Dockerfile build on the daemon. Three calls run together: the
//! session serving this machine's files, secrets, credentials and SSH agents and
//! receiving outputs; `Status` feeding the progress printer; and `Solve`, whose
//! end ends the other two.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use buildd_proto::control::{
    CacheOptions, Exporter, SolveRequest, SolveResponse, StatusRequest, Warning,
};
use clap::Args;
use sha2::{Digest as _, Sha256};
use tokio::sync::oneshot;

mod context;
mod llb;

use super::ConnArgs;
use crate::connect::Client;
use crate::output;
use crate::progress::{self, Mode, Printer};
use crate::session::export::ExportTarget;
use crate::session::secrets::Secrets;
use crate::session::ssh::SshAgents;
use crate::session::{self, SessionConfig, creds};

/// How long the status stream may trail the end of the solve.
const STATUS_GRACE: Duration = Duration::from_secs(2);

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Build context: a directory, a git or http(s) URL the daemon fetches
    /// (`URL#ref:subdir`), or - for a tar archive or a Dockerfile on stdin
    /// (with --llb: the local source "context", a directory, optional).
    #[arg(required_unless_present = "llb")]
    context: Option<PathBuf>,
    /// Build this serialized LLB definition (protobuf, FILE or - for stdin)
    /// instead of a Dockerfile, as `buildctl build` does; its `local://NAME`
    /// sources come from --local (and CONTEXT for "context").
    #[arg(long, value_name = "FILE", conflicts_with_all = ["file", "target", "build_args"])]
    llb: Option<PathBuf>,
    /// A local source of an --llb definition: NAME=DIR (repeatable).
    #[arg(long = "local", value_name = "NAME=DIR", requires = "llb")]
    local: Vec<String>,
    /// Dockerfile path [default: CONTEXT/Dockerfile]; with a URL or stdin
    /// archive context, a path inside it.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Store the result in the daemon's image store under this name (repeatable).
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    tags: Vec<String>,
    /// Stage to build [default: the last].
    #[arg(long)]
    target: Option<String>,
    /// Build-time variable, KEY=VALUE (KEY alone takes it from the environment).
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    build_args: Vec<String>,
    /// Output: type=oci|docker,dest=FILE|-[,tar=false][,name=NAME], type=tar,dest=FILE|-,
    /// type=local,dest=DIR, type=image[,name=NAME], or a bare DIR (repeatable).
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    outputs: Vec<String>,
    /// Progress output on stderr.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    progress: Mode,
    /// Do not use the cache.
    #[arg(long)]
    no_cache: bool,
    /// Import a cache: type=registry,ref=REF (repeatable).
    #[arg(long = "cache-from", value_name = "SPEC", value_parser = cache_options)]
    cache_from: Vec<CacheOptions>,
    /// Export the build's cache: type=registry,ref=REF[,mode=min|max]
    /// [,compression=gzip|zstd|uncompressed][,ignore-error=true], or type=inline
    /// (in the image's config; import it with type=registry,ref=IMAGE) (repeatable).
    #[arg(long = "cache-to", value_name = "SPEC", value_parser = cache_options)]
    cache_to: Vec<CacheOptions>,
    /// Secret for RUN --mount=type=secret: id=ID[,src=PATH|,env=VAR] (repeatable).
    #[arg(long = "secret", value_name = "SPEC")]
    secrets: Vec<String>,
    /// SSH agent for RUN --mount=type=ssh: default|ID[=SOCKET], the socket
    /// defaulting to $SSH_AUTH_SOCK (repeatable).
    #[arg(long = "ssh", value_name = "SPEC")]
    ssh: Vec<String>,
    /// Grant an entitlement: network.host, security.insecure.
    #[arg(long = "allow", value_name = "ENTITLEMENT")]
    allow: Vec<String>,
    /// Write the build result's metadata (digests) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    metadata_file: Option<PathBuf>,
    /// Write the image ID (its config's digest, as `docker build --iidfile`) to this file.
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,
}

pub async fn run(conn: &ConnArgs, args: BuildArgs) -> anyhow::Result<()> {
    // Everything that can be wrong with the command line fails before connecting.
    let plan = Plan::new(args)?;
    let client = conn.connect_or_start().await?;
    let session_id = unique_id("session");
    let build_ref = unique_id("build");
    let req = plan.request(&session_id, &build_ref)?;
    let stdout_export = plan.targets.contains(&ExportTarget::Stdout);

    // Solve names the session: it must be registered first.
    let opened = session::open(
        client.clone(),
        SessionConfig {
            id: session_id,
            locals: plan.context.locals.clone(),
            secrets: plan.secrets,
            ssh: plan.ssh,
            docker_config: creds::config_path(),
            exports: plan.targets,
        },
    )
    .await
    .context("opening a session with the daemon")?;
    let (close_tx, close_rx) = oneshot::channel();
    let session = tokio::spawn(opened.serve(close_rx));
    let (done_tx, done_rx) = oneshot::channel();
    let status = tokio::spawn(follow_status(
        client.clone(),
        build_ref.clone(),
        progress::printer(plan.progress),
        done_rx,
    ));
    let solved = client.clone().solve(req).await;
    let _ = done_tx.send(());
    let (mut printer, mut warnings) = status.await.context("progress printer")?;
    let _ = close_tx.send(());
    let session = session.await.context("session")?;
    let quiet = matches!(plan.progress, Mode::Quiet | Mode::Rawjson);

    let response = match solved {
        Ok(r) => r.into_inner(),
        Err(status) => {
            printer.finish(None)?;
            if !quiet {
                progress::print_warnings(&mut std::io::stderr(), &warnings)?;
            }
            let mut msg = status.message().to_owned();
            if let Err(e) = session {
                msg = format!("{msg} ({})", session::chain(&e));
            }
            bail!("failed to solve: {msg}");
        }
    };
    printer.finish(response.transfer.as_ref())?;
    progress::merge_warnings(&mut warnings, &response.warnings);
    if !quiet {
        progress::print_warnings(&mut std::io::stderr(), &warnings)?;
    }
    session.context("receiving the build's outputs")?;
    if let Some(path) = &plan.metadata_file {
        write_metadata(path, &build_ref, &response)?;
    }
    if let Some(path) = &plan.iidfile {
        write_iidfile(path, &response)?;
    }
    // As `docker build -q`, the digest on stdout, unless an output went there.
    if plan.progress == Mode::Quiet
        && !stdout_export
        && let Some(digest) = response
            .exporters
            .iter()
            .find_map(|e| e.values.get("containerimage.digest"))
    {
        println!("{digest}");
    }
    Ok(())
}

/// The validated command line.
struct Plan {
    context: context::Context,
    /// With --llb: the serialized definition, solved without a frontend.
    definition: Option<Vec<u8>>,
    target: Option<String>,
    build_args: BTreeMap<String, String>,
    exporters: Vec<Exporter>,
    targets: Vec<ExportTarget>,
    tags: Vec<String>,
    secrets: Secrets,
    ssh: SshAgents,
    entitlements: Vec<String>,
    no_cache: bool,
    cache_from: Vec<CacheOptions>,
    cache_to: Vec<CacheOptions>,
    progress: Mode,
    metadata_file: Option<PathBuf>,
    iidfile: Option<PathBuf>,
}

impl Plan {
    fn new(args: BuildArgs) -> anyhow::Result<Self> {
        let (context, definition) = match &args.llb {
            Some(path) => (
                context::Context::locals(llb::locals(args.context.as_deref(), &args.local)?),
                Some(llb::read_definition(path)?),
            ),
            None => {
                let arg = args.context.as_deref().context("a context is required")?;
                (context::Context::of(arg, args.file.as_deref())?, None)
            }
        };
        let mut ssh = SshAgents::default();
        for spec in &args.ssh {
            ssh.add_spec(spec)?;
        }
        let mut secrets = Secrets::default();
        for spec in &args.secrets {
            secrets.add_spec(spec)?;
        }
        let mut exporters = Vec::new();
        let mut targets = Vec::new();
        for spec in &args.outputs {
            let (e, t) = output::parse(spec)?;
            exporters.push(e);
            targets.push(t);
        }
        Ok(Self {
            context,
            definition,
            target: args.target,
            build_args: build_args(&args.build_args),
            exporters,
            targets,
            tags: args.tags,
            secrets,
            ssh,
            entitlements: args.allow,
            no_cache: args.no_cache,
            cache_from: args.cache_from,
            cache_to: args.cache_to,
            progress: args.progress,
            metadata_file: args.metadata_file,
            iidfile: args.iidfile,
        })
    }

    fn request(&self, session_id: &str, build_ref: &str) -> anyhow::Result<SolveRequest> {
        let mut attrs = BTreeMap::new();
        if self.definition.is_none() {
            attrs.insert("filename".to_owned(), self.context.dockerfile_name.clone());
        }
        if let Some(url) = &self.context.url {
            // As buildx sends a remote context: the daemon fetches it.
            attrs.insert("context".to_owned(), url.clone());
        }
        if let Some(t) = &self.target {
            attrs.insert("target".to_owned(), t.clone());
        }
        for (k, v) in &self.build_args {
            attrs.insert(format!("build-arg:{k}"), v.clone());
        }
        let host = hostname();
        let local_keys = self
            .context
            .locals
            .iter()
            .map(|(name, dir)| (name.clone(), local_key(&host, dir, name)))
            .collect();
        Ok(SolveRequest {
            r#ref: build_ref.to_owned(),
            session_id: session_id.to_owned(),
            // No frontend: the daemon solves the definition as it is.
            frontend: match self.definition {
                Some(_) => String::new(),
                None => "dockerfile.v0".to_owned(),
            },
            frontend_attrs: attrs,
            definition: self.definition.clone().unwrap_or_default(),
            exporters: self.exporters.clone(),
            entitlements: self.entitlements.clone(),
            no_cache: self.no_cache,
            cache_imports: self.cache_from.clone(),
            cache_exports: self.cache_to.clone(),
            tags: self.tags.clone(),
            local_keys,
            source_date_epoch: source_date_epoch()?,
        })
    }
}

/// `type=T,k=v,…` as the daemon takes it; the daemon checks the options.
fn cache_options(spec: &str) -> Result<CacheOptions, String> {
    let mut opts = CacheOptions::default();
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not key=value"))?;
        if k == "type" {
            opts.r#type = v.to_owned();
        } else {
            opts.attrs.insert(k.to_owned(), v.to_owned());
        }
    }
    if opts.r#type.is_empty() {
        return Err("missing type= (registry)".to_owned());
    }
    Ok(opts)
}

/// `SOURCE_DATE_EPOCH` from the environment, as buildx passes it on.
fn source_date_epoch() -> anyhow::Result<Option<i64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => v
            .parse()
            .map(Some)
            .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds")),
        _ => Ok(None),
    }
}

/// `--build-arg KEY=VALUE`; a bare `KEY` takes the value from the environment and
/// is skipped when unset, as `docker build` does.
fn build_args(raw: &[String]) -> BTreeMap<String, String> {
    raw.iter()
        .filter_map(|a| match a.split_once('=') {
            Some((k, v)) => Some((k.to_owned(), v.to_owned())),
            None => std::env::var(a).ok().map(|v| (a.clone(), v)),
        })
        .collect()
}

/// This client's stable name for a directory: the daemon keeps one synced copy
/// per key and asks only for what changed since.
fn local_key(host: &str, dir: &Path, name: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        host.as_bytes(),
        dir.as_os_str().as_encoded_bytes(),
        name.as_bytes(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for buf.len() bytes; gethostname NUL-terminates within it.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(0);
    if ok {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    }
}

/// A fresh id: unique across processes, machines and time.
/// A random id of 128 bits from the kernel's generator: session ids must not be
/// guessable (the daemon also binds each session to its caller).
pub(super) fn unique_id(kind: &str) -> String {
    let mut bytes = [0u8; 16];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if let Err(e) = filled {
        // No urandom (a broken chroot): the hash of time, pid and counter still
        // makes a unique name, and the daemon still binds the session to us.
        eprintln!("WARNING: /dev/urandom: {e}; {kind} id is not random");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut h = Sha256::new();
        h.update(kind.as_bytes());
        h.update(hostname().as_bytes());
        h.update(std::process::id().to_le_bytes());
        h.update(now.to_le_bytes());
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        bytes.copy_from_slice(&h.finalize()[..16]);
    }
    hex::encode(bytes)
}

/// Feeds the status stream to the printer until the stream ends, or `done`
/// fires and the stream does not end within the grace period.
async fn follow_status(
    mut client: Client,
    build_ref: String,
    mut printer: Box<dyn Printer>,
    done: oneshot::Receiver<()>,
) -> (Box<dyn Printer>, Vec<Warning>) {
    let mut warnings = Vec::new();
    let mut stream = match client
        .status(StatusRequest {
            r#ref: build_ref.clone(),
        })
        .await
    {
        Ok(s) => Some(s.into_inner()),
        // Progress is a nicety: the solve reports the build's fate.
        Err(_) => None,
    };
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    tokio::pin!(done);
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let next = async {
            match stream.as_mut() {
                Some(s) => s.message().await,
                None => std::future::pending().await,
            }
        };
        let grace = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = next => match msg {
                Ok(Some(resp)) => {
                    progress::merge_warnings(&mut warnings, &resp.warnings);
                    let _ = printer.update(&resp);
                }
                Ok(None) | Err(_) => break,
            },
            _ = ticker.tick() => { let _ = printer.tick(); }
            _ = &mut done, if deadline.is_none() => {
                if stream.is_none() {
                    break;
                }
                deadline = Some(tokio::time::Instant::now() + STATUS_GRACE);
            }
            _ = grace => break,
        }
    }
    (printer, warnings)
}

/// The image ID of the first output that made an image: its config's digest,
/// else its manifest's. No image (only `type=local` or `tar`) is an error, as
/// the file would otherwise name nothing.
fn write_iidfile(path: &Path, resp: &SolveResponse) -> anyhow::Result<()> {
    let id = resp
        .exporters
        .iter()
        .find_map(|e| {
            e.values
                .get("containerimage.config.digest")
                .or_else(|| e.values.get("containerimage.digest"))
        })
        .context(
            "--iidfile: no output of this build made an image (use -o type=oci|docker|image)",
        )?;
    write_atomic(path, id.as_bytes())
        .with_context(|| format!("cannot write iidfile {}", path.display()))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path))
}

fn write_metadata(path: &Path, build_ref: &str, resp: &SolveResponse) -> anyhow::Result<()> {
    let mut meta = serde_json::Map::new();
    for e in &resp.exporters {
        for (k, v) in &e.values {
            // buildx writes the descriptor as an object, the rest as strings.
            let value = match k.as_str() {
                "containerimage.descriptor" => {
                    serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.clone()))
                }
                _ => serde_json::Value::String(v.clone()),
            };
            meta.insert(k.clone(), value);
        }
    }
    meta.insert("buildx.build.ref".to_owned(), build_ref.into());
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(meta))? + "\n";
    write_atomic(path, text.as_bytes())
        .with_context(|| format!("cannot write metadata file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_keys_are_stable_and_distinct() {
        let a = local_key("host", Path::new("/src/app"), "context");
        assert_eq!(a, local_key("host", Path::new("/src/app"), "context"));
        assert_eq!(a.len(), 64);
        assert_ne!(a, local_key("other", Path::new("/src/app"), "context"));
        assert_ne!(a, local_key("host", Path::new("/src/app2"), "context"));
        assert_ne!(a, local_key("host", Path::new("/src/app"), "dockerfile"));
        assert_ne!(unique_id("build"), unique_id("build"));
    }
}
