//! Shell-style word expansion as Dockerfile instructions use it (BuildKit's
//! `frontend/dockerfile/shell`): variables, quotes and escapes, without running
//! anything.
//!
//! Supported: `$V`, `${V}`, `${V:-w}`, `${V-w}`, `${V:+w}`, `${V+w}`,
//! `${V:?w}`, `${V?w}`, and the pattern forms `${V#p}`, `${V##p}`, `${V%p}`,
//! `${V%%p}`, `${V/p/r}`, `${V//p/r}`.

mod lex;
mod pattern;

use std::collections::{BTreeMap, BTreeSet};

/// Variables visible to an expansion.
pub trait Env {
    fn get(&self, name: &str) -> Option<&str>;
}

impl Env for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

/// Later entries win, so a list can be layered (ARGs, then ENV).
impl Env for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A word that could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {word:?}: {reason}")]
pub struct ShellError {
    pub word: String,
    pub reason: String,
}

/// The result of expanding one word.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expanded {
    pub value: String,
    /// Variables referenced without a fallback that were not set.
    pub unmatched: BTreeSet<String>,
}

/// Expands words with a given escape character (`\` or `` ` ``).
#[derive(Debug, Clone, Copy)]
pub struct Lexer {
    escape: char,
}

impl Lexer {
    pub fn new(escape: char) -> Self {
        Self { escape }
    }

    /// Expands `word` into one string: quotes removed, white space kept.
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<String, ShellError> {
        self.process_word_tracked(word, env).map(|e| e.value)
    }

    /// Like [`Lexer::process_word`], also reporting unset variables.
    pub fn process_word_tracked(&self, word: &str, env: &dyn Env) -> Result<Expanded, ShellError> {
        if self.is_literal(word) {
            return Ok(Expanded {
                value: word.to_owned(),
                unmatched: BTreeSet::new(),
            });
        }
        let mut sw = lex::ShellWord::new(word, env, self.escape);
        let (value, _) = sw.run(word)?;
        Ok(Expanded {
            value,
            unmatched: sw.unmatched,
        })
    }

    /// Expands the variables of a heredoc body, leaving quotes alone.
    pub fn process_heredoc(&self, body: &str, env: &dyn Env) -> Result<String, ShellError> {
        if !body.contains(['$', self.escape]) {
            return Ok(body.to_owned());
        }
        lex::ShellWord::new(body, env, self.escape).run_heredoc(body)
    }

    /// Most words have no variable, quote or escape: they expand to themselves,
    /// which spares the state machine (and the frontend a copy).
    pub(crate) fn is_literal(&self, word: &str) -> bool {
        let special = |b: u8| matches!(b, b'$' | b'\'' | b'"');
        // Bytes of multi-byte UTF-8 characters are never ASCII, so an ASCII
        // escape character can be looked for byte by byte.
        match u8::try_from(self.escape) {
            Ok(escape) if escape.is_ascii() => !word.bytes().any(|b| special(b) || b == escape),
            _ => !word.bytes().any(special) && !word.contains(self.escape),
        }
    }

    /// Expands `word` and splits the result into fields on unquoted white space.
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ShellError> {
        let mut sw = lex::ShellWord::new(word, env, self.escape);
        sw.split = true;
        sw.run(word).map(|(_, words)| words)
    }
}

#[cfg(test)]
mod tests;
