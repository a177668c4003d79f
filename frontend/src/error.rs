//! Errors and warnings, located in the Dockerfile.

use std::fmt;

/// A failed parse or compile, pointing at the instruction at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct Error {
    pub file: String,
    /// 1-based line of the instruction (or of the offending line); 0 when the
    /// error concerns the whole file.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// Upper-cased instruction keyword, when the error belongs to one.
    pub instruction: Option<String>,
    pub message: String,
}

impl Error {
    fn render(&self) -> String {
        if self.line == 0 {
            // Not tied to a line, e.g. an unknown `--target`.
            return format!("{}: {}", self.file, self.message);
        }
        match &self.instruction {
            Some(i) => format!(
                "{}:{}:{}: {i}: {}",
                self.file, self.line, self.column, self.message
            ),
            None => format!(
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            ),
        }
    }
}

/// A lint finding that does not stop the build; `rule` uses BuildKit's check names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub rule: String,
    pub line: u32,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.rule, self.message)
    }
}

/// Everything found wrong with a Dockerfile, from [`crate::check`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    /// Sorted by line and column.
    pub errors: Vec<Error>,
    pub warnings: Vec<Warning>,
}
