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
use prost::Message as _;
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
    events: Vec<Event>,
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
    /// Packs a finished history unless a subscriber is reading it (it holds an
    /// index into the events).
    fn pack_if_idle(&self, h: &mut History) {
        let packed = h.events.iter().all(|e| matches!(e, Event::Packed(_)));
        if h.finished.is_some() && !packed && self.changed.receiver_count() == 0 {
            h.events = pack(&h.events);
        }
    }

    fn new() -> Self {
        Self {
            inner: Mutex::default(),
            changed: watch::channel(()).0,
        }
    }

    fn push(&self, resp: StatusResponse) {
        self.inner.lock().unwrap().events.push(Event::Live(resp));
        self.changed.send_replace(());
    }
}

/// A message of a ref's history: as sent, or packed once the build ended.
enum Event {
    Live(StatusResponse),
    /// Encoded, decoded again for each late subscriber.
    Packed(Vec<u8>),
}

impl Event {
    fn response(&self) -> StatusResponse {
        match self {
            Event::Live(r) => r.clone(),
            // Encoded by this process from a valid message.
            Event::Packed(b) => StatusResponse::decode(b.as_slice()).unwrap_or_default(),
        }
    }
}

/// Vertexes per packed message, well under gRPC's default 4 MiB.
const PACKED_VERTEXES: usize = 500;

/// A finished build's history as few encoded messages holding the last state
/// of each vertex and counter, then every log and warning: what a late
/// subscriber needs, at a few hundred bytes a vertex instead of every update
/// kept as sent (a 10,000-step build held ~9 MB for the retention time).
fn pack(events: &[Event]) -> Vec<Event> {
    let mut vertexes: Vec<Vertex> = Vec::new();
    let mut by_digest = HashMap::new();
    let mut statuses: Vec<VertexStatus> = Vec::new();
    let mut by_id = HashMap::new();
    let (mut logs, mut warnings) = (Vec::new(), Vec::new());
    for ev in events {
        let r = ev.response();
        for v in r.vertexes {
            match by_digest.get(&v.digest) {
                Some(&i) => vertexes[i] = v,
                None => {
                    by_digest.insert(v.digest.clone(), vertexes.len());
                    vertexes.push(v);
                }
            }
        }
        for st in r.statuses {
            let key = (st.vertex.clone(), st.id.clone());
            match by_id.get(&key) {
                Some(&i) => statuses[i] = st,
                None => {
                    by_id.insert(key, statuses.len());
                    statuses.push(st);
                }
            }
        }
        logs.extend(r.logs);
        warnings.extend(r.warnings);
    }
    let mut out = Vec::new();
    let mut first = Some((statuses, warnings));
    let mut chunks = vertexes.chunks(PACKED_VERTEXES).peekable();
    while chunks.peek().is_some() || first.is_some() {
        let (statuses, warnings) = first.take().unwrap_or_default();
        let resp = StatusResponse {
            vertexes: chunks.next().map(<[Vertex]>::to_vec).unwrap_or_default(),
            statuses,
            warnings,
            logs: Vec::new(),
        };
        out.push(Event::Packed(resp.encode_to_vec()));
    }
    // Logs after every vertex, in order, in messages of bounded size.
    let mut batch = Vec::new();
    let mut size = 0;
    for log in logs {
        size += log.data.len() + 64;
        batch.push(log);
        if size > 1 << 20 {
            let resp = StatusResponse {
                logs: std::mem::take(&mut batch),
                ..Default::default()
            };
            out.push(Event::Packed(resp.encode_to_vec()));
            size = 0;
        }
    }
    if !batch.is_empty() {
        let resp = StatusResponse {
            logs: batch,
            ..Default::default()
        };
        out.push(Event::Packed(resp.encode_to_vec()));
    }
    out
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
                                let ev = ev.response();
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
/// that no build came to in that time; packs finished histories no subscriber
/// is reading.
fn sweep(refs: &mut HashMap<String, Arc<RefStatus>>) {
    refs.retain(|_, s| {
        let mut h = s.inner.lock().unwrap();
        s.pack_if_idle(&mut h);
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
        self.status.pack_if_idle(&mut h);
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
        // Packed once the build ended: the last state of each vertex.
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].vertexes.len(), 1);
        let v = &all[0].vertexes[0];
        assert!(v.started_ns > 0 && v.completed_ns >= v.started_ns, "{v:?}");
    }

    #[test]
    fn packing_keeps_the_last_state_of_each_vertex_and_every_log_in_bounded_messages() {
        let mut events = Vec::new();
        for i in 0..1200u32 {
            let digest = format!("sha256:{i}");
            for completed_ns in [0, 7] {
                events.push(Event::Live(vertexes(Vertex {
                    digest: digest.clone(),
                    started_ns: 5,
                    completed_ns,
                    ..Default::default()
                })));
            }
            events.push(Event::Live(StatusResponse {
                logs: vec![VertexLog {
                    vertex: digest,
                    data: vec![b'x'; 1000],
                    ..Default::default()
                }],
                ..Default::default()
            }));
        }
        let packed: Vec<StatusResponse> = pack(&events).iter().map(Event::response).collect();
        let vs: Vec<&Vertex> = packed.iter().flat_map(|r| &r.vertexes).collect();
        assert_eq!(vs.len(), 1200);
        assert!(vs.iter().all(|v| v.completed_ns == 7));
        assert!(packed.iter().all(|r| r.vertexes.len() <= PACKED_VERTEXES));
        let logs: Vec<&VertexLog> = packed.iter().flat_map(|r| &r.logs).collect();
        assert_eq!(logs.len(), 1200);
        assert_eq!(logs[1199].vertex, "sha256:1199");
        assert!(packed.iter().all(|r| r.encoded_len() < 2 << 20));
        // Logs come after every vertex.
        let first_log = packed.iter().position(|r| !r.logs.is_empty()).unwrap();
        assert!(
            packed[..first_log]
                .iter()
                .map(|r| r.vertexes.len())
                .sum::<usize>()
                == 1200
        );
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
