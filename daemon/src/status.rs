//! Build progress by build reference: what `Status` streams.
//!
//! Every build publishes its events to the board under its ref. The board keeps
//! each ref's whole history, so a `Status` call opened before the build started or
//! after it ended still gets every event; finished refs are forgotten after
//! [`RETENTION`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use buildd_engine::solver::ProgressEvent;
use buildd_proto::Digest;
use buildd_proto::control::{StatusResponse, Vertex, VertexLog, VertexStatus, Warning};
use futures_util::Stream;
use tokio::sync::watch;

use crate::peer::Peer;

/// How long a finished build's events stay available.
pub const RETENTION: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("build ref {0:?} is already running")]
    Running(String),
    #[error("invalid build ref {0:?}")]
    InvalidRef(String),
    #[error("build ref {0:?} belongs to another client")]
    Forbidden(String),
}

/// The events of one build ref.
struct RefStatus {
    inner: Mutex<History>,
    /// Bumped on every change; subscribers wait on it.
    changed: watch::Sender<()>,
}

#[derive(Default)]
struct History {
    events: Vec<StatusResponse>,
    /// The caller whose build this is; only it may read the events.
    owner: Option<Peer>,
    publishing: bool,
    finished: Option<Instant>,
}

impl History {
    /// Whether a build of another caller than `caller` publishes this ref.
    fn owned_by_other(&self, caller: &Peer) -> bool {
        self.owner.as_ref().is_some_and(|o| o != caller)
    }
}

impl RefStatus {
    fn new() -> Self {
        Self {
            inner: Mutex::default(),
            changed: watch::channel(()).0,
        }
    }

    fn push(&self, resp: StatusResponse) {
        self.inner.lock().unwrap().events.push(resp);
        self.changed.send_replace(());
    }
}

/// Every ref's events.
#[derive(Default)]
pub struct StatusBoard {
    refs: Mutex<HashMap<String, Arc<RefStatus>>>,
}

impl StatusBoard {
    /// Starts publishing `build_ref` for `owner`; refused while another build has
    /// that ref.
    pub fn publish(&self, build_ref: &str, owner: &Peer) -> Result<Publisher, StatusError> {
        if build_ref.is_empty() || build_ref.len() > 256 {
            return Err(StatusError::InvalidRef(build_ref.to_owned()));
        }
        let mut refs = self.refs.lock().unwrap();
        sweep(&mut refs);
        let status = refs
            .entry(build_ref.to_owned())
            .or_insert_with(|| Arc::new(RefStatus::new()));
        {
            let mut h = status.inner.lock().unwrap();
            if h.publishing {
                return Err(StatusError::Running(build_ref.to_owned()));
            }
            if h.finished.is_some() {
                // A new build reusing a finished ref starts a new story.
                *h = History::default();
            }
            h.publishing = true;
            h.owner = Some(owner.clone());
        }
        Ok(Publisher {
            status: status.clone(),
            started: HashMap::new(),
        })
    }

    /// The events of `build_ref`: history first, then live until the build ends.
    /// A ref no build has published yet is waited for. Another client's build is
    /// refused: at once if it is known, else as soon as it starts.
    pub fn subscribe(
        &self,
        build_ref: &str,
        caller: &Peer,
    ) -> Result<impl Stream<Item = Result<StatusResponse, StatusError>> + use<>, StatusError> {
        let status = {
            let mut refs = self.refs.lock().unwrap();
            sweep(&mut refs);
            refs.entry(build_ref.to_owned())
                .or_insert_with(|| Arc::new(RefStatus::new()))
                .clone()
        };
        if status.inner.lock().unwrap().owned_by_other(caller) {
            return Err(StatusError::Forbidden(build_ref.to_owned()));
        }
        let rx = status.changed.subscribe();
        let (caller, build_ref) = (caller.clone(), build_ref.to_owned());
        let state = (status, rx, 0usize, false);
        Ok(futures_util::stream::unfold(
            state,
            move |(status, mut rx, next, done)| {
                let (caller, build_ref) = (caller.clone(), build_ref.clone());
                async move {
                    if done {
                        return None;
                    }
                    loop {
                        rx.borrow_and_update();
                        {
                            let h = status.inner.lock().unwrap();
                            if h.owned_by_other(&caller) {
                                drop(h);
                                let err = StatusError::Forbidden(build_ref);
                                return Some((Err(err), (status, rx, next, true)));
                            }
                            if let Some(ev) = h.events.get(next) {
                                let ev = ev.clone();
                                drop(h);
                                return Some((Ok(ev), (status, rx, next + 1, false)));
                            }
                            if h.finished.is_some() {
                                return None;
                            }
                        }
                        if rx.changed().await.is_err() {
                            return None;
                        }
                    }
                }
            },
        ))
    }
}

/// Drops finished refs past their retention, and refs only subscribers asked for
/// that no build came to in that time.
fn sweep(refs: &mut HashMap<String, Arc<RefStatus>>) {
    refs.retain(|_, s| {
        let h = s.inner.lock().unwrap();
        match h.finished {
            Some(at) => at.elapsed() < RETENTION,
            None => h.publishing || Arc::strong_count(s) > 1 || s.changed.receiver_count() > 0,
        }
    });
}

/// One build's side of its ref: turns engine events into status messages.
pub struct Publisher {
    status: Arc<RefStatus>,
    /// Start times of running vertices, to repeat them in later updates.
    started: HashMap<Digest, i64>,
}

