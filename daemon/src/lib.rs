//! The buildd daemon: the gRPC Control API over the engine.
//!
//! [`control_server`] adapts gRPC calls to the plain functions of the other
//! modules: [`solve`] (a build: sync what it reads from the client, run it, send
//! outputs back), [`session`] (the client's session stream), [`context_sync`] and
//! [`mirror`] (incremental upload into a per-client-directory mirror), [`status`]
//! (progress by build ref), [`usage`] (disk usage and prune), [`info`]; [`secrets`],
//! [`credentials`] and [`ssh`] serve what a build borrows from its client. [`serve`]
//! listens on a unix socket and optionally TCP with mutual TLS; [`peer`] names the
//! caller that sessions, builds and their status belong to.

pub mod context_sync;
pub mod control_server;
pub mod credentials;
pub mod daemon;
pub mod definition;
pub mod durability;
pub mod exporters;
pub mod info;
pub mod mirror;
pub mod paths;
pub mod peer;
pub mod secrets;
pub mod serve;
pub mod session;
pub mod solve;
pub mod ssh;
pub mod status;
pub mod usage;
