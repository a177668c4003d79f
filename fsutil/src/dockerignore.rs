//! `.dockerignore` files with Docker's exact semantics (moby/patternmatcher and
//! `ignorefile.ReadAll`).
//!
//! Patterns are evaluated in order against a `/`-separated path relative to the
//! context root; the last pattern that matches the path or one of its parent
//! directories decides, and a `!` pattern re-includes. Which files are special
//! (Dockerfile, .dockerignore) is the caller's business: the matcher is pure.

mod pattern;
#[cfg(test)]
mod tests;

use crate::{cleanpath, glob};
use pattern::Pattern;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("illegal exclusion pattern: \"!\"")]
    LoneExclamation,
    #[error("syntax error in pattern {0:?}")]
    BadPattern(String),
}

/// Reads the lines of a .dockerignore file the way Docker does: a UTF-8 BOM is
/// dropped, lines whose first character is `#` are comments, surrounding white
/// space is trimmed, blank lines are dropped, and each pattern (after a leading `!`)
/// is cleaned and loses a leading `/`, since patterns are anchored at the context
/// root anyway.
pub fn parse(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        // Only a `#` in the very first column makes a comment.
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = cleanpath::clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        out.push(if invert {
            format!("!{cleaned}")
        } else {
            cleaned
        });
    }
    out
}

/// Characters that make a pattern more than a literal path, as fsutil counts them
/// when deciding whether a directory walk may prune.
const PATTERN_CHARS: &[char] = &['*', '[', ']', '?', '^', '\\'];

/// An ordered list of .dockerignore patterns.
#[derive(Debug, Clone)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

impl PatternMatcher {
    /// Compiles `patterns` (as returned by [`parse`], or any list in that syntax).
    /// Like Docker, each entry is trimmed and cleaned and empty entries are skipped.
    pub fn new(patterns: &[String]) -> Result<Self, PatternError> {
        let mut compiled = Vec::with_capacity(patterns.len());
        let mut exclusions = false;
        for p in patterns {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let p = cleanpath::clean(p);
            let (exclusion, text) = match p.strip_prefix('!') {
                Some("") => return Err(PatternError::LoneExclamation),
                Some(rest) => (true, rest.to_owned()),
                None => (false, p),
            };
            exclusions |= exclusion;
            // Docker validates with filepath.Match, whose syntax errors we share.
            glob::matches(&text, ".").map_err(|_| PatternError::BadPattern(text.clone()))?;
            compiled.push(Pattern::compile(text, exclusion));
        }
        Ok(Self {
            patterns: compiled,
            exclusions,
        })
    }

    /// Whether the matcher holds no pattern at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any pattern is a `!` exception.
    pub fn exclusions(&self) -> bool {
        self.exclusions
    }

    /// Docker's `MatchesOrParentMatches`: whether `rel_path` (clean, `/`-separated,
    /// relative to the root the patterns are anchored at) is matched, itself or
    /// through one of its parent directories, by the last pattern that applies. The
    /// root itself (`""` or `"."`) never matches.
    pub fn matches(&self, rel_path: &str) -> bool {
        if rel_path.is_empty() || rel_path == "." {
            return false;
        }
        // Byte offsets of the `/` ending each parent directory.
        let parent_ends: Vec<usize> = rel_path.match_indices('/').map(|(i, _)| i).collect();
        let mut matched = false;
        for pat in &self.patterns {
            // An inclusion cannot change an already matched path, nor an exception
            // an unmatched one.
            if pat.exclusion != matched {
                continue;
            }
            let hit = pat.matches(rel_path)
                || parent_ends.iter().any(|&end| pat.matches(&rel_path[..end]));
            if hit {
                matched = !pat.exclusion;
            }
        }
        matched
    }

    /// Whether a walker may skip `rel_dir` without looking inside: it is matched
    /// and no `!` exception could re-include anything below it. Mirrors fsutil: if
    /// any exception has wildcards the walk must always descend; otherwise only an
    /// exception naming a path under `rel_dir` keeps it.
    pub fn can_skip_dir(&self, rel_dir: &str) -> bool {
        self.matches(rel_dir) && !(self.exclusions && self.may_match_below(rel_dir, true))
    }

    /// For an include list (a path is wanted when [`matches`](Self::matches)): whether
    /// anything below the unmatched directory `rel_dir` could still be wanted, so a
    /// walker must descend into it.
    pub fn may_include_below(&self, rel_dir: &str) -> bool {
        self.may_match_below(rel_dir, false)
    }

    /// Whether some pattern of the given polarity might match a path strictly
    /// below `rel_dir`: always when one of them is more than a literal path,
    /// otherwise when one of them names a path inside `rel_dir`.
    fn may_match_below(&self, rel_dir: &str, exclusion: bool) -> bool {
        let dir_slash = format!("{rel_dir}/");
        self.patterns
            .iter()
            .filter(|p| p.exclusion == exclusion)
            .any(|p| {
                let lit = without_trailing_glob(&p.text);
                lit.contains(PATTERN_CHARS) || format!("{lit}/").starts_with(&dir_slash)
            })
    }
}

/// A pattern minus a trailing `/**` or `/*`, which cannot stop a walk from
/// descending to its prefix.
fn without_trailing_glob(p: &str) -> &str {
    let p = p.strip_suffix("/**").unwrap_or(p);
    p.strip_suffix("/*").unwrap_or(p)
}
