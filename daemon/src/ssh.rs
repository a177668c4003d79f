//! SSH agents forwarded by the build's client over its session: each connection a
//! RUN makes to its agent socket becomes an `SshOpen` and a stream of `SshData`
//! both ways. The daemon only relays bytes; the keys never leave the client.

use std::io;
use std::sync::Arc;

use buildd_engine::session::{AgentStream, SessionError, SshStore};
use buildd_proto::control::{SshData, SshOpen, server_message::Msg};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, try_join};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::sync::oneshot;

use crate::session::{Answer, Answers, Session};

/// Largest `SshData` payload sent, as control.proto promises.
pub const MAX_CHUNK: usize = 64 * 1024;

/// The SSH agents of one build's client.
#[derive(Debug)]
pub struct SessionSsh {
    pub session: Arc<Session>,
}

impl SessionSsh {
    /// The client's agents, or `None` when its hello announced none.
    pub fn for_session(session: &Arc<Session>) -> Option<Self> {
        (!session.ssh_ids().is_empty()).then(|| SessionSsh {
            session: session.clone(),
        })
    }
}

impl SshStore for SessionSsh {
    fn has<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, SessionError>> {
        let found = self.session.ssh_ids().iter().any(|s| s == id);
        async move { Ok(found) }.boxed()
    }

