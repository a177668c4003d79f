//! `buildd`: the build engine's command line. Bare `buildd` serves the daemon API;
//! `buildd build` runs one build in this process, with no daemon (as Kaniko does in
//! a pod).

mod args;
mod build;
mod debug;
mod images;
mod import;
mod registry;
mod report;
mod runtime;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The frontend and solver allocate many small, short-lived objects; mimalloc
/// serves them faster than glibc's malloc (about a third off parse+compile of a
/// 2,000-instruction Dockerfile, see benches/benches/frontend.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "buildd", version, about = "Container image build engine")]
struct Cli {
    /// State directory (cache, blobs, layers). Default: /var/lib/buildd as root,
    /// $XDG_DATA_HOME/buildd otherwise.
    #[arg(long, global = true, env = "BUILDD_ROOT")]
    root: Option<PathBuf>,
    /// Log at debug level.
    #[arg(long, global = true)]
    debug: bool,
    #[command(flatten)]
    registry: registry::RegistryArgs,
    #[command(flatten)]
    runtime: runtime::RuntimeArgs,
    #[command(flatten)]
    serve: serve::ServeArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Build an image from a Dockerfile, in this process.
    Build(Box<build::BuildArgs>),
    /// List the images in the local image store.
    Images,
    /// Make an image from a root filesystem tarball, like `docker import`.
    Import(import::ImportArgs),
    /// Inspect what the frontend makes of a Dockerfile, or check the root.
    #[command(subcommand)]
    Debug(debug::DebugCommand),
}

unsafe extern "C" {
    /// mimalloc's `mi_option_set` (linked in through the `mimalloc` crate).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_arena_eager_commit` in mimalloc 3's `mi_option_e`.
const MI_OPTION_ARENA_EAGER_COMMIT: std::ffi::c_int = 4;
/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e`.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
/// Milliseconds before freed memory goes back to the system. mimalloc 3's
/// default (1 s) kept what one build freed while the next allocated: a daemon
/// rebuilding a 20,000-file context peaked at 111 MB RSS instead of 71, at no
/// measurable cost in time; 0 (purge at once) cost seconds on a cold build.
const PURGE_DELAY_MS: std::ffi::c_long = 50;

/// Eagerly committed arenas made calloc'ed memory resident: an idle daemon held
/// 45 MiB instead of 9 (measured with MIMALLOC_SHOW_STATS). The option must be
/// set before the first allocation reserves an arena, so before `main`: from the
/// ELF constructors. An explicit MIMALLOC_ARENA_EAGER_COMMIT still wins, as
/// mimalloc reads its environment only for options not set.
extern "C" fn lazy_arena_commit() {
    // SAFETY: getenv of a NUL-terminated name (no allocation), and a process-wide
    // allocator option set before any thread exists.
    unsafe {
        if libc::getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null() {
            mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        }
        if libc::getenv(c"MIMALLOC_PURGE_DELAY".as_ptr()).is_null() {
            mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
        }
    }
}

#[used]
#[unsafe(link_section = ".init_array")]
static LAZY_ARENA_COMMIT: extern "C" fn() = lazy_arena_commit;

fn main() -> ExitCode {
    let cli = Cli::parse();
    serve::init_logging(cli.debug, cli.serve.log_format, cli.command.is_none());
    let root = cli.root.unwrap_or_else(buildd_engine::root::default_root);
    let result = match cli.command {
        Some(Command::Build(args)) => build::run(&root, *args, &cli.registry, &cli.runtime),
        Some(Command::Debug(cmd)) => match debug::run(&root, cmd) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Some(Command::Images) => images::run(&root),
        Some(Command::Import(args)) => import::run(&root, args),
        None => serve::run(&root, cli.serve, &cli.registry, &cli.runtime),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR: {}", render(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line. Library errors often quote their source
/// in their own message; a cause already shown is not repeated.
fn render(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
