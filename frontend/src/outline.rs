//! `buildd debug outline`: the stages of a Dockerfile and the build args it
//! declares, with their defaults and lines, without compiling it.

use std::fmt;

use crate::error::Error;
use crate::instructions::{self, Command};
use crate::{BuildOptions, parser};

/// A stage as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlineStage {
    pub index: usize,
    /// The `AS` name, lower-cased.
    pub name: Option<String>,
    /// The base as written (variables unexpanded).
    pub base: String,
    pub line: u32,
    /// The comment above FROM when it reads `# <name> <description>`.
    pub description: Option<String>,
}

/// One declared build arg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlineArg {
    pub name: String,
    /// The default as written; `None` when declared without one.
    pub default: Option<String>,
    /// The value `BuildOptions::build_args` gives it, if any.
    pub value: Option<String>,
    pub line: u32,
    /// The stage declaring it; `None` for a global ARG before the first FROM.
    pub stage: Option<usize>,
    /// The comment above ARG when it reads `# <name> <description>`.
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outline {
    pub stages: Vec<OutlineStage>,
    pub args: Vec<OutlineArg>,
    /// Index of the stage a build would produce (`--target` or the last).
    pub target: Option<usize>,
}

/// BuildKit's description comments: the comment's first word is the name.
fn description(comments: &[String], name: &str) -> Option<String> {
    let last = comments.last()?;
    let (first, rest) = last.split_once(char::is_whitespace)?;
    (first == name).then(|| rest.trim().to_owned())
}

pub(crate) fn outline(dockerfile: &str, opts: &BuildOptions) -> Result<Outline, Error> {
    let ast = parser::parse_named(dockerfile, &opts.dockerfile_name)?;
    let mut out = Outline {
        stages: Vec::new(),
        args: Vec::new(),
        target: None,
    };
    for node in &ast.nodes {
        let ins = instructions::parse(node).map_err(|e| Error {
            file: opts.dockerfile_name.clone(),
            line: e.span.start.line,
            column: e.span.start.column,
            instruction: e.known.then(|| node.name()),
            message: e.message,
        })?;
        match ins.command {
            Command::From(f) => {
                let name = f.name.map(|(lower, _)| lower);
                out.stages.push(OutlineStage {
                    index: out.stages.len(),
                    description: name.as_deref().and_then(|n| description(&node.comments, n)),
                    name,
                    base: f.base.to_owned(),
                    line: node.span.start.line,
                });
            }
            Command::Arg(args) => {
                for (name, default) in args {
                    out.args.push(OutlineArg {
                        value: opts.build_args.get(name).cloned(),
                        description: description(&node.comments, name),
                        name: name.to_owned(),
                        default: default.map(str::to_owned),
                        line: node.span.start.line,
                        stage: out.stages.len().checked_sub(1),
                    });
                }
            }
            _ => {}
        }
    }
    out.target = match &opts.target {
        Some(t) => {
            let lower = t.to_ascii_lowercase();
            let found = out
                .stages
                .iter()
                .rposition(|s| s.name.as_deref() == Some(lower.as_str()));
            Some(found.ok_or_else(|| Error {
                file: opts.dockerfile_name.clone(),
                line: 0,
                column: 0,
                instruction: None,
                message: format!("target stage {t:?} could not be found"),
            })?)
        }
        None => out.stages.len().checked_sub(1),
    };
    Ok(out)
}

impl fmt::Display for Outline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage_label = |i: usize| match &self.stages[i].name {
            Some(n) => n.clone(),
            None => format!("stage-{i}"),
        };
        writeln!(f, "STAGES")?;
        for s in &self.stages {
            let mark = if Some(s.index) == self.target {
                "*"
            } else {
                " "
            };
            write!(
                f,
                "{mark} {:<3} {:<20} line {:<5} FROM {}",
                s.index,
                stage_label(s.index),
                s.line,
                s.base
            )?;
            if let Some(d) = &s.description {
                write!(f, "  # {d}")?;
            }
            writeln!(f)?;
        }
        if self.args.is_empty() {
            return Ok(());
        }
        writeln!(f, "\nARGS")?;
        for a in &self.args {
            let scope = a.stage.map_or_else(|| "global".to_owned(), stage_label);
            let default = match &a.default {
                Some(d) => format!("{}={d}", a.name),
                None => a.name.clone(),
            };
            write!(f, "  {default:<32} line {:<5} {scope}", a.line)?;
            if let Some(v) = &a.value {
                write!(f, "  (set to {v:?})")?;
            }
            if let Some(d) = &a.description {
                write!(f, "  # {d}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
