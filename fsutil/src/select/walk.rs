//! Parallel walk of a selected directory: worker threads share a queue of
//! directories, list them with `readdir` + `lstat` (never reading file contents or
//! following symlinks) and prune directories the filters rule out entirely. Each
//! directory is opened relative to its parent's descriptor with `O_NOFOLLOW`, so a
//! symlink swapped in for a directory during the walk is never followed.

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::io;
use std::sync::{Arc, Condvar, Mutex};

use super::SelectError;
use super::entry::{Entry, path_order};
use crate::cleanpath::join;
use crate::confine::is_missing;
use crate::dirfd::DirFd;
use crate::dockerignore::PatternMatcher;

/// The filters a walk applies. `context` sees paths relative to the context root,
/// `include` and `exclude` paths relative to the selected directory.
#[derive(Clone, Copy)]
pub(super) struct Filters<'a> {
    pub context: Option<&'a PatternMatcher>,
    pub include: Option<&'a PatternMatcher>,
    pub exclude: Option<&'a PatternMatcher>,
    /// See [`SelectOptions::replaced_only`](super::SelectOptions).
    pub replaced_only: bool,
}

/// `lstat` of `name` in `dir`, with its birth time when `born` asks for it and
/// the filesystem has one.
pub(super) fn lstat(
    dir: &DirFd,
    name: &CStr,
    born: bool,
) -> std::io::Result<Option<(libc::stat, Option<i64>)>> {
    if born {
        dir.lstat_born(name)
    } else {
        Ok(dir.lstat(name)?.map(|st| (st, None)))
    }
}

struct DirTask {
    /// The directory holding this one, and this one's name in it; no name for the
    /// selected directory, which is `rel` below the root.
    at: Arc<DirFd>,
    name: Option<CString>,
    /// Relative to the context root.
    rel: String,
    /// Relative to the selected directory.
    sub: String,
    /// Whether the directory itself passed the filters; an unkept one was entered
    /// only because an exception or include pattern may want something below it.
    kept: bool,
    /// When a name on the way here is not UTF-8 (so `rel` is lossy), the directory
    /// holding the first such name: keeping anything below is an error naming it.
    non_utf8: Option<String>,
}

#[derive(Default)]
struct Found {
    kept: Vec<Entry>,
    /// Directories entered but not kept: emitted only as parents of kept entries.
    entered: Vec<Entry>,
}

struct Queue {
    tasks: Vec<DirTask>,
    active: usize,
    failed: Option<SelectError>,
}

/// Everything below the directory `base` (relative to `root`, symlink-free) that
/// passes `filters`, plus the directories leading to it, in [`path_order`].
pub(super) fn walk(
    root: &DirFd,
    base: &str,
    filters: Filters<'_>,
) -> Result<Vec<Entry>, SelectError> {
    let root = root.try_clone().map_err(|source| SelectError::Io {
        path: String::new(),
        source,
    })?;
    let queue = Mutex::new(Queue {
        tasks: vec![DirTask {
            at: Arc::new(root),
            name: None,
            rel: base.to_owned(),
            sub: String::new(),
            kept: true,
            non_utf8: None,
        }],
        active: 0,
        failed: None,
    });
    let wake = Condvar::new();
    let workers = crate::workers::count(16, 2);
    let mut found: Vec<Found> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..workers)
            .map(|_| s.spawn(|| work(filters, &queue, &wake)))
            .collect();
        let mut all = vec![work(filters, &queue, &wake)];
        all.extend(
            handles
                .into_iter()
                .map(|h| h.join().expect("walk worker panicked")),
        );
        all
    });
    if let Some(e) = queue.into_inner().expect("walk queue poisoned").failed {
        return Err(e);
    }

    let mut out: Vec<Entry> = Vec::new();
    let mut entered: Vec<Entry> = Vec::new();
    for f in &mut found {
        out.append(&mut f.kept);
        entered.append(&mut f.entered);
    }
    if !entered.is_empty() {
        let needed = ancestors_of(&out, base);
        entered.retain(|e| needed.contains(e.rel.as_str()));
        out.append(&mut entered);
    }
    out.sort_unstable_by(|a, b| path_order(&a.rel, &b.rel));
    Ok(out)
}

