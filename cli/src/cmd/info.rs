//! `bctl info`: the daemon's version, limits and workers.

use buildd_proto::control::InfoRequest;

use super::ConnArgs;

pub async fn run(conn: &ConnArgs) -> anyhow::Result<()> {
    let mut client = conn.connect().await?;
    let info = client.info(InfoRequest {}).await?.into_inner();
    println!("Version:               {}", info.version);
    println!("Root:                  {}", info.root);
    println!("Max parallelism:       {}", info.max_parallelism);
    println!("Max concurrent builds: {}", info.max_concurrent_builds);
    println!("Running builds:        {}", info.running_builds);
    println!("Executed ops:          {}", info.executed_ops);
    println!("Workers:");
    println!(
        "  {:<16} {:<10} {:<12} PLATFORMS",
        "ID", "RUNTIME", "SNAPSHOTTER"
    );
    for w in info.workers {
        println!(
            "  {:<16} {:<10} {:<12} {}",
            w.id,
            w.runtime,
            w.snapshotter,
            w.platforms.join(",")
        );
    }
    Ok(())
}
