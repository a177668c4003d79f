//! The copying snapshotter, for hosts where overlayfs cannot be mounted (some
//! container hosts, filesystems overlay refuses as upper dir).
//!
//! The layers are applied in user space, bottom first, into a plain root directory
//! (whiteouts delete, opaque directories are emptied first), and a stamp of every
//! entry is taken. After the run the tree is compared with the stamps: whatever was
//! added or changed is copied into the upper dir, whatever disappeared becomes a
//! whiteout — the same changes an overlay mount would have recorded (a replaced
//! directory shows as whiteouts of its old entries rather than an opaque marker).
//! Hard links are copied as separate files. The change time is part of the stamp, and a
//! process cannot set it, so no modification goes unnoticed.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::ExecError;
use crate::flatten::{copy_entry, set_meta};
use crate::sys;

/// What identifies an entry's state: any change to content or metadata changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    mode: u32,
    ctime: (i64, i64),
    mtime: (i64, i64),
    size: u64,
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Self {
        Stamp {
            ino: m.ino(),
            mode: m.mode(),
            ctime: (m.ctime(), m.ctime_nsec()),
            mtime: (m.mtime(), m.mtime_nsec()),
            size: m.size(),
        }
    }
}

/// A root filesystem copied from layers, and what it held before the run.
#[derive(Debug)]
pub struct CopiedRootfs {
    root: PathBuf,
    before: HashMap<PathBuf, Stamp>,
}

impl CopiedRootfs {
    /// Applies `lowers` (bottom first) into the new directory `root`.
    pub fn prepare(lowers: &[PathBuf], root: &Path) -> Result<Self, ExecError> {
        fs::create_dir(root).map_err(ExecError::io("create", root))?;
        for layer in lowers {
            apply_layer(layer, root).map_err(ExecError::io("apply layer", layer))?;
        }
        let mut before = HashMap::new();
        stamp_tree(root, Path::new(""), &mut before).map_err(ExecError::io("inspect", root))?;
        Ok(CopiedRootfs {
            root: root.to_owned(),
            before,
        })
    }

    /// Writes the changes since [`CopiedRootfs::prepare`] into the empty directory
    /// `upper`, in overlayfs upper-dir format.
    pub fn diff_into(&self, upper: &Path) -> Result<(), ExecError> {
        let mut seen = HashMap::new();
        stamp_tree(&self.root, Path::new(""), &mut seen)
            .map_err(ExecError::io("inspect", &self.root))?;
        let err = |e| ExecError::io("write changes into", upper)(e);
        self.diff_dir(Path::new(""), upper, &seen).map_err(err)?;
        // Deletions: the topmost vanished path of each deleted subtree.
        let mut gone: Vec<&PathBuf> = self
            .before
            .keys()
            .filter(|p| !seen.contains_key(*p))
            .filter(|p| {
                // Under a path that is no longer a directory, the replacement
                // hides the old children already.
                p.parent().is_none_or(|parent| {
                    parent.as_os_str().is_empty()
                        || seen
                            .get(parent)
                            .is_some_and(|s| s.mode & libc::S_IFMT == libc::S_IFDIR)
                })
            })
            .collect();
        gone.sort();
        for rel in gone {
            if let Some(parent) = rel.parent() {
                self.ensure_parents(parent, upper).map_err(err)?;
            }
            sys::mknod(&upper.join(rel), libc::S_IFCHR, 0).map_err(err)?;
        }
        Ok(())
    }

    fn diff_dir(&self, rel: &Path, upper: &Path, seen: &HashMap<PathBuf, Stamp>) -> io::Result<()> {
        let mut entries = fs::read_dir(self.root.join(rel))?.collect::<io::Result<Vec<_>>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let child = rel.join(e.file_name());
            let now = seen[&child];
            let was = self.before.get(&child);
            let meta = e.metadata()?;
            if meta.is_dir() {
                if was != Some(&now) {
                    self.ensure_parents(&child, upper)?;
                    set_meta(&upper.join(&child), &meta, &self.root.join(&child))?;
                }
                self.diff_dir(&child, upper, seen)?;
            } else if was != Some(&now) {
                if let Some(parent) = child.parent() {
                    self.ensure_parents(parent, upper)?;
                }
                copy_entry(&self.root.join(&child), &upper.join(&child), &meta)?;
            }
        }
        Ok(())
    }

    /// Creates `rel` and its parents in `upper` with the metadata they have in the
    /// root, as overlayfs copies up the directories above a change.
    fn ensure_parents(&self, rel: &Path, upper: &Path) -> io::Result<()> {
        let mut prefix = PathBuf::new();
        for c in rel.components() {
            prefix.push(c);
            let dst = upper.join(&prefix);
            if fs::symlink_metadata(&dst).is_ok() {
                continue;
            }
            fs::create_dir(&dst)?;
            let src = self.root.join(&prefix);
            set_meta(&dst, &fs::symlink_metadata(&src)?, &src)?;
        }
        Ok(())
    }
}

fn stamp_tree(root: &Path, rel: &Path, out: &mut HashMap<PathBuf, Stamp>) -> io::Result<()> {
    for e in fs::read_dir(root.join(rel))? {
        let e = e?;
        let child = rel.join(e.file_name());
        let meta = e.metadata()?;
        out.insert(child.clone(), Stamp::of(&meta));
        if meta.is_dir() {
            stamp_tree(root, &child, out)?;
        }
    }
    Ok(())
}

