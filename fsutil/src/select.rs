//! What a COPY source selects from a context directory.
//!
//! The source is cleaned and clamped at the root (`../x` is `x`, as BuildKit's
//! `filepath.Join("/", src)` does), wildcards are expanded one path segment at a
//! time with Go's `filepath.Match`, symlinks in the middle of the path are resolved
//! inside the root, and a selected directory is walked in parallel. The
//! .dockerignore of the context acts as if excluded files were not there at all,
//! the way BuildKit only ever sees the filtered context.

mod entry;
mod walk;

use std::ffi::CString;
use std::io;
use std::path::Path;

pub use entry::{Entry, EntryKind, Stamp, path_order};

use crate::cleanpath::{clean_rel, join};
use crate::confine::{self, ConfineError, is_missing};
use crate::dirfd::DirFd;
use crate::dockerignore::{PatternError, PatternMatcher};
use crate::glob::{self, GlobError};
use walk::Filters;

#[derive(Debug, Clone, Copy, Default)]
pub struct SelectOptions<'a> {
    /// Follow a symlink that the source path itself names (never ones below it).
    pub follow_symlink: bool,
    /// The source may be a glob, matched per path segment.
    pub allow_wildcard: bool,
    /// A glob matching nothing is an empty selection rather than an error.
    pub allow_empty_wildcard: bool,
    /// The .dockerignore of the whole context, anchored at the context root.
    pub context_excludes: Option<&'a PatternMatcher>,
    /// COPY-level filters in .dockerignore syntax, relative to each selected
    /// directory. With include patterns, only paths matching one are kept.
    pub include_patterns: &'a [String],
    pub exclude_patterns: &'a [String],
    /// Files under the root are replaced (by rename), never written or re-stamped
    /// in place, as in the daemon's context mirror: entries carry birth times
    /// ([`Stamp::Born`]) where the filesystem has them, since the hard links a
    /// copy makes to such files move their ctime.
    pub replaced_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// One per wildcard match (a single one without wildcards), in [`path_order`].
    pub roots: Vec<SelectedRoot>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedRoot {
    /// The path under the context root that the source named or a wildcard
    /// matched, cleaned (`""` is the root itself). It may go through symlinks; its
    /// last component is the name a copy gives the object.
    pub rel: String,
    /// The matched object itself first (its `rel` has followed symlinks resolved),
    /// then for a directory everything below it that the filters keep, in
    /// [`path_order`]. A directory that is itself filtered out but holds kept
    /// entries is listed too, since a copy must create it.
    pub entries: Vec<Entry>,
}

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("{path:?}: not found")]
    NotFound { path: String },
    #[error("{pattern:?}: no source files matched")]
    NoMatch { pattern: String },
    #[error("invalid wildcard in {src:?}")]
    Wildcard {
        src: String,
        #[source]
        source: GlobError,
    },
    #[error("invalid {list} patterns")]
    Pattern {
        list: &'static str,
        #[source]
        source: PatternError,
    },
    #[error(transparent)]
    Confine(#[from] ConfineError),
    #[error("cannot read {path:?}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path:?}: file name is not valid UTF-8")]
    NonUtf8 { path: String },
    #[error("{dir:?}: holds a selected file whose name is not valid UTF-8")]
    NonUtf8Name { dir: String },
}

/// Selects what `src` names under `root`; see the module documentation.
pub fn select(root: &Path, src: &str, opts: &SelectOptions<'_>) -> Result<Selection, SelectError> {
    let root_fd = DirFd::open(root).map_err(|source| SelectError::Io {
        path: String::new(),
        source,
    })?;
    let include = compile(opts.include_patterns, "include")?;
    let exclude = compile(opts.exclude_patterns, "exclude")?;
    let filters = Filters {
        context: opts.context_excludes.filter(|m| !m.is_empty()),
        include: include.as_ref(),
        exclude: exclude.as_ref(),
        replaced_only: opts.replaced_only,
    };
    let named = clean_rel(src);
    let wildcard = opts.allow_wildcard && glob::has_meta(&named);
    let candidates = if wildcard {
        expand_wildcards(root, &root_fd, &named, src)?
    } else {
        vec![named]
    };
    let mut roots = Vec::with_capacity(candidates.len());
    for cand in candidates {
        match select_one(root, &root_fd, cand, opts.follow_symlink, filters)? {
            Some(r) => roots.push(r),
            None if wildcard => {}
            None => {
                return Err(SelectError::NotFound {
                    path: src.to_owned(),
                });
            }
        }
    }
    if wildcard && roots.is_empty() && !opts.allow_empty_wildcard {
        return Err(SelectError::NoMatch {
            pattern: src.to_owned(),
        });
    }
    roots.sort_by(|a, b| path_order(&a.rel, &b.rel));
    Ok(Selection { roots })
}

