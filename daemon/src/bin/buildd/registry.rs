//! Registry options shared by every subcommand that pulls or pushes.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use buildd_registry::{Client, CredentialSource, DockerConfig, RegistryConfig};
use clap::Args;

#[derive(Args, Debug, Clone, Default)]
pub struct RegistryArgs {
    /// Talk plain HTTP to this registry (`HOST[:PORT]`); loopback registries always
    /// are. Repeatable.
    #[arg(long = "insecure-registry", global = true, value_name = "HOST[:PORT]")]
    pub insecure: Vec<String>,
    /// Pull through a mirror first: `MIRROR` mirrors docker.io (as Kaniko's flag),
    /// `REGISTRY=MIRROR` any registry. Repeatable; tried in order, then the registry.
    #[arg(
        long = "registry-mirror",
        global = true,
        value_name = "[REGISTRY=]MIRROR"
    )]
    pub mirrors: Vec<String>,
}

impl RegistryArgs {
    /// A client with these options and the credentials of the Docker client config
    /// (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`).
    pub fn client(&self) -> anyhow::Result<Arc<Client>> {
        let creds = DockerConfig::load().context("reading the docker client config")?;
        self.client_with(Arc::new(creds))
    }

    /// A client with these options and `creds`.
    pub fn client_with(&self, creds: Arc<dyn CredentialSource>) -> anyhow::Result<Arc<Client>> {
        let mut mirrors: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in &self.mirrors {
            let (registry, mirror) = m.split_once('=').unwrap_or(("docker.io", m));
            if registry.is_empty() || mirror.is_empty() {
                bail!("--registry-mirror {m:?}: expected MIRROR or REGISTRY=MIRROR");
            }
            mirrors
                .entry(registry.to_owned())
                .or_default()
                .push(mirror.to_owned());
        }
        let config = RegistryConfig {
            insecure: self.insecure.clone(),
            mirrors,
            ..Default::default()
        };
        Ok(Arc::new(Client::new(config, creds)?))
    }
}
