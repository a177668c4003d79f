//! Private network namespaces with outbound access through slirp4netns.
//!
//! The namespace is made before the container, kept alive by a bind mount of its nsfs
//! file, and handed to the runtime by path, so slirp4netns is attached before the
//! process starts and the runtime can be driven with a plain `run`.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::ExecError;
use crate::sys;

/// slirp4netns's fixed addresses: the guest side of the tap device, its DNS forwarder.
pub const SLIRP_DNS: &str = "10.0.2.3";

/// How long slirp4netns may take to configure the namespace.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A network namespace bound at a path, with slirp4netns serving it.
#[derive(Debug)]
pub struct SlirpNetns {
    path: PathBuf,
    mounted: bool,
    slirp: Option<Child>,
    /// slirp4netns exits when this, the write end of its exit pipe, is closed, which
    /// also happens if this process dies.
    exit_fd: Option<OwnedFd>,
}

impl SlirpNetns {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates a namespace bound at `path` (a file that must not exist) and attaches
    /// `slirp4netns` to it, its messages going to the file `log`.
    pub fn create(slirp4netns: &Path, path: &Path, log: &Path) -> Result<Self, ExecError> {
        File::create(path).map_err(ExecError::io("create", path))?;
        let mut ns = SlirpNetns {
            path: path.to_owned(),
            mounted: false,
            slirp: None,
            exit_fd: None,
        };
        let target = path.to_owned();
        std::thread::spawn(move || {
            // Only this thread moves to the new namespace; it ends right after.
            sys::unshare(libc::CLONE_NEWNET)?;
            sys::loopback_up()?;
            sys::bind(Path::new("/proc/thread-self/ns/net"), &target)
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("netns thread panicked")))
        .map_err(|e| {
            ExecError::Network(format!(
                "create network namespace at {}: {e}",
                path.display()
            ))
        })?;
        ns.mounted = true;

        let (ready_r, ready_w) = pipe()?;
        let (exit_r, exit_w) = pipe()?;
        let mut cmd = Command::new(slirp4netns);
        cmd.args([
            "--configure",
            "--mtu=65520",
            "--disable-host-loopback",
            "--enable-seccomp",
        ])
        .arg(format!("--ready-fd={}", ready_w.as_raw_fd()))
        .arg(format!("--exit-fd={}", exit_r.as_raw_fd()))
        .args(["--netns-type=path"])
        .arg(path)
        .arg("tap0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(log).map_err(ExecError::io("create", log))?);
        let fds = [ready_w.as_raw_fd(), exit_r.as_raw_fd()];
        // SAFETY: the hook only calls async-signal-safe fcntl on fds that stay open
        // until spawn returns.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                for fd in fds {
                    if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| ExecError::Network(format!("start {}: {e}", slirp4netns.display())))?;
        drop((ready_w, exit_r));
        ns.slirp = Some(child);
        ns.exit_fd = Some(exit_w);
        ns.wait_ready(ready_r, log)?;
        Ok(ns)
    }

    fn wait_ready(&mut self, ready: OwnedFd, log: &Path) -> Result<(), ExecError> {
        let mut f = File::from(ready);
        // SAFETY: plain data for poll on an fd we own.
        let mut pfd = libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .as_millis() as i32;
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, left) };
            if n > 0 || left == 0 {
                break;
            }
            if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                break;
            }
        }
        let mut buf = [0u8; 1];
        let ok = pfd.revents != 0 && matches!(f.read(&mut buf), Ok(1)) && buf[0] == b'1';
        if ok {
            return Ok(());
        }
        if let Some(mut child) = self.slirp.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let msg = std::fs::read_to_string(log).unwrap_or_default();
        Err(ExecError::Network(format!(
            "slirp4netns did not become ready: {}",
            msg.trim()
        )))
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), ExecError> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(ExecError::Network(format!(
            "pipe: {}",
            io::Error::last_os_error()
        )));
    }
    // SAFETY: both fds are new and owned here.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl Drop for SlirpNetns {
    fn drop(&mut self) {
        self.exit_fd.take();
        if let Some(mut child) = self.slirp.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.mounted
            && let Err(e) = sys::umount(&self.path, libc::MNT_DETACH)
        {
            tracing::warn!("unmount network namespace {}: {e}", self.path.display());
        }
        let _ = std::fs::remove_file(&self.path);
    }
}
