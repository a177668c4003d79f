//! `buildd debug`: what the frontend makes of a Dockerfile, without building.

use anyhow::Context as _;
use buildd_engine::build::{CONTEXT_NAME, read_frontend_input};
use clap::{Args, Subcommand, ValueEnum};

use crate::args::DockerfileArgs;

#[derive(Subcommand)]
pub enum DebugCommand {
    /// Print the LLB graph a Dockerfile compiles to.
    DumpLlb(DumpArgs),
    /// List a Dockerfile's stages and build args with their defaults and lines.
    Outline(DumpArgs),
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
}

pub fn run(cmd: DebugCommand) -> anyhow::Result<()> {
    match cmd {
        DebugCommand::DumpLlb(args) => {
            let (dockerfile, opts) = frontend_input(&args)?;
            let compiled = buildd_frontend::compile(&dockerfile, &opts).context("compiling")?;
            let out = match args.format {
                Format::Text => buildd_proto::dump::to_text(&compiled.definition),
                Format::Json => buildd_proto::dump::to_json(&compiled.definition),
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
    Ok(())
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
