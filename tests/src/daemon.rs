//! A real `buildd` daemon on a temporary socket and root, driven with the real
//! `bctl`; the daemon is stopped when dropped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Run, Workspace, bctl_bin, buildd_bin};

/// A `buildd` serving a temporary root on a temporary socket; stopped on drop.
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

    /// The daemon's address, for `bctl --addr`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Runs `bctl --addr ADDR ARGS…`.
    pub fn bctl(&self, args: &[&str]) -> Run {
        self.bctl_with_env(&[], args)
    }

    /// Runs `bctl --addr ADDR ARGS…` with `input` on its stdin.
    pub fn bctl_with_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        use std::io::Write as _;
        use std::process::Stdio;
        let mut child = Command::new(bctl_bin())
            .arg("--addr")
            .arg(&self.addr)
            .args(args)
            .env_remove("BUILDD_ADDR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run bctl");
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(input).expect("write bctl's stdin");
        drop(stdin);
        Run::of(child.wait_with_output().expect("wait for bctl"))
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
    /// SIGTERM, so the daemon unmounts what it mounted under its root before the
    /// temp dir goes; SIGKILL if it has not exited after 20 s.
    fn drop(&mut self) {
        buildd_testkit::process::stop(&mut self.child, std::time::Duration::from_secs(20));
    }
}
