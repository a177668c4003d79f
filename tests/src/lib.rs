//! Helpers for the end-to-end tests: run the real `buildd` binary on temporary
//! contexts and roots, and inspect what it wrote with skopeo, umoci and tar.

pub mod daemon;
pub mod git;
pub mod http;
pub mod registry;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `buildd` binary that `cargo test --workspace` built next to this test.
pub fn buildd_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BUILDD_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("buildd");
    assert!(
        bin.is_file(),
        "{} not found: run the tests with `cargo test --workspace`, which builds it \
         (or `cargo build -p buildd-daemon --bin buildd` first)",
        bin.display()
    );
    bin
}

/// The `bctl` binary built next to `buildd` (`cargo build -p buildd-cli`).
pub fn bctl_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BCTL_BIN") {
        return p.into();
    }
    let bin = buildd_bin().with_file_name("bctl");
    assert!(
        bin.is_file(),
        "{} not found: run `cargo build -p buildd-cli` first",
        bin.display()
    );
    bin
}

/// A loopback port nothing listens on (for a server a test starts, or for one
/// that must be unreachable).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free loopback port")
        .port()
}

/// A temporary build context plus a root for buildd's state.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Default for Workspace {
    fn default() -> Self {
        Self::new()
    }
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(dir.path().join("ctx")).unwrap();
        Self { dir }
    }

    pub fn ctx(&self) -> PathBuf {
        self.dir.path().join("ctx")
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a context file (parents created) with the given mode.
    pub fn file(&self, rel: &str, content: &str, mode: u32) -> &Self {
        let p = self.ctx().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    pub fn dockerfile(&self, text: &str) -> &Self {
        self.file("Dockerfile", text, 0o644)
    }

    /// Runs `buildd --root ROOT build ARGS… CTX`.
    pub fn build(&self, args: &[&str]) -> Run {
        self.build_in(&self.root(), args)
    }

    /// Runs `buildd --root ROOT build ARGS… CONTEXT` with `stdin` as its input.
    pub fn build_from(&self, args: &[&str], context: &str, stdin: &[u8]) -> Run {
        use std::io::Write as _;
        let mut child = Command::new(buildd_bin())
            .arg("--root")
            .arg(self.root())
            .arg("build")
            .arg("--progress=plain")
            .args(args)
            .arg(context)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run buildd");
        let mut input = child.stdin.take().expect("piped");
        input.write_all(stdin).expect("write buildd's stdin");
        drop(input);
        Run::of(child.wait_with_output().expect("wait for buildd"))
    }

    pub fn build_in(&self, root: &Path, args: &[&str]) -> Run {
        let mut cmd = Command::new(buildd_bin());
        cmd.arg("--root")
            .arg(root)
            .arg("build")
            .arg("--progress=plain");
        cmd.args(args).arg(self.ctx());
        Run::of(cmd.output().expect("run buildd"))
    }
}

/// A finished `buildd` process.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of(out: Output) -> Self {
        Self {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn success(self) -> Self {
        assert!(self.ok, "buildd failed:\n{}", self.stderr);
        self
    }

    #[track_caller]
    pub fn failure(self) -> Self {
        assert!(
            !self.ok,
            "buildd succeeded but should not have:\n{}",
            self.stderr
        );
        self
    }

    /// Progress lines for vertices whose name contains `needle`: "CACHED" or "DONE".
    pub fn status_of(&self, needle: &str) -> Option<&'static str> {
        let id = self.stderr.lines().find_map(|l| {
            let (id, name) = l.split_once(' ')?;
            (id.starts_with('#') && name.contains(needle)).then_some(id)
        })?;
        self.stderr
            .lines()
            .find_map(|l| match l.strip_prefix(id)?.trim() {
                "CACHED" => Some("CACHED"),
                s if s.starts_with("DONE") => Some("DONE"),
                _ => None,
            })
    }
}

/// `skopeo inspect --config oci-archive:PATH` as JSON.
pub fn skopeo_config(archive: &Path) -> serde_json::Value {
    skopeo(&[
        "inspect",
        "--config",
        &format!("oci-archive:{}", archive.display()),
    ])
}

pub fn skopeo(args: &[&str]) -> serde_json::Value {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("skopeo prints JSON")
}

/// Unpacks `layout:tag` with umoci into `bundle` and returns its rootfs.
pub fn umoci_unpack(layout: &Path, tag: &str, bundle: &Path) -> PathBuf {
    let out = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:{tag}", layout.display()))
        .arg(bundle)
        .output()
        .expect("run umoci");
    assert!(
        out.status.success(),
        "umoci unpack failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bundle.join("rootfs")
}

/// Extracts an OCI layout tar into a directory (umoci wants a directory).
pub fn untar(archive: &Path, dest: &Path) {
    fs::create_dir_all(dest).unwrap();
    tar::Archive::new(fs::File::open(archive).unwrap())
        .unpack(dest)
        .unwrap();
}

/// Reads `index.json` → manifest → layer blobs of a layout directory: the layer
/// digests of its single image, bottom first.
pub fn layer_digests(layout: &Path) -> Vec<String> {
    let read = |p: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
            .unwrap()
    };
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let index = read(layout.join("index.json"));
    let manifest = read(blob(index["manifests"][0]["digest"].as_str().unwrap()));
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// Every file under `dir`, relative, sorted: for "nothing left behind" checks.
pub fn list_files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Whether this host can run RUN steps on a busybox rootfs: runc and
/// `/bin/busybox`; says why through [`buildd_testkit`] when not.
#[track_caller]
pub fn can_run_busybox() -> bool {
    buildd_testkit::require_tool("runc")
        && buildd_testkit::require_file("/bin/busybox", "busybox", "Debian busybox-static")
}

/// Writes a busybox root filesystem to `rootfs/` in the workspace's context (`/bin`
/// with `applets` as links, `/tmp` 1777) for Dockerfiles that `COPY rootfs/ /` as
/// their base. `false`, after saying why through [`buildd_testkit`], when this host
/// cannot run containers (no runc or no busybox-static).
pub fn busybox_context(ws: &Workspace, applets: &[&str]) -> bool {
    if !can_run_busybox() {
        return false;
    }
    let rootfs = ws.ctx().join("rootfs");
    fs::create_dir_all(rootfs.join("bin")).unwrap();
    fs::create_dir_all(rootfs.join("tmp")).unwrap();
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for applet in applets {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    true
}
