//! git over ssh through the build's SSH agent: a real `sshd` on loopback that
//! accepts only a key held by an `ssh-agent` of the client's. `bctl build
//! --ssh default=SOCK ssh://…` has the daemon fetch the context with that agent,
//! reached over the session; `buildd build --ssh` does the same for `ADD`.
//! Without the agent, the fetch fails naming the URL and the reason.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use buildd_tests::daemon::Daemon;
use buildd_tests::git::GitServer;
use buildd_tests::{Workspace, free_port, list_files};

const SSHD: &str = "/usr/sbin/sshd";

/// An sshd and an agent holding the one key it accepts; both stop on drop.
struct Ssh {
    dir: tempfile::TempDir,
    port: u16,
    sshd: Child,
    agent: Child,
}

impl Ssh {
    fn start() -> Option<Self> {
        if !buildd_testkit::require_file(SSHD, "sshd", "apt-get install openssh-server") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_owned();
        let p = |name: &str| base.join(name);
        for key in ["hostkey", "id"] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(p(key)));
        }
        std::fs::copy(p("id.pub"), p("authorized_keys")).unwrap();
        let port = free_port();
        std::fs::write(
            p("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile {}\n",
                p("hostkey").display(),
                p("authorized_keys").display(),
                p("sshd.pid").display()
            ),
        )
        .unwrap();
        // sshd's privilege separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let sshd = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(p("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let agent = Command::new("ssh-agent")
            .args(["-D", "-a"])
            .arg(p("agent.sock"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let ssh = Self {
            dir,
            port,
            sshd,
            agent,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(ssh.agent_socket().exists()
            && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
        {
            assert!(Instant::now() < deadline, "sshd or ssh-agent did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        run(Command::new("ssh-add")
            .arg("-q")
            .arg(p("id"))
            .env("SSH_AUTH_SOCK", ssh.agent_socket()));
        Some(ssh)
    }

    fn agent_socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    fn url(&self, repo: &Path) -> String {
        format!("ssh://root@127.0.0.1:{}{}", self.port, repo.display())
    }
}

impl Drop for Ssh {
    fn drop(&mut self) {
        for child in [&mut self.sshd, &mut self.agent] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {out:?}");
}

fn repository() -> GitServer {
    let server = GitServer::start();
    server.commit(
        &[
            ("app/Dockerfile", "FROM scratch\nCOPY . /app/\n"),
            ("app/hello.txt", "hello over ssh\n"),
        ],
        "app",
    );
    server
}

#[test]
fn bctl_passes_its_agent_for_a_git_context_over_ssh() {
    let Some(ssh) = Ssh::start() else {
        return;
    };
    let repo = repository();
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws);
    let out = ws.path("out");
    let local = format!("type=local,dest={}", out.display());
    let url = format!("{}#main:app", ssh.url(&repo.repo()));
    let agent = format!("default={}", ssh.agent_socket().display());
    let run = daemon.bctl(&["build", "--ssh", &agent, "-o", &local, &url]);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(
        list_files(&out.join("app")),
        vec!["Dockerfile", "hello.txt"]
    );

    // No agent, no key: sshd refuses, and the error says where and why.
    let run = daemon.bctl(&["build", "--no-cache", &url]);
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains(&format!("git source {}", ssh.url(&repo.repo()))),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Permission denied"), "{}", run.stderr);
}

#[test]
fn add_fetches_over_ssh_with_the_one_shot_agent() {
    let Some(ssh) = Ssh::start() else {
        return;
    };
    let repo = repository();
    let ws = Workspace::new();
    ws.dockerfile(&format!(
        "FROM scratch\nADD {}#main:app /src/\n",
        ssh.url(&repo.repo())
    ));
    let out = ws.path("out");
    let local = format!("type=local,dest={}", out.display());
    let agent = format!("default={}", ssh.agent_socket().display());
    ws.build(&["--ssh", &agent, "-o", &local]).success();
    assert_eq!(
        std::fs::read_to_string(out.join("src/hello.txt")).unwrap(),
        "hello over ssh\n"
    );
}
