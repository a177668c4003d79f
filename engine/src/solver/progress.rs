//! Progress events, as the plain and (later) tty and JSON printers consume them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use buildd_proto::Digest;
use tokio::sync::mpsc::UnboundedSender;

#[derive(Debug, Clone, PartialEq)]
pub enum ProgressEvent {
    Started {
        vertex: Digest,
        name: String,
        at: SystemTime,
    },
    Cached {
        vertex: Digest,
        name: String,
    },
    Completed {
        vertex: Digest,
        name: String,
        duration: Duration,
    },
    Failed {
        vertex: Digest,
        name: String,
        duration: Duration,
        error: String,
    },
    Log {
        vertex: Digest,
        stream: u8,
        data: Vec<u8>,
    },
}

/// Where a build's events go.
pub type ProgressSender = UnboundedSender<ProgressEvent>;

/// The events of one job, fanned out to every build that waits on it. A build that
/// joins late first gets what it missed, so it sees the whole story.
#[derive(Debug, Default)]
pub(crate) struct JobProgress {
    inner: Mutex<JobProgressInner>,
}

#[derive(Debug, Default)]
struct JobProgressInner {
    history: Vec<ProgressEvent>,
    subscribers: Vec<ProgressSender>,
}

impl JobProgress {
    pub(crate) fn subscribe(&self, tx: &ProgressSender) {
        let mut inner = self.inner.lock().unwrap();
        if inner.subscribers.iter().any(|s| s.same_channel(tx)) {
            return;
        }
        for ev in &inner.history {
            let _ = tx.send(ev.clone());
        }
        inner.subscribers.push(tx.clone());
    }

    pub(crate) fn emit(&self, ev: ProgressEvent) {
        let mut inner = self.inner.lock().unwrap();
        inner.subscribers.retain(|s| s.send(ev.clone()).is_ok());
        inner.history.push(ev);
    }

    /// A sender that forwards into this job's fan-out (for worker logs).
    pub(crate) fn sender(self: &Arc<Self>) -> ProgressSender {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let me = self.clone();
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                me.emit(ev);
            }
        });
        tx
    }
}
