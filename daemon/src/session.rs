//! Client sessions: the daemon's side of the `Session` stream.
//!
//! A session is opened by the client and lives as long as its stream. The daemon
//! sends it requests ([`ServerMessage`]) through a [`Session`] handle and awaits the
//! answers that name the request's id. The registry maps session ids to handles so
//! that a Solve can find the session its client opened.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use buildd_proto::control::{ClientMessage, ServerMessage, client_message, server_message};
use futures_util::{Stream, StreamExt};
use tokio::sync::{mpsc, watch};

use crate::peer::Peer;

/// Longest session id accepted; ids are names, not payloads.
const MAX_SESSION_ID: usize = 256;
/// Requests the daemon may have queued for one client before senders wait.
const OUTBOX: usize = 64;
/// Answers buffered per request before the session's reader waits for the
/// consumer: this is the flow control of file uploads.
const ANSWERS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session stream must start with a hello message")]
    NoHello,
    #[error("invalid session id {0:?}")]
    InvalidId(String),
    #[error("session {0:?} is already open")]
    Duplicate(String),
    #[error("no session {0:?}: open the Session stream before Solve")]
    Missing(String),
    #[error("session {0:?} belongs to another client")]
    Forbidden(String),
    #[error("session {0:?} closed")]
    Closed(String),
    #[error("session {session:?}: the client failed: {message}")]
    Client { session: String, message: String },
    #[error("session {session:?}: unexpected answer to request {id}")]
    Unexpected { session: String, id: u64 },
}

/// An answer the client gave to one request.
#[derive(Debug)]
pub enum Answer {
    Stats(buildd_proto::control::StatList),
    File(buildd_proto::control::FileData),
    Secret(buildd_proto::control::SecretResponse),
    Credentials(buildd_proto::control::CredentialsResponse),
    ExportAck(buildd_proto::control::ExportAck),
    /// Agent bytes on a forwarded SSH connection, named by the open's id.
    Ssh(buildd_proto::control::SshData),
}

/// Open sessions by id.
#[derive(Default)]
pub struct SessionRegistry {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

impl SessionRegistry {
    /// The session `id`, if `caller` opened it: a session's secrets, agents and
    /// credentials serve only the client that brought them.
    pub fn get(&self, id: &str, caller: &Peer) -> Result<Arc<Session>, SessionError> {
        let session = self
            .sessions
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| SessionError::Missing(id.to_owned()))?;
        if session.owner != *caller {
            tracing::warn!(session = %id, %caller, owner = %session.owner, "refused a session to another client");
            return Err(SessionError::Forbidden(id.to_owned()));
        }
        Ok(session)
    }

    /// Number of open sessions.
    pub fn len(&self) -> usize {
        self.sessions.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Opens the session a client stream announces in its first message. Returns
    /// the stream of requests to send the client; the session stays registered
    /// until the client's stream ends or `shutdown` fires.
    pub async fn open<S>(
        self: &Arc<Self>,
        mut incoming: S,
        owner: Peer,
        shutdown: watch::Receiver<bool>,
    ) -> Result<mpsc::Receiver<ServerMessage>, SessionError>
    where
        S: Stream<Item = Result<ClientMessage, tonic::Status>> + Send + Unpin + 'static,
    {
        let hello = match incoming.next().await {
            Some(Ok(ClientMessage {
                msg: Some(client_message::Msg::Hello(hello)),
            })) => hello,
            _ => return Err(SessionError::NoHello),
        };
        let id = hello.session_id;
        if id.is_empty() || id.len() > MAX_SESSION_ID || id.chars().any(char::is_control) {
            return Err(SessionError::InvalidId(id));
        }
        let (out_tx, out_rx) = mpsc::channel(OUTBOX);
        let (closed_tx, _) = watch::channel(false);
        let session = Arc::new(Session {
            id: id.clone(),
            owner,
            locals: hello.locals,
            ssh_ids: hello.ssh_ids,
            out: out_tx,
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            closed: closed_tx,
        });
        {
            let mut sessions = self.sessions.lock().unwrap();
            if sessions.contains_key(&id) {
                return Err(SessionError::Duplicate(id));
            }
            sessions.insert(id.clone(), session.clone());
        }
        tracing::debug!(session = %id, "session opened");
        let registry = self.clone();
        tokio::spawn(async move {
            session.read(incoming, shutdown).await;
            session.close();
            let mut sessions = registry.sessions.lock().unwrap();
            if sessions.get(&id).is_some_and(|s| Arc::ptr_eq(s, &session)) {
                sessions.remove(&id);
            }
            tracing::debug!(session = %id, "session closed");
        });
        Ok(out_rx)
    }
}

/// One client's session: send requests, await answers.
pub struct Session {
    id: String,
    /// The caller that opened it; only it may use it.
    owner: Peer,
    locals: Vec<String>,
    ssh_ids: Vec<String>,
    out: mpsc::Sender<ServerMessage>,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, mpsc::Sender<Result<Answer, SessionError>>>>,
    closed: watch::Sender<bool>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("id", &self.id).finish()
    }
}

