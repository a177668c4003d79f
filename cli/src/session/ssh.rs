//! `--ssh default|ID[=SOCKET]`, in buildx's syntax: SSH agents of this machine
//! that a RUN with `--mount=type=ssh` may use. Each connection the RUN makes is
//! opened by the daemon over the session and relayed to a new connection to the
//! local agent socket; keys never leave the agent.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use buildd_proto::control::{ClientMessage, SshData, SshOpen, client_message::Msg};
use futures_util::future::try_join;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

/// The id buildx gives an agent `--ssh` does not name.
pub const DEFAULT_ID: &str = "default";
/// Largest `SshData` payload sent, as control.proto promises.
const MAX_CHUNK: usize = 64 * 1024;
/// The daemon's chunks buffered per connection while the agent is slow or still
/// being connected to.
const CONN_BUFFER: usize = 64;

const KEY_HINT: &str =
    "private key files are not supported: load them into an agent with ssh-add and give its socket";

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("invalid --ssh {spec:?}: {message}")]
    Spec { spec: String, message: String },
}

/// Agent sockets by id.
#[derive(Debug, Default, Clone)]
pub struct SshAgents {
    agents: BTreeMap<String, PathBuf>,
}

impl SshAgents {
    /// Adds an `--ssh` spec: `ID[=SOCKET]`, where a missing SOCKET means
    /// `$SSH_AUTH_SOCK` and an empty ID means "default". The socket must exist now,
    /// so a typo fails before the build starts.
    pub fn add_spec(&mut self, spec: &str) -> Result<(), SshError> {
        let bad = |message: String| SshError::Spec {
            spec: spec.to_owned(),
            message,
        };
        let (id, path) = match spec.split_once('=') {
            Some((id, path)) => (id, Some(path)),
            None => (spec, None),
        };
        let id = if id.is_empty() { DEFAULT_ID } else { id };
        if id.chars().any(|c| c.is_control() || c == ',') {
            return Err(bad(format!("invalid agent id {id:?}")));
        }
        let socket = match path {
            None => std::env::var_os("SSH_AUTH_SOCK")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .ok_or_else(|| {
                    bad("SSH_AUTH_SOCK is not set: start an agent or give ID=SOCKET".to_owned())
                })?,
            // buildx's list of key files.
            Some(paths) if paths.contains(',') => return Err(bad(KEY_HINT.to_owned())),
            Some("") => return Err(bad("empty socket path".to_owned())),
            Some(path) => PathBuf::from(path),
        };
        let meta = std::fs::metadata(&socket)
            .map_err(|e| bad(format!("cannot stat {}: {e}", socket.display())))?;
        if !meta.file_type().is_socket() {
            return Err(bad(format!(
                "{} is not a socket; {KEY_HINT}",
                socket.display()
            )));
        }
        if self.agents.contains_key(id) {
            return Err(bad(format!("agent {id:?} given twice")));
        }
        self.agents.insert(id.to_owned(), socket);
        Ok(())
    }

    /// The ids to announce in the session's hello, sorted.
    pub fn ids(&self) -> Vec<String> {
        self.agents.keys().cloned().collect()
    }

    fn socket(&self, id: &str) -> Option<&Path> {
        self.agents.get(id).map(PathBuf::as_path)
    }
}

/// The forwarded connections of one session: where the daemon's bytes go, by
/// connection id.
#[derive(Debug, Default)]
pub struct Forwards {
    conns: HashMap<u64, mpsc::Sender<SshData>>,
}

impl Forwards {
    /// Starts connection `req.id` to agent `req.ssh_id`; its bytes go out on `tx`.
    /// An error is the message to answer the open with.
    pub fn open(
        &mut self,
        agents: &SshAgents,
        req: SshOpen,
        tx: mpsc::Sender<ClientMessage>,
    ) -> Result<(), String> {
        let Some(socket) = agents.socket(&req.ssh_id) else {
            return Err(format!(
                "no ssh agent {:?} in this session (give it with --ssh {0}=SOCKET)",
                req.ssh_id
            ));
        };
        if self.conns.contains_key(&req.id) {
            return Err(format!("ssh connection {} is already open", req.id));
        }
        let (conn_tx, conn_rx) = mpsc::channel(CONN_BUFFER);
        self.conns.insert(req.id, conn_tx);
        tokio::spawn(forward(socket.to_owned(), req, conn_rx, tx));
        Ok(())
    }

    /// Hands the daemon's bytes to their connection. Bytes for a connection that
    /// has ended are dropped: the daemon learns of the end on its own.
    pub async fn data(&mut self, data: SshData) {
        let conn_id = data.conn_id;
        let eof = data.eof;
        let Some(conn) = self.conns.get(&conn_id) else {
            return;
        };
        if conn.send(data).await.is_err() || eof {
            // Nothing more comes for it from the daemon, or nobody reads it.
            self.conns.remove(&conn_id);
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ForwardError {
    #[error("ssh agent {id:?}: cannot connect to {}: {source}", path.display())]
    Connect {
        id: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ssh agent {id:?}: {source}")]
    Io { id: String, source: std::io::Error },
    #[error("session closed")]
    Closed,
}

/// Relays one connection until both directions have ended. A failure is reported
/// to the daemon, which then closes the RUN's side.
async fn forward(
    socket: PathBuf,
    req: SshOpen,
    from_daemon: mpsc::Receiver<SshData>,
    tx: mpsc::Sender<ClientMessage>,
) {
    let result = relay(&socket, &req, from_daemon, &tx).await;
    if let Err(e) = result
        && !matches!(e, ForwardError::Closed)
    {
        let _ = tx
            .send(super::message(super::error(req.id, e.to_string())))
            .await;
    }
}

async fn relay(
    socket: &Path,
    req: &SshOpen,
    mut from_daemon: mpsc::Receiver<SshData>,
    tx: &mpsc::Sender<ClientMessage>,
) -> Result<(), ForwardError> {
    let io = |source| ForwardError::Io {
        id: req.ssh_id.clone(),
        source,
    };
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| ForwardError::Connect {
            id: req.ssh_id.clone(),
            path: socket.to_owned(),
            source,
        })?;
    let (mut reader, mut writer) = stream.into_split();
    let up = async {
        let mut buf = vec![0u8; MAX_CHUNK];
        loop {
            let n = reader.read(&mut buf).await.map_err(io)?;
            let data = SshData {
                conn_id: req.id,
                data: buf[..n].to_vec(),
                eof: n == 0,
            };
            tx.send(super::message(Msg::Ssh(data)))
                .await
                .map_err(|_| ForwardError::Closed)?;
            if n == 0 {
                return Ok(());
            }
        }
    };
    let down = async {
        // None: the session ended, and this connection with it.
        while let Some(data) = from_daemon.recv().await {
            writer.write_all(&data.data).await.map_err(io)?;
            if data.eof {
                writer.shutdown().await.map_err(io)?;
                return Ok(());
            }
        }
        Err(ForwardError::Closed)
    };
    try_join(up, down).await.map(|_| ())
}

#[cfg(test)]
#[path = "ssh_tests.rs"]
mod tests;
