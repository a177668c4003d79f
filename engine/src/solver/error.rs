use std::fmt;
use std::sync::Arc;

use super::graph::{GraphError, VertexLocation};
use crate::cache::IndexError;

/// An operation failed; the solver adds which vertex it was.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct OpError {
    pub message: String,
}

impl OpError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SolveError {
    #[error("{}", VertexDisplay { name, location: location.as_ref(), message })]
    Vertex {
        name: String,
        location: Option<VertexLocation>,
        message: String,
    },
    #[error("invalid definition: {0}")]
    Graph(#[from] GraphError),
    #[error("{0}")]
    Index(Arc<IndexError>),
    #[error("build cancelled")]
    Cancelled,
    #[error("internal error in {name}: {message}")]
    Internal { name: String, message: String },
}

impl From<IndexError> for SolveError {
    fn from(e: IndexError) -> Self {
        SolveError::Index(Arc::new(e))
    }
}

struct VertexDisplay<'a> {
    name: &'a str,
    location: Option<&'a VertexLocation>,
    message: &'a str,
}

impl fmt::Display for VertexDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(loc) = self.location {
            write!(f, "{loc}: ")?;
        }
        write!(f, "{}: {}", self.name, self.message)
    }
}
