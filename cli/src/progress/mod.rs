//! Build progress on stderr, from the daemon's `StatusResponse` stream, in
//! BuildKit's formats: a live tree on a terminal, plain lines otherwise, raw JSON
//! for tools, or nothing.

mod plain;
mod rawjson;
mod state;
mod tty;

use std::io::{self, IsTerminal, Write};

use buildd_proto::control::{StatusResponse, TransferStats, Warning};
use clap::ValueEnum;

pub use plain::Plain;
pub use rawjson::RawJson;
pub use tty::Tty;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// tty when stderr is a terminal, plain otherwise.
    Auto,
    Tty,
    Plain,
    Rawjson,
    Quiet,
}

pub trait Printer: Send {
    fn update(&mut self, resp: &StatusResponse) -> io::Result<()>;
    /// Called about ten times a second, so running times and logs move on.
    fn tick(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// The build is over: the final state, and what the context transfer cost.
    fn finish(&mut self, transfer: Option<&TransferStats>) -> io::Result<()>;
}

/// Prints nothing.
pub struct Quiet;

impl Printer for Quiet {
    fn update(&mut self, _: &StatusResponse) -> io::Result<()> {
        Ok(())
    }
    fn finish(&mut self, _: Option<&TransferStats>) -> io::Result<()> {
        Ok(())
    }
}

/// The printer for `mode`, writing to stderr.
pub fn printer(mode: Mode) -> Box<dyn Printer> {
    let stderr = io::stderr();
    let tty = stderr.is_terminal();
    match mode {
        Mode::Auto if tty => Box::new(Tty::new(stderr)),
        Mode::Tty => Box::new(Tty::new(stderr)),
        Mode::Auto | Mode::Plain => Box::new(Plain::new(stderr)),
        Mode::Rawjson => Box::new(RawJson::new(stderr)),
        Mode::Quiet => Box::new(Quiet),
    }
}

/// Sizes as BuildKit prints them: decimal units, two decimals.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.2}{}", UNITS[unit])
}

/// The context transfer line: `1 file, 12B (5 entries listed)`.
pub fn transfer_summary(t: &TransferStats) -> String {
    let files = if t.files_sent == 1 { "file" } else { "files" };
    let entries = if t.entries_listed == 1 {
        "entry"
    } else {
        "entries"
    };
    format!(
        "{} {files}, {} ({} {entries} listed)",
        t.files_sent,
        human_bytes(t.bytes_sent),
        t.entries_listed
    )
}

/// Warnings after the build, as `docker build` prints them.
pub fn print_warnings(out: &mut impl Write, warnings: &[Warning]) -> io::Result<()> {
    if warnings.is_empty() {
        return Ok(());
    }
    let n = warnings.len();
    writeln!(out, "\n{n} warning{} found:", if n == 1 { "" } else { "s" })?;
    for w in warnings {
        let mut line = format!(" - {}: {}", w.rule, w.message);
        if w.line > 0 {
            line.push_str(&format!(" (line {})", w.line));
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Adds `more` to `all`, skipping ones already there: the status stream and
/// the solve response may both carry a warning.
pub fn merge_warnings(all: &mut Vec<Warning>, more: &[Warning]) {
    for w in more {
        if !all.contains(w) {
            all.push(w.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_sizes_and_summaries() {
        assert_eq!(human_bytes(0), "0B");
        assert_eq!(human_bytes(999), "999B");
        assert_eq!(human_bytes(1234), "1.23kB");
        assert_eq!(human_bytes(5_000_000), "5.00MB");
        let t = TransferStats {
            entries_listed: 5,
            files_sent: 1,
            bytes_sent: 12,
        };
        assert_eq!(transfer_summary(&t), "1 file, 12B (5 entries listed)");
    }

    #[test]
    fn prints_warnings_like_docker_build() {
        let w = Warning {
            rule: "JSONArgsRecommended".into(),
            message: "JSON arguments recommended for CMD".into(),
            line: 3,
            ..Warning::default()
        };
        let mut all = Vec::new();
        merge_warnings(&mut all, std::slice::from_ref(&w));
        merge_warnings(&mut all, &[w]);
        let mut out = Vec::new();
        print_warnings(&mut out, &all).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\n1 warning found:\n - JSONArgsRecommended: JSON arguments recommended for CMD (line 3)\n"
        );
    }
}
