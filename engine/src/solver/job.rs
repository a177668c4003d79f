//! Jobs: one shared, abortable evaluation of a vertex.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{BoxFuture, Shared, WeakShared};
use tokio::task::JoinHandle;

use super::error::SolveError;
use super::progress::JobProgress;
use super::worker::Resolved;

pub(crate) type JobResult<O> = Result<Arc<Resolved<O>>, SolveError>;
pub(crate) type JobFuture<O> = Shared<BoxFuture<'static, JobResult<O>>>;

/// What the in-flight map keeps: no strong reference, so a job nobody awaits any
/// more is dropped (and with it, aborted).
pub(crate) struct JobEntry<O> {
    pub(crate) future: WeakShared<BoxFuture<'static, JobResult<O>>>,
    pub(crate) progress: Arc<JobProgress>,
}

/// A spawned task that is aborted when its handle is dropped: the shared future
/// owns this, so dropping the last waiter cancels the work.
pub(crate) struct AbortOnDrop<T>(pub(crate) JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

pub(crate) fn join_error(name: &str, e: tokio::task::JoinError) -> SolveError {
    match e.try_into_panic() {
        Err(_) => SolveError::Cancelled,
        Ok(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown cause".to_owned());
            tracing::error!(vertex = name, "operation panicked: {what}");
            SolveError::Internal {
                name: name.to_owned(),
                message: format!("the operation panicked: {what}"),
            }
        }
    }
}
