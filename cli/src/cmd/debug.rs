//! `bctl debug`: client-side inspection tools. `dump-llb` decodes an encoded LLB
//! definition (the bytes a client sends as `SolveRequest.definition`) and prints it, as
//! `buildctl debug dump-llb` does.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context as _;
use buildd_proto::dump;
use buildd_proto::llb::Definition;
use clap::{Subcommand, ValueEnum};
use prost::Message;

#[derive(Subcommand, Debug)]
pub enum DebugCommand {
    /// Print an encoded LLB definition read from FILE, or stdin with - or no FILE.
    DumpLlb {
        file: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub fn run(cmd: DebugCommand) -> anyhow::Result<()> {
    let DebugCommand::DumpLlb { file, format } = cmd;
    let bytes = match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => {
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?
        }
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("cannot read stdin")?;
            buf
        }
    };
    let def = Definition::decode(&bytes[..]).context("not an encoded LLB definition")?;
    print!(
        "{}",
        match format {
            Format::Text => dump::to_text(&def),
            Format::Json => dump::to_json(&def),
        }
    );
    Ok(())
}
