//! A real Distribution v2 registry (Debian's `docker-registry`) on a free loopback
//! port with temporary storage, optionally behind htpasswd basic auth. The process
//! is killed when the [`TestRegistry`] is dropped, also when a test panics.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The registry binary: `$BUILDD_DOCKER_REGISTRY`, else `docker-registry` on `$PATH`.
pub fn registry_bin() -> PathBuf {
    std::env::var_os("BUILDD_DOCKER_REGISTRY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("docker-registry"))
}

/// Whether the registry can be run (Debian `docker-registry`); says why through
/// [`buildd_testkit`] when not.
#[track_caller]
pub fn registry_available() -> bool {
    buildd_testkit::require_tool(registry_bin())
}

/// Whether a registry behind basic auth can be run: the registry and `htpasswd`
/// (Debian `apache2-utils`); says why through [`buildd_testkit`] when not.
#[track_caller]
pub fn auth_registry_available() -> bool {
    registry_available() && buildd_testkit::require_tool("htpasswd")
}

/// A running registry.
pub struct TestRegistry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl TestRegistry {
    /// An anonymous registry.
    pub fn start() -> Self {
        Self::start_inner(None)
    }

    /// A registry that requires `user`/`password` (basic auth, bcrypt htpasswd).
    pub fn start_with_basic_auth(user: &str, password: &str) -> Self {
        Self::start_inner(Some((user, password)))
    }

    fn start_inner(auth: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().expect("registry tempdir");
        let auth_yaml = match auth {
            Some((user, password)) => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .expect("run htpasswd (apt-get install apache2-utils)");
                assert!(out.status.success(), "htpasswd failed: {out:?}");
                let file = dir.path().join("htpasswd");
                fs::write(&file, &out.stdout).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: buildd-test\n    path: {}\n",
                    file.display()
                )
            }
            None => String::new(),
        };
        // The free port is found by binding and releasing it, so another process can
        // take it before the registry does: retry a few times when startup fails.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = crate::free_port();
            let config = dir.path().join("config.yml");
            fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                     http:\n  addr: 127.0.0.1:{port}\n  secret: buildd-test-secret\n{auth_yaml}",
                    dir.path().join("storage").display()
                ),
            )
            .unwrap();
            let log = fs::File::create(dir.path().join("registry.log")).unwrap();
            let mut cmd = Command::new(registry_bin());
            // Killed with the thread that started it, even if this process dies
            // without unwinding (the registry lives only as long as its test).
            // SAFETY: prctl is async-signal-safe and touches no memory of ours.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let mut child = cmd
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            if wait_ready(&mut child, port, Duration::from_secs(20)) {
                return Self { child, port, dir };
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
        }
        panic!("docker-registry did not start:\n{last_log}");
    }

    /// `127.0.0.1:PORT`, as used in image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the registry printed so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `GET /v2/` answers (200, or 401 with auth); false if the process
/// exits first (e.g. its port was taken) or the time runs out.
fn wait_ready(child: &mut Child, port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Some(status) = http_status(port, "/v2/")
            && (status == 200 || status == 401)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The status code of a plain `GET path` on the loopback port, if it answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut head = [0u8; 32];
    let n = s.read(&mut head).ok()?;
    let line = std::str::from_utf8(&head[..n]).ok()?;
    line.split(' ').nth(1)?.parse().ok()
}
