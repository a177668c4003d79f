//! SSH mounts: a socket of the run's own, bind-mounted at the target with the
//! owner and mode the mount asks for, whose every connection is forwarded to a
//! new connection to the build's agent. The host's agent socket itself is never
//! exposed, and an agent across the daemon's session works the same way.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use buildd_proto::llb::SshOpt;
use tokio::net::UnixListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::session::SshStore;
use crate::solver::OpError;

/// A listening socket forwarding to an agent; stops and removes itself on drop.
pub(crate) struct AgentProxy {
    dir: PathBuf,
    pub(crate) socket: PathBuf,
    accept: JoinHandle<()>,
}

impl AgentProxy {
    /// Listens at a new socket under `<root>/ssh/` for agent `id` of `store`.
    pub(crate) fn start(
        root: &Path,
        store: Arc<dyn SshStore>,
        id: String,
        opt: &SshOpt,
    ) -> Result<Self, OpError> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let fail = |what: &str, path: &Path, e: io::Error| {
            OpError::new(format!("ssh mount: {what} {}: {e}", path.display()))
        };
        let parent = root.join("ssh");
        fs::create_dir_all(&parent).map_err(|e| fail("create", &parent, e))?;
        super::clear_stale_once(&parent, |p| {
            if let Err(e) = fs::remove_dir_all(p) {
                tracing::warn!("remove stale {}: {e}", p.display());
            }
        });
        let dir = parent.join(super::run_dir_name(&SEQ));
        fs::create_dir(&dir).map_err(|e| fail("create", &dir, e))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| fail("chmod", &dir, e))?;
        let socket = dir.join("agent.sock");
        let listener = bind(&dir).map_err(|e| fail("listen at", &socket, e))?;
        std::os::unix::fs::chown(&socket, Some(opt.uid), Some(opt.gid))
            .and_then(|()| {
                fs::set_permissions(&socket, fs::Permissions::from_mode(opt.mode & 0o777))
            })
            .map_err(|e| fail("set up", &socket, e))?;
        let accept = tokio::spawn(forward(listener, store, id));
        Ok(AgentProxy {
            dir,
            socket,
            accept,
        })
    }
}

impl Drop for AgentProxy {
    fn drop(&mut self) {
        // Aborting the loop drops its JoinSet, which aborts every connection.
        self.accept.abort();
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            tracing::warn!("remove {}: {e}", self.dir.display());
        }
    }
}

/// Binds `dir/agent.sock` through `/proc/self/fd`, so a long root path cannot
/// exceed the 108 bytes a socket address holds.
fn bind(dir: &Path) -> io::Result<UnixListener> {
    let handle = fs::File::open(dir)?;
    let short = format!("/proc/self/fd/{}/agent.sock", handle.as_raw_fd());
    UnixListener::bind(short)
}

async fn forward(listener: UnixListener, store: Arc<dyn SshStore>, id: String) {
    let mut conns = JoinSet::new();
    loop {
        let (mut client, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("ssh agent {id:?}: accept: {e}");
                return;
            }
        };
        let (store, id) = (store.clone(), id.clone());
        conns.spawn(async move {
            let result = async {
                let mut agent = store.connect(&id).await?;
                tokio::io::copy_bidirectional(&mut client, &mut agent).await
            };
            if let Err(e) = result.await {
                tracing::debug!("ssh agent {id:?}: {e}");
            }
        });
        // Reap finished connections so a long run does not accumulate them.
        while conns.try_join_next().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::session::LocalSsh;

    #[tokio::test]
    async fn connections_are_forwarded_to_the_agent() {
        let dir = tempfile::tempdir().unwrap();
        let agent_path = dir.path().join("agent");
        let agent = UnixListener::bind(&agent_path).unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = agent.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4];
                    conn.read_exact(&mut buf).await.unwrap();
                    assert_eq!(&buf, b"ping");
                    conn.write_all(b"pong").await.unwrap();
                });
            }
        });
        let mut ssh = LocalSsh::default();
        ssh.add_spec(&format!("default={}", agent_path.display()))
            .unwrap();
        // SAFETY: plain getters.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let opt = SshOpt {
            uid,
            gid,
            mode: 0o640,
            ..Default::default()
        };
        let proxy = AgentProxy::start(dir.path(), Arc::new(ssh), "default".into(), &opt).unwrap();
        assert_eq!(fs::metadata(&proxy.socket).unwrap().mode() & 0o777, 0o640);
        // Two connections: each gets its own connection to the agent.
        for _ in 0..2 {
            let mut c = tokio::net::UnixStream::connect(&proxy.socket)
                .await
                .unwrap();
            c.write_all(b"ping").await.unwrap();
            let mut buf = [0u8; 4];
            c.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"pong");
        }
        let socket = proxy.socket.clone();
        drop(proxy);
        assert!(!socket.exists());
    }
}
