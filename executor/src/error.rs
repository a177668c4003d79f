//! Errors of the executor.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Why a run could not be carried out. A process that ran and exited non-zero is not an
/// error: it is reported through [`crate::ExitStatus`].
#[derive(Debug, Error)]
pub enum ExecError {
    #[error("container runtime {path} not found")]
    RuntimeNotFound { path: PathBuf },
    #[error("failed to {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to mount overlay at {target}: {source}")]
    Mount {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid run spec: {0}")]
    InvalidSpec(String),
    #[error("container runtime {runtime}: {message}")]
    Runtime { runtime: PathBuf, message: String },
    #[error("network setup failed: {0}")]
    Network(String),
    #[error("secrets: {0}")]
    Secret(String),
}

impl ExecError {
    /// Builds a closure for `map_err` that names the operation and the path.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| ExecError::Io { op, path, source }
    }
}
