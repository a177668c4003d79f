//! git over smart HTTP with a token: a real `git http-backend` (run as CGI by a
//! small Python server on loopback that demands `Authorization`), reached with the
//! build's `GIT_AUTH_TOKEN` secret as BuildKit passes it. Without the secret the
//! fetch fails naming the URL and the reason; the token never shows in output.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use buildd_tests::Workspace;
use buildd_tests::daemon::Daemon;
use buildd_tests::git::GitServer;

const TOKEN: &str = "s3cret-token-4f2a";

/// Serves `git http-backend` for the repositories under ROOT, answering 401 to
/// requests without `Authorization: basic base64(x-access-token:TOKEN)`.
const SERVER: &str = r#"
import base64, http.server, os, subprocess, sys
root, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
want = "basic " + base64.b64encode(("x-access-token:" + token).encode()).decode()
class H(http.server.BaseHTTPRequestHandler):
    def handle_one(self):
        if self.headers.get("Authorization", "").lower() != want.lower():
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = dict(os.environ, GIT_PROJECT_ROOT=root, GIT_HTTP_EXPORT_ALL="1",
                   PATH_INFO=path, QUERY_STRING=query, REQUEST_METHOD=self.command,
                   CONTENT_TYPE=self.headers.get("Content-Type", ""),
                   REMOTE_ADDR="127.0.0.1", GIT_PROTOCOL=self.headers.get("Git-Protocol", ""))
        out = subprocess.run(["git", "http-backend"], input=body, env=env,
                             capture_output=True).stdout
        head, _, rest = out.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.split(b"\r\n"):
            k, _, v = line.decode().partition(":")
            if k.lower() == "status":
                status = int(v.split()[0])
            elif k:
                headers.append((k, v.strip()))
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(rest)))
        self.end_headers()
        self.wfile.write(rest)
    do_GET = do_POST = handle_one
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

struct HttpGit {
    server: Child,
    port: u16,
}

impl HttpGit {
    fn start(repos: &std::path::Path) -> Option<Self> {
        if !buildd_testkit::require_tool("python3") {
            return None;
        }
        let port = buildd_tests::free_port();
        let server = Command::new("python3")
            .args(["-c", SERVER])
            .arg(repos)
            .arg(port.to_string())
            .arg(TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the git HTTP server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Self { server, port })
    }
}

impl Drop for HttpGit {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

#[test]
fn a_token_secret_reaches_a_smart_http_remote_and_nothing_else() {
    let repo = GitServer::start();
    repo.commit(
        &[("Dockerfile", "FROM scratch\nCOPY a.txt /\n")],
        "dockerfile",
    );
    let Some(http) = HttpGit::start(repo.repo().parent().unwrap()) else {
        return;
    };
    let url = format!("http://127.0.0.1:{}/repo.git#main", http.port);
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws);
    let out = ws.path("out");
    let local = format!("type=local,dest={}", out.display());

    let run = daemon.bctl(&["build", "--progress=plain", "-o", &local, &url]);
    assert!(!run.ok);
    assert!(
        run.stderr.contains(&format!(
            "git source http://127.0.0.1:{}/repo.git#main",
            http.port
        )),
        "{}",
        run.stderr
    );

    let token_file = ws.path("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let secret = format!("id=GIT_AUTH_TOKEN,src={}", token_file.display());
    let run = daemon.bctl(&[
        "build",
        "--progress=plain",
        "--secret",
        &secret,
        "-o",
        &local,
        &url,
    ]);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(out.join("a.txt")).unwrap(), "two\n");
    assert!(!run.stderr.contains(TOKEN));

    // The one-shot build's ADD takes the same secret.
    let ws2 = Workspace::new();
    ws2.dockerfile(&format!("FROM scratch\nADD {url} /src/\n"));
    let out2 = ws2.path("out");
    let local2 = format!("type=local,dest={}", out2.display());
    ws2.build(&["--secret", &secret, "-o", &local2]).success();
    assert_eq!(
        std::fs::read_to_string(out2.join("src/a.txt")).unwrap(),
        "two\n"
    );
}
