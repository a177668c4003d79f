//! `buildd debug`: what the frontend makes of a Dockerfile, without building, and
//! `fsck`, a check of a root's records against its content.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use buildd_engine::build::{CONTEXT_NAME, read_frontend_input};
use buildd_engine::fsck::{self, FsckOptions};
use clap::{Args, Subcommand, ValueEnum};

use crate::args::DockerfileArgs;

#[derive(Subcommand)]
pub enum DebugCommand {
    /// Print the LLB graph a Dockerfile compiles to.
    DumpLlb(DumpArgs),
    /// List a Dockerfile's stages and build args with their defaults and lines.
    Outline(DumpArgs),
    /// Check the root: blobs against their digests, cache records and images
    /// against the layers and blobs they name. Exits 1 when it finds problems.
    Fsck(FsckArgs),
}

#[derive(Args)]
pub struct FsckArgs {
    /// Remove cache records that name missing layers or blobs, and corrupt blobs
    /// (made or fetched again when next needed). Images are only reported.
    #[arg(long)]
    repair: bool,
}

#[derive(Args)]
pub struct DumpArgs {
    #[command(flatten)]
    dockerfile: DockerfileArgs,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
    /// The serialized `Definition` (protobuf), as `bctl build --llb` reads it.
    Pb,
}

pub fn run(root: &Path, cmd: DebugCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DebugCommand::Fsck(args) => return run_fsck(root, &args),
        DebugCommand::DumpLlb(args) => {
            let (dockerfile, opts) = frontend_input(&args)?;
            let compiled = buildd_frontend::compile(&dockerfile, &opts).context("compiling")?;
            let out = match args.format {
                Format::Text => buildd_proto::dump::to_text(&compiled.definition),
                Format::Json => buildd_proto::dump::to_json(&compiled.definition),
                Format::Pb => {
                    use std::io::Write as _;
                    let bytes = prost::Message::encode_to_vec(&compiled.definition);
                    let mut out = std::io::stdout().lock();
                    out.write_all(&bytes).and_then(|()| out.flush())?;
                    return Ok(ExitCode::SUCCESS);
                }
            };
            print!("{out}");
        }
        DebugCommand::Outline(args) => {
            let (dockerfile, opts) = frontend_input(&args)?;
            print!(
                "{}",
                buildd_frontend::outline(&dockerfile, &opts).context("outline")?
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per note, problem and repair, then the summary.
fn run_fsck(root: &Path, args: &FsckArgs) -> anyhow::Result<ExitCode> {
    let report = fsck::check(
        root,
        FsckOptions {
            repair: args.repair,
        },
    )
    .context("fsck")?;
    for note in &report.notes {
        println!("note: {note}");
    }
    for problem in &report.problems {
        println!("problem: {problem}");
    }
    for repair in &report.repairs {
        println!("repaired: {repair}");
    }
    if args.repair {
        for problem in report.problems.iter().filter(|p| !p.repairable()) {
            let why = problem.why_not_repaired().unwrap_or_default();
            println!("not repaired: {problem}: {why}");
        }
    }
    println!("{}", report.summary());
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn frontend_input(args: &DumpArgs) -> anyhow::Result<(String, buildd_frontend::BuildOptions)> {
    let args = &args.dockerfile;
    let input = read_frontend_input(&args.context, args.file.as_deref())?;
    let opts = buildd_frontend::BuildOptions {
        dockerfile_name: input.dockerfile_name,
        target: args.target.clone(),
        build_args: crate::args::build_args(&args.build_args),
        context_name: CONTEXT_NAME.to_owned(),
        dockerignore: input.dockerignore,
        platform: buildd_oci::host_platform(),
        resolver: None,
    };
    Ok((input.dockerfile, opts))
}
