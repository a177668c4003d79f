//! `bctl images`: the daemon's image store.

use buildd_proto::control::ListImagesRequest;

use super::ConnArgs;
use crate::progress::human_bytes;

pub async fn run(conn: &ConnArgs) -> anyhow::Result<()> {
    let mut client = conn.connect().await?;
    let images = client
        .list_images(ListImagesRequest {})
        .await?
        .into_inner()
        .images;
    println!("{:<40} {:<19} {:>10}  CREATED", "NAME", "DIGEST", "SIZE");
    for image in images {
        let digest: String = image.digest.chars().take(19).collect();
        println!(
            "{:<40} {:<19} {:>10}  {}",
            image.name,
            digest,
            human_bytes(image.size),
            image.created
        );
    }
    Ok(())
}
