//! Where registry credentials come from.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// A username and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub secret: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret, e.g. in a panic message or a debug log.
        f.debug_struct("Credential")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("docker config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("docker config {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("docker config {path}: auth for {registry}: {reason}")]
    BadAuth {
        path: PathBuf,
        registry: String,
        reason: String,
    },
    #[error("credential helper {helper} not found in {searched}")]
    HelperNotFound { helper: String, searched: String },
    #[error("credential helper {helper}: {source}")]
    HelperSpawn {
        helper: PathBuf,
        source: std::io::Error,
    },
    #[error("credential helper {helper} failed for {registry}: {message}")]
    HelperFailed {
        helper: PathBuf,
        registry: String,
        message: String,
    },
    #[error("credential helper {helper} for {registry}: bad output: {source}")]
    HelperOutput {
        helper: PathBuf,
        registry: String,
        source: serde_json::Error,
    },
    #[error("credential lookup was interrupted")]
    Interrupted,
    /// A source other than a config file or helper, e.g. a remote client, failed.
    #[error("credentials for {registry}: {message}")]
    Unavailable { registry: String, message: String },
}

/// A source of credentials, asked once per registry host by a [`crate::Client`].
///
/// `registry` is the host the client talks to (`registry-1.docker.io` is asked as
/// `docker.io`), including a mirror's host. Implementations may block (e.g. run a
/// credential helper); the client calls them off the async runtime.
pub trait CredentialSource: Send + Sync {
    fn credential(&self, registry: &str) -> Result<Option<Credential>, CredentialError>;
}

/// Anonymous access only.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCredentials;

impl CredentialSource for NoCredentials {
    fn credential(&self, _registry: &str) -> Result<Option<Credential>, CredentialError> {
        Ok(None)
    }
}

/// Fixed credentials per registry host, e.g. from command-line flags.
#[derive(Debug, Clone, Default)]
pub struct StaticCredentials(pub BTreeMap<String, Credential>);

impl CredentialSource for StaticCredentials {
    fn credential(&self, registry: &str) -> Result<Option<Credential>, CredentialError> {
        Ok(self.0.get(registry).cloned())
    }
}
