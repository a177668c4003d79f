//! A git repository served by a real `git daemon` on loopback, for tests of git
//! sources and contexts: branch `main` with tags `v1` (light) and `v2` (annotated).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A repository served by `git daemon` until dropped.
pub struct GitServer {
    dir: tempfile::TempDir,
    pub port: u16,
    daemon: Child,
}

impl GitServer {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo.git");
        std::fs::create_dir(&repo).unwrap();
        let server = |port, daemon| Self { dir, port, daemon };
        let port = crate::free_port();
        let daemon = Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--informative-errors",
            ])
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", repo.parent().unwrap().display()))
            .arg(repo.parent().unwrap())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // `git daemon` runs `git-daemon` as a child (which forks one per
            // connection): a group of their own, so the drop stops them all.
            .process_group(0)
            .spawn()
            .expect("git daemon (Debian's git) is needed for these tests");
        let s = server(port, daemon);
        s.git(&["init", "-q", "-b", "main"]);
        s.commit(&[("a.txt", "one\n"), ("sub/b.txt", "b\n")], "one");
        s.git(&["tag", "v1"]);
        s.commit(&[("a.txt", "two\n")], "two");
        s.git(&["tag", "-a", "-m", "annotated", "v2"]);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("git daemon did not listen on port {port}");
    }

    pub fn repo(&self) -> PathBuf {
        self.dir.path().join("repo.git")
    }

    pub fn url(&self) -> String {
        format!("git://127.0.0.1:{}/repo.git", self.port)
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(self.repo())
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", self.dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (path, content) in files {
            let path = self.repo().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        // SAFETY: kill(2) of the process group this server's `git` leads.
        unsafe { libc::kill(-(self.daemon.id() as i32), libc::SIGKILL) };
        let _ = self.daemon.wait();
    }
}
