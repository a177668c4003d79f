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
    let allowed = if info.allowed_entitlements.is_empty() {
        "none".to_owned()
    } else {
        info.allowed_entitlements.join(", ")
    };
    println!("Entitlements allowed:  {allowed}");
    println!("Workers:");
    for w in info.workers {
        let runtime = if w.runtime.is_empty() {
            "none found"
        } else {
            &w.runtime
        };
        println!("  {}:", w.id);
        println!("    Platforms:   {}", w.platforms.join(","));
        println!("    Runtime:     {runtime}");
        println!("    Snapshotter: {}", w.snapshotter);
        println!("    Network:     {}", w.network);
        for warning in &w.warnings {
            println!("    WARNING:     {warning}");
        }
    }
    Ok(())
}
