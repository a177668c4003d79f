//! The client side of the `Session` stream: what stays on this machine (context
//! files, secrets, registry credentials, SSH agent connections) handed out on the
//! daemon's request, and exported outputs received.

pub mod creds;
pub mod export;
pub mod files;
pub mod secrets;
pub mod ssh;
pub mod unpack;
pub mod walk;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use buildd_proto::control::{
    ClientMessage, CredentialsResponse, ExportAck, ExportData, FileRequest, SecretResponse,
    ServerMessage, SessionError as WireError, SessionHello, Stat, StatList, SyncRequest,
    client_message::Msg, server_message,
};
use tokio::sync::{mpsc, oneshot};

use crate::connect::Client;
use export::{ExportError, ExportSink, ExportTarget};
use files::Listing;
use secrets::Secrets;
use ssh::{Forwards, SshAgents};

/// Stats per `StatList` message: large listings go in chunks well below the
/// daemon's message size cap (16 MiB).
const STATS_PER_CHUNK: usize = 4096;
/// Path and link target bytes per `StatList` message, so chunks of long paths stay
/// small too (one entry is at most 8 KiB of them).
const STAT_BYTES_PER_CHUNK: usize = 1 << 20;

/// `stats` cut into `StatList` chunks of at most [`STATS_PER_CHUNK`] entries and
/// about [`STAT_BYTES_PER_CHUNK`] bytes of names.
fn stat_chunks(stats: &[Stat]) -> Vec<&[Stat]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, s) in stats.iter().enumerate() {
        let n = s.path.len() + s.linkname.len();
        if i > start && (i - start == STATS_PER_CHUNK || bytes + n > STAT_BYTES_PER_CHUNK) {
            out.push(&stats[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += n;
    }
    if start < stats.len() {
        out.push(&stats[start..]);
    }
    out
}

/// What this client serves over one session.
#[derive(Debug)]
pub struct SessionConfig {
    pub id: String,
    /// Local source name ("context", "dockerfile") → directory.
    pub locals: BTreeMap<String, PathBuf>,
    pub secrets: Secrets,
    pub ssh: SshAgents,
    pub docker_config: Option<PathBuf>,
    /// Per exporter of the SolveRequest, in order.
    pub exports: Vec<ExportTarget>,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session with the daemon failed")]
    Rpc(#[from] tonic::Status),
    #[error(transparent)]
    Export(#[from] ExportError),
}

/// A session the daemon has registered: Solve may name it from now on.
pub struct OpenSession {
    inbound: tonic::Streaming<ServerMessage>,
    state: State,
}

/// Opens the session and waits until the daemon has registered it.
pub async fn open(mut client: Client, config: SessionConfig) -> Result<OpenSession, SessionError> {
    let (tx, rx) = mpsc::channel::<ClientMessage>(32);
    tx.send(message(Msg::Hello(SessionHello {
        session_id: config.id.clone(),
        locals: config.locals.keys().cloned().collect(),
        ssh_ids: config.ssh.ids(),
    })))
    .await
    .expect("receiver alive");
    let outbound =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    // The daemon answers with headers once it has read the hello and registered
    // the session.
    let inbound = client.session(outbound).await?.into_inner();
    Ok(OpenSession {
        inbound,
        state: State {
            config,
            tx,
            listings: HashMap::new(),
            sinks: HashMap::new(),
            rejected: HashSet::new(),
            forwards: Forwards::default(),
            failure: None,
        },
    })
}

impl OpenSession {
    /// Serves the daemon's requests until it ends the session or `close` fires
    /// (the build is over). Failures of exports are returned after being reported
    /// to the daemon.
    pub async fn serve(self, close: oneshot::Receiver<()>) -> Result<(), SessionError> {
        let OpenSession {
            mut inbound,
            mut state,
        } = self;
        tokio::pin!(close);
        loop {
            let msg = tokio::select! {
                msg = inbound.message() => msg?,
                _ = &mut close => break,
            };
            let Some(msg) = msg.and_then(|m| m.msg) else {
                break;
            };
            state.handle(msg).await;
        }
        match state.failure {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

struct State {
    config: SessionConfig,
    tx: mpsc::Sender<ClientMessage>,
    listings: HashMap<u64, Arc<Listing>>,
    sinks: HashMap<u64, ExportSink>,
    rejected: HashSet<u64>,
    forwards: Forwards,
    failure: Option<ExportError>,
}

impl State {
    async fn handle(&mut self, msg: server_message::Msg) {
        match msg {
            server_message::Msg::Sync(req) => self.sync(req).await,
            server_message::Msg::Files(req) => self.files(req),
            server_message::Msg::Secret(req) => {
                let reply = match self.config.secrets.get(&req.secret_id) {
                    Ok(value) => Msg::Secret(SecretResponse {
                        request_id: req.id,
                        found: value.is_some(),
                        value: value.unwrap_or_default(),
                    }),
                    Err(e) => error(req.id, e.to_string()),
                };
                self.send(reply).await;
            }
            server_message::Msg::Credentials(req) => {
                let c = creds::lookup(self.config.docker_config.as_deref(), &req.host);
                self.send(Msg::Credentials(CredentialsResponse {
                    request_id: req.id,
                    username: c.username,
                    secret: c.secret,
                }))
                .await;
            }
            server_message::Msg::Export(data) => self.export(data).await,
            server_message::Msg::SshOpen(req) => {
                let id = req.id;
                let opened = self.forwards.open(&self.config.ssh, req, self.tx.clone());
                if let Err(msg) = opened {
                    self.send(error(id, msg)).await;
                }
            }
            server_message::Msg::Ssh(data) => self.forwards.data(data).await,
        }
    }

    async fn send(&self, msg: Msg) {
        // A closed stream ends the loop on its own.
        let _ = self.tx.send(message(msg)).await;
    }

    async fn sync(&mut self, req: SyncRequest) {
        let Some(root) = self.config.locals.get(&req.name).cloned() else {
            let msg = format!("no local source named {:?} in this session", req.name);
            return self.send(error(req.id, msg)).await;
        };
        let filter = walk::Filter {
            include: req.include_patterns,
            exclude: req.exclude_patterns,
            follow: req.follow_paths,
        };
        let walked = {
            let root = root.clone();
            tokio::task::spawn_blocking(move || walk::walk(&root, &filter)).await
        };
        let stats = match walked {
            Ok(Ok(stats)) => stats,
            Ok(Err(e)) => return self.send(error(req.id, chain(&e))).await,
            Err(e) => return self.send(error(req.id, e.to_string())).await,
        };
        let mut chunks = stat_chunks(&stats).into_iter().peekable();
        if chunks.peek().is_none() {
            self.send(Msg::Stats(StatList {
                request_id: req.id,
                stats: Vec::new(),
                last: true,
            }))
            .await;
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            self.send(Msg::Stats(StatList {
                request_id: req.id,
                stats: chunk.to_vec(),
                last,
            }))
            .await;
        }
        self.listings
            .insert(req.id, Arc::new(Listing { root, stats }));
    }

    /// Files are read and sent on a blocking thread, so secrets and exports are
    /// served meanwhile.
    fn files(&self, req: FileRequest) {
        let tx = self.tx.clone();
        let Some(listing) = self.listings.get(&req.request_id).cloned() else {
            let msg = format!("no listing for sync request {}", req.request_id);
            tokio::spawn(async move { tx.send(message(error(req.id, msg))).await });
            return;
        };
        tokio::task::spawn_blocking(move || {
            if let Err(e) = files::send(&listing, req.id, &req.indexes, &tx) {
                let _ = tx.blocking_send(message(error(req.id, chain(&e))));
            }
        });
    }

    async fn export(&mut self, data: ExportData) {
        if self.rejected.contains(&data.id) {
            return;
        }
        if !self.sinks.contains_key(&data.id) {
            let target = self
                .config
                .exports
                .get(data.exporter as usize)
                .unwrap_or(&ExportTarget::None);
            match ExportSink::start(target, data.exporter) {
                Ok(sink) => {
                    self.sinks.insert(data.id, sink);
                }
                Err(e) => {
                    // Acknowledged once; the rest of that stream is dropped.
                    self.rejected.insert(data.id);
                    return self.ack(data.id, Err(e)).await;
                }
            }
        }
        let sink = self.sinks.get(&data.id).expect("inserted above");
        if !data.data.is_empty() {
            sink.write(data.data).await;
        }
        if data.eof {
            let sink = self.sinks.remove(&data.id).expect("present");
            let result = sink.finish().await;
            self.ack(data.id, result).await;
        }
    }

    async fn ack(&mut self, id: u64, result: Result<(), ExportError>) {
        let error = match result {
            Ok(()) => String::new(),
            Err(e) => {
                let text = chain(&e);
                self.failure.get_or_insert(e);
                text
            }
        };
        self.send(Msg::ExportAck(ExportAck {
            request_id: id,
            error,
        }))
        .await;
    }
}

fn message(msg: Msg) -> ClientMessage {
    ClientMessage { msg: Some(msg) }
}

fn error(request_id: u64, message: String) -> Msg {
    Msg::Error(WireError {
        request_id,
        message,
    })
}

/// An error and its causes on one line, for the daemon's error messages.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod chunk_tests {
    use super::*;

    fn stat(path_len: usize) -> Stat {
        Stat {
            path: "p".repeat(path_len),
            ..Default::default()
        }
    }

    #[test]
    fn listings_are_chunked_by_count_and_by_name_bytes() {
        assert!(stat_chunks(&[]).is_empty());
        let short: Vec<Stat> = (0..STATS_PER_CHUNK * 2 + 1).map(|_| stat(10)).collect();
        let sizes: Vec<usize> = stat_chunks(&short).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [STATS_PER_CHUNK, STATS_PER_CHUNK, 1]);
        // 4 KiB paths: 256 per MiB.
        let long: Vec<Stat> = (0..600).map(|_| stat(4096)).collect();
        let sizes: Vec<usize> = stat_chunks(&long).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [256, 256, 88]);
    }
}
