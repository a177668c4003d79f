//! Info and ListImages: what the daemon is and holds.

use std::sync::atomic::Ordering;

use buildd_proto::control::{Image, InfoResponse, ListImagesResponse, WorkerInfo};

use crate::daemon::Daemon;

pub fn info(daemon: &Daemon) -> InfoResponse {
    let p = buildd_oci::host_platform();
    let rt = daemon.engine.runtime_info();
    InfoResponse {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        workers: vec![WorkerInfo {
            id: "local".to_owned(),
            platforms: vec![format!("{}/{}", p.os, p.architecture)],
            runtime: rt
                .runtime
                .map(|r| r.display().to_string())
                .unwrap_or_default(),
            snapshotter: rt.snapshotter.to_owned(),
            network: rt.network,
            warnings: rt.warnings,
        }],
        allowed_entitlements: daemon.policy.entitlements.iter().cloned().collect(),
        max_parallelism: daemon.limits.max_parallelism as u32,
        max_concurrent_builds: daemon.limits.max_concurrent_builds as u32,
        root: daemon.root.display().to_string(),
        executed_ops: daemon.engine.solver.executed(),
        running_builds: daemon.running.load(Ordering::Relaxed),
        rss_bytes: status_kib("VmRSS:") * 1024,
        peak_rss_bytes: status_kib("VmHWM:") * 1024,
    }
}

/// A `kB` field of `/proc/self/status`; 0 where there is none.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

pub fn list_images(
    daemon: &Daemon,
) -> Result<ListImagesResponse, buildd_engine::images::ImageError> {
    let layers = &daemon.engine.root.layers;
    let images = daemon
        .engine
        .root
        .images
        .list()?
        .into_iter()
        .map(|r| {
            let size = r
                .layers
                .iter()
                .filter_map(|id| buildd_snapshot::LayerId::new(id.as_str()).ok())
                .map(|id| tree_size(&layers.diff_dir(&id)))
                .sum();
            Image {
                digest: r.digest().to_string(),
                name: r.name,
                size,
                created: r.created,
            }
        })
        .collect();
    Ok(ListImagesResponse { images })
}

fn tree_size(path: &std::path::Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|es| {
            es.filter_map(|e| e.ok())
                .map(|e| tree_size(&e.path()))
                .sum()
        })
        .unwrap_or(0)
}
