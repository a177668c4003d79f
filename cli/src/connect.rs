//! Opening a gRPC channel to the daemon: over a unix socket, or TCP with TLS and a
//! client certificate (the daemon's TCP listener requires one).

use std::io;
use std::path::{Path, PathBuf};

use buildd_proto::control::control_client::ControlClient;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::addr::Addr;

/// Exported outputs and listings can be large; the default 4 MiB limit is not
/// meant for them.
const MAX_MESSAGE: usize = 64 << 20;

/// `--tlscacert`, `--tlscert`, `--tlskey`.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    fn is_empty(&self) -> bool {
        self.ca.is_none() && self.cert.is_none() && self.key.is_none()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot read {what} {path}")]
    TlsFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("--tlscert and --tlskey go together")]
    TlsPair,
    #[error("TLS is only for tcp:// addresses, not {0}")]
    TlsOnUnix(Addr),
    #[error("cannot connect to buildd at {addr}")]
    Transport {
        addr: Addr,
        #[source]
        source: tonic::transport::Error,
    },
}

impl ConnectError {
    /// Whether nobody listens at the address (no socket, or a stale one), as
    /// opposed to a daemon that answered badly.
    pub fn is_unreachable(&self) -> bool {
        let ConnectError::Transport { source, .. } = self else {
            return false;
        };
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source);
        while let Some(e) = cause {
            if let Some(io) = e.downcast_ref::<io::Error>() {
                return matches!(
                    io.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                );
            }
            cause = e.source();
        }
        false
    }
}

pub type Client = ControlClient<Channel>;

pub async fn connect(addr: &Addr, tls: &TlsFiles) -> Result<Client, ConnectError> {
    let transport = |source| ConnectError::Transport {
        addr: addr.clone(),
        source,
    };
    let channel = match addr {
        Addr::Unix(path) => {
            if !tls.is_empty() {
                return Err(ConnectError::TlsOnUnix(addr.clone()));
            }
            let path = path.clone();
            // The URI is required by the HTTP layer but never dialled.
            Endpoint::from_static("http://buildd")
                .connect_with_connector(tower::service_fn(move |_| {
                    let path = path.clone();
                    async move { Ok::<_, io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
                }))
                .await
                .map_err(transport)?
        }
        Addr::Tcp { host, port } => {
            let authority = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            let scheme = if tls.is_empty() { "http" } else { "https" };
            let mut endpoint =
                Endpoint::from_shared(format!("{scheme}://{authority}")).map_err(transport)?;
            if !tls.is_empty() {
                endpoint = endpoint
                    .tls_config(tls_config(host, tls)?)
                    .map_err(transport)?;
            }
            endpoint.connect().await.map_err(transport)?
        }
    };
    Ok(ControlClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE))
}

fn tls_config(host: &str, tls: &TlsFiles) -> Result<ClientTlsConfig, ConnectError> {
    let mut config = ClientTlsConfig::new().domain_name(host);
    if let Some(ca) = &tls.ca {
        config = config.ca_certificate(Certificate::from_pem(read(ca, "CA certificate")?));
    }
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            config = config.identity(Identity::from_pem(
                read(cert, "client certificate")?,
                read(key, "client key")?,
            ));
        }
        (None, None) => {}
        _ => return Err(ConnectError::TlsPair),
    }
    Ok(config)
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, ConnectError> {
    std::fs::read(path).map_err(|source| ConnectError::TlsFile {
        what,
        path: path.to_owned(),
        source,
    })
}
