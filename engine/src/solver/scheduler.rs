//! The scheduler: deduplicated, cancellable, bounded-parallel evaluation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use buildd_proto::Digest;
use futures_util::future::{FutureExt, try_join_all};
use sha2::{Digest as _, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

use super::cache_key::cache_key;
use super::error::{OpError, SolveError};
use super::graph::{Graph, Vertex};
use super::job::{AbortOnDrop, JobEntry, JobFuture, JobResult, join_error};
use super::progress::{JobProgress, LogSink, ProgressEvent, ProgressSender};
use super::worker::{BuildCtx, Resolved, Worker};
use crate::cache::{CacheIndex, Table};

#[derive(Debug, Clone)]
pub struct SolverConfig {
    /// How many CPU-bound ops (file ops, sources, cache-key hashing) may execute
    /// at once, across builds (waiting on inputs does not count).
    pub max_parallelism: usize,
    /// How many RUN steps may execute at once, across builds. A RUN mostly
    /// waits (on the network, the disk, a sleep), so RUNs are not held to the
    /// cores: like BuildKit, four independent RUN stages run together on two
    /// cores. Their own CPU use is the kernel's to share.
    pub max_parallel_runs: usize,
}

impl SolverConfig {
    /// The default bound on concurrent RUN steps.
    pub const DEFAULT_MAX_PARALLEL_RUNS: usize = 32;
}

impl Default for SolverConfig {
    fn default() -> Self {
        Self {
            max_parallelism: std::thread::available_parallelism().map_or(4, |n| n.get() * 2),
            max_parallel_runs: Self::DEFAULT_MAX_PARALLEL_RUNS,
        }
    }
}

/// One build's request.
pub struct SolveRequest {
    pub graph: Arc<Graph>,
    pub ctx: Arc<BuildCtx>,
    pub progress: Option<ProgressSender>,
}

/// Shared by every build of a process, so identical work runs once.
pub struct Solver<W: Worker> {
    inner: Arc<Inner<W>>,
}

impl<W: Worker> Clone for Solver<W> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<W: Worker> {
    worker: W,
    index: Arc<dyn CacheIndex>,
    permits: Semaphore,
    /// Slots of RUN steps, apart from the CPU slots.
    runs: Semaphore,
    jobs: Mutex<Jobs<W::Output>>,
    executed: AtomicU64,
}

struct Jobs<O> {
    map: HashMap<Digest, JobEntry<O>>,
    /// Map size after the last sweep of dead entries; sweeping when it doubles
    /// keeps cleanup amortized O(1).
    swept_at: usize,
}

impl<W: Worker> Solver<W> {
    pub fn new(worker: W, index: Arc<dyn CacheIndex>, config: SolverConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                worker,
                index,
                permits: Semaphore::new(config.max_parallelism.max(1)),
                runs: Semaphore::new(config.max_parallel_runs.max(1)),
                jobs: Mutex::new(Jobs {
                    map: HashMap::new(),
                    swept_at: 64,
                }),
                executed: AtomicU64::new(0),
            }),
        }
    }

    pub fn worker(&self) -> &W {
        &self.inner.worker
    }

    /// How many ops this solver has executed (cache hits and shared jobs excluded).
    pub fn executed(&self) -> u64 {
        self.inner.executed.load(Ordering::Relaxed)
    }

    /// Jobs currently alive (running, or finished and still held by someone).
    pub fn live_jobs(&self) -> usize {
        let jobs = self.inner.jobs.lock().unwrap();
        jobs.map
            .values()
            .filter(|e| e.future.upgrade().is_some())
            .count()
    }

    /// Solves the graph's result. Dropping the returned future cancels every job
    /// that no other build waits for.
    pub async fn solve(&self, req: SolveRequest) -> Result<Arc<Resolved<W::Output>>, SolveError> {
        let result = req.graph.result;
        Ok(self.solve_all(req).await?.swap_remove(result))
    }

    /// Solves the graph's result and returns every vertex's, by vertex index (a
    /// cache export records them all).
    pub async fn solve_all(
        &self,
        req: SolveRequest,
    ) -> Result<Vec<Arc<Resolved<W::Output>>>, SolveError> {
        for v in &req.graph.vertices {
            self.inner
                .worker
                .validate(v, &req.ctx)
                .map_err(|e| SolveError::Vertex {
                    name: v.name.clone(),
                    location: v.location.clone(),
                    message: e.to_string(),
                })?;
        }
        let keys = job_keys(&req.graph, &req.ctx);
        // Subscribe to every vertex up front so progress shows the whole graph, also
        // for jobs another build started.
        let handles: Vec<JobFuture<W::Output>> = (0..req.graph.vertices.len())
            .map(|i| {
                Inner::job(
                    &self.inner,
                    &req.graph,
                    &keys,
                    i,
                    &req.ctx,
                    req.progress.as_ref(),
                )
            })
            .collect();
        handles[req.graph.result].clone().await?;
        // Every vertex is an input of the result, so all are done.
        try_join_all(handles).await
    }
}

