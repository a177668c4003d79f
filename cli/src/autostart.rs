//! The embedded default: with no address given and no daemon answering on the
//! default socket, `bctl build` starts `buildd` itself, detached, and uses it.

use std::fs::{self, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::addr::Addr;
use crate::connect::{Client, TlsFiles, connect};

/// How long a fresh daemon may take to open its socket (it may recover a root
/// left dirty by a crash first).
const STARTUP: Duration = Duration::from_secs(30);

/// The `buildd` next to this executable, else the one on PATH.
pub fn find_buildd() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("buildd")))
        .filter(|p| p.is_file());
    beside.or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("buildd"))
                .find(|p| p.is_file())
        })
    })
}

/// Starts `buildd --addr unix://SOCKET` in the background, logging next to the
/// socket, and connects once it answers.
pub async fn start(socket: &Path) -> anyhow::Result<Client> {
    let addr = Addr::Unix(socket.to_owned());
    let buildd = find_buildd().context(
        "no buildd answers at the default address and none was found next to bctl or on PATH to start",
    )?;
    let dir = socket.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let log_path = dir.join("buildd.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let mut child = Command::new(&buildd)
        .arg("--addr")
        .arg(addr.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("duplicating the log descriptor")?)
        .stderr(log)
        // Its own process group: Ctrl-C on this build must not stop the daemon.
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {}", buildd.display()))?;
    eprintln!(
        "no buildd answering at {addr}: started {} (pid {}, log {})",
        buildd.display(),
        child.id(),
        log_path.display()
    );
    let deadline = Instant::now() + STARTUP;
    loop {
        match connect(&addr, &TlsFiles::default()).await {
            Ok(client) => return Ok(client),
            Err(e) if e.is_unreachable() && Instant::now() < deadline => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(status) = child.try_wait().context("waiting for buildd")? {
            bail!(
                "buildd exited ({status}) before it served {addr}; see {}",
                log_path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
