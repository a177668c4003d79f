//! Argument conventions shared by subcommands.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use buildd_engine::session::{LocalSecrets, LocalSsh, SecretStore, SshStore};
use clap::Args;

/// What selects and parameterizes a Dockerfile: shared by `build` and `debug`.
#[derive(Args)]
pub struct DockerfileArgs {
    /// Build context: a directory, a git or http(s) URL (`URL#ref:subdir`; an
    /// archive or a Dockerfile over http), or `-` for a tar archive or a
    /// Dockerfile on standard input.
    pub context: PathBuf,
    /// Dockerfile path (default: CONTEXT/Dockerfile; with a URL context, a path
    /// inside it).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Stage to build (default: the last).
    #[arg(long)]
    pub target: Option<String>,
    /// Build-time variable, KEY=VALUE (KEY alone takes it from the environment).
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
}

/// `--build-arg KEY=VALUE`; a bare `KEY` takes the value from the environment and
/// is skipped when unset, as `docker build` does.
pub fn build_args(raw: &[String]) -> BTreeMap<String, String> {
    raw.iter()
        .filter_map(|a| match a.split_once('=') {
            Some((k, v)) => Some((k.to_owned(), v.to_owned())),
            None => std::env::var(a).ok().map(|v| (a.clone(), v)),
        })
        .collect()
}

/// What `--secret` and `--ssh` give a build; `None` for none given.
pub type SessionStores = (Option<Arc<dyn SecretStore>>, Option<Arc<dyn SshStore>>);

/// The secrets and SSH agents of `--secret` and `--ssh` specs.
pub fn session(secret_specs: &[String], ssh_specs: &[String]) -> anyhow::Result<SessionStores> {
    let mut secrets = LocalSecrets::default();
    for spec in secret_specs {
        secrets.add_spec(spec)?;
    }
    let mut ssh = LocalSsh::default();
    for spec in ssh_specs {
        ssh.add_spec(spec)?;
    }
    Ok((
        (!secrets.is_empty()).then(|| Arc::new(secrets) as Arc<dyn SecretStore>),
        (!ssh.is_empty()).then(|| Arc::new(ssh) as Arc<dyn SshStore>),
    ))
}
