//! `bctl prune`: frees the daemon's storage, like `buildctl prune`.

use std::io::{self, Write};

use buildd_proto::control::PruneRequest;
use clap::Args;

use super::ConnArgs;
use super::du::print_records;
use crate::progress::human_bytes;
use crate::units::{parse_duration, parse_size};

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Also remove what recent builds would still hit.
    #[arg(long)]
    all: bool,
    /// Keep what was used within this long, e.g. 24h.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    keep_duration: Option<i64>,
    /// Stop once the remaining usage is at most this, e.g. 10GB.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    keep_storage: Option<u64>,
    /// Only records matching, e.g. kind=layer (repeatable).
    #[arg(long = "filter", value_name = "FILTER")]
    filters: Vec<String>,
    /// Print the removed records.
    #[arg(short, long)]
    verbose: bool,
}

pub async fn run(conn: &ConnArgs, args: PruneArgs) -> anyhow::Result<()> {
    let mut client = conn.connect().await?;
    let resp = client
        .prune(PruneRequest {
            filters: args.filters,
            all: args.all,
            keep_duration_s: args.keep_duration.unwrap_or(0),
            keep_storage_bytes: args.keep_storage.unwrap_or(0),
        })
        .await?
        .into_inner();
    let mut out = io::stdout().lock();
    if args.verbose {
        print_records(&mut out, &resp.removed)?;
    }
    writeln!(
        out,
        "Total:\t{} in {} record{}",
        human_bytes(resp.reclaimed_bytes),
        resp.removed.len(),
        if resp.removed.len() == 1 { "" } else { "s" }
    )?;
    Ok(())
}