/// A slot to execute in. CPU work: the build's own first (so a build waiting for
/// its own slots holds none of the shared ones), then the solver's. A RUN: a RUN
/// slot only.
enum Permits<'a> {
    Cpu {
        _build: Option<OwnedSemaphorePermit>,
        _shared: SemaphorePermit<'a>,
    },
    Run {
        _permit: SemaphorePermit<'a>,
    },
}

/// Whether a vertex executes as a RUN (a process that mostly waits).
fn is_run(vertex: &Vertex) -> bool {
    matches!(vertex.op.op, Some(buildd_proto::llb::op::Op::Exec(_)))
}

/// A job's identity: the vertex digest plus what the build binds its local sources
/// to, so two builds share a job only when they would compute the same thing.
fn job_keys(graph: &Graph, ctx: &BuildCtx) -> Arc<Vec<Digest>> {
    Arc::new(
        graph
            .vertices
            .iter()
            .map(|v| {
                let mut h = Sha256::new();
                h.update(v.digest.as_bytes());
                // A build that must not use the cache must not join one that may.
                h.update([ctx.no_cache as u8, v.ignore_cache as u8]);
                // A build without the entitlement must not get a result made with it.
                h.update([ctx.allow_network_host as u8, ctx.allow_insecure as u8]);
                for name in &v.locals {
                    let path = ctx
                        .locals
                        .get(name)
                        .map(|p| p.as_os_str().as_encoded_bytes());
                    h.update((name.len() as u64).to_le_bytes());
                    h.update(name.as_bytes());
                    let path = path.unwrap_or_default();
                    h.update((path.len() as u64).to_le_bytes());
                    h.update(path);
                }
                h.into()
            })
            .collect(),
    )
}

