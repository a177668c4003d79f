//! Secret mounts: each secret of a run is a file on a tmpfs of its own, so its
//! value never touches a disk, bind-mounted read-only at its target. The tmpfs
//! is unmounted when the run ends.

use std::fs;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

use buildd_proto::llb::SecretOpt;

use crate::session::{MAX_SECRET_SIZE, SecretValue};
use crate::solver::OpError;

/// Where the tmpfs of the runs live: `<root>/secrets/<run>`.
pub(super) fn secrets_root(root: &Path) -> PathBuf {
    root.join("secrets")
}

/// A mounted tmpfs holding a run's secret files; unmounted and removed on drop.
pub(super) struct SecretFiles {
    dir: PathBuf,
    mounted: bool,
}

impl SecretFiles {
    /// Writes each `(name, value, opt)` to `<tmpfs>/name` with the owner and mode
    /// `opt` asks for; returns the guard. Blocking.
    pub(super) fn create(
        root: &Path,
        files: &[(String, SecretValue, SecretOpt)],
    ) -> Result<(Self, Vec<PathBuf>), OpError> {
        let parent = secrets_root(root);
        super::clear_stale_once(&parent, remove_stale);
        let fail = |what: &str, path: &Path, e: io::Error| {
            OpError::new(format!("secret mount: {what} {}: {e}", path.display()))
        };
        fs::create_dir_all(&parent).map_err(|e| fail("create", &parent, e))?;
        fs::set_permissions(&parent, fs::Permissions::from_mode(0o700))
            .map_err(|e| fail("chmod", &parent, e))?;
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let dir = parent.join(super::run_dir_name(&SEQ));
        fs::create_dir(&dir).map_err(|e| fail("create", &dir, e))?;
        let mut guard = SecretFiles {
            dir,
            mounted: false,
        };
        // Room for every file in whole pages, at least the 1 MiB BuildKit gives.
        let size: usize = files
            .iter()
            .map(|(_, v, _)| v.len().div_ceil(4096) * 4096 + 4096)
            .sum::<usize>()
            .max(MAX_SECRET_SIZE * 2);
        crate::mounts::tmpfs(&guard.dir, size)
            .map_err(|e| fail("mount tmpfs at", &guard.dir, e))?;
        guard.mounted = true;

        let mut paths = Vec::with_capacity(files.len());
        for (name, value, opt) in files {
            let path = guard.dir.join(name);
            write_secret(&path, value, opt).map_err(|e| fail("write", &path, e))?;
            paths.push(path);
        }
        Ok((guard, paths))
    }
}

impl Drop for SecretFiles {
    fn drop(&mut self) {
        if self.mounted
            && let Err(e) = crate::mounts::detach(&self.dir)
        {
            // Never remove files under a tmpfs that may still be in use.
            tracing::warn!("unmount secrets at {}: {e}", self.dir.display());
            return;
        }
        if let Err(e) = fs::remove_dir(&self.dir) {
            tracing::warn!("remove {}: {e}", self.dir.display());
        }
    }
}

fn write_secret(path: &Path, value: &[u8], opt: &SecretOpt) -> io::Result<()> {
    use std::io::Write as _;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(value)?;
    std::os::unix::fs::fchown(&f, Some(opt.uid), Some(opt.gid))?;
    // The mode last: a 0400 file is still writable through the open descriptor,
    // and a chown clears set-id bits.
    f.set_permissions(fs::Permissions::from_mode(opt.mode & 0o7777))
}

/// Unmounts and removes a tmpfs an earlier process left behind.
fn remove_stale(path: &Path) {
    let _ = crate::mounts::detach(path);
    if let Err(err) = fs::remove_dir(path) {
        tracing::warn!("remove stale secrets {}: {err}", path.display());
    }
}