fn is_whiteout(m: &fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(p: &Path) -> io::Result<bool> {
    Ok(sys::xattrs(p)?.iter().any(|(name, val)| {
        matches!(
            name.to_bytes(),
            b"trusted.overlay.opaque" | b"user.overlay.opaque"
        ) && val.as_slice() == b"y"
    }))
}

/// Applies one overlay-format layer on top of `root`.
fn apply_layer(layer: &Path, root: &Path) -> io::Result<()> {
    apply_dir(layer, root)?;
    set_meta(root, &fs::symlink_metadata(layer)?, layer)
}

fn apply_dir(src: &Path, dst: &Path) -> io::Result<()> {
    let mut entries = fs::read_dir(src)?.collect::<io::Result<Vec<_>>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let (from, to) = (e.path(), dst.join(e.file_name()));
        let meta = fs::symlink_metadata(&from)?;
        let existing = fs::symlink_metadata(&to).ok();
        if is_whiteout(&meta) {
            if let Some(ex) = existing {
                remove(&to, &ex)?;
            }
            continue;
        }
        if meta.is_dir() {
            match existing {
                Some(ex) if ex.is_dir() => {
                    if is_opaque(&from)? {
                        fs::remove_dir_all(&to)?;
                        fs::create_dir(&to)?;
                    }
                }
                Some(ex) => {
                    remove(&to, &ex)?;
                    fs::create_dir(&to)?;
                }
                None => fs::create_dir(&to)?,
            }
            apply_dir(&from, &to)?;
            set_meta(&to, &meta, &from)?;
        } else {
            if let Some(ex) = existing {
                remove(&to, &ex)?;
            }
            copy_entry(&from, &to, &meta)?;
        }
    }
    Ok(())
}

fn remove(p: &Path, m: &fs::Metadata) -> io::Result<()> {
    if m.is_dir() {
        fs::remove_dir_all(p)
    } else {
        fs::remove_file(p)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use std::ffi::CString;

    use super::*;

    fn write(p: &Path, text: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn whiteout(m: &fs::Metadata) -> bool {
        m.file_type().is_char_device() && m.rdev() == 0
    }

    #[test]
    fn applies_layers_and_diffs_like_overlay() {
        let t = tempfile::tempdir().unwrap();
        let (l1, l2) = (t.path().join("l1"), t.path().join("l2"));
        write(&l1.join("a/x"), "x1");
        write(&l1.join("a/y"), "y1");
        write(&l1.join("b/z"), "z1");
        write(&l1.join("d/old"), "old");
        write(&l1.join("keep"), "keep");
        write(&l1.join("t/child"), "c");
        fs::create_dir_all(l2.join("a")).unwrap();
        sys::mknod(&l2.join("a/y"), libc::S_IFCHR, 0).unwrap();
        write(&l2.join("d/new"), "new");
        let opaque = CString::new("trusted.overlay.opaque").unwrap();
        sys::set_xattr(&l2.join("d"), &opaque, b"y").unwrap();

        let root = t.path().join("root");
        let copied = CopiedRootfs::prepare(&[l1, l2], &root).unwrap();
        assert_eq!(fs::read_to_string(root.join("a/x")).unwrap(), "x1");
        assert!(!root.join("a/y").exists(), "whiteout applied");
        assert!(!root.join("d/old").exists(), "opaque dir hides the lower");
        assert_eq!(fs::read_to_string(root.join("d/new")).unwrap(), "new");

        // What a RUN might do.
        fs::write(root.join("a/x"), "x2").unwrap();
        write(&root.join("n/new"), "n");
        fs::remove_file(root.join("b/z")).unwrap();
        fs::remove_dir_all(root.join("d")).unwrap();
        write(&root.join("d/again"), "again");
        fs::set_permissions(root.join("keep"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::remove_dir_all(root.join("t")).unwrap();
        write(&root.join("t"), "now a file");

        let upper = t.path().join("upper");
        fs::create_dir(&upper).unwrap();
        copied.diff_into(&upper).unwrap();
        assert_eq!(fs::read_to_string(upper.join("a/x")).unwrap(), "x2");
        assert_eq!(fs::read_to_string(upper.join("n/new")).unwrap(), "n");
        assert!(whiteout(&fs::symlink_metadata(upper.join("b/z")).unwrap()));
        assert!(whiteout(
            &fs::symlink_metadata(upper.join("d/new")).unwrap()
        ));
        assert_eq!(fs::read_to_string(upper.join("d/again")).unwrap(), "again");
        let keep = fs::symlink_metadata(upper.join("keep")).unwrap();
        assert_eq!(keep.mode() & 0o777, 0o600);
        // Unchanged entries stay out of the diff.
        assert!(!upper.join("a/y").exists());
        assert!(fs::symlink_metadata(upper.join("b")).unwrap().is_dir());
        let mut top: Vec<_> = fs::read_dir(&upper)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        top.sort();
        assert_eq!(top, ["a", "b", "d", "keep", "n", "t"]);
        assert_eq!(fs::read_to_string(upper.join("t")).unwrap(), "now a file");
    }
}
