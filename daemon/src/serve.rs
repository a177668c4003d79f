//! Serving the Control API: a unix socket, optionally TCP with mutual TLS, and a
//! graceful shutdown on SIGTERM or SIGINT (stop accepting, cancel running builds,
//! flush the engine).

use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use buildd_engine::solver::SolverConfig;
use buildd_engine::{Engine, EngineOptions};
use buildd_proto::control::control_server::ControlServer as ControlService;
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio::sync::watch;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::control_server::ControlServer;
use crate::daemon::{Daemon, Limits, Policy};

/// The socket a root daemon listens on by default.
pub const DEFAULT_SOCKET: &str = "/run/buildd/buildd.sock";
/// How long in-flight calls get to end after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub root: PathBuf,
    pub socket: PathBuf,
    /// The group given access to the socket (mode 0660); `None`: root only (0600).
    pub socket_group: Option<u32>,
    pub tcp: Option<TcpConfig>,
    pub limits: Limits,
    pub policy: Policy,
    /// Where base images the local store lacks are pulled from; `None`: nowhere.
    pub registry: Option<Arc<buildd_registry::Client>>,
    /// The OCI runtime and snapshotter RUN steps use.
    pub runtime: buildd_engine::ops::RuntimeConfig,
}

#[derive(Debug, Clone)]
pub struct TcpConfig {
    pub addr: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("unsupported address {0:?}: want unix:///path/to/socket")]
    Address(String),
    #[error(transparent)]
    Root(#[from] buildd_engine::root::RootError),
    #[error("another daemon answers at {0}")]
    InUse(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tls: {0}")]
    Tls(String),
    #[error("serving: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// `unix://PATH` (or a bare absolute path) → the socket path.
pub fn parse_addr(addr: &str) -> Result<PathBuf, ServeError> {
    let path = addr.strip_prefix("unix://").unwrap_or(addr);
    if !path.starts_with('/') {
        return Err(ServeError::Address(addr.to_owned()));
    }
    Ok(PathBuf::from(path))
}

/// Serves until SIGTERM or SIGINT.
pub async fn serve(config: ServeConfig) -> Result<(), ServeError> {
    let (tx, rx) = watch::channel(false);
    let signals = tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down");
        tx.send_replace(true);
    });
    let result = serve_until(config, rx).await;
    signals.abort();
    result
}

/// Serves until `shutdown` becomes true.
pub async fn serve_until(
    config: ServeConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ServeError> {
    let engine = tokio::task::block_in_place(|| {
        Engine::open_with(
            &config.root,
            EngineOptions {
                solver: SolverConfig {
                    max_parallelism: config.limits.max_parallelism,
                    max_parallel_runs: config.limits.max_parallel_runs,
                },
                registry: config.registry.clone(),
                runtime: config.runtime.clone(),
            },
        )
    })?;
    let engine = Arc::new(engine);
    let rt = engine.runtime_info();
    for warning in &rt.warnings {
        tracing::warn!("{warning}");
    }
    // TCP first: once the socket answers, every listener is up.
    let tcp = match &config.tcp {
        Some(t) => Some((
            TcpListener::bind(t.addr)
                .await
                .map_err(|source| ServeError::Io {
                    path: PathBuf::from(t.addr.to_string()),
                    source,
                })?,
            tls_config(t)?,
        )),
        None => None,
    };
    let unix = bind_unix(&config.socket, config.socket_group).await?;
    let daemon = Arc::new(Daemon::new(
        engine.clone(),
        config.limits.clone(),
        config.policy.clone(),
        shutdown.clone(),
    ));
    let durability = daemon.durability.clone();
    let flusher = {
        let (durability, engine) = (durability.clone(), engine.clone());
        tokio::spawn(async move { durability.run(&engine).await })
    };
    tracing::info!(
        socket = %config.socket.display(),
        root = %config.root.display(),
        runtime = %rt.runtime.as_deref().unwrap_or(Path::new("none")).display(),
        snapshotter = rt.snapshotter,
        network = %rt.network,
        entitlements = ?config.policy.entitlements,
        "serving"
    );
    let service = {
        let daemon = daemon.clone();
        move || {
            ControlService::new(ControlServer::new(daemon.clone()))
                .max_decoding_message_size(crate::daemon::MAX_MESSAGE_BYTES)
        }
    };
    let stop = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let unix_server = Server::builder()
        .add_service(service())
        .serve_with_incoming_shutdown(UnixListenerStream::new(unix), stop(shutdown.clone()));
    let tcp_server = async {
        match tcp {
            Some((listener, tls)) => {
                tracing::info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving tcp with mutual tls");
                Server::builder()
                    .tls_config(tls)?
                    .add_service(service())
                    .serve_with_incoming_shutdown(
                        TcpListenerStream::new(listener),
                        stop(shutdown.clone()),
                    )
                    .await
            }
            None => Ok(()),
        }
    };
    let mut served = Box::pin(async { tokio::try_join!(unix_server, tcp_server) });
    let mut rx = shutdown.clone();
    let result = tokio::select! {
        r = &mut served => r.map(drop),
        _ = rx.wait_for(|s| *s) => {
            // In-flight calls were told to stop; give them a moment to say so.
            match tokio::time::timeout(DRAIN, &mut served).await {
                Ok(r) => r.map(drop),
                Err(_) => {
                    tracing::warn!("calls still running after {DRAIN:?}; exiting anyway");
                    Ok(())
                }
            }
        }
    };
    // The servers hold the daemon; both go before the engine is flushed.
    drop(served);
    let _ = std::fs::remove_file(&config.socket);
    drop(daemon);
    // What the last builds wrote: mirrors, layers, then the records.
    flusher.abort();
    durability.flush(&engine).await;
    result.map_err(ServeError::from)
}

/// Binds the unix socket: parent directory created, a stale socket replaced only
/// if nobody answers on it. The socket is bound inside a fresh 0700 directory,
/// given its owner and mode (0600, or 0660 for `group`) there and only then
/// renamed into place, so nobody else can connect in between.
async fn bind_unix(path: &Path, group: Option<u32>) -> Result<UnixListener, ServeError> {
    let io = |source| ServeError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "exists and is not a socket",
            )));
        }
        if UnixStream::connect(path).await.is_ok() {
            return Err(ServeError::InUse(path.to_owned()));
        }
        std::fs::remove_file(path).map_err(io)?;
    }
    let parent = path.parent().unwrap_or(Path::new("/"));
    let staging = tempfile::Builder::new()
        .prefix(".buildd-socket-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(parent)
        .map_err(io)?;
    let staged = staging.path().join("socket");
    let listener = UnixListener::bind(&staged).map_err(io)?;
    if let Some(gid) = group {
        std::os::unix::fs::chown(&staged, None, Some(gid)).map_err(io)?;
    }
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode)).map_err(io)?;
    std::fs::rename(&staged, path).map_err(io)?;
    Ok(listener)
}

fn tls_config(t: &TcpConfig) -> Result<ServerTlsConfig, ServeError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| ServeError::Io {
            path: p.to_owned(),
            source,
        })
    };
    let (cert, key, ca) = (read(&t.cert)?, read(&t.key)?, read(&t.client_ca)?);
    if !String::from_utf8_lossy(&ca).contains("BEGIN CERTIFICATE") {
        return Err(ServeError::Tls(format!(
            "{}: no PEM certificate",
            t.client_ca.display()
        )));
    }
    Ok(ServerTlsConfig::new()
        .identity(Identity::from_pem(cert, key))
        .client_ca_root(Certificate::from_pem(ca))
        .client_auth_optional(false))
}
