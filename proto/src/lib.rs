//! Wire formats shared by every buildd component.
//!
//! [`llb`] is the build graph: frontends produce it, the engine solves it.
//! [`control`] is the daemon's gRPC API (messages, client and server). [`Digest`] is
//! how vertices and blobs are named.

pub mod chmod;
mod digest;
pub mod dump;

pub use digest::{Digest, DigestError};

/// The LLB protocol (`proto/llb.proto`).
pub mod llb {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/buildd.llb.v1.rs"));

    use prost::Message;

    /// Input index meaning "no input": scratch for bases, no output for mounts.
    pub const NO_INPUT: i64 = -1;

    /// Description key holding a vertex's progress name.
    pub const CUSTOM_NAME: &str = "llb.customname";

    impl Op {
        /// The vertex digest: sha256 of the canonical encoding.
        ///
        /// prost encodes fields in tag order and maps (BTreeMap here) in key order,
        /// so equal ops always encode to equal bytes.
        pub fn digest(&self) -> super::Digest {
            super::Digest::of(&self.encode_to_vec())
        }
    }
}

/// The daemon's gRPC API (`proto/control.proto`).
pub mod control {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/buildd.control.v1.rs"));
}
