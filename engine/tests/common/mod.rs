//! The busybox fixture of the RUN tests: a root and a context holding a busybox
//! rootfs that Dockerfiles copy in as their base.

#![allow(dead_code)] // each test file uses its own part

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::PathBuf;

use buildd_engine::Engine;
use buildd_engine::build::{BuildError, BuildOutcome, BuildRequest, build};
use buildd_engine::export::OutputSpec;
use buildd_engine::solver::{ProgressEvent, SolverConfig};

const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &[
    "sh",
    "echo",
    "cat",
    "ls",
    "id",
    "rm",
    "touch",
    "mkdir",
    "pwd",
    "sleep",
    "test",
    "stat",
    "grep",
    "unshare",
    "mount",
    "linux32",
    "env",
    "sha256sum",
    "true",
    "printf",
];

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub engine: Engine,
}

/// A root and a context holding a busybox rootfs, or None (said why through
/// `buildd_testkit`) when this host cannot run containers.
#[track_caller]
pub fn fixture() -> Option<Fixture> {
    let runtime = ["runc", "crun"]
        .iter()
        .any(|r| buildd_testkit::which(r).is_some());
    if !buildd_testkit::skip_unless(runtime, "runc", "no OCI runtime (runc or crun) on PATH")
        || !buildd_testkit::require_file(BUSYBOX, "busybox", "Debian busybox-static")
    {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("ctx/rootfs");
    fs::create_dir_all(rootfs.join("bin")).unwrap();
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::create_dir_all(rootfs.join("tmp")).unwrap();
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
    )
    .unwrap();
    fs::write(rootfs.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
    let engine = Engine::open(&dir.path().join("root"), SolverConfig::default()).unwrap();
    Some(Fixture { dir, engine })
}

impl Fixture {
    pub fn ctx(&self) -> PathBuf {
        self.dir.path().join("ctx")
    }

    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// Builds `dockerfile` (after the busybox base) into `out/`, returning the
    /// outcome and every progress event.
    pub async fn build(
        &self,
        dockerfile: &str,
    ) -> (Result<BuildOutcome, BuildError>, Vec<ProgressEvent>) {
        self.build_with(dockerfile, BuildRequest::default()).await
    }

    /// Like [`Fixture::build`], with the rest of the request (secrets, entitlements…)
    /// taken from `req`.
    pub async fn build_with(
        &self,
        dockerfile: &str,
        req: BuildRequest,
    ) -> (Result<BuildOutcome, BuildError>, Vec<ProgressEvent>) {
        self.build_exact(&format!("FROM scratch\nCOPY rootfs/ /\n{dockerfile}"), req)
            .await
    }

    /// Builds `dockerfile` as it is, with no base added.
    pub async fn build_exact(
        &self,
        dockerfile: &str,
        req: BuildRequest,
    ) -> (Result<BuildOutcome, BuildError>, Vec<ProgressEvent>) {
        fs::write(self.ctx().join("Dockerfile"), dockerfile).unwrap();
        let _ = fs::remove_dir_all(self.out());
        let req = BuildRequest {
            context: self.ctx(),
            outputs: vec![OutputSpec::Local { dest: self.out() }],
            ..req
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let result = build(&self.engine, &req, Some(tx)).await;
        let mut events = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            events.push(ev);
        }
        (result, events)
    }

    /// Layers being written (or left behind) in the layer store.
    pub fn staging(&self) -> Vec<std::ffi::OsString> {
        fs::read_dir(self.dir.path().join("root/layers"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with('.'))
            .collect()
    }

    pub fn read(&self, path: &str) -> String {
        let p = self.out().join(path);
        fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }
}

pub fn run_steps(events: &[ProgressEvent], cached: bool) -> Vec<&str> {
    events
        .iter()
        .filter_map(|ev| match ev {
            ProgressEvent::Cached { name, .. } if cached => Some(name.as_str()),
            ProgressEvent::Completed { name, .. } if !cached => Some(name.as_str()),
            _ => None,
        })
        .filter(|name| name.contains("RUN"))
        .collect()
}
