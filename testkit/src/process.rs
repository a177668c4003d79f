//! Processes tests start and look for: stopping a daemon so it cleans up, and
//! finding a RUN's process by a marker in its command line.

use std::process::Child;
use std::time::{Duration, Instant};

/// SIGTERM, so the process unmounts and removes what it made; SIGKILL if it has
/// not exited within `grace`. Returns once it has exited.
pub fn stop(child: &mut Child, grace: Duration) {
    // SAFETY: kill(2) on our own child's pid, which we have not waited for yet.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while matches!(child.try_wait(), Ok(None)) {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.wait();
}

/// Whether a process whose command line contains `marker` runs.
pub fn running(marker: &str) -> bool {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(marker)
            })
        })
}
