//! bctl: the thin client of the buildd daemon. It talks gRPC (proto/control.proto)
//! over a unix socket or TCP with TLS, serves the build's context, secrets and
//! registry credentials from this machine, and prints progress.

mod addr;
mod autostart;
mod cmd;
mod connect;
mod output;
mod progress;
mod session;
mod units;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bctl", version, about = "Client for the buildd daemon")]
struct Cli {
    #[command(flatten)]
    conn: cmd::ConnArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build an image from a Dockerfile on the daemon.
    Build(Box<cmd::build::BuildArgs>),
    /// List the daemon's image store.
    Images,
    /// Show the daemon's disk usage.
    Du(cmd::du::DuArgs),
    /// Free the daemon's disk space.
    Prune(cmd::prune::PruneArgs),
    /// Show the daemon's version, limits and workers.
    Info,
    /// Benchmark build graphs: generate one, solve it cold and warm, report.
    Bench(cmd::bench::BenchArgs),
    /// Client-side debugging tools.
    #[command(subcommand)]
    Debug(cmd::debug::DebugCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Debug(c) => cmd::debug::run(c),
        command => run(&cli.conn, command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR: {}", render(&e));
            ExitCode::FAILURE
        }
    }
}

fn run(conn: &cmd::ConnArgs, command: Command) -> anyhow::Result<()> {
    // One thread: the work is waiting on the daemon; file reads and writes go to
    // tokio's blocking pool.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match command {
            Command::Build(args) => cmd::build::run(conn, *args).await,
            Command::Images => cmd::images::run(conn).await,
            Command::Du(args) => cmd::du::run(conn, args).await,
            Command::Prune(args) => cmd::prune::run(conn, args).await,
            Command::Info => cmd::info::run(conn).await,
            Command::Bench(args) => cmd::bench::run(conn, args).await,
            Command::Debug(_) => unreachable!("handled without a runtime"),
        }
    })
}

/// The error and its causes on one line; a cause already quoted is not repeated.
/// A gRPC status shows its message, not its debug form.
fn render(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = match cause.downcast_ref::<tonic::Status>() {
            Some(s) => s.message().to_owned(),
            None => cause.to_string(),
        };
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
