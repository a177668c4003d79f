//! The solver: turns an LLB [`Graph`] into results, running independent vertices
//! concurrently, each identical vertex once, and only what the result needs.
//!
//! Every vertex evaluation is a *job* keyed by its [`JobKey`]; jobs are shared
//! futures, so concurrent builds asking for the same vertex await one execution, and
//! a job whose last waiter goes away is aborted.

mod cache_key;
mod error;
mod graph;
mod job;
mod progress;
mod scheduler;
mod worker;

pub mod testing;
#[cfg(test)]
mod tests;

pub use cache_key::cache_key;
pub use error::{OpError, SolveError};
pub use graph::{Graph, GraphError, Vertex, VertexLocation};
pub use progress::{LogSink, ProgressEvent, ProgressSender};
pub use scheduler::{SolveRequest, Solver, SolverConfig};
pub use worker::{BuildCtx, Resolved, Worker};
