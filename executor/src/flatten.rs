//! Reducing a layer stack too long for one overlay mount.
//!
//! The bottom layers are mounted read-only as an overlay of their own (so the kernel
//! applies whiteouts and opaque directories) and the merged view is copied into a plain
//! directory that replaces them, until the stack fits.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use crate::error::ExecError;
use crate::overlay::{MAX_LOWERS, Overlay, remove_all};
use crate::sys;

/// Returns a stack of at most [`MAX_LOWERS`] layers equivalent to `lowers`, merging the
/// bottom ones into directories created under `scratch` (which the caller removes).
pub fn reduce(lowers: &[PathBuf], scratch: &Path) -> Result<Vec<PathBuf>, ExecError> {
    let mut stack = lowers.to_vec();
    let mut round = 0;
    let mut previous: Option<PathBuf> = None;
    while stack.len() > MAX_LOWERS {
        let k = MAX_LOWERS.min(stack.len() - MAX_LOWERS + 1);
        let mnt = scratch.join(format!("fm{round}"));
        let flat = scratch.join(format!("flat{round}"));
        fs::create_dir(&mnt).map_err(ExecError::io("create", &mnt))?;
        {
            let ov = Overlay::mount(&stack[..k], None, &mnt, &scratch.join(format!("fl{round}")))?;
            copy_tree(ov.target(), &flat)
                .map_err(|e| ExecError::io("flatten layers into", &flat)(e))?;
            ov.unmount()?;
        }
        fs::remove_dir(&mnt).map_err(ExecError::io("remove", &mnt))?;
        // The merged directory of the previous round is now part of this one.
        if let Some(p) = previous.replace(flat.clone()) {
            remove_all(&p)?;
        }
        stack.splice(..k, [flat]);
        round += 1;
    }
    Ok(stack)
}

/// Copies the tree at `src` into a new directory `dst`, keeping owners, modes, times,
/// extended attributes, special files and hard links. Nothing is followed.
fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    let mut links = HashMap::new();
    fs::create_dir(dst)?;
    copy_dir(src, dst, &mut links)?;
    set_meta(dst, &fs::symlink_metadata(src)?, src)
}

fn copy_dir(src: &Path, dst: &Path, links: &mut HashMap<(u64, u64), PathBuf>) -> io::Result<()> {
    let mut entries = fs::read_dir(src)?.collect::<io::Result<Vec<_>>>()?;
    // A fixed order keeps the result independent of directory iteration order.
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let (from, to) = (e.path(), dst.join(e.file_name()));
        let meta = fs::symlink_metadata(&from)?;
        let ft = meta.file_type();
        if ft.is_dir() {
            fs::create_dir(&to)?;
            copy_dir(&from, &to, links)?;
        } else if meta.nlink() > 1
            && let Some(first) = links.get(&(meta.dev(), meta.ino()))
        {
            fs::hard_link(first, &to)?;
            continue;
        } else {
            copy_entry(&from, &to, &meta)?;
            if ft.is_file() && meta.nlink() > 1 {
                links.insert((meta.dev(), meta.ino()), to.clone());
            }
            continue;
        }
        set_meta(&to, &meta, &from)?;
    }
    Ok(())
}

/// Copies one entry that is not a directory (file, symlink, device, fifo, socket)
/// with its metadata. Entries of other kinds are skipped.
pub(crate) fn copy_entry(from: &Path, to: &Path, meta: &fs::Metadata) -> io::Result<()> {
    let ft = meta.file_type();
    if ft.is_symlink() {
        symlink(fs::read_link(from)?, to)?;
    } else if ft.is_file() {
        fs::copy(from, to)?;
    } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() || ft.is_socket() {
        sys::mknod(to, meta.mode(), meta.rdev())?;
    } else {
        return Ok(());
    }
    set_meta(to, meta, from)
}

pub(crate) fn set_meta(to: &Path, meta: &fs::Metadata, from: &Path) -> io::Result<()> {
    sys::lchown(to, meta.uid(), meta.gid())?;
    if !meta.file_type().is_symlink() {
        // After chown, which clears set-id bits.
        fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    // After chown too, which drops security.capability.
    for (name, val) in sys::xattrs(from)? {
        if !name.to_bytes().starts_with(b"trusted.overlay.") {
            sys::set_xattr(to, &name, &val)?;
        }
    }
    sys::set_times(to, meta)
}
