//! `bctl du`: what the daemon's storage holds, like `buildctl du`.

use std::io::{self, Write};

use buildd_proto::control::{DiskUsageRequest, UsageRecord};
use clap::Args;

use super::ConnArgs;
use crate::progress::human_bytes;
use crate::units::ago;

#[derive(Args, Debug)]
pub struct DuArgs {
    /// Only records matching, e.g. kind=layer (repeatable).
    #[arg(long = "filter", value_name = "FILTER")]
    filters: Vec<String>,
}

pub async fn run(conn: &ConnArgs, args: DuArgs) -> anyhow::Result<()> {
    let mut client = conn.connect().await?;
    let records = client
        .disk_usage(DiskUsageRequest {
            filters: args.filters,
        })
        .await?
        .into_inner()
        .records;
    let mut out = io::stdout().lock();
    print_records(&mut out, &records)?;
    let total: u64 = records.iter().map(|r| r.size).sum();
    let reclaimable: u64 = records.iter().filter(|r| !r.in_use).map(|r| r.size).sum();
    writeln!(out, "Reclaimable:\t{}", human_bytes(reclaimable))?;
    writeln!(out, "Total:\t\t{}", human_bytes(total))?;
    Ok(())
}

/// A table of usage records, shared with `prune`.
pub fn print_records(out: &mut impl Write, records: &[UsageRecord]) -> io::Result<()> {
    writeln!(
        out,
        "{:<28} {:<11} {:<12} {:>10}  {:<24} DESCRIPTION",
        "ID", "KIND", "RECLAIMABLE", "SIZE", "LAST ACCESSED"
    )?;
    for r in records {
        let id: String = r.id.chars().take(28).collect();
        writeln!(
            out,
            "{:<28} {:<11} {:<12} {:>10}  {:<24} {}",
            id,
            r.kind,
            !r.in_use,
            human_bytes(r.size),
            ago(r.last_used_ns),
            r.description
        )?;
    }
    Ok(())
}