fn compile(patterns: &[String], list: &'static str) -> Result<Option<PatternMatcher>, SelectError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let m =
        PatternMatcher::new(patterns).map_err(|source| SelectError::Pattern { list, source })?;
    Ok((!m.is_empty()).then_some(m))
}

/// Expands `named` segment by segment against directory listings (like Go's
/// `filepath.Glob`), resolving each directory reached inside the root. Returns
/// the matched paths as named, in order; they may not exist when a literal
/// segment follows a wildcard one.
fn expand_wildcards(
    root: &Path,
    root_fd: &DirFd,
    named: &str,
    src: &str,
) -> Result<Vec<String>, SelectError> {
    let mut cands = vec![String::new()];
    for seg in named.split('/') {
        if !glob::has_meta(seg) {
            for c in &mut cands {
                *c = join(c, seg);
            }
            continue;
        }
        let bad = |source| SelectError::Wildcard {
            src: src.to_owned(),
            source,
        };
        // Report a malformed segment even when there is nothing to match it with.
        glob::matches(seg, "").map_err(bad)?;
        let mut next = Vec::new();
        for c in &cands {
            let dir = confine::resolve_in_root(root, c, true)?;
            let dir = dir.to_str().ok_or_else(|| SelectError::NonUtf8 {
                path: dir.to_string_lossy().into_owned(),
            })?;
            let listing = match root_fd.open_dir_beneath(dir).and_then(|d| d.names()) {
                Ok(l) => l,
                Err(e) if is_missing(&e) => continue,
                Err(source) => {
                    return Err(SelectError::Io {
                        path: c.clone(),
                        source,
                    });
                }
            };
            let mut names = Vec::new();
            for name in listing {
                if glob::matches(seg, &name.to_string_lossy()).map_err(bad)? {
                    let name = name
                        .into_string()
                        .map_err(|_| SelectError::NonUtf8Name { dir: c.clone() })?;
                    names.push(name);
                }
            }
            names.sort_unstable();
            next.extend(names.iter().map(|n| join(c, n)));
        }
        cands = next;
    }
    Ok(cands)
}

/// How the context's .dockerignore treats one path.
#[derive(PartialEq)]
enum Visibility {
    Visible,
    Hidden,
    /// Excluded itself, but an exception may re-include something below it; a
    /// directory then exists in the filtered context only if something does.
    IfContentsVisible,
}

fn visibility(context: Option<&PatternMatcher>, rel: &str) -> Visibility {
    let Some(m) = context else {
        return Visibility::Visible;
    };
    // A directory the transfer would prune hides everything below it.
    if rel
        .match_indices('/')
        .any(|(i, _)| m.can_skip_dir(&rel[..i]))
    {
        return Visibility::Hidden;
    }
    if !m.matches(rel) {
        Visibility::Visible
    } else if m.can_skip_dir(rel) {
        Visibility::Hidden
    } else {
        Visibility::IfContentsVisible
    }
}

/// The selection rooted at `named`, or None when it does not exist (or is
/// excluded from the context, which amounts to the same).
fn select_one(
    root: &Path,
    root_fd: &DirFd,
    named: String,
    follow: bool,
    filters: Filters<'_>,
) -> Result<Option<SelectedRoot>, SelectError> {
    let real = confine::resolve_in_root(root, &named, follow)?
        .into_os_string()
        .into_string()
        .map_err(|p| SelectError::NonUtf8 {
            path: p.to_string_lossy().into_owned(),
        })?;
    let vis = [
        visibility(filters.context, &named),
        visibility(filters.context, &real),
    ];
    if vis.contains(&Visibility::Hidden) {
        return Ok(None);
    }
    let (parent, name) = match real.rsplit_once('/') {
        Some((p, n)) => (p, n),
        None => ("", real.as_str()),
    };
    let io_err = |source| SelectError::Io {
        path: real.clone(),
        source,
    };
    let (dir, name) = if real.is_empty() {
        (root_fd.try_clone().map_err(io_err)?, c".".to_owned())
    } else {
        let name = CString::new(name).map_err(|e| io_err(e.into()))?;
        match root_fd.open_dir_beneath(parent) {
            Ok(d) => (d, name),
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(io_err(e)),
        }
    };
    let (st, born) = match walk::lstat(&dir, &name, filters.replaced_only) {
        Ok(Some(st)) => st,
        Ok(None) => return Ok(None),
        Err(e) if is_missing(&e) => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    let only_if_contents = vis.contains(&Visibility::IfContentsVisible);
    let mut entries = vec![Entry::from_stat(&dir, &name, real.clone(), &st, born)?];
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        let below = walk::walk(root_fd, &real, filters)?;
        if only_if_contents && below.is_empty() {
            return Ok(None);
        }
        entries.extend(below);
    } else if only_if_contents {
        return Ok(None);
    }
    Ok(Some(SelectedRoot {
        rel: named,
        entries,
    }))
}
