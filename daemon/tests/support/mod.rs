//! A real `buildd` daemon on a temp socket, a tonic client for it, and a small
//! session client that serves directories the way `bctl` does.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use buildd_proto::control::control_client::ControlClient;
use buildd_proto::control::{
    ClientMessage, ExportAck, Exporter, FileData, SecretResponse, SessionHello, SolveRequest,
    SolveResponse, Stat, StatList, client_message, server_message,
};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};

pub type Client = ControlClient<Channel>;

/// A `buildd` process serving a temp root on a temp socket; killed on drop.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub child: Option<Child>,
}

impl Daemon {
    pub fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, extra)
    }

    pub fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Self {
        let socket = dir.path().join("run/buildd.sock");
        let mut d = Self {
            dir,
            socket,
            child: None,
        };
        d.spawn(extra);
        d
    }

    /// Starts another daemon on the same root and socket after this one ended.
    pub fn restart(&mut self, extra: &[&str]) {
        assert!(self.child.is_none(), "stop or kill the daemon first");
        self.spawn(extra);
    }

    /// SIGKILL, as a crash or the OOM killer would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM, and waits for the daemon to exit (SIGKILL after 20 s).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            buildd_testkit::process::stop(&mut c, Duration::from_secs(20));
        }
    }

    fn spawn(&mut self, extra: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_buildd"))
            .arg("--root")
            .arg(self.dir.path().join("root"))
            .arg("--addr")
            .arg(format!("unix://{}", self.socket.display()))
            .args(extra)
            .stdin(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
        let d = self;
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&d.socket).is_err() {
            if let Some(status) = d.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("buildd exited with {status}: {}", d.log());
            }
            assert!(
                Instant::now() < deadline,
                "buildd did not listen: {}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    pub async fn client(&self) -> Client {
        connect_unix(&self.socket).await
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A clean stop unmounts what the daemon mounted under its root, so the
        // temp dir can go.
        self.stop();
    }
}

/// A client whose connection is made by a thread running as `uid`:`gid` (with no
/// supplementary groups), so the daemon sees that caller through SO_PEERCRED.
/// Credentials are per thread at the syscall level; this process stays root.
pub async fn connect_unix_as(
    socket: &Path,
    uid: u32,
    gid: u32,
) -> Result<Client, tonic::transport::Error> {
    let path = socket.to_owned();
    let stream = std::thread::spawn(move || {
        // SAFETY: raw per-thread credential syscalls on this short-lived thread.
        unsafe {
            assert_eq!(
                libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<u32>()),
                0
            );
            assert_eq!(libc::syscall(libc::SYS_setresgid, gid, gid, gid), 0);
            assert_eq!(libc::syscall(libc::SYS_setresuid, uid, uid, uid), 0);
        }
        std::os::unix::net::UnixStream::connect(&path)
    })
    .join()
    .unwrap();
    let stream = Arc::new(Mutex::new(Some(stream)));
    let channel = Endpoint::try_from("http://buildd.invalid")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let taken = stream.lock().unwrap().take();
            async move {
                let s = taken.ok_or_else(|| std::io::Error::other("connected once only"))??;
                s.set_nonblocking(true)?;
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::from_std(s)?))
            }
        }))
        .await?;
    Ok(ControlClient::new(channel))
}

pub async fn connect_unix(socket: &Path) -> Client {
    let path = socket.to_owned();
    let channel = Endpoint::try_from("http://buildd.invalid")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .unwrap();
    ControlClient::new(channel)
}

/// What a test session serves and what it received.
#[derive(Default)]
pub struct Served {
    /// Local name → directory.
    pub locals: HashMap<String, PathBuf>,
    pub secrets: HashMap<String, Vec<u8>>,
    /// Added to every listing, to send what a real client never would.
    pub extra_stats: Vec<Stat>,
    /// Local name → bytes sent after each of its files' content, more than its
    /// listing announced (as a real client never does).
    pub pad_files: HashMap<String, usize>,
    /// Exporter index → bytes of the stream (a tar for directories).
    pub exports: Mutex<BTreeMap<u32, Vec<u8>>>,
    pub files_served: AtomicU64,
    /// Secret requests the daemon sent this session.
    pub secrets_asked: AtomicU64,
}

