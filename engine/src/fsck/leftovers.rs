//! What processes that died left in a root: looked for while holding only the lock,
//! since opening the stores removes some of it.

use std::fs;
use std::path::{Path, PathBuf};

use super::Note;

/// Directories of the root whose entries only exist while some process works on
/// them, with what an entry is and whether opening the root removes it.
const SCRATCH: &[(&str, &str, bool)] = &[
    ("ingest", "an interrupted blob write", true),
    ("tmp", "a daemon build's scratch", false),
    ("exec", "a RUN's bundle or rootfs", false),
    ("runc", "a container's runtime state", false),
    ("secrets", "a RUN's secret mount point", false),
    ("ssh", "a RUN's ssh agent socket", false),
];

pub(super) fn scan(root: &Path) -> Vec<Note> {
    let mut notes = Vec::new();
    for (dir, what, removed) in SCRATCH {
        for path in entries(&root.join(dir), |_| true) {
            notes.push(Note::Leftover {
                path,
                what,
                removed: *removed,
            });
        }
    }
    for path in entries(&root.join("layers"), |n| n.starts_with(".tmp-")) {
        notes.push(Note::Leftover {
            path,
            what: "a layer being written",
            removed: true,
        });
    }
    for path in entries(&root.join("images"), |n| n.contains(".tmp-")) {
        notes.push(Note::Leftover {
            path,
            what: "an interrupted image record write",
            removed: false,
        });
    }
    for path in entries(&root.join("contexts"), |n| n.ends_with(".syncing")) {
        notes.push(Note::Leftover {
            path,
            what: "a context sync that did not finish (that mirror is synced afresh)",
            removed: false,
        });
    }
    notes.extend(
        mounts_under(root)
            .into_iter()
            .map(|path| Note::Mounted { path }),
    );
    notes
}

fn entries(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| keep(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Mount points at or below `root`.
fn mounts_under(root: &Path) -> Vec<PathBuf> {
    let root = fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
    let mut out: Vec<PathBuf> = crate::mounts::mount_points()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.starts_with(&root))
        .collect();
    out.sort();
    out.dedup();
    out
}