/// The directories strictly between `base` and each entry.
fn ancestors_of<'e>(entries: &'e [Entry], base: &str) -> HashSet<&'e str> {
    let mut needed = HashSet::new();
    for e in entries {
        let mut p = e.rel.as_str();
        while let Some(i) = p.rfind('/') {
            p = &p[..i];
            if p.len() <= base.len() || !needed.insert(p) {
                break;
            }
        }
    }
    needed
}

fn work(filters: Filters<'_>, queue: &Mutex<Queue>, wake: &Condvar) -> Found {
    let mut found = Found::default();
    let mut children = Vec::new();
    loop {
        let task = {
            let mut q = queue.lock().expect("walk queue poisoned");
            loop {
                if q.failed.is_some() {
                    return found;
                }
                if let Some(t) = q.tasks.pop() {
                    q.active += 1;
                    break t;
                }
                if q.active == 0 {
                    return found;
                }
                q = wake.wait(q).expect("walk queue poisoned");
            }
        };
        let res = list_dir(filters, &task, &mut found, &mut children);
        let mut q = queue.lock().expect("walk queue poisoned");
        q.active -= 1;
        match res {
            Ok(()) => q.tasks.append(&mut children),
            Err(e) => {
                q.failed.get_or_insert(e);
            }
        }
        drop(q);
        wake.notify_all();
    }
}

fn list_dir(
    filters: Filters<'_>,
    task: &DirTask,
    found: &mut Found,
    children: &mut Vec<DirTask>,
) -> Result<(), SelectError> {
    let io_err = |path: &str, source: io::Error| SelectError::Io {
        path: path.to_owned(),
        source,
    };
    let opened = match &task.name {
        Some(name) => task.at.open_dir(name),
        None => task.at.open_dir_beneath(&task.rel),
    };
    let dir = match opened.and_then(|d| d.names().map(|n| (d, n))) {
        Ok(d) => d,
        // Gone since it was listed, or an unreadable directory nobody asked for
        // (fsutil ignores those too).
        Err(e) if is_missing(&e) => return Ok(()),
        Err(e) if !task.kept && e.kind() == io::ErrorKind::PermissionDenied => return Ok(()),
        Err(e) => return Err(io_err(&task.rel, e)),
    };
    let (dir, names) = dir;
    let dir = Arc::new(dir);
    for cname in names {
        // Filters see a lossy name; only a name that is kept must be valid UTF-8.
        let (name, non_utf8) = match cname.to_str() {
            Ok(n) => (n.to_owned(), task.non_utf8.clone()),
            Err(_) => (
                cname.to_string_lossy().into_owned(),
                task.non_utf8.clone().or_else(|| Some(task.rel.clone())),
            ),
        };
        let rel = join(&task.rel, &name);
        let sub = join(&task.sub, &name);
        let (st, born) = match lstat(&dir, &cname, filters.replaced_only) {
            Ok(Some(st)) => st,
            Ok(None) => continue,
            Err(e) if is_missing(&e) => continue,
            Err(e) => return Err(io_err(&rel, e)),
        };
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let ctx_out = filters.context.is_some_and(|m| m.matches(&rel));
        let copy_out = filters.exclude.is_some_and(|m| m.matches(&sub));
        let included = filters.include.is_none_or(|m| m.matches(&sub));
        let kept = !ctx_out && !copy_out && included;
        let enter = is_dir
            && (kept
                || ((!ctx_out || !filters.context.is_some_and(|m| m.can_skip_dir(&rel)))
                    && (!copy_out || !filters.exclude.is_some_and(|m| m.can_skip_dir(&sub)))
                    && (included || filters.include.is_some_and(|m| m.may_include_below(&sub)))));
        if !kept && !enter {
            continue;
        }
        if kept && let Some(holder) = &non_utf8 {
            return Err(SelectError::NonUtf8Name {
                dir: holder.clone(),
            });
        }
        let entry = Entry::from_stat(&dir, &cname, rel.clone(), &st, born)?;
        if kept {
            found.kept.push(entry);
        } else {
            found.entered.push(entry);
        }
        if enter {
            children.push(DirTask {
                at: Arc::clone(&dir),
                name: Some(cname),
                rel,
                sub,
                kept,
                non_utf8,
            });
        }
    }
    Ok(())
}
