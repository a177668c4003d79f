//! `bctl bench`: generates a build graph on the client, solves it through the
//! daemon cold and then warm, and reports the time per vertex, the critical
//! path and the daemon's memory.

mod graph;
mod plot;

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use buildd_proto::control::{InfoRequest, SolveRequest, StatusRequest};
use clap::Args;
use prost::Message as _;
use tokio::sync::oneshot;

use super::ConnArgs;
use super::build::unique_id;
use crate::connect::Client;
use crate::session::{self, SessionConfig};
use graph::{ExecSpec, OpKind, Shape};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Graph shape.
    #[arg(long, value_enum, default_value_t = Shape::Chain)]
    shape: Shape,
    /// Vertices, or a comma-separated sweep (100,1000,10000).
    #[arg(long, value_delimiter = ',', default_value = "100")]
    size: Vec<usize>,
    /// What each vertex does.
    #[arg(long, value_enum, default_value_t = OpKind::File)]
    op: OpKind,
    /// Base image of exec vertices, pinned: REF@sha256:DIGEST (needs --op exec).
    #[arg(long, value_name = "REF")]
    image: Option<String>,
    /// How long each exec vertex sleeps.
    #[arg(long, default_value_t = 100, value_name = "MS")]
    sleep_ms: u64,
    /// Seed of the random shape (the same seed, the same graph).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Runs per size, each with a fresh salt; medians are reported.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Print one JSON object per size instead of a table.
    #[arg(long)]
    json: bool,
    /// Also draw µs per vertex against size (cold and warm) into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<std::path::PathBuf>,
}

/// What one size measured (medians over the runs).
#[derive(Debug)]
struct Report {
    shape: String,
    size: usize,
    op: String,
    vertices: usize,
    critical_path: usize,
    runs: usize,
    cold_seconds: f64,
    warm_seconds: f64,
    cold_us_per_vertex: f64,
    warm_us_per_vertex: f64,
    /// Exec ops: the critical path's sleeps over the cold time (1 is perfect).
    parallel_efficiency: Option<f64>,
    rss_before_bytes: u64,
    rss_after_bytes: u64,
    peak_rss_bytes: u64,
}

