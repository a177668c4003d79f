//! A busybox root filesystem and an executor in temporary directories.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::sync::Mutex;

use buildd_executor::{
    ExecError, Executor, ExitStatus, OutputSink, RootfsPlan, RunSpec, RuncExecutor,
};
use tempfile::TempDir;

const BUSYBOX: &str = "/bin/busybox";
const APPLETS: [&str; 16] = [
    "sh", "echo", "cat", "ls", "rm", "sleep", "id", "wget", "nc", "pwd", "env", "mkdir", "touch",
    "ip", "true", "false",
];

pub struct Env {
    pub tmp: TempDir,
    pub exec: RuncExecutor,
}

/// The test environment, or `None` (said why through `buildd_testkit`) when runc,
/// busybox or root are missing.
#[track_caller]
pub fn env() -> Option<Env> {
    let ready = buildd_testkit::skip_unless(
        RuncExecutor::find_runtime().is_some(),
        "runc",
        "no OCI runtime (runc or crun) on PATH",
    ) && buildd_testkit::require_file(BUSYBOX, "busybox", "Debian busybox-static")
        && buildd_testkit::require_root("containers, mounts and device nodes");
    if !ready {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let exec = RuncExecutor::new(
        RuncExecutor::find_runtime().unwrap(),
        tmp.path().join("state"),
        tmp.path().join("scratch"),
    );
    Some(Env { tmp, exec })
}

impl Env {
    /// A layer with busybox and its applets in /bin.
    pub fn busybox_layer(&self) -> PathBuf {
        let layer = self.dir("busybox");
        let bin = layer.join("bin");
        fs::create_dir(&bin).unwrap();
        fs::copy(BUSYBOX, bin.join("busybox")).unwrap();
        for a in APPLETS {
            symlink("busybox", bin.join(a)).unwrap();
        }
        layer
    }

    /// A new empty directory under the test's temporary directory.
    pub fn dir(&self, name: &str) -> PathBuf {
        let d = self.tmp.path().join(name);
        fs::create_dir_all(&d).unwrap();
        d
    }

    pub fn plan(&self, lowers: Vec<PathBuf>) -> RootfsPlan {
        let upper = self.tmp.path().join("layers").join("upper");
        fs::create_dir_all(&upper).unwrap();
        RootfsPlan { lowers, upper }
    }

    pub async fn run(
        &self,
        plan: &RootfsPlan,
        spec: &RunSpec,
    ) -> (Result<ExitStatus, ExecError>, Output) {
        let out = Collect::default();
        let res = self.exec.run(plan, spec, &out).await;
        (res, out.take())
    }

    /// What a run left behind: containers, mounts under the test dir, scratch entries.
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        let list = std::process::Command::new(RuncExecutor::find_runtime().unwrap())
            .arg("--root")
            .arg(self.exec.state_dir())
            .args(["list", "-q"])
            .output()
            .unwrap();
        let ids = String::from_utf8_lossy(&list.stdout).trim().to_owned();
        if !ids.is_empty() {
            left.push(format!("containers: {ids}"));
        }
        let root = self.tmp.path().to_str().unwrap();
        for line in fs::read_to_string("/proc/self/mountinfo").unwrap().lines() {
            if line.split(' ').nth(4).is_some_and(|m| m.starts_with(root)) {
                left.push(format!("mount: {line}"));
            }
        }
        if let Ok(rd) = fs::read_dir(self.tmp.path().join("scratch")) {
            left.extend(rd.map(|e| format!("scratch: {:?}", e.unwrap().path())));
        }
        for e in fs::read_dir(self.tmp.path().join("layers")).unwrap() {
            let name = e.unwrap().file_name();
            if name != "upper" {
                left.push(format!("next to upper: {name:?}"));
            }
        }
        left
    }
}

pub fn sh(script: &str) -> RunSpec {
    RunSpec {
        args: vec!["/bin/sh".into(), "-c".into(), script.into()],
        ..Default::default()
    }
}

#[derive(Debug, Default)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

#[derive(Default)]
pub struct Collect(Mutex<Output>);

impl Collect {
    pub fn take(&self) -> Output {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl OutputSink for Collect {
    fn write(&self, stream: u8, data: &[u8]) {
        let mut o = self.0.lock().unwrap();
        let s = if stream == 1 {
            &mut o.stdout
        } else {
            &mut o.stderr
        };
        s.push_str(&String::from_utf8_lossy(data));
    }
}
