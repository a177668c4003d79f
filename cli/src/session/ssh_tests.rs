use std::os::unix::net::UnixListener as StdListener;

use buildd_proto::control::{ClientMessage, SshData, SshOpen, client_message::Msg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::mpsc;

use super::*;

#[test]
fn specs_need_a_socket_and_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let _listener = StdListener::bind(&sock).unwrap();
    let key = dir.path().join("id_ed25519");
    std::fs::write(&key, "key").unwrap();

    let mut agents = SshAgents::default();
    agents.add_spec(&format!("={}", sock.display())).unwrap();
    agents
        .add_spec(&format!("work={}", sock.display()))
        .unwrap();
    assert_eq!(agents.ids(), ["default", "work"]);
    assert_eq!(agents.socket("default"), Some(sock.as_path()));

    let err = |spec: String| {
        SshAgents::default()
            .add_spec(&spec)
            .unwrap_err()
            .to_string()
    };
    let not_socket = err(format!("default={}", key.display()));
    assert!(
        not_socket.contains("is not a socket") && not_socket.contains("ssh-add"),
        "{not_socket}"
    );
    assert!(err(format!("k={},{}", key.display(), key.display())).contains("ssh-add"));
    assert!(err("k=/nonexistent/agent".into()).contains("cannot stat /nonexistent/agent"));
    assert!(err("k=".into()).contains("empty socket path"));
    let twice = agents
        .add_spec(&format!("work={}", sock.display()))
        .unwrap_err()
        .to_string();
    assert!(twice.contains("\"work\" given twice"), "{twice}");
}

/// An agent that answers each connection's line with `pong:<line>` and closes.
fn pong_agent(path: &Path) {
    let listener = UnixListener::bind(path).unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut line = Vec::new();
                conn.read_to_end(&mut line).await.unwrap();
                conn.write_all(b"pong:").await.unwrap();
                conn.write_all(&line).await.unwrap();
            });
        }
    });
}

async fn next_ssh(rx: &mut mpsc::Receiver<ClientMessage>) -> Msg {
    rx.recv().await.unwrap().msg.unwrap()
}

#[tokio::test]
async fn connections_are_relayed_to_the_agent_until_both_ends_close() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    pong_agent(&sock);
    let mut agents = SshAgents::default();
    agents
        .add_spec(&format!("default={}", sock.display()))
        .unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let mut forwards = Forwards::default();
    let open = |id: u64, ssh_id: &str| SshOpen {
        id,
        ssh_id: ssh_id.to_owned(),
    };

    forwards
        .open(&agents, open(7, "default"), tx.clone())
        .unwrap();
    // Sent before the agent connection is up: buffered, not lost.
    forwards
        .data(SshData {
            conn_id: 7,
            data: b"ping\n".to_vec(),
            eof: true,
        })
        .await;
    let mut reply = Vec::new();
    loop {
        let Msg::Ssh(d) = next_ssh(&mut rx).await else {
            panic!("expected agent data");
        };
        assert_eq!(d.conn_id, 7);
        reply.extend_from_slice(&d.data);
        if d.eof {
            break;
        }
    }
    assert_eq!(reply, b"pong:ping\n");
    assert!(forwards.conns.is_empty());

    let unknown = forwards
        .open(&agents, open(8, "work"), tx.clone())
        .unwrap_err();
    assert!(unknown.contains("no ssh agent \"work\""), "{unknown}");
}

#[tokio::test]
async fn an_unreachable_agent_is_answered_with_an_error_naming_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let listener = StdListener::bind(&sock).unwrap();
    let mut agents = SshAgents::default();
    agents
        .add_spec(&format!("default={}", sock.display()))
        .unwrap();
    // The agent went away after the command line was checked.
    drop(listener);
    std::fs::remove_file(&sock).unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let mut forwards = Forwards::default();
    forwards
        .open(
            &agents,
            SshOpen {
                id: 3,
                ssh_id: "default".into(),
            },
            tx,
        )
        .unwrap();
    let Msg::Error(e) = next_ssh(&mut rx).await else {
        panic!("expected an error");
    };
    assert_eq!(e.request_id, 3);
    assert!(
        e.message
            .contains("ssh agent \"default\": cannot connect to"),
        "{}",
        e.message
    );
}
