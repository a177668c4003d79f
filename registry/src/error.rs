//! Registry errors: what was being done to which image, and what went wrong.

use std::fmt;
use std::path::PathBuf;

use buildd_proto::Digest;

use crate::credentials::CredentialError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pulling,
    Pushing,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Pulling => "pulling",
            Action::Pushing => "pushing",
        })
    }
}

/// A failed registry operation, e.g. `pulling 127.0.0.1:5000/busybox: layer
/// sha256:…: digest mismatch (got sha256:…)`.
#[derive(Debug)]
pub struct Error {
    pub action: Action,
    /// `registry/repository` of the image.
    pub image: String,
    pub kind: ErrorKind,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.action, self.image, self.kind)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.kind)
    }
}

/// What went wrong; `what` names the object at fault (`layer sha256:…`, `manifest v1`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    #[error("{url}: {detail}")]
    Http { url: String, detail: String },
    #[error("authentication required: {registry} asks for credentials and none are configured")]
    AuthRequired { registry: String },
    #[error("unauthorized: {registry} rejected the credentials of user {username:?}")]
    Unauthorized { registry: String, username: String },
    #[error("access denied by {registry}{detail}")]
    Denied { registry: String, detail: String },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{what}: {url} answered {status}{detail}")]
    Status {
        what: String,
        url: String,
        status: u16,
        detail: String,
        /// The response's Retry-After, for a 429 or 503.
        retry_after: Option<std::time::Duration>,
    },
    #[error("{what}: digest mismatch (got {actual})")]
    DigestMismatch { what: String, actual: Digest },
    #[error("{what}: size mismatch (expected {expected} bytes, got {actual})")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    /// A body over one of the caps in [`crate::limits`]: `size` is the announced
    /// Content-Length, or (`at_least`) what had arrived when the cap was passed.
    #[error("{what}: {}{size} bytes, over the {cap} cap of {limit} bytes", if *at_least { "at least " } else { "" })]
    TooLarge {
        what: String,
        cap: &'static str,
        limit: u64,
        size: u64,
        at_least: bool,
    },
    #[error("no manifest for platform {wanted} in index {index} (it has {available})")]
    NoPlatform {
        wanted: String,
        index: Digest,
        available: String,
    },
    #[error("{what}: unsupported media type {media_type:?}")]
    UnsupportedMediaType { what: String, media_type: String },
    #[error("{what}: invalid json: {source}")]
    InvalidJson {
        what: String,
        source: serde_json::Error,
    },
    #[error("descriptor digest {0:?} is not of the form sha256:<64 hex digits>")]
    BadDigest(String),
    #[error("token server {realm}: {detail}")]
    Token { realm: String, detail: String },
    #[error("{registry}: unsupported authentication challenge {challenge:?}")]
    Challenge { registry: String, challenge: String },
    #[error("credentials for {registry}: {source}")]
    Credentials {
        registry: String,
        source: CredentialError,
    },
    #[error("{what}: {path}: {source}")]
    Source {
        what: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {what}: {source}")]
    Sink {
        what: String,
        source: std::io::Error,
    },
    /// A transient failure that persisted through every try.
    #[error("{last} (after {attempts} attempts)")]
    Attempts { attempts: u32, last: Box<ErrorKind> },
    #[error("{what}: {url}: bad upload location {location:?}")]
    Location {
        what: String,
        url: String,
        location: String,
    },
}

impl ErrorKind {
    /// The error itself, or the last one of an operation tried several times.
    pub fn last(&self) -> &ErrorKind {
        match self {
            ErrorKind::Attempts { last, .. } => last,
            other => other,
        }
    }

    pub(crate) fn during(self, action: Action, image: String) -> Error {
        Error {
            action,
            image,
            kind: self,
        }
    }
}

/// How an error response names an object: `layer sha256:…`, `config sha256:…`.
pub(crate) fn blob_what(media_type: &str, digest: &str) -> String {
    let kind = if media_type.contains("config") {
        "config"
    } else if media_type.contains("layer") || media_type.contains("rootfs.diff") {
        "layer"
    } else if media_type.contains("manifest") || media_type.contains("index") {
        "manifest"
    } else {
        "blob"
    };
    format!("{kind} {digest}")
}