    fn connect<'a>(&'a self, id: &'a str) -> BoxFuture<'a, io::Result<Box<dyn AgentStream>>> {
        async move {
            let (near, far) = tokio::io::duplex(MAX_CHUNK);
            let (opened_tx, opened_rx) = oneshot::channel();
            let session = self.session.clone();
            let ssh_id = id.to_owned();
            // The relay owns the session handle: it outlives this call, and ends
            // when both directions have or when either side goes away.
            tokio::spawn(async move {
                let conn_id = session.next_id();
                let open = Msg::SshOpen(SshOpen {
                    id: conn_id,
                    ssh_id: ssh_id.clone(),
                });
                let answers = match session.request(conn_id, open).await {
                    Ok(answers) => {
                        let _ = opened_tx.send(Ok(()));
                        answers
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                match relay(&session, conn_id, answers, far).await {
                    Ok(()) => {}
                    // A cancelled build, or a run that hung up first: nothing to tell.
                    Err(RelayError::Session(crate::session::SessionError::Closed(_))) => {}
                    Err(RelayError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
                        tracing::debug!(session = %session.id(), ssh_id, conn_id, "ssh agent connection: the run hung up");
                    }
                    Err(e) => {
                        tracing::warn!(session = %session.id(), ssh_id, conn_id, "ssh agent connection: {e}");
                    }
                }
            });
            match opened_rx.await {
                Ok(Ok(())) => Ok(Box::new(near) as Box<dyn AgentStream>),
                Ok(Err(e)) => Err(io::Error::new(io::ErrorKind::NotConnected, e)),
                Err(_) => Err(io::Error::other("ssh agent relay ended before opening")),
            }
        }
        .boxed()
    }
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error(transparent)]
    Session(#[from] crate::session::SessionError),
    #[error("relaying to the run: {0}")]
    Io(#[from] io::Error),
}

/// Pumps one forwarded connection: the run's bytes to the client, the client's to
/// the run, each direction until its end. Dropping `far` on return closes the
/// run's side.
async fn relay(
    session: &Session,
    conn_id: u64,
    mut answers: Answers<'_>,
    far: DuplexStream,
) -> Result<(), RelayError> {
    let (reader, writer) = tokio::io::split(far);
    let up = upstream(session, conn_id, reader);
    let down = downstream(&mut answers, writer);
    // The first failure of either direction ends both.
    try_join(up, down).await.map(|_| ())
}

async fn upstream(
    session: &Session,
    conn_id: u64,
    mut reader: ReadHalf<DuplexStream>,
) -> Result<(), RelayError> {
    let mut buf = vec![0u8; MAX_CHUNK];
    loop {
        let n = reader.read(&mut buf).await?;
        session
            .send(Msg::Ssh(SshData {
                conn_id,
                data: buf[..n].to_vec(),
                eof: n == 0,
            }))
            .await?;
        if n == 0 {
            return Ok(());
        }
    }
}

async fn downstream(
    answers: &mut Answers<'_>,
    mut writer: WriteHalf<DuplexStream>,
) -> Result<(), RelayError> {
    loop {
        let data = match answers.next().await? {
            Answer::Ssh(data) => data,
            _ => return Err(answers.unexpected().into()),
        };
        writer.write_all(&data.data).await?;
        if data.eof {
            writer.shutdown().await?;
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use buildd_proto::control::{
        ClientMessage, ServerMessage, SessionHello, client_message, server_message,
    };
    use tokio::sync::{mpsc, watch};
    use tokio_stream::wrappers::ReceiverStream;

    use super::*;
    use crate::peer::Peer;
    use crate::session::SessionRegistry;

    fn client(msg: client_message::Msg) -> Result<ClientMessage, tonic::Status> {
        Ok(ClientMessage { msg: Some(msg) })
    }

    async fn open(
        ssh_ids: &[&str],
    ) -> (
        Arc<Session>,
        mpsc::Sender<Result<ClientMessage, tonic::Status>>,
        mpsc::Receiver<ServerMessage>,
        watch::Sender<bool>,
    ) {
        let registry = Arc::new(SessionRegistry::default());
        let (tx, rx) = mpsc::channel(16);
        tx.send(client(client_message::Msg::Hello(SessionHello {
            session_id: "s".into(),
            locals: vec![],
            ssh_ids: ssh_ids.iter().map(|s| s.to_string()).collect(),
        })))
        .await
        .unwrap();
        let (stop_tx, stop_rx) = watch::channel(false);
        let out = registry
            .open(ReceiverStream::new(rx), Peer::Uid(0), stop_rx)
            .await
            .unwrap();
        (registry.get("s", &Peer::Uid(0)).unwrap(), tx, out, stop_tx)
    }

    async fn next(out: &mut mpsc::Receiver<ServerMessage>) -> server_message::Msg {
        out.recv().await.unwrap().msg.unwrap()
    }

    #[tokio::test]
    async fn bytes_and_half_closes_are_routed_per_connection() {
        let (session, tx, mut out, _stop) = open(&["default"]).await;
        let ssh = SessionSsh::for_session(&session).unwrap();
        assert!(ssh.has("default").await.unwrap());
        assert!(!ssh.has("other").await.unwrap());

        let mut a = ssh.connect("default").await.unwrap();
        let server_message::Msg::SshOpen(open_a) = next(&mut out).await else {
            panic!("expected an open");
        };
        assert_eq!(open_a.ssh_id, "default");
        let mut b = ssh.connect("default").await.unwrap();
        let server_message::Msg::SshOpen(open_b) = next(&mut out).await else {
            panic!("expected an open");
        };
        assert_ne!(open_a.id, open_b.id);

        // The run writes and half-closes; the client sees it on that connection.
        a.write_all(b"request").await.unwrap();
        a.shutdown().await.unwrap();
        let server_message::Msg::Ssh(d) = next(&mut out).await else {
            panic!("expected data");
        };
        assert_eq!(
            (d.conn_id, d.data.as_slice(), d.eof),
            (open_a.id, &b"request"[..], false)
        );
        let server_message::Msg::Ssh(d) = next(&mut out).await else {
            panic!("expected eof");
        };
        assert_eq!((d.conn_id, d.data.len(), d.eof), (open_a.id, 0, true));

        // The client's answers reach the right connection, and its eof ends it.
        for (conn_id, data, eof) in [
            (open_b.id, &b"to-b"[..], false),
            (open_a.id, &b"answer"[..], true),
        ] {
            tx.send(client(client_message::Msg::Ssh(SshData {
                conn_id,
                data: data.to_vec(),
                eof,
            })))
            .await
            .unwrap();
        }
        let mut got = Vec::new();
        a.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"answer");
        let mut got = [0u8; 4];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"to-b");

        // A client that cannot serve the open ends that connection only.
        tx.send(client(client_message::Msg::Error(
            buildd_proto::control::SessionError {
                request_id: open_b.id,
                message: "agent unreachable".into(),
            },
        )))
        .await
        .unwrap();
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn large_transfers_go_in_bounded_chunks_both_ways() {
        let (session, tx, mut out, _stop) = open(&["default"]).await;
        let ssh = SessionSsh::for_session(&session).unwrap();
        let conn = ssh.connect("default").await.unwrap();
        let server_message::Msg::SshOpen(opened) = next(&mut out).await else {
            panic!("expected an open");
        };
        let payload: Vec<u8> = (0..(1 << 20) + 17).map(|i| (i % 251) as u8).collect();
        let (mut run_reader, mut run_writer) = tokio::io::split(conn);
        // The run writes while the client echoes: neither direction waits for
        // the other to finish.
        let sent = payload.clone();
        let writer = tokio::spawn(async move {
            run_writer.write_all(&sent).await.unwrap();
            run_writer.shutdown().await.unwrap();
        });
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            run_reader.read_to_end(&mut got).await.unwrap();
            got
        });
        loop {
            let server_message::Msg::Ssh(d) = next(&mut out).await else {
                panic!("expected data");
            };
            assert_eq!(d.conn_id, opened.id);
            assert!(d.data.len() <= MAX_CHUNK, "{}", d.data.len());
            tx.send(client(client_message::Msg::Ssh(d.clone())))
                .await
                .unwrap();
            if d.eof {
                break;
            }
        }
        writer.await.unwrap();
        assert_eq!(reader.await.unwrap(), payload);
    }

    #[tokio::test]
    async fn no_announced_agents_means_no_store_and_a_closed_session_refuses() {
        let (session, _tx, _out, _stop) = open(&[]).await;
        assert!(SessionSsh::for_session(&session).is_none());

        let (session, tx, mut out, stop) = open(&["default"]).await;
        let ssh = SessionSsh::for_session(&session).unwrap();
        let mut conn = ssh.connect("default").await.unwrap();
        assert!(matches!(
            next(&mut out).await,
            server_message::Msg::SshOpen(_)
        ));
        // The session ends: the run's connection reads its end.
        stop.send_replace(true);
        drop(tx);
        session.closed().await;
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        let err = match ssh.connect("default").await {
            Ok(_) => panic!("connected over a closed session"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("closed"), "{err}");
    }
}
