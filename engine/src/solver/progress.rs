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
    log_bytes: usize,
}

/// Output kept and shown per vertex, as BuildKit clips: a runaway RUN must not
/// exhaust the daemon's memory.
pub const MAX_LOG_BYTES: usize = 2 << 20;

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

    pub(crate) fn emit(&self, mut ev: ProgressEvent) {
        let mut inner = self.inner.lock().unwrap();
        if let ProgressEvent::Log { data, .. } = &mut ev {
            if inner.log_bytes >= MAX_LOG_BYTES {
                return;
            }
            inner.log_bytes += data.len();
            if inner.log_bytes >= MAX_LOG_BYTES {
                data.extend_from_slice(b"\n[output clipped, log limit 2MiB reached]\n");
            }
        }
        inner.subscribers.retain(|s| s.send(ev.clone()).is_ok());
        inner.history.push(ev);
    }
}

/// Where an executing op writes its output: straight into its job's fan-out.
#[derive(Clone)]
pub struct LogSink {
    progress: Arc<JobProgress>,
    vertex: Digest,
}

impl LogSink {
    pub(crate) fn new(progress: Arc<JobProgress>, vertex: Digest) -> Self {
        Self { progress, vertex }
    }

    /// A sink that drops everything, for running ops outside a solve.
    pub fn discard() -> Self {
        Self::new(
            Arc::new(JobProgress::default()),
            Digest::from_bytes([0; 32]),
        )
    }

    /// `stream` is 1 for stdout and 2 for stderr.
    pub fn write(&self, stream: u8, data: &[u8]) {
        self.progress.emit(ProgressEvent::Log {
            vertex: self.vertex,
            stream,
            data: data.to_vec(),
        });
    }
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSink")
            .field("vertex", &self.vertex)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_clipped_per_job() {
        let p = Arc::new(JobProgress::default());
        let sink = LogSink::new(p.clone(), Digest::of(b"v"));
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..5 {
            sink.write(1, &chunk);
        }
        let inner = p.inner.lock().unwrap();
        let kept: usize = inner
            .history
            .iter()
            .map(|e| match e {
                ProgressEvent::Log { data, .. } => data.len(),
                _ => 0,
            })
            .sum();
        assert!(kept < MAX_LOG_BYTES + 100, "{kept}");
        assert_eq!(inner.history.len(), 2);
    }
}
