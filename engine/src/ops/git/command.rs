//! Runs the git CLI for one source: no user or system configuration, a home of
//! its own, only the protocols a build may use, no prompts, and credentials
//! (from the build's secrets) and an SSH agent (the build's, through a socket of
//! its own) for this remote only.

use std::path::Path;
use std::process::Stdio;

use base64::Engine as _;
use buildd_proto::llb::SshOpt;
use zeroize::Zeroizing;

use super::spec::Spec;
use crate::ops::exec::AgentProxy;
use crate::root::Root;
use crate::session::DEFAULT_SSH_ID;
use crate::solver::{BuildCtx, OpError};

/// The daemon's proxy settings reach git, as they reach the registry client.
const PROXY_VARS: [&str; 8] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
];

pub(crate) struct Git {
    home: tempfile::TempDir,
    /// `GIT_CONFIG_*` entries; values may hold a token, so they are wiped on drop.
    config: Vec<(String, Zeroizing<String>)>,
    agent: Option<AgentProxy>,
}

impl Git {
    pub(crate) async fn new(root: &Root, spec: &Spec, ctx: &BuildCtx) -> Result<Self, OpError> {
        let fail = |e: &dyn std::fmt::Display| spec.error(&e.to_string());
        let tmp = root.path.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| fail(&e))?;
        let home = tempfile::Builder::new()
            .prefix("solve-git-home-")
            .tempdir_in(&tmp)
            .map_err(|e| fail(&e))?;
        let mut config = Vec::new();
        if let Some(header) = auth_header(spec, ctx).await? {
            // For this remote's origin only (git matches the port too), so
            // submodules elsewhere never see the token.
            let scheme = spec.url.split_once("://").map_or("https", |(s, _)| s);
            let origin = spec.host_port().unwrap_or_default();
            config.push((
                format!("http.{scheme}://{origin}/.extraheader"),
                Zeroizing::new(header),
            ));
        }
        let agent = match (&ctx.ssh, spec.is_ssh()) {
            (Some(store), true) => {
                let id = spec.ssh_id.as_deref().unwrap_or(DEFAULT_SSH_ID).to_owned();
                match store.has(&id).await {
                    Ok(true) => Some(AgentProxy::start(
                        &root.path,
                        store.clone(),
                        id,
                        &SshOpt {
                            mode: 0o600,
                            ..Default::default()
                        },
                    )?),
                    Ok(false) => None,
                    Err(e) => return Err(fail(&e)),
                }
            }
            _ => None,
        };
        Ok(Self {
            home,
            config,
            agent,
        })
    }

    /// Runs `git ARGS` (in `dir`, when given); its stdout, or why it failed.
    pub(crate) async fn run(&self, dir: Option<&Path>, args: &[&str]) -> Result<String, String> {
        let home = self.home.path();
        let mut cmd = tokio::process::Command::new("git");
        if let Some(dir) = dir {
            cmd.arg("-C").arg(dir);
        }
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", home)
            .env("LC_ALL", "C")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "/bin/false")
            .env("GIT_ALLOW_PROTOCOL", "git:http:https:ssh")
            .env(
                "GIT_SSH_COMMAND",
                format!(
                    "ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={}",
                    home.join("known_hosts").display()
                ),
            )
            .env("GIT_CONFIG_COUNT", self.config.len().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (i, (key, value)) in self.config.iter().enumerate() {
            cmd.env(format!("GIT_CONFIG_KEY_{i}"), key)
                .env(format!("GIT_CONFIG_VALUE_{i}"), value.as_str());
        }
        for var in PROXY_VARS {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
        if let Some(agent) = &self.agent {
            cmd.env("SSH_AUTH_SOCK", &agent.socket);
        }
        // SAFETY: umask is async-signal-safe; the work tree's modes must not
        // depend on the daemon's umask.
        unsafe {
            cmd.pre_exec(|| {
                libc::umask(0o022);
                Ok(())
            });
        }
        let out = cmd.output().await.map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                "git sources need the git CLI, which is not installed".to_owned()
            }
            _ => format!("running git: {e}"),
        })?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let tail = tail[tail.len().saturating_sub(4)..].join("; ");
        Err(format!("git {} failed ({}): {tail}", args[0], out.status))
    }
}

/// BuildKit's secrets for HTTP(S) remotes: `GIT_AUTH_HEADER` (the whole
/// Authorization value) or `GIT_AUTH_TOKEN` (basic auth as `x-access-token`),
/// each first with the host as suffix (`GIT_AUTH_TOKEN.github.com`).
async fn auth_header(spec: &Spec, ctx: &BuildCtx) -> Result<Option<String>, OpError> {
    let (Some(secrets), Some(host)) = (&ctx.secrets, spec.host()) else {
        return Ok(None);
    };
    if !spec.url.to_ascii_lowercase().starts_with("http") {
        return Ok(None);
    }
    let host_port = spec.host_port().unwrap_or(host);
    for (name, token) in [("GIT_AUTH_HEADER", false), ("GIT_AUTH_TOKEN", true)] {
        let mut ids = vec![format!("{name}.{host}"), name.to_owned()];
        if host_port != host {
            ids.insert(0, format!("{name}.{host_port}"));
        }
        for id in ids {
            let value = secrets
                .get(&id)
                .await
                .map_err(|e| spec.error(&format!("secret {id}: {e}")))?;
            let Some(value) = value else { continue };
            let value = std::str::from_utf8(&value)
                .map_err(|_| spec.error(&format!("secret {id} is not UTF-8")))?
                .trim();
            let header = if token {
                let basic = base64::engine::general_purpose::STANDARD
                    .encode(format!("x-access-token:{value}"));
                format!("Authorization: basic {basic}")
            } else {
                format!("Authorization: {value}")
            };
            return Ok(Some(header));
        }
    }
    Ok(None)
}
