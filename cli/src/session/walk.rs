//! Listing a local directory for the daemon, the way BuildKit's fsutil walker
//! does: only what the include patterns (plus the targets of the follow paths)
//! can select and the exclude patterns (.dockerignore) leave, in walk order
//! (a directory, then its subtree, names in byte order), parents before children.
//! Symlinks are listed as symlinks and never followed out of the directory.

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use buildd_fsutil::cleanpath::{clean, clean_rel};
use buildd_fsutil::dockerignore::{PatternError, PatternMatcher};
use buildd_fsutil::glob;
use buildd_proto::control::Stat;

/// How many symlinks resolving one follow path may expand, as Linux's MAXSYMLINKS.
const MAX_SYMLINKS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("invalid {list} patterns")]
    Pattern {
        list: &'static str,
        #[source]
        source: PatternError,
    },
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: file name is not valid UTF-8")]
    NonUtf8 { path: PathBuf },
    #[error("{path:?}: too many levels of symbolic links")]
    TooManySymlinks { path: String },
}

/// What to list, as a `SyncRequest` gives it.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub follow: Vec<String>,
}

/// Lists `root` through `filter`.
pub fn walk(root: &Path, filter: &Filter) -> Result<Vec<Stat>, WalkError> {
    let mut include = filter.include.clone();
    if !filter.follow.is_empty() {
        // As fsutil: the follow paths and every symlink on their way become include
        // patterns, so a COPY of a link also sends what it points to.
        let mut resolver = Follow {
            root,
            out: Vec::new(),
        };
        for p in &filter.follow {
            resolver.resolve(&clean_rel(p), 0)?;
        }
        include.extend(resolver.out);
    }
    // An include naming the root itself selects everything.
    let everything = include
        .iter()
        .any(|p| matches!(clean(p).as_str(), "." | "/"));
    let include = if include.is_empty() || everything {
        None
    } else {
        Some(compile(&include, "include")?)
    };
    let exclude = Some(compile(&filter.exclude, "exclude")?).filter(|m| !m.is_empty());
    let mut walker = Walker {
        include,
        exclude,
        pending: Vec::new(),
        out: Vec::new(),
    };
    walker.dir(root, "")?;
    Ok(walker.out)
}

fn compile(patterns: &[String], list: &'static str) -> Result<PatternMatcher, WalkError> {
    PatternMatcher::new(patterns).map_err(|source| WalkError::Pattern { list, source })
}

struct Walker {
    include: Option<PatternMatcher>,
    exclude: Option<PatternMatcher>,
    /// Directories on the current path not listed yet: they are listed only once
    /// something below them is.
    pending: Vec<Stat>,
    out: Vec<Stat>,
}

impl Walker {
    fn dir(&mut self, abs: &Path, rel: &str) -> Result<(), WalkError> {
        for (name, path) in sorted_names(abs)? {
            let rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let meta = fs::symlink_metadata(&path).map_err(|source| WalkError::Io {
                path: path.clone(),
                source,
            })?;
            let ft = meta.file_type();
            if ft.is_socket() || ft.is_block_device() || ft.is_char_device() {
                // Nothing a build can copy: a listing has no device numbers.
                continue;
            }
            let included = self.include.as_ref().is_none_or(|m| m.matches(&rel));
            let excluded = self.exclude.as_ref().is_some_and(|m| m.matches(&rel));
            let listed = included && !excluded;
            let descend = ft.is_dir()
                && (included
                    || self
                        .include
                        .as_ref()
                        .is_some_and(|m| m.may_include_below(&rel)))
                && !(excluded && self.exclude.as_ref().is_some_and(|m| m.can_skip_dir(&rel)));
            let stat = stat_of(rel, &path, &meta)?;
            if listed {
                self.out.append(&mut self.pending);
                self.out.push(stat);
                if descend {
                    self.dir(&path, &self.out.last().expect("just pushed").path.clone())?;
                }
            } else if descend {
                let depth = self.pending.len();
                let rel = stat.path.clone();
                self.pending.push(stat);
                self.dir(&path, &rel)?;
                self.pending.truncate(depth);
            }
        }
        Ok(())
    }
}