/// A running session; ends when dropped.
pub struct TestSession {
    pub id: String,
    pub served: Arc<Served>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestSession {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestSession {
    pub async fn open(client: &Client, id: &str, served: Served) -> Self {
        let served = Arc::new(served);
        let (tx, rx) = mpsc::channel::<ClientMessage>(64);
        tx.send(msg(client_message::Msg::Hello(SessionHello {
            session_id: id.to_owned(),
            locals: served.locals.keys().cloned().collect(),
            ssh_ids: Vec::new(),
        })))
        .await
        .unwrap();
        let mut inbound = client
            .clone()
            .session(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let s = served.clone();
        let task = tokio::spawn(async move {
            let mut listings: HashMap<u64, (String, Vec<PathBuf>)> = HashMap::new();
            while let Some(Ok(m)) = inbound.next().await {
                let Some(m) = m.msg else { continue };
                match m {
                    server_message::Msg::Sync(req) => {
                        let dir = s.locals[&req.name].clone();
                        let mut entries = walk(&dir, &req.include_patterns, &req.follow_paths);
                        let mut stats: Vec<Stat> =
                            entries.iter().map(|(_, st)| st.clone()).collect();
                        stats.extend(s.extra_stats.iter().cloned());
                        listings.insert(
                            req.id,
                            (
                                req.name.clone(),
                                entries.drain(..).map(|(p, _)| p).collect(),
                            ),
                        );
                        for chunk in stats.chunks(1000) {
                            send(
                                &tx,
                                client_message::Msg::Stats(StatList {
                                    request_id: req.id,
                                    stats: chunk.to_vec(),
                                    last: false,
                                }),
                            )
                            .await;
                        }
                        send(
                            &tx,
                            client_message::Msg::Stats(StatList {
                                request_id: req.id,
                                stats: vec![],
                                last: true,
                            }),
                        )
                        .await;
                    }
                    server_message::Msg::Files(req) => {
                        let (name, paths) = &listings[&req.request_id];
                        let pad = s.pad_files.get(name).copied().unwrap_or(0);
                        for i in req.indexes {
                            let mut data = std::fs::read(&paths[i as usize]).unwrap();
                            data.resize(data.len() + pad, b'x');
                            s.files_served.fetch_add(1, Ordering::Relaxed);
                            for chunk in data.chunks(64 << 10) {
                                send(
                                    &tx,
                                    client_message::Msg::File(FileData {
                                        request_id: req.id,
                                        index: i,
                                        data: chunk.to_vec(),
                                        eof: false,
                                    }),
                                )
                                .await;
                            }
                            send(
                                &tx,
                                client_message::Msg::File(FileData {
                                    request_id: req.id,
                                    index: i,
                                    data: vec![],
                                    eof: true,
                                }),
                            )
                            .await;
                        }
                    }
                    server_message::Msg::Secret(req) => {
                        s.secrets_asked.fetch_add(1, Ordering::Relaxed);
                        let value = s.secrets.get(&req.secret_id).cloned();
                        send(
                            &tx,
                            client_message::Msg::Secret(SecretResponse {
                                request_id: req.id,
                                found: value.is_some(),
                                value: value.unwrap_or_default(),
                            }),
                        )
                        .await;
                    }
                    server_message::Msg::Export(data) => {
                        s.exports
                            .lock()
                            .unwrap()
                            .entry(data.exporter)
                            .or_default()
                            .extend_from_slice(&data.data);
                        if data.eof {
                            send(
                                &tx,
                                client_message::Msg::ExportAck(ExportAck {
                                    request_id: data.id,
                                    error: String::new(),
                                }),
                            )
                            .await;
                        }
                    }
                    // No agents are announced, so the daemon opens none.
                    server_message::Msg::Credentials(_)
                    | server_message::Msg::SshOpen(_)
                    | server_message::Msg::Ssh(_) => {}
                }
            }
        });
        // The daemon registers the session when it reads the hello; wait for it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        Self {
            id: id.to_owned(),
            served,
            task,
        }
    }
}

fn msg(m: client_message::Msg) -> ClientMessage {
    ClientMessage { msg: Some(m) }
}

async fn send(tx: &mpsc::Sender<ClientMessage>, m: client_message::Msg) {
    let _ = tx.send(msg(m)).await;
}

/// Lists `dir` parents first, keeping what the includes (exact names) and follow
/// paths (a path, what is below it, and its parents) select.
fn walk(dir: &Path, includes: &[String], follow: &[String]) -> Vec<(PathBuf, Stat)> {
    let mut out = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let abs = if rel.is_empty() {
            dir.to_owned()
        } else {
            dir.join(&rel)
        };
        let mut names: Vec<String> = std::fs::read_dir(&abs)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        for name in names.into_iter().rev() {
            let p = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let selected = if !includes.is_empty() {
                includes.contains(&p)
            } else {
                follow.is_empty()
                    || follow.iter().any(|f| {
                        let f = f.trim_end_matches('/');
                        p == f || p.starts_with(&format!("{f}/")) || f.starts_with(&format!("{p}/"))
                    })
            };
            if !selected {
                continue;
            }
            let path = dir.join(&p);
            let md = std::fs::symlink_metadata(&path).unwrap();
            let linkname = if md.file_type().is_symlink() {
                std::fs::read_link(&path)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            } else {
                String::new()
            };
            if md.is_dir() {
                stack.push(p.clone());
            }
            out.push((
                path,
                Stat {
                    path: p,
                    mode: md.mode(),
                    size: if md.is_file() { md.len() } else { 0 },
                    mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
                    uid: md.uid(),
                    gid: md.gid(),
                    linkname,
                },
            ));
        }
    }
    out.sort_by(|a, b| a.1.path.split('/').cmp(b.1.path.split('/')));
    out
}

/// A Solve of the Dockerfile in `session`'s "dockerfile" local.
pub fn dockerfile_solve(build_ref: &str, session: &TestSession, key: &str) -> SolveRequest {
    SolveRequest {
        r#ref: build_ref.to_owned(),
        session_id: session.id.clone(),
        frontend: "dockerfile.v0".to_owned(),
        local_keys: [
            ("context".to_owned(), key.to_owned()),
            ("dockerfile".to_owned(), format!("{key}-dockerfile")),
        ]
        .into(),
        ..Default::default()
    }
}

pub fn oci_tar() -> Exporter {
    Exporter {
        r#type: "oci".to_owned(),
        attrs: [("dest".to_owned(), "out.tar".to_owned())].into(),
    }
}

pub async fn solve(client: &Client, req: SolveRequest) -> Result<SolveResponse, tonic::Status> {
    client.clone().solve(req).await.map(|r| r.into_inner())
}

/// A context dir serving as both "context" and "dockerfile" locals.
pub fn served(ctx: &Path) -> Served {
    Served {
        locals: [
            ("context".to_owned(), ctx.to_owned()),
            ("dockerfile".to_owned(), ctx.to_owned()),
        ]
        .into(),
        ..Default::default()
    }
}

#[allow(unused_imports)] // not every test file looks for processes
pub use buildd_testkit::process::running as process_running;
pub use buildd_testkit::require_tool;

/// What the daemon says about itself.
pub async fn info(client: &Client) -> buildd_proto::control::InfoResponse {
    client
        .clone()
        .info(buildd_proto::control::InfoRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// A busybox root filesystem under `<ctx>/rootfs`, or None (said why through
/// `buildd_testkit`) when this machine cannot run RUN (no runc or no /bin/busybox).
#[track_caller]
pub fn busybox_rootfs(ctx: &Path) -> Option<()> {
    if !require_tool("runc")
        || !buildd_testkit::require_file("/bin/busybox", "busybox", "Debian busybox-static")
    {
        return None;
    }
    let bin = ctx.join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    for applet in ["sh", "sleep", "echo", "cat", "date", "ls", "mkdir"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    Some(())
}