pub async fn run(conn: &ConnArgs, args: BenchArgs) -> anyhow::Result<()> {
    let exec = match (args.op, &args.image) {
        (OpKind::Exec, Some(image)) if !image.contains("@sha256:") => bail!(
            "--image {image}: a raw graph names images by digest: REF@sha256:DIGEST \
             (`skopeo inspect docker://REF` prints it)"
        ),
        (OpKind::Exec, Some(image)) => Some(ExecSpec {
            image: image.clone(),
            sleep_ms: args.sleep_ms,
        }),
        (OpKind::Exec, None) => bail!("--op exec needs --image REF (the containers' base)"),
        (_, Some(_)) => bail!("--image goes with --op exec"),
        _ => None,
    };
    if args.size.contains(&0) || args.runs == 0 {
        bail!("--size and --runs must be at least 1");
    }
    let client = conn.connect_or_start().await?;
    let name = |v: &dyn std::fmt::Debug| format!("{v:?}").to_lowercase();
    if !args.json {
        println!(
            "{:<8} {:>7} {:<5} {:>8} {:>6} {:>9} {:>9} {:>11} {:>11} {:>9}",
            "shape",
            "size",
            "op",
            "vertices",
            "depth",
            "cold s",
            "warm s",
            "cold µs/v",
            "warm µs/v",
            "RSS MB"
        );
    }
    let mut points = Vec::new();
    for &size in &args.size {
        let (mut colds, mut warms) = (Vec::new(), Vec::new());
        let before = daemon_rss(&client).await?;
        let mut shape = None;
        for run in 0..args.runs {
            let edges = graph::edges(args.shape, size, args.seed);
            let bench = graph::build(&edges, args.op, exec.as_ref(), &unique_id("salt"));
            let def = bench.definition.encode_to_vec();
            let what = format!(
                "{} {size} {} run {}/{}",
                name(&args.shape),
                name(&args.op),
                run + 1,
                args.runs
            );
            colds.push(solve(&client, &def, bench.vertices, &format!("{what} cold")).await?);
            warms.push(solve(&client, &def, bench.vertices, &format!("{what} warm")).await?);
            shape = Some((bench.vertices, bench.critical_path));
        }
        let after = daemon_rss(&client).await?;
        let (vertices, critical_path) = shape.expect("at least one run");
        let (cold, warm) = (median(&mut colds), median(&mut warms));
        let report = Report {
            shape: name(&args.shape),
            size,
            op: name(&args.op),
            vertices,
            critical_path,
            runs: args.runs,
            cold_seconds: cold,
            warm_seconds: warm,
            cold_us_per_vertex: cold * 1e6 / vertices as f64,
            warm_us_per_vertex: warm * 1e6 / vertices as f64,
            parallel_efficiency: exec
                .as_ref()
                .map(|e| critical_path as f64 * e.sleep_ms as f64 / 1000.0 / cold),
            rss_before_bytes: before.0,
            rss_after_bytes: after.0,
            peak_rss_bytes: after.1,
        };
        points.push(plot::Point {
            size,
            cold_us: report.cold_us_per_vertex,
            warm_us: report.warm_us_per_vertex,
        });
        if args.json {
            println!("{}", report.json());
        } else {
            println!(
                "{:<8} {:>7} {:<5} {:>8} {:>6} {:>9.3} {:>9.3} {:>11.1} {:>11.1} {:>9.1}",
                report.shape,
                size,
                report.op,
                vertices,
                critical_path,
                cold,
                warm,
                report.cold_us_per_vertex,
                report.warm_us_per_vertex,
                after.0 as f64 / 1e6
            );
        }
    }
    if let Some(path) = &args.plot {
        points.sort_by_key(|p| p.size);
        let title = format!(
            "bctl bench: {} of {} ops",
            name(&args.shape),
            name(&args.op)
        );
        std::fs::write(path, plot::svg(&title, &points))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

impl Report {
    fn json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "shape": self.shape,
            "size": self.size,
            "op": self.op,
            "vertices": self.vertices,
            "critical_path": self.critical_path,
            "runs": self.runs,
            "cold_seconds": self.cold_seconds,
            "warm_seconds": self.warm_seconds,
            "cold_us_per_vertex": self.cold_us_per_vertex,
            "warm_us_per_vertex": self.warm_us_per_vertex,
            "rss_before_bytes": self.rss_before_bytes,
            "rss_after_bytes": self.rss_after_bytes,
            "peak_rss_bytes": self.peak_rss_bytes,
        });
        if let Some(e) = self.parallel_efficiency {
            v["parallel_efficiency"] = e.into();
        }
        v
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The daemon's resident and peak resident memory, in bytes.
async fn daemon_rss(client: &Client) -> anyhow::Result<(u64, u64)> {
    let info = client.clone().info(InfoRequest {}).await?.into_inner();
    Ok((info.rss_bytes, info.peak_rss_bytes))
}

/// Solves `definition` through a session of its own; the seconds the Solve took.
async fn solve(
    client: &Client,
    definition: &[u8],
    vertices: usize,
    what: &str,
) -> anyhow::Result<f64> {
    let session_id = unique_id("session");
    let build_ref = unique_id("bench");
    let opened = session::open(
        client.clone(),
        SessionConfig {
            id: session_id.clone(),
            locals: BTreeMap::new(),
            secrets: Default::default(),
            ssh: Default::default(),
            docker_config: session::creds::config_path(),
            exports: Vec::new(),
        },
    )
    .await
    .context("opening a session with the daemon")?;
    let (close_tx, close_rx) = oneshot::channel();
    let served = tokio::spawn(opened.serve(close_rx));
    let (done_tx, done_rx) = oneshot::channel();
    let bar = tokio::spawn(progress_bar(
        client.clone(),
        build_ref.clone(),
        vertices,
        what.to_owned(),
        done_rx,
    ));
    let req = SolveRequest {
        r#ref: build_ref,
        session_id,
        definition: definition.to_vec(),
        ..Default::default()
    };
    let started = Instant::now();
    let solved = client.clone().solve(req).await;
    let seconds = started.elapsed().as_secs_f64();
    let _ = done_tx.send(());
    let _ = bar.await;
    let _ = close_tx.send(());
    let _ = served.await;
    solved.map_err(|s| anyhow::anyhow!("{what}: failed to solve: {}", s.message()))?;
    Ok(seconds)
}

/// A one-line bar on a terminal's stderr: vertices completed of `total`.
async fn progress_bar(
    mut client: Client,
    build_ref: String,
    total: usize,
    what: String,
    mut done: oneshot::Receiver<()>,
) {
    let mut err = std::io::stderr();
    if !err.is_terminal() {
        return;
    }
    let Ok(stream) = client.status(StatusRequest { r#ref: build_ref }).await else {
        return;
    };
    let mut stream = stream.into_inner();
    let mut completed = std::collections::HashSet::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            msg = stream.message() => match msg {
                Ok(Some(resp)) => completed.extend(
                    resp.vertexes.into_iter().filter(|v| v.completed_ns > 0).map(|v| v.digest),
                ),
                _ => break,
            },
            _ = ticker.tick() => {
                let n = completed.len().min(total);
                let filled = n * 30 / total.max(1);
                let _ = write!(
                    err,
                    "\r{what} [{}{}] {n}/{total}",
                    "#".repeat(filled),
                    ".".repeat(30 - filled)
                );
                let _ = err.flush();
            }
            _ = &mut done => break,
        }
    }
    let _ = write!(err, "\r\x1b[2K");
    let _ = err.flush();
}
