//! One module per subcommand, and the connection options they share.

pub mod bench;
pub mod build;
pub mod debug;
pub mod du;
pub mod images;
pub mod info;
pub mod prune;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use crate::addr::{Addr, DEFAULT_ADDR};
use crate::connect::{Client, TlsFiles, connect};

/// Where the daemon is and how to prove who we are.
#[derive(Args, Debug, Clone)]
pub struct ConnArgs {
    /// Daemon address: unix://PATH or tcp://HOST:PORT [default: unix:///run/buildd/buildd.sock]
    #[arg(long, global = true, env = "BUILDD_ADDR", value_name = "ADDR")]
    pub addr: Option<String>,
    /// CA certificate the daemon's TLS certificate must chain to.
    #[arg(long, global = true, env = "BUILDD_TLS_CACERT", value_name = "FILE")]
    pub tlscacert: Option<PathBuf>,
    /// Client certificate (PEM).
    #[arg(long, global = true, env = "BUILDD_TLS_CERT", value_name = "FILE")]
    pub tlscert: Option<PathBuf>,
    /// Client private key (PEM).
    #[arg(long, global = true, env = "BUILDD_TLS_KEY", value_name = "FILE")]
    pub tlskey: Option<PathBuf>,
}

impl ConnArgs {
    fn addr(&self) -> anyhow::Result<Addr> {
        Ok(self.addr.as_deref().unwrap_or(DEFAULT_ADDR).parse()?)
    }

    fn tls(&self) -> TlsFiles {
        TlsFiles {
            ca: self.tlscacert.clone(),
            cert: self.tlscert.clone(),
            key: self.tlskey.clone(),
        }
    }

    pub async fn connect(&self) -> anyhow::Result<Client> {
        let addr = self.addr()?;
        connect(&addr, &self.tls()).await.map_err(|e| {
            if e.is_unreachable() {
                anyhow::anyhow!(
                    "{}; is buildd running? start it with `buildd --addr {addr}`",
                    crate::session::chain(&e)
                )
            } else {
                e.into()
            }
        })
    }

    /// Connects, or with no address given and nobody answering on the default
    /// socket, starts a daemon there first.
    pub async fn connect_or_start(&self) -> anyhow::Result<Client> {
        if self.addr.is_some() {
            return self.connect().await;
        }
        let addr = self.addr()?;
        match connect(&addr, &self.tls()).await {
            Ok(c) => Ok(c),
            Err(e) if e.is_unreachable() => {
                let Addr::Unix(socket) = &addr else {
                    unreachable!("the default address is a unix socket")
                };
                crate::autostart::start(socket)
                    .await
                    .context("starting a buildd for this build")
            }
            Err(e) => Err(e.into()),
        }
    }
}
