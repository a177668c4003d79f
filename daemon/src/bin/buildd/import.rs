//! `buildd import ROOTFS.tar NAME`: an image from a root filesystem tarball.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use buildd_engine::images::import_rootfs;
use buildd_engine::root::Root;
use clap::Args;

#[derive(Args)]
pub struct ImportArgs {
    /// Tarball of a root filesystem: plain, gzip or zstd; `-` reads standard input.
    tarball: PathBuf,
    /// Name to store the image under (`:latest` when no tag is given).
    name: String,
}

pub fn run(root: &Path, args: ImportArgs) -> anyhow::Result<()> {
    let root = Root::open(root).with_context(|| format!("opening root {}", root.display()))?;
    let record = if args.tarball.as_os_str() == "-" {
        import_rootfs(
            &root.layers,
            &root.images,
            std::io::stdin().lock(),
            &args.name,
        )?
    } else {
        let file = File::open(&args.tarball)
            .with_context(|| format!("opening {}", args.tarball.display()))?;
        import_rootfs(&root.layers, &root.images, BufReader::new(file), &args.name)?
    };
    println!("{}", record.digest());
    Ok(())
}
