//! bctl: the thin client of the buildd daemon. The daemon API lands with the daemon issue.

use clap::Parser;

#[derive(Parser)]
#[command(name = "bctl", version, about = "Client for the buildd daemon")]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _ = Cli::parse();
    anyhow::bail!("the daemon API is not available yet; use `buildd build` for a one-shot build")
}