/// The names in `dir` in byte order, which with a depth-first walk gives
/// fsutil's path order.
fn sorted_names(dir: &Path) -> Result<Vec<(String, PathBuf)>, WalkError> {
    let io_err = |source| WalkError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| WalkError::NonUtf8 { path: path.clone() })?;
        names.push((name, path));
    }
    names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(names)
}

fn stat_of(rel: String, path: &Path, meta: &Metadata) -> Result<Stat, WalkError> {
    let linkname = if meta.file_type().is_symlink() {
        let target = fs::read_link(path).map_err(|source| WalkError::Io {
            path: path.to_owned(),
            source,
        })?;
        target
            .into_os_string()
            .into_string()
            .map_err(|_| WalkError::NonUtf8 {
                path: path.to_owned(),
            })?
    } else {
        String::new()
    };
    Ok(Stat {
        path: rel,
        mode: meta.mode(),
        size: if meta.is_file() { meta.len() } else { 0 },
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        uid: meta.uid(),
        gid: meta.gid(),
        linkname,
    })
}

/// fsutil's `FollowLinks`: the paths a follow path reaches, with the symlinks met
/// on the way, all relative to the root. Absolute link targets are taken relative
/// to the root and `..` never climbs above it.
struct Follow<'a> {
    root: &'a Path,
    out: Vec<String>,
}

impl Follow<'_> {
    fn resolve(&mut self, path: &str, expanded: usize) -> Result<(), WalkError> {
        if expanded > MAX_SYMLINKS {
            return Err(WalkError::TooManySymlinks {
                path: path.to_owned(),
            });
        }
        if path.is_empty() {
            return Ok(());
        }
        let comps: Vec<&str> = path.split('/').collect();
        let mut current = String::new();
        for (i, comp) in comps.iter().enumerate() {
            let rest = comps[i + 1..].join("/");
            let candidates = if glob::has_meta(comp) {
                self.expand(&current, comp)?
            } else {
                vec![join(&current, comp)]
            };
            if candidates.len() != 1 || candidates[0] != join(&current, comp) {
                // A wildcard: each match continues on its own.
                for cand in candidates {
                    self.resolve(&join(&cand, &rest), expanded)?;
                }
                return Ok(());
            }
            let here = candidates.into_iter().next().expect("one candidate");
            if let Some(target) = self.link_target(&here)? {
                if !self.out.contains(&here) {
                    self.out.push(here.clone());
                }
                let base = if target.starts_with('/') {
                    String::new()
                } else {
                    current.clone()
                };
                let next = clean_rel(&format!("{base}/{target}/{rest}"));
                return self.resolve(&next, expanded + 1);
            }
            current = here;
        }
        if !self.out.contains(&current) {
            self.out.push(current);
        }
        Ok(())
    }

    fn link_target(&self, rel: &str) -> Result<Option<String>, WalkError> {
        let path = self.root.join(rel);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {}
            Ok(_) => return Ok(None),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None);
            }
            Err(source) => return Err(WalkError::Io { path, source }),
        }
        let target = fs::read_link(&path).map_err(|source| WalkError::Io {
            path: path.clone(),
            source,
        })?;
        target
            .into_os_string()
            .into_string()
            .map(Some)
            .map_err(|_| WalkError::NonUtf8 { path })
    }

    /// The names in `dir` that `pattern` matches; none when `dir` is missing.
    fn expand(&self, dir: &str, pattern: &str) -> Result<Vec<String>, WalkError> {
        let abs = self.root.join(dir);
        let names = match sorted_names(&abs) {
            Ok(n) => n,
            Err(WalkError::Io { source, .. })
                if matches!(
                    source.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        Ok(names
            .into_iter()
            .filter(|(name, _)| glob::matches(pattern, name).unwrap_or(false))
            .map(|(name, _)| join(dir, &name))
            .collect())
    }
}

fn join(base: &str, name: &str) -> String {
    match (base.is_empty(), name.is_empty()) {
        (true, _) => name.to_owned(),
        (false, true) => base.to_owned(),
        (false, false) => format!("{base}/{name}"),
    }
}

#[cfg(test)]
#[path = "walk_tests.rs"]
mod tests;
