//! What a killed buildd left on its root, reaped when the next process opens it.
//!
//! The root's lock is held exclusively by then, so nothing under it is in use:
//! containers still running from the last process are killed and deleted (before
//! their root filesystems are unmounted), every mount under the root is detached
//! (overlay rootfs, network namespaces, secret tmpfs, the bundle tmpfs), and the
//! per-run scratch directories go. Of the cache indexes moved aside as unusable,
//! only the newest stays for a post-mortem.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::mounts;

/// Directories holding per-run or per-solve state, and the prefix of the entries
/// buildd makes there; those entries are removed at open. Only buildd's own names
/// go, so a root set to a directory with a `tmp/` of its own (`--root /var`) loses
/// nothing else.
const SCRATCH_DIRS: [(&str, &str); 5] = [
    ("exec", "buildd-"),
    ("bundles", "buildd-"),
    ("tmp", "solve-"),
    ("secrets", ""),
    ("ssh", ""),
];
/// The OCI runtime's `--root` under the buildd root.
pub const RUNTIME_STATE: &str = "runc";

/// What recovery found and removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reaped {
    pub containers: usize,
    pub mounts: usize,
    pub entries: usize,
    pub indexes: usize,
}

impl Reaped {
    pub fn is_empty(&self) -> bool {
        *self == Reaped::default()
    }
}

/// Reaps what a killed process left under `root`. `runtimes` are tried in order
/// to kill and delete containers (runc and crun keep state differently).
pub fn reap(root: &Path, runtimes: &[PathBuf]) -> io::Result<Reaped> {
    let root = fs::canonicalize(root)?;
    let mut reaped = Reaped {
        containers: reap_containers(&root.join(RUNTIME_STATE), runtimes),
        ..Default::default()
    };
    reaped.mounts = unmount_under(&root)?;
    let still_mounted = mounts_under(&root)?;
    for (name, prefix) in SCRATCH_DIRS {
        let dir = root.join(name);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().starts_with(prefix) {
                continue;
            }
            let path = entry.path();
            // Never recurse into something still mounted: it could be a bind of
            // a cache or a layer.
            if still_mounted.iter().any(|m| m.starts_with(&path)) {
                tracing::warn!(path = %path.display(), "left in place: still mounted");
                continue;
            }
            let removed = if entry.file_type()?.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match removed {
                Ok(()) => reaped.entries += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
            }
        }
    }
    // Overlay work dirs sit beside the pending upper dirs they belong to.
    if let Ok(entries) = fs::read_dir(root.join("layers")) {
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("..tmp-") && name.contains("-work-") {
                fs::remove_dir_all(e.path())?;
                reaped.entries += 1;
            }
        }
    }
    reaped.indexes = prune_moved_aside_indexes(&root)?;
    Ok(reaped)
}

/// Kills and deletes every container the runtime state dir still lists.
fn reap_containers(state: &Path, runtimes: &[PathBuf]) -> usize {
    let Ok(entries) = fs::read_dir(state) else {
        return 0;
    };
    let ids: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|id| id.starts_with("buildd-"))
        .collect();
    let mut reaped = 0;
    for id in ids {
        for runtime in runtimes {
            let run = |args: &[&str]| {
                Command::new(runtime)
                    .arg("--root")
                    .arg(state)
                    .args(args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
            };
            let _ = run(&["kill", "--all", &id, "KILL"]);
            let _ = run(&["delete", "--force", &id]);
            if !state.join(&id).exists() {
                break;
            }
        }
        if state.join(&id).exists() {
            tracing::warn!(container = %id, "could not delete a container left by a killed buildd");
        } else {
            reaped += 1;
        }
    }
    reaped
}

/// Mount points strictly under `root`, in the order they were mounted.
pub fn mounts_under(root: &Path) -> io::Result<Vec<PathBuf>> {
    Ok(mounts::mount_points()?
        .into_iter()
        .filter(|p| p.starts_with(root) && p != root)
        .collect())
}

/// Detaches every mount buildd makes under `root` (in its scratch directories
/// only: a root that holds other mounts, or is `/`, keeps them), the latest first
/// (so stacked and nested mounts go before what they cover).
fn unmount_under(root: &Path) -> io::Result<usize> {
    let mut count = 0;
    let ours = |p: &Path| {
        SCRATCH_DIRS
            .iter()
            .any(|(d, _)| p.starts_with(root.join(d)))
    };
    for point in mounts_under(root)?.iter().rev().filter(|p| ours(p)) {
        match mounts::detach(point) {
            Ok(()) => count += 1,
            // A mount under one just detached went with it.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => {}
            Err(e) => tracing::warn!(mount = %point.display(), "unmount: {e}"),
        }
    }
    Ok(count)
}

/// Keeps the newest `index.corrupt-*` (the last one moved aside) and removes
/// the rest; each is a whole sled database nobody reads.
fn prune_moved_aside_indexes(root: &Path) -> io::Result<usize> {
    let mut aside: Vec<(std::time::SystemTime, PathBuf)> = fs::read_dir(root)?
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("index.corrupt-")
        })
        .map(|e| {
            let at = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (at, e.path())
        })
        .collect();
    aside.sort();
    aside.pop();
    for (_, path) in &aside {
        fs::remove_dir_all(path)?;
    }
    Ok(aside.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_leftovers_and_old_indexes_go_and_the_newest_aside_index_stays() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in [
            "exec/buildd-1/rootfs",
            "tmp/solve-x",
            "tmp/not-ours",
            "bundles/buildd-1",
        ] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(root.join("bundles/buildd-1/config.json"), "{}").unwrap();
        fs::create_dir_all(root.join("layers/keep")).unwrap();
        fs::create_dir_all(root.join("layers/..tmp-1-2-work-buildd-1/work")).unwrap();
        for (name, age) in [
            ("index.corrupt-1-1", 3),
            ("index.corrupt-2-1", 2),
            ("index.corrupt-3-1", 1),
        ] {
            let p = root.join(name);
            fs::create_dir(&p).unwrap();
            let t = std::time::SystemTime::now() - std::time::Duration::from_secs(age * 100);
            fs::File::open(&p).unwrap().set_modified(t).unwrap();
        }
        let reaped = reap(root, &[]).unwrap();
        assert_eq!(reaped.entries, 4, "{reaped:?}");
        assert_eq!(reaped.indexes, 2, "{reaped:?}");
        assert!(!root.join("exec/buildd-1").exists());
        assert!(!root.join("bundles/buildd-1").exists());
        assert!(root.join("layers/keep").exists());
        assert!(root.join("tmp/not-ours").exists());
        assert!(root.join("index.corrupt-3-1").exists());
        assert!(!root.join("index.corrupt-1-1").exists());
        // A second open finds nothing.
        assert!(reap(root, &[]).unwrap().is_empty());
    }
}
