//! Parallel walk of a selected directory: worker threads share a queue of
//! directories, list them with `readdir` + `lstat` (never reading file contents or
//! following symlinks) and prune directories the filters rule out entirely.

use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::sync::{Condvar, Mutex};

use super::SelectError;
use super::entry::{Entry, path_order};
use crate::cleanpath::join;
use crate::confine::is_missing;
use crate::dockerignore::PatternMatcher;

/// The filters a walk applies. `context` sees paths relative to the context root,
/// `include` and `exclude` paths relative to the selected directory.
#[derive(Clone, Copy)]
pub(super) struct Filters<'a> {
    pub context: Option<&'a PatternMatcher>,
    pub include: Option<&'a PatternMatcher>,
    pub exclude: Option<&'a PatternMatcher>,
}

struct DirTask {
    /// Relative to the context root.
    rel: String,
    /// Relative to the selected directory.
    sub: String,
    /// Whether the directory itself passed the filters; an unkept one was entered
    /// only because an exception or include pattern may want something below it.
    kept: bool,
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
    root: &Path,
    base: &str,
    filters: Filters<'_>,
) -> Result<Vec<Entry>, SelectError> {
    let queue = Mutex::new(Queue {
        tasks: vec![DirTask {
            rel: base.to_owned(),
            sub: String::new(),
            kept: true,
        }],
        active: 0,
        failed: None,
    });
    let wake = Condvar::new();
    let workers = crate::workers::count(16, 2);
    let mut found: Vec<Found> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..workers)
            .map(|_| s.spawn(|| work(root, filters, &queue, &wake)))
            .collect();
        let mut all = vec![work(root, filters, &queue, &wake)];
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

fn work(root: &Path, filters: Filters<'_>, queue: &Mutex<Queue>, wake: &Condvar) -> Found {
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
        let res = list_dir(root, filters, &task, &mut found, &mut children);
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
    root: &Path,
    filters: Filters<'_>,
    task: &DirTask,
    found: &mut Found,
    children: &mut Vec<DirTask>,
) -> Result<(), SelectError> {
    let io_err = |path: &str, source: io::Error| SelectError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = match std::fs::read_dir(root.join(&task.rel)) {
        Ok(d) => d,
        // Gone since it was listed, or an unreadable directory nobody asked for
        // (fsutil ignores those too).
        Err(e) if is_missing(&e) => return Ok(()),
        Err(e) if !task.kept && e.kind() == io::ErrorKind::PermissionDenied => return Ok(()),
        Err(e) => return Err(io_err(&task.rel, e)),
    };
    for de in dir {
        let de = de.map_err(|e| io_err(&task.rel, e))?;
        let name = de
            .file_name()
            .into_string()
            .map_err(|n| SelectError::NonUtf8 {
                path: join(&task.rel, &n.to_string_lossy()),
            })?;
        let rel = join(&task.rel, &name);
        let sub = join(&task.sub, &name);
        // DirEntry::metadata is an lstat relative to the open directory.
        let md = match de.metadata() {
            Ok(m) => m,
            Err(e) if is_missing(&e) => continue,
            Err(e) => return Err(io_err(&rel, e)),
        };
        let ctx_out = filters.context.is_some_and(|m| m.matches(&rel));
        let copy_out = filters.exclude.is_some_and(|m| m.matches(&sub));
        let included = filters.include.is_none_or(|m| m.matches(&sub));
        let kept = !ctx_out && !copy_out && included;
        let enter = md.is_dir()
            && (kept
                || ((!ctx_out || !filters.context.is_some_and(|m| m.can_skip_dir(&rel)))
                    && (!copy_out || !filters.exclude.is_some_and(|m| m.can_skip_dir(&sub)))
                    && (included || filters.include.is_some_and(|m| m.may_include_below(&sub)))));
        if !kept && !enter {
            continue;
        }
        let entry = Entry::from_metadata(root, rel.clone(), &md)?;
        if kept {
            found.kept.push(entry);
        } else {
            found.entered.push(entry);
        }
        if enter {
            children.push(DirTask { rel, sub, kept });
        }
    }
    Ok(())
}
