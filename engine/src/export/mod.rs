//! Exporters: what a build's result becomes.
//!
//! - `type=oci,dest=F[,tar=false][,name=N][,compression=gzip|zstd|uncompressed]`: an
//!   OCI image layout, as a tar archive (default) or a directory
//! - `type=docker,dest=F[,name=N]`: the same layout plus the `manifest.json` of a
//!   docker archive, for `docker load`
//! - `type=tar,dest=F`: the result's filesystem as one tar archive
//! - `type=local,dest=D`: the result's filesystem as a plain directory
//! - `type=image,name=N[,push=true]`: the local image store, and the registry

mod layers;
mod local;
mod metadata;
mod oci;
mod push;
mod spec;
mod tar;

pub(crate) use layers::{BlobRecord, blob_key_layer};
pub use layers::{ImageLayers, image_layers, record_layer_blob};
pub use local::export_local;
pub use metadata::{CONFIG_DIGEST, IMAGE_DIGEST, image_metadata, metadata_json};
pub use oci::{BuiltImage, OciExport, build_image, export_oci, export_oci_stream};
pub use push::{push_image, record_blob_sources};
pub use spec::{ArchiveFormat, OutputSpec, OutputSpecError, StreamSink};
pub use tar::export_tar;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("exporting layer {layer}: {source}")]
    Layer {
        layer: String,
        source: buildd_oci::LayerError,
    },
    #[error("writing {dest}: {source}")]
    Layout {
        dest: PathBuf,
        source: buildd_oci::LayoutError,
    },
    #[error("image name {name:?}: {message}")]
    Name { name: String, message: String },
    #[error("pushing {name}: {message}")]
    Push { name: String, message: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Index(#[from] crate::cache::IndexError),
    #[error("writing {dest}: {source}")]
    Snapshot {
        dest: PathBuf,
        source: buildd_snapshot::SnapshotError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}