impl<W: Worker> Inner<W> {
    async fn permits<'a>(this: &'a Arc<Self>, ctx: &BuildCtx) -> Permits<'a> {
        let build = match &ctx.build_permits {
            Some(s) => Some(s.clone().acquire_owned().await.expect("never closed")),
            None => None,
        };
        Permits::Cpu {
            _build: build,
            _shared: this.permits.acquire().await.expect("never closed"),
        }
    }

    async fn run_permit(this: &Arc<Self>) -> Permits<'_> {
        Permits::Run {
            _permit: this.runs.acquire().await.expect("never closed"),
        }
    }

    fn job(
        this: &Arc<Self>,
        graph: &Arc<Graph>,
        keys: &Arc<Vec<Digest>>,
        index: usize,
        ctx: &Arc<BuildCtx>,
        subscriber: Option<&ProgressSender>,
    ) -> JobFuture<W::Output> {
        let key = keys[index];
        let mut jobs = this.jobs.lock().unwrap();
        if let Some(entry) = jobs.map.get(&key)
            && let Some(fut) = entry.future.upgrade()
        {
            if let Some(tx) = subscriber {
                entry.progress.subscribe(tx);
            }
            return fut;
        }
        let progress = Arc::new(JobProgress::default());
        if let Some(tx) = subscriber {
            progress.subscribe(tx);
        }
        let name = graph.vertices[index].name.clone();
        let task = tokio::spawn(Self::run(
            this.clone(),
            graph.clone(),
            keys.clone(),
            index,
            ctx.clone(),
            progress.clone(),
        ));
        let fut = AbortOnDrop(task)
            .map(move |r| r.unwrap_or_else(|e| Err(join_error(&name, e))))
            .boxed()
            .shared();
        let weak = fut.downgrade().expect("fresh shared future is pending");
        jobs.map.insert(
            key,
            JobEntry {
                future: weak,
                progress,
            },
        );
        if jobs.map.len() > jobs.swept_at * 2 {
            jobs.map.retain(|_, e| e.future.upgrade().is_some());
            jobs.swept_at = jobs.map.len().max(64);
        }
        fut
    }

    async fn run(
        this: Arc<Self>,
        graph: Arc<Graph>,
        keys: Arc<Vec<Digest>>,
        index: usize,
        ctx: Arc<BuildCtx>,
        progress: Arc<JobProgress>,
    ) -> JobResult<W::Output> {
        let vertex = graph.vertices[index].clone();
        let inputs = try_join_all(
            vertex
                .inputs
                .iter()
                .map(|&i| Self::job(&this, &graph, &keys, i, &ctx, None)),
        )
        .await?;

        let content = {
            let _permits = Self::permits(&this, &ctx).await;
            this.worker
                .content_key(vertex.clone(), inputs.clone(), ctx.clone())
                .await
        };
        let (content, prepared) = content.map_err(|e| {
            progress.emit(ProgressEvent::Failed {
                vertex: vertex.digest,
                name: vertex.name.clone(),
                duration: Default::default(),
                error: e.message.clone(),
            });
            vertex_error(&vertex, format!("failed to compute cache key: {e}"))
        })?;
        let input_keys: Vec<Digest> = inputs.iter().map(|r| r.cache_key).collect();
        let key = cache_key(&vertex.op, &input_keys, content);

        if !vertex.ignore_cache
            && !ctx.no_cache
            && let Some(record) = this.index.get(Table::Results, key.as_bytes())?
        {
            if let Some(output) = this.worker.decode(&record) {
                progress.emit(ProgressEvent::Cached {
                    vertex: vertex.digest,
                    name: vertex.name.clone(),
                });
                return Ok(Arc::new(Resolved {
                    output,
                    cache_key: key,
                    cached: true,
                }));
            }
            // The record names content that is gone: forget it and rebuild.
            this.index.remove(Table::Results, key.as_bytes())?;
        }
        if !vertex.ignore_cache
            && !ctx.no_cache
            && let Some(output) = this.worker.import(&key, &ctx)
        {
            progress.emit(ProgressEvent::Cached {
                vertex: vertex.digest,
                name: vertex.name.clone(),
            });
            return Ok(Arc::new(Resolved {
                output,
                cache_key: key,
                cached: true,
            }));
        }

        let (result, duration) = {
            let _permits = if is_run(&vertex) {
                Self::run_permit(&this).await
            } else {
                Self::permits(&this, &ctx).await
            };
            // Started once it may run, so durations do not include queueing.
            progress.emit(ProgressEvent::Started {
                vertex: vertex.digest,
                name: vertex.name.clone(),
                at: SystemTime::now(),
            });
            let started = Instant::now();
            this.executed.fetch_add(1, Ordering::Relaxed);
            let result = this
                .worker
                .execute(
                    vertex.clone(),
                    inputs,
                    prepared,
                    key,
                    ctx,
                    LogSink::new(progress.clone(), vertex.digest),
                )
                .await;
            (result, started.elapsed())
        };
        match result {
            Ok(output) => {
                if let Some(record) = this.worker.encode(&output) {
                    this.index.put(Table::Results, key.as_bytes(), &record)?;
                }
                progress.emit(ProgressEvent::Completed {
                    vertex: vertex.digest,
                    name: vertex.name.clone(),
                    duration,
                });
                Ok(Arc::new(Resolved {
                    output,
                    cache_key: key,
                    cached: false,
                }))
            }
            Err(e) => {
                progress.emit(ProgressEvent::Failed {
                    vertex: vertex.digest,
                    name: vertex.name.clone(),
                    duration,
                    error: e.message.clone(),
                });
                Err(vertex_error(&vertex, e.message))
            }
        }
    }
}

fn vertex_error(vertex: &Vertex, message: String) -> SolveError {
    SolveError::Vertex {
        name: vertex.name.clone(),
        location: vertex.location.clone(),
        message,
    }
}

impl From<OpError> for String {
    fn from(e: OpError) -> Self {
        e.message
    }
}
