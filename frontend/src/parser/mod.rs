//! The Dockerfile parser: text to an [`Ast`] of instructions with exact source
//! spans. It follows BuildKit's `frontend/dockerfile/parser` line by line, so the
//! same text splits into the same instructions and arguments.

mod directives;
mod dump;
mod heredoc;
mod line_parsers;
mod lines;
mod print;
mod split;

pub use directives::Directive;
pub use dump::go_quote;
pub use heredoc::{Heredoc, chomp as chomp_heredoc, parse_marker as parse_heredoc_marker};

use crate::error::{Error, Warning};

/// A 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

/// A source range; `end` is the last character, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: Position,
    pub end: Position,
}

/// A `--name[=value]` flag as written before an instruction's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The flag with quotes removed, e.g. `--from=build`.
    pub text: String,
    pub span: Span,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The keyword as written (`copy`, `COPY`...).
    pub keyword: String,
    pub flags: Vec<Flag>,
    /// Arguments as BuildKit's AST holds them: one shell-form string, the JSON
    /// array items, whitespace-separated words, or for ENV and LABEL
    /// key/value/separator triples (separator `=` or empty for `KEY value`).
    pub args: Vec<String>,
    /// Arguments were given in exec (JSON array) form.
    pub json: bool,
    /// The instruction ONBUILD wraps.
    pub sub: Option<Box<Node>>,
    /// The logical line: continuations joined, comments inside them removed.
    pub original: String,
    pub span: Span,
    /// Comment lines directly above the instruction.
    pub comments: Vec<String>,
    /// Heredoc bodies, in the order of their markers (RUN, COPY, ADD).
    pub heredocs: Vec<Heredoc>,
}

impl Node {
    /// Upper-cased keyword.
    pub fn name(&self) -> String {
        self.keyword.to_ascii_uppercase()
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ast {
    pub directives: Vec<Directive>,
    /// The escape character (`\` unless `# escape=` says otherwise).
    pub escape: char,
    pub nodes: Vec<Node>,
    /// Parser-level lint warnings (empty continuation lines).
    pub warnings: Vec<Warning>,
}

impl Ast {
    /// The `# syntax=` directive. buildd runs no external frontend: one that is
    /// not the Dockerfile frontend gets a warning (`compile::syntax`).
    pub fn syntax(&self) -> Option<&str> {
        self.directive("syntax")
    }

    pub fn directive(&self, name: &str) -> Option<&str> {
        self.directives
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.value.as_str())
    }

    /// BuildKit's AST dump: one `(keyword ["flags"] "arg"...)` line per instruction.
    pub fn dump(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("({})\n", n.dump()))
            .collect()
    }
}

/// Parses Dockerfile text; the first problem found is the error. Errors carry
/// `file` = "Dockerfile"; [`crate::compile`] renames them to the configured
/// file name.
pub fn parse(dockerfile: &str) -> Result<Ast, Error> {
    lines::parse(dockerfile, "Dockerfile")
}

/// Parses Dockerfile text without stopping at the first problem: the tree of
/// every instruction that parsed, and one error per instruction (or directive)
/// that did not, in file order. [`parse`] fails with the first of them.
pub fn parse_with_diagnostics(dockerfile: &str) -> (Ast, Vec<Error>) {
    lines::parse_all(dockerfile, "Dockerfile")
}

pub(crate) use lines::{parse as parse_named, parse_all as parse_all_named};