impl Publisher {
    pub fn event(&mut self, ev: ProgressEvent) {
        let now = now_ns();
        let vertex = |digest: &Digest, name: &str| Vertex {
            digest: digest.to_string(),
            name: name.to_owned(),
            ..Default::default()
        };
        let resp = match ev {
            ProgressEvent::Started {
                vertex: d,
                name,
                at,
            } => {
                let started = ns(at);
                self.started.insert(d, started);
                vertexes(Vertex {
                    started_ns: started,
                    ..vertex(&d, &name)
                })
            }
            ProgressEvent::Cached { vertex: d, name } => vertexes(Vertex {
                cached: true,
                started_ns: now,
                completed_ns: now,
                ..vertex(&d, &name)
            }),
            ProgressEvent::Completed {
                vertex: d, name, ..
            } => vertexes(Vertex {
                started_ns: self.started.get(&d).copied().unwrap_or(now),
                completed_ns: now,
                ..vertex(&d, &name)
            }),
            ProgressEvent::Failed {
                vertex: d,
                name,
                error,
                ..
            } => vertexes(Vertex {
                started_ns: self.started.get(&d).copied().unwrap_or(now),
                completed_ns: now,
                error,
                ..vertex(&d, &name)
            }),
            ProgressEvent::Log {
                vertex: d,
                stream,
                data,
            } => StatusResponse {
                logs: vec![VertexLog {
                    vertex: d.to_string(),
                    stream: stream.into(),
                    data,
                    timestamp_ns: now,
                }],
                ..Default::default()
            },
        };
        self.status.push(resp);
    }

    /// A progress counter of `vertex` (e.g. bytes of a context transfer).
    pub fn counter(
        &self,
        vertex: &Digest,
        name: &str,
        current: u64,
        total: u64,
        started_ns: i64,
        done: bool,
    ) {
        let now = now_ns();
        self.status.push(StatusResponse {
            statuses: vec![VertexStatus {
                id: name.to_owned(),
                vertex: vertex.to_string(),
                name: name.to_owned(),
                current: current as i64,
                total: total as i64,
                timestamp_ns: now,
                started_ns,
                completed_ns: if done { now } else { 0 },
            }],
            ..Default::default()
        });
    }

    pub fn warnings(&self, warnings: Vec<Warning>) {
        if !warnings.is_empty() {
            self.status.push(StatusResponse {
                warnings,
                ..Default::default()
            });
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let mut h = self.status.inner.lock().unwrap();
        h.publishing = false;
        h.finished = Some(Instant::now());
        drop(h);
        self.status.changed.send_replace(());
    }
}

fn vertexes(v: Vertex) -> StatusResponse {
    StatusResponse {
        vertexes: vec![v],
        ..Default::default()
    }
}

pub fn now_ns() -> i64 {
    ns(SystemTime::now())
}

fn ns(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn a_late_subscriber_gets_the_whole_history() {
        let board = StatusBoard::default();
        let me = Peer::Uid(1000);
        let mut p = board.publish("r1", &me).unwrap();
        let d = Digest::of(b"v");
        p.event(ProgressEvent::Started {
            vertex: d,
            name: "step".into(),
            at: SystemTime::now(),
        });
        assert!(matches!(
            board.publish("r1", &me),
            Err(StatusError::Running(_))
        ));
        p.event(ProgressEvent::Completed {
            vertex: d,
            name: "step".into(),
            duration: Duration::ZERO,
        });
        drop(p);
        assert!(matches!(
            board.subscribe("r1", &Peer::Uid(1001)),
            Err(StatusError::Forbidden(_))
        ));
        let all: Vec<_> = board.subscribe("r1", &me).unwrap().collect().await;
        let all: Vec<_> = all.into_iter().map(Result::unwrap).collect();
        assert_eq!(all.len(), 2);
        assert!(all[1].vertexes[0].completed_ns >= all[1].vertexes[0].started_ns);
        assert_eq!(all[0].vertexes[0].started_ns, all[1].vertexes[0].started_ns);
    }

    #[tokio::test]
    async fn an_early_subscriber_waits_for_the_build() {
        let board = Arc::new(StatusBoard::default());
        let me = Peer::Uid(0);
        let sub = board.subscribe("r2", &me).unwrap();
        let b = board.clone();
        let task = tokio::spawn(async move { sub.collect::<Vec<_>>().await });
        tokio::task::yield_now().await;
        let mut p = b.publish("r2", &me).unwrap();
        p.event(ProgressEvent::Cached {
            vertex: Digest::of(b"x"),
            name: "x".into(),
        });
        drop(p);
        let got = task.await.unwrap();
        assert_eq!(got.len(), 1);
        assert!(got[0].as_ref().unwrap().vertexes[0].cached);
    }

    #[tokio::test]
    async fn an_early_subscriber_of_another_clients_build_is_cut_off() {
        let board = Arc::new(StatusBoard::default());
        let sub = board.subscribe("r3", &Peer::Uid(1001)).unwrap();
        let b = board.clone();
        let task = tokio::spawn(async move { sub.collect::<Vec<_>>().await });
        tokio::task::yield_now().await;
        let mut p = b.publish("r3", &Peer::Uid(1000)).unwrap();
        p.event(ProgressEvent::Cached {
            vertex: Digest::of(b"secret step"),
            name: "secret step".into(),
        });
        drop(p);
        let got = task.await.unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(matches!(got[0], Err(StatusError::Forbidden(_))));
    }
}
