//! `buildd images`: what the local image store holds.

use std::path::Path;

use anyhow::Context as _;
use buildd_engine::root::Root;

pub fn run(root: &Path) -> anyhow::Result<()> {
    let root = Root::open(root).with_context(|| format!("opening root {}", root.display()))?;
    println!("{:<40} {:<19} {:>10}  CREATED", "NAME", "DIGEST", "SIZE");
    for image in root.images.list()? {
        let size: u64 = image
            .layers
            .iter()
            .filter_map(|id| buildd_snapshot::LayerId::new(id.as_str()).ok())
            .map(|id| dir_size(&root.layers.diff_dir(&id)))
            .sum();
        let digest = image.digest().to_string();
        println!(
            "{:<40} {:<19} {:>10}  {}",
            image.name,
            &digest[..19],
            human(size),
            image.created
        );
    }
    Ok(())
}

fn dir_size(p: &Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !md.is_dir() {
        return md.len();
    }
    std::fs::read_dir(p)
        .map(|rd| rd.flatten().map(|e| dir_size(&e.path())).sum())
        .unwrap_or(0)
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.1}{}", UNITS[unit])
    }
}
