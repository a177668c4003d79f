//! Symlink resolution confined to a root directory, in the manner of cyphar's
//! securejoin: the path is walked one component at a time, every symlink met is
//! read and expanded in place, an absolute target restarts at the root and `..`
//! never climbs above it. The result names the same file the kernel would reach if
//! the root were `/` (as in a chroot).
//!
//! This is lexical-plus-readlink resolution: it does not defend against a
//! concurrent attacker swapping components between the check and a later open.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// How many symlinks one resolution may expand, as Linux's `MAXSYMLINKS`.
pub const MAX_SYMLINKS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    #[error("{path:?}: too many levels of symbolic links")]
    TooManySymlinks { path: String },
    #[error("cannot resolve {path:?}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// Resolves `rel` (`/`-separated, taken relative to `root` whatever its leading
/// `/`) inside `root`, expanding symlinks in every component and in the last one
/// only when `follow_final` is set. Returns the cleaned path relative to `root`
/// (empty for the root itself); it contains no symlink except possibly the last
/// component. Components that do not exist are kept as written, so the caller's
/// own lookup reports them missing.
pub fn resolve_in_root(
    root: &Path,
    rel: &str,
    follow_final: bool,
) -> Result<PathBuf, ConfineError> {
    let mut pending: VecDeque<OsString> = components(OsStr::new(rel)).collect();
    let mut resolved: Vec<OsString> = Vec::new();
    let mut expanded = 0;
    while let Some(comp) = pending.pop_front() {
        if comp == ".." {
            // `resolved` holds no symlinks, so dropping its last element is exact.
            resolved.pop();
            continue;
        }
        let is_last = pending.is_empty();
        resolved.push(comp);
        if is_last && !follow_final {
            break;
        }
        let here: PathBuf = resolved.iter().collect();
        let full = root.join(&here);
        let meta = match std::fs::symlink_metadata(&full) {
            Ok(m) => m,
            // A missing component (or one below a non-directory): keep walking
            // lexically; nothing below it can be a symlink.
            Err(e) if is_missing(&e) => continue,
            Err(source) => return Err(io_error(&here, source)),
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        expanded += 1;
        if expanded > MAX_SYMLINKS {
            return Err(ConfineError::TooManySymlinks {
                path: rel.to_owned(),
            });
        }
        let target = std::fs::read_link(&full).map_err(|source| io_error(&here, source))?;
        resolved.pop();
        if target.as_os_str().as_bytes().starts_with(b"/") {
            resolved.clear();
        }
        for (i, c) in components(target.as_os_str()).enumerate() {
            pending.insert(i, c);
        }
    }
    Ok(resolved.iter().collect())
}

/// The non-empty, non-`.` components of a `/`-separated byte path.
fn components(p: &OsStr) -> impl Iterator<Item = OsString> + '_ {
    p.as_bytes()
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| OsStr::from_bytes(c).to_owned())
}

pub(crate) fn is_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

fn io_error(here: &Path, source: io::Error) -> ConfineError {
    ConfineError::Io {
        path: here.to_string_lossy().into_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn resolve(root: &Path, rel: &str, follow: bool) -> String {
        resolve_in_root(root, rel, follow)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn plain_paths_are_cleaned() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("a/b")).unwrap();
        assert_eq!(resolve(t.path(), "a/./b/", true), "a/b");
        assert_eq!(resolve(t.path(), "/a/../../../a", true), "a");
        assert_eq!(resolve(t.path(), "", true), "");
        assert_eq!(resolve(t.path(), "..", true), "");
        assert_eq!(resolve(t.path(), "missing/x/../y", true), "missing/y");
    }

    #[test]
    fn middle_symlinks_are_resolved_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("real/sub")).unwrap();
        fs::write(r.join("real/sub/f"), "x").unwrap();
        symlink("real", r.join("rel")).unwrap();
        symlink("/real", r.join("abs")).unwrap();
        symlink("../../../../real", r.join("climb")).unwrap();
        symlink("sub/f", r.join("real/tof")).unwrap();
        for via in ["rel", "abs", "climb"] {
            assert_eq!(resolve(r, &format!("{via}/sub/f"), false), "real/sub/f");
            assert_eq!(resolve(r, &format!("{via}/sub/../tof"), true), "real/sub/f");
        }
        // The final symlink is kept or followed on request.
        assert_eq!(resolve(r, "real/tof", false), "real/tof");
        assert_eq!(resolve(r, "real/tof", true), "real/sub/f");
        assert_eq!(resolve(r, "rel", false), "rel");
        assert_eq!(resolve(r, "rel", true), "real");
    }

    #[test]
    fn escapes_are_confined() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        symlink("/etc", r.join("x")).unwrap();
        symlink("../../../..", r.join("up")).unwrap();
        symlink("/", r.join("slash")).unwrap();
        assert_eq!(resolve(r, "x/passwd", true), "etc/passwd");
        assert_eq!(
            resolve(r, "x", true),
            "etc",
            "/etc inside the root need not exist"
        );
        assert_eq!(resolve(r, "up/etc/passwd", true), "etc/passwd");
        assert_eq!(resolve(r, "up", true), "");
        assert_eq!(resolve(r, "slash/up/x", true), "etc");
        assert_eq!(resolve(r, "slash/up/x", false), "x");
    }

    #[test]
    fn symlink_loops_are_reported() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        symlink("b", r.join("a")).unwrap();
        symlink("a", r.join("b")).unwrap();
        symlink("self/x", r.join("self")).unwrap();
        for p in ["a", "self"] {
            let err = resolve_in_root(r, p, true).unwrap_err();
            assert!(
                matches!(err, ConfineError::TooManySymlinks { .. }),
                "{p}: {err}"
            );
        }
        // Not following the last component never reads it.
        assert_eq!(resolve(r, "a", false), "a");
    }

    #[test]
    fn a_chain_of_exactly_the_limit_resolves() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::write(r.join("l0"), "x").unwrap();
        for i in 1..=MAX_SYMLINKS {
            symlink(format!("l{}", i - 1), r.join(format!("l{i}"))).unwrap();
        }
        assert_eq!(resolve(r, &format!("l{MAX_SYMLINKS}"), true), "l0");
        symlink(format!("l{MAX_SYMLINKS}"), r.join("over")).unwrap();
        assert!(resolve_in_root(r, "over", true).is_err());
    }
}