impl Session {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The local sources the client said it can serve.
    pub fn locals(&self) -> &[String] {
        &self.locals
    }

    /// The SSH agents the client said it forwards.
    pub fn ssh_ids(&self) -> &[String] {
        &self.ssh_ids
    }

    /// A fresh request id, unique within this session.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends a request and returns the stream of answers naming `id`. The request
    /// is forgotten when the returned [`Answers`] is dropped.
    pub async fn request(
        &self,
        id: u64,
        msg: server_message::Msg,
    ) -> Result<Answers<'_>, SessionError> {
        let (tx, rx) = mpsc::channel(ANSWERS);
        self.pending.lock().unwrap().insert(id, tx);
        let answers = Answers {
            session: self,
            ids: vec![id],
            rx,
        };
        self.send(msg).await?;
        Ok(answers)
    }

    /// Routes answers naming `id` to `answers` too (a request that continues
    /// another, e.g. a file request under its listing).
    pub fn also_route(&self, answers: &mut Answers<'_>, id: u64) {
        let tx = {
            let pending = self.pending.lock().unwrap();
            answers
                .ids
                .first()
                .and_then(|first| pending.get(first).cloned())
        };
        if let Some(tx) = tx {
            self.pending.lock().unwrap().insert(id, tx);
            answers.ids.push(id);
        }
    }

    /// Sends a message that expects no answer of its own.
    pub async fn send(&self, msg: server_message::Msg) -> Result<(), SessionError> {
        if *self.closed.borrow() {
            return Err(SessionError::Closed(self.id.clone()));
        }
        self.out
            .send(ServerMessage { msg: Some(msg) })
            .await
            .map_err(|_| SessionError::Closed(self.id.clone()))
    }

    /// Resolves once the client's stream has ended.
    pub async fn closed(&self) {
        let mut rx = self.closed.subscribe();
        let _ = rx.wait_for(|closed| *closed).await;
    }

    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    fn close(&self) {
        self.closed.send_replace(true);
        // Dropping the senders ends every waiting request with "closed".
        self.pending.lock().unwrap().clear();
    }

    async fn read<S>(&self, mut incoming: S, mut shutdown: watch::Receiver<bool>)
    where
        S: Stream<Item = Result<ClientMessage, tonic::Status>> + Unpin,
    {
        loop {
            let msg = tokio::select! {
                msg = incoming.next() => msg,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            let msg = match msg {
                Some(Ok(ClientMessage { msg: Some(msg) })) => msg,
                Some(Ok(ClientMessage { msg: None })) => continue,
                Some(Err(status)) => {
                    tracing::debug!(session = %self.id, %status, "session stream failed");
                    return;
                }
                None => return,
            };
            use client_message::Msg;
            let (id, answer) = match msg {
                Msg::Hello(_) => continue,
                Msg::Stats(s) => (s.request_id, Ok(Answer::Stats(s))),
                Msg::File(f) => (f.request_id, Ok(Answer::File(f))),
                Msg::Secret(s) => (s.request_id, Ok(Answer::Secret(s))),
                Msg::Credentials(c) => (c.request_id, Ok(Answer::Credentials(c))),
                Msg::ExportAck(a) => (a.request_id, Ok(Answer::ExportAck(a))),
                Msg::Ssh(d) => (d.conn_id, Ok(Answer::Ssh(d))),
                Msg::Error(e) => (
                    e.request_id,
                    Err(SessionError::Client {
                        session: self.id.clone(),
                        message: e.message,
                    }),
                ),
            };
            let tx = self.pending.lock().unwrap().get(&id).cloned();
            match tx {
                // A receiver that went away (a cancelled build) is not an error.
                Some(tx) => {
                    let _ = tx.send(answer).await;
                }
                None => tracing::debug!(session = %self.id, id, "answer to no pending request"),
            }
        }
    }
}

/// The answers to one request, in the order the client sent them.
pub struct Answers<'a> {
    session: &'a Session,
    ids: Vec<u64>,
    rx: mpsc::Receiver<Result<Answer, SessionError>>,
}

impl Answers<'_> {
    /// The next answer; an error when the session closed or the client failed.
    pub async fn next(&mut self) -> Result<Answer, SessionError> {
        match self.rx.recv().await {
            Some(answer) => answer,
            None => Err(SessionError::Closed(self.session.id.clone())),
        }
    }

    /// The next answer if one has arrived already.
    pub fn try_next(&mut self) -> Option<Result<Answer, SessionError>> {
        self.rx.try_recv().ok()
    }

    pub fn unexpected(&self) -> SessionError {
        SessionError::Unexpected {
            session: self.session.id.clone(),
            id: self.ids[0],
        }
    }
}

impl Drop for Answers<'_> {
    fn drop(&mut self) {
        let mut pending = self.session.pending.lock().unwrap();
        for id in &self.ids {
            pending.remove(id);
        }
    }
}
