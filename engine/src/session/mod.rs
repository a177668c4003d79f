//! What a build takes from its client besides files: secrets (`RUN
//! --mount=type=secret`) and SSH agents (`RUN --mount=type=ssh`).
//!
//! Both are asked for while a RUN is prepared, through traits, so that the one-shot
//! CLI can serve them from local files and sockets ([`local`]) and the daemon from
//! its client over the session. Values never enter a cache key: like BuildKit, a
//! RUN is cached across changes of its secrets' values.

pub mod local;

use std::fmt;
use std::io;

use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};
use zeroize::Zeroizing;

pub use local::{LocalSecrets, LocalSsh};

/// A secret's bytes, wiped from memory when dropped.
pub type SecretValue = Zeroizing<Vec<u8>>;

/// BuildKit's limit on the size of one secret.
pub use buildd_specs::MAX_SECRET_SIZE;

/// The id BuildKit gives an SSH agent a mount or `--ssh` does not name.
pub const DEFAULT_SSH_ID: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("secret {id:?}: {message}")]
    Secret { id: String, message: String },
    #[error("ssh agent {id:?}: {message}")]
    Ssh { id: String, message: String },
    #[error("invalid {flag} {spec:?}: {message}")]
    Spec {
        flag: &'static str,
        spec: String,
        message: String,
    },
}

/// Where a build's secrets come from.
pub trait SecretStore: Send + Sync + fmt::Debug {
    /// The value of secret `id`, or `None` when the client has no such secret.
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<SecretValue>, SessionError>>;
}

/// A connection to an SSH agent.
pub trait AgentStream: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> AgentStream for T {}

/// Where a build's SSH agents are. A RUN gets a socket of its own per agent mount;
/// each connection the process makes to it is forwarded to a new connection from
/// [`SshStore::connect`], so the agent itself may be local or across a session.
pub trait SshStore: Send + Sync + fmt::Debug {
    /// Whether agent `id` is available.
    fn has<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, SessionError>>;

    /// A new connection to agent `id`.
    fn connect<'a>(&'a self, id: &'a str) -> BoxFuture<'a, io::Result<Box<dyn AgentStream>>>;
}
