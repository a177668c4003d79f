//! A real `buildd` daemon on a temporary socket and root, driven with the real
//! `bctl`; the daemon is killed when dropped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Run, Workspace, bctl_bin, buildd_bin};

/// A `buildd` serving a temporary root on a temporary socket; killed on drop.
pub struct Daemon {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Daemon {
    pub fn start(ws: &Workspace) -> Self {
        let socket = ws.path("buildd.sock");
        let addr = format!("unix://{}", socket.display());
        let log = ws.path("buildd.log");
        let child = Command::new(buildd_bin())
            .arg("--root")
            .arg(ws.root())
            .arg("--addr")
            .arg(&addr)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("start buildd");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "buildd did not open {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, addr, log }
    }

    /// Runs `bctl --addr ADDR ARGS…`.
    pub fn bctl(&self, args: &[&str]) -> Run {
        self.bctl_with_env(&[], args)
    }

    /// Runs `bctl --addr ADDR ARGS…` with extra environment variables.
    pub fn bctl_with_env(&self, env: &[(&str, &Path)], args: &[&str]) -> Run {
        let out = Command::new(bctl_bin())
            .arg("--addr")
            .arg(&self.addr)
            .args(args)
            .env_remove("BUILDD_ADDR")
            .envs(env.iter().copied())
            .output()
            .expect("run bctl");
        let run = Run::of(out);
        if !run.ok {
            eprintln!(
                "bctl {args:?} failed:\n{}\ndaemon log:\n{}",
                run.stderr,
                fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
        run
    }

    /// Runs `bctl build --progress=plain ARGS… CTX`.
    pub fn build(&self, ws: &Workspace, args: &[&str]) -> Run {
        let ctx = ws.ctx();
        let mut all = vec!["build", "--progress=plain"];
        all.extend_from_slice(args);
        all.push(ctx.to_str().unwrap());
        self.bctl(&all)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
