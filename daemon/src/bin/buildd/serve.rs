//! `buildd` with no subcommand: serve the Control API (see `buildd_daemon::serve`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use buildd_daemon::context_sync::ContextLimits;
use buildd_daemon::daemon::{Limits, Policy};
use buildd_daemon::serve::{DEFAULT_SOCKET, ServeConfig, TcpConfig, parse_addr};
use clap::{Args, ValueEnum};

use crate::registry::RegistryArgs;
use crate::runtime::RuntimeArgs;

#[derive(Args)]
pub struct ServeArgs {
    /// Where to listen: unix:///path/to/socket (default: unix:///run/buildd/buildd.sock).
    #[arg(long, env = "BUILDD_ADDR")]
    addr: Option<String>,
    /// Also listen on TCP (e.g. 127.0.0.1:1234), with TLS and required client
    /// certificates.
    #[arg(long, value_name = "HOST:PORT")]
    tcp: Option<SocketAddr>,
    /// Server certificate (PEM) for --tcp.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// Server private key (PEM) for --tcp.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// CA (PEM) that client certificates must be signed by, for --tcp.
    #[arg(long, value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
    /// CPU-bound ops (file ops, hashing) executing at once across all builds
    /// (default: twice the cores).
    #[arg(long)]
    max_parallelism: Option<usize>,
    /// CPU-bound ops one build may execute at once (default: three quarters of
    /// --max-parallelism), so one huge build cannot take every slot.
    #[arg(long)]
    max_build_parallelism: Option<usize>,
    /// RUN steps executing at once across builds. RUNs mostly wait on the
    /// network, the disk or sleeps, so they are not held to the cores.
    #[arg(long, default_value_t = buildd_engine::solver::SolverConfig::DEFAULT_MAX_PARALLEL_RUNS)]
    max_parallel_runs: usize,
    /// Builds running at once; more wait for a turn.
    #[arg(long, default_value_t = 4)]
    max_concurrent_builds: usize,
    /// Let builds be granted this entitlement when their client asks for it
    /// (`bctl build --allow ...`): network.host or security.insecure. Repeatable.
    /// Without it such builds fail: each grants root-equivalent power on this host.
    #[arg(long = "allow-insecure-entitlement", value_name = "ENTITLEMENT", value_parser = ["network.host", "security.insecure"])]
    allow_insecure_entitlement: Vec<String>,
    /// Give this group (name or gid) access to the unix socket (mode 0660);
    /// otherwise only root may connect (0600).
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
    /// What a RUN that wants its own network gets when slirp4netns is missing:
    /// nothing (the RUN fails, the default) or the host's network.
    #[arg(long, value_enum, value_name = "host")]
    network_fallback: Option<NetworkFallback>,
    /// Entries one listing of a client directory (a build context) may have;
    /// a build whose context has more fails.
    #[arg(long, default_value_t = buildd_daemon::daemon::DEFAULT_MAX_CONTEXT_FILES)]
    max_context_files: usize,
    /// File bytes one build may upload from its client, over all its contexts
    /// (default 64 GiB); a build that needs more fails.
    #[arg(long, default_value_t = buildd_daemon::daemon::DEFAULT_MAX_CONTEXT_BYTES)]
    max_context_bytes: u64,
    /// Ops one raw LLB definition (`bctl build --llb`) may have; a larger one is
    /// refused before anything runs.
    #[arg(long, default_value_t = buildd_daemon::daemon::DEFAULT_MAX_GRAPH_VERTICES)]
    max_graph_vertices: usize,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetworkFallback {
    Host,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Logs to stderr at info level (debug with `--debug`), as text or JSON lines.
pub fn init_logging(debug: bool, format: LogFormat, serving: bool) {
    let level = if debug {
        tracing::Level::DEBUG
    } else if serving {
        tracing::Level::INFO
    } else {
        tracing::Level::WARN
    };
    use std::io::IsTerminal;
    // Colour only for a person watching; log files and journald get plain text.
    let builder = tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_max_level(level);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub fn run(
    root: &Path,
    args: ServeArgs,
    registry: &RegistryArgs,
    runtime: &RuntimeArgs,
) -> anyhow::Result<()> {
    let socket = match &args.addr {
        Some(a) => parse_addr(a)?,
        None => PathBuf::from(DEFAULT_SOCKET),
    };
    let tcp = match (args.tcp, args.tls_cert, args.tls_key, args.tls_client_ca) {
        (None, None, None, None) => None,
        (Some(addr), Some(cert), Some(key), Some(client_ca)) => Some(TcpConfig {
            addr,
            cert,
            key,
            client_ca,
        }),
        (None, ..) => bail!("--tls-cert, --tls-key and --tls-client-ca need --tcp"),
        _ => bail!(
            "--tcp needs --tls-cert, --tls-key and --tls-client-ca (clients must present certificates)"
        ),
    };
    let max_parallelism = args
        .max_parallelism
        .unwrap_or_else(|| buildd_engine::solver::SolverConfig::default().max_parallelism);
    let max_build_parallelism = args
        .max_build_parallelism
        .unwrap_or_else(|| Limits::default_build_parallelism(max_parallelism));
    if max_parallelism == 0 || max_build_parallelism == 0 || args.max_concurrent_builds == 0 {
        bail!(
            "--max-parallelism, --max-build-parallelism and --max-concurrent-builds must be at least 1"
        );
    }
    let socket_group = args.group.as_deref().map(group_id).transpose()?;
    let mut runtime = runtime.config();
    runtime.network_fallback_host = args.network_fallback == Some(NetworkFallback::Host);
    let config = ServeConfig {
        root: root.to_owned(),
        socket,
        socket_group,
        tcp,
        policy: Policy {
            entitlements: args.allow_insecure_entitlement.into_iter().collect(),
        },
        limits: Limits {
            max_parallelism,
            max_parallel_runs: args.max_parallel_runs.max(1),
            max_build_parallelism: max_build_parallelism.min(max_parallelism),
            max_concurrent_builds: args.max_concurrent_builds,
            context: ContextLimits {
                max_files: args.max_context_files,
                max_bytes: args.max_context_bytes,
            },
            max_graph_vertices: args.max_graph_vertices,
        },
        // Every build talks to registries with its client's credentials, asked over
        // its session; the daemon's own docker config is never used.
        registry: Some(registry.client_with(Arc::new(buildd_registry::NoCredentials))?),
        runtime,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let result = runtime.block_on(buildd_daemon::serve::serve(config));
    // Tasks still holding the engine go now, so the root is closed cleanly.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    result.map_err(Into::into)
}

/// A group name or numeric id → gid.
fn group_id(group: &str) -> anyhow::Result<u32> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    let name = std::ffi::CString::new(group).context("--group: a name holds no NUL")?;
    // SAFETY: getgrnam reads the group database and returns a pointer into static
    // storage (or null), which is read before any other call could reuse it.
    let entry = unsafe { libc::getgrnam(name.as_ptr()) };
    if entry.is_null() {
        bail!("--group {group}: no such group");
    }
    // SAFETY: non-null, points at a valid `group` as above.
    Ok(unsafe { (*entry).gr_gid })
}
