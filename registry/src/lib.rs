//! A client for the OCI distribution API (Docker registry v2).
//!
//! - [`Reference`]: image references normalized as Docker does.
//! - [`Client`]: resolves references to manifests for a platform, streams blobs with
//!   size and digest verification, pushes blobs and manifests. Answers basic and
//!   bearer-token challenges with credentials from a [`CredentialSource`] such as
//!   [`DockerConfig`], caching tokens per registry and scope.
//! - [`RegistryConfig`]: plain HTTP for loopback and insecure registries, and mirrors
//!   tried before a registry for pulls, and [`RetryPolicy`]: transient failures
//!   (connection errors, 429 and 5xx answers) tried again with backoff.
//! - [`limits`]: caps on manifests, configs and token responses read into memory.

mod auth;
mod client;
mod config;
mod credentials;
mod docker_config;
mod error;
pub mod limits;
mod manifest;
mod platform;
mod pull;
mod push;
mod reference;
mod retry;

pub use auth::{Challenge, parse_challenges};
pub use client::{Client, InitError};
pub use config::{Endpoint, RegistryConfig};
pub use credentials::{
    Credential, CredentialError, CredentialSource, NoCredentials, StaticCredentials,
};
pub use docker_config::DockerConfig;
pub use error::{Action, Error, ErrorKind};
pub use manifest::{ManifestKind, kind_of};
pub use platform::{platform_string, select};
pub use pull::{FetchedManifest, Resolved};
pub use push::{BlobPush, BlobSource};
pub use reference::{DOCKER_HUB, DOCKER_HUB_API, RefError, Reference, api_host};
pub use retry::RetryPolicy;
