//! What a run borrows from the build's client: secret files, secret environment
//! variables and SSH agent sockets. Everything here lives only as long as the run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use buildd_proto::llb::{ExecOp, MountType};
use zeroize::Zeroizing;

use super::secrets::SecretFiles;
use super::ssh::AgentProxy;
use crate::ops::worker::blocking;
use crate::session::{DEFAULT_SSH_ID, SecretValue};
use crate::solver::{BuildCtx, OpError};

pub(super) struct SessionMounts {
    /// Host path of each secret file and agent socket, by mount index.
    pub(super) sources: BTreeMap<usize, PathBuf>,
    /// `NAME=value` of each secret passed as an environment variable.
    pub(super) env: Vec<Zeroizing<String>>,
    _secrets: Option<SecretFiles>,
    _agents: Vec<AgentProxy>,
}

impl SessionMounts {
    /// Fetches the secrets and starts the agent sockets `exec` asks for. An
    /// optional one the client does not have is left out; a required one is an
    /// error naming it.
    pub(super) async fn prepare(
        root: &Path,
        exec: &ExecOp,
        ctx: &BuildCtx,
    ) -> Result<Self, OpError> {
        let mut run = SessionMounts {
            sources: BTreeMap::new(),
            env: Vec::new(),
            _secrets: None,
            _agents: Vec::new(),
        };
        let mut files = Vec::new();
        let mut file_mounts = Vec::new();
        for (i, m) in exec.mounts.iter().enumerate() {
            match m.mount_type() {
                MountType::Secret => {
                    let opt = m.secret_opt.clone().ok_or_else(|| {
                        OpError::new(format!(
                            "RUN mount {}: secret mount without options",
                            m.dest
                        ))
                    })?;
                    if let Some(value) = secret(ctx, &opt.id, opt.optional, &m.dest).await? {
                        files.push((i.to_string(), value, opt));
                        file_mounts.push(i);
                    }
                }
                MountType::Ssh => {
                    let opt = m.ssh_opt.clone().unwrap_or_default();
                    let id = if opt.id.is_empty() {
                        DEFAULT_SSH_ID.to_owned()
                    } else {
                        opt.id.clone()
                    };
                    let Some(store) = agent(ctx, &id, opt.optional, &m.dest).await? else {
                        continue;
                    };
                    let proxy = AgentProxy::start(root, store, id, &opt)?;
                    run.sources.insert(i, proxy.socket.clone());
                    run._agents.push(proxy);
                }
                _ => {}
            }
        }
        for e in &exec.secret_env {
            let what = format!("environment variable {}", e.name);
            let Some(value) = secret(ctx, &e.id, e.optional, &what).await? else {
                continue;
            };
            let value = std::str::from_utf8(&value).map_err(|_| {
                OpError::new(format!(
                    "secret {:?} is not valid UTF-8, so it cannot be environment variable {}",
                    e.id, e.name
                ))
            })?;
            run.env.push(Zeroizing::new(format!("{}={value}", e.name)));
        }
        if !files.is_empty() {
            let root = root.to_owned();
            let (guard, paths) = blocking(move |_| SecretFiles::create(&root, &files)).await?;
            run._secrets = Some(guard);
            run.sources.extend(file_mounts.into_iter().zip(paths));
        }
        Ok(run)
    }
}

async fn secret(
    ctx: &BuildCtx,
    id: &str,
    optional: bool,
    target: &str,
) -> Result<Option<SecretValue>, OpError> {
    let value = match &ctx.secrets {
        Some(store) => store
            .get(id)
            .await
            .map_err(|e| OpError::new(e.to_string()))?,
        None => None,
    };
    if value.is_none() && !optional {
        return Err(OpError::new(format!(
            "secret {id:?} not found: {target} requires it (give it with --secret id={id})"
        )));
    }
    Ok(value)
}

async fn agent(
    ctx: &BuildCtx,
    id: &str,
    optional: bool,
    target: &str,
) -> Result<Option<Arc<dyn crate::session::SshStore>>, OpError> {
    let store = match &ctx.ssh {
        Some(store)
            if store
                .has(id)
                .await
                .map_err(|e| OpError::new(e.to_string()))? =>
        {
            Some(store.clone())
        }
        _ => None,
    };
    if store.is_none() && !optional {
        return Err(OpError::new(format!(
            "no ssh agent {id:?} forwarded from the client: {target} requires it (give it with --ssh {id})"
        )));
    }
    Ok(store)
}
