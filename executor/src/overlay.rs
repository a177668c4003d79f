//! Overlay mounts of layer stacks.
//!
//! Mount options are limited to one page and overlayfs to 500 lower layers, so each
//! layer is reached through a symlink with a short name in a private directory, and the
//! mount is made from a thread whose working directory is that directory (the thread
//! unshares its filesystem context, so the process's working directory is untouched).
//! Stacks longer than [`MAX_LOWERS`] are first reduced by [`crate::flatten`].

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::error::ExecError;
use crate::sys;

/// Most lower layers one mount gets; overlayfs itself allows 500.
pub const MAX_LOWERS: usize = 400;

/// Room left in the one-page mount data for everything but the layers.
const MAX_OPTIONS_LEN: usize = 3800;

/// A mounted overlay, unmounted (lazily if busy) when dropped.
#[derive(Debug)]
pub struct Overlay {
    target: PathBuf,
    links: PathBuf,
    work: Option<PathBuf>,
    mounted: bool,
}

impl Overlay {
    /// Mounts `lowers` (bottom first, at least one) at `target`, with `upper` and its work
    /// dir `work` when given and read-only otherwise. `links` must not exist: it is created
    /// to hold the short names and removed on unmount, as is `work`.
    pub fn mount(
        lowers: &[PathBuf],
        upper: Option<(&Path, &Path)>,
        target: &Path,
        links: &Path,
    ) -> Result<Self, ExecError> {
        assert!(
            !lowers.is_empty() && lowers.len() <= MAX_LOWERS,
            "caller bounds the stack"
        );
        fs::create_dir(links).map_err(ExecError::io("create", links))?;
        let mut ov = Overlay {
            target: target.to_owned(),
            links: links.to_owned(),
            work: None,
            mounted: false,
        };
        let link = |name: &str, to: &Path| {
            let abs = std::path::absolute(to).map_err(ExecError::io("resolve", to))?;
            let l = links.join(name);
            symlink(&abs, &l).map_err(ExecError::io("create symlink", l))
        };
        // overlayfs lists the top layer first.
        let mut names = Vec::with_capacity(lowers.len());
        for (i, lower) in lowers.iter().enumerate().rev() {
            let name = format!("{i:x}");
            link(&name, lower)?;
            names.push(name);
        }
        let mut data = format!("lowerdir={}", names.join(":"));
        let mut flags = libc::MS_NODEV as libc::c_ulong;
        match upper {
            Some((upper, work)) => {
                fs::create_dir(work).map_err(ExecError::io("create", work))?;
                ov.work = Some(work.to_owned());
                link("u", upper)?;
                link("w", work)?;
                data.push_str(",upperdir=u,workdir=w");
            }
            None => flags |= libc::MS_RDONLY,
        }
        // Redirects and metacopy would leave changes in the upper dir that only overlayfs
        // understands; the layer format wants plain copies up.
        data.push_str(",index=off,redirect_dir=off,metacopy=off");
        if data.len() > MAX_OPTIONS_LEN {
            return Err(ExecError::Mount {
                target: target.to_owned(),
                source: io::Error::other(format!("mount options too long ({} bytes)", data.len())),
            });
        }
        mount_from(links, target, flags, data).map_err(|source| ExecError::Mount {
            target: target.to_owned(),
            source,
        })?;
        ov.mounted = true;
        Ok(ov)
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Unmounts and removes the helper directories, reporting failures.
    pub fn unmount(mut self) -> Result<(), ExecError> {
        self.release()
    }

    fn release(&mut self) -> Result<(), ExecError> {
        if self.mounted {
            sys::umount_best(&self.target).map_err(ExecError::io("unmount", &self.target))?;
            self.mounted = false;
        }
        remove_all(&self.links)?;
        if let Some(work) = self.work.take() {
            remove_all(&work)?;
        }
        Ok(())
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            tracing::warn!("overlay cleanup: {e}");
        }
    }
}

/// Removes the bookkeeping overlayfs leaves in an upper dir (origin file handles,
/// `impure` markers, the layer uuid): they describe this mount, not the change, and would
/// make otherwise equal layers differ. Opaque markers are part of the layer format and stay.
pub fn strip_overlay_xattrs(dir: &Path) -> io::Result<()> {
    strip_one(dir)?;
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        if fs::symlink_metadata(&p)?.is_dir() {
            strip_overlay_xattrs(&p)?;
        } else {
            strip_one(&p)?;
        }
    }
    Ok(())
}

fn strip_one(p: &Path) -> io::Result<()> {
    for (name, _) in sys::xattrs(p)? {
        let n = name.to_bytes();
        if n.starts_with(b"trusted.overlay.") && n != b"trusted.overlay.opaque" {
            sys::remove_xattr(p, &name)?;
        }
    }
    Ok(())
}

pub fn remove_all(p: &Path) -> Result<(), ExecError> {
    match fs::remove_dir_all(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ExecError::io("remove", p)(e)),
        _ => Ok(()),
    }
}

/// Mounts with `dir` as working directory so relative layer names resolve in it.
fn mount_from(dir: &Path, target: &Path, flags: libc::c_ulong, data: String) -> io::Result<()> {
    let dir = dir.to_owned();
    let target = std::path::absolute(target)?;
    std::thread::spawn(move || {
        // A thread of its own, with its own cwd: no other thread sees the chdir.
        sys::unshare(libc::CLONE_FS)?;
        sys::chdir(&dir)?;
        sys::mount("overlay", &target, flags, &data)
    })
    .join()
    .unwrap_or_else(|_| Err(io::Error::other("mount thread panicked")))
}
