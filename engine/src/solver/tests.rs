use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::testing::{DefBuilder, ScriptWorker, wide};
use super::*;
use crate::cache::MemoryIndex;

fn solver(max: usize) -> (Solver<ScriptWorker>, ScriptWorker) {
    solver_with(max, Arc::new(MemoryIndex::default()))
}

fn solver_with(max: usize, index: Arc<MemoryIndex>) -> (Solver<ScriptWorker>, ScriptWorker) {
    let worker = ScriptWorker::default();
    let s = Solver::new(
        worker.clone(),
        index,
        SolverConfig {
            max_parallelism: max,
            max_parallel_runs: 8,
        },
    );
    (s, worker)
}

fn request(def: &buildd_proto::llb::Definition) -> SolveRequest {
    SolveRequest {
        graph: Arc::new(Graph::load(def).unwrap()),
        ctx: Arc::new(BuildCtx::default()),
        progress: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_vertices_run_concurrently() {
    let (s, w) = solver(64);
    let def = wide(16, &[("sleep_ms", "200")]);
    s.solve(request(&def)).await.unwrap();
    // All 16 slow leaves were in flight at once, not one after another.
    assert_eq!(w.max_running.load(Ordering::SeqCst), 16);
    assert_eq!(s.executed(), 17);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_parallelism_bounds_execution() {
    let (s, w) = solver(3);
    s.solve(request(&wide(12, &[("sleep_ms", "20")])))
        .await
        .unwrap();
    assert_eq!(w.max_running.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_stays_within_its_own_bound() {
    let (s, w) = solver(64);
    let mut req = request(&wide(12, &[("sleep_ms", "20")]));
    req.ctx = Arc::new(BuildCtx {
        build_permits: Some(Arc::new(tokio::sync::Semaphore::new(2))),
        ..Default::default()
    });
    s.solve(req).await.unwrap();
    assert_eq!(w.max_running.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_wait_in_their_own_slots_not_in_the_cpu_ones() {
    // One CPU slot and a build bound of one: four RUN stages still run together,
    // as they mostly wait, while CPU work stays within its bound.
    let (s, w) = solver(1);
    let mut b = DefBuilder::default();
    let mut leaves: Vec<_> = (0..4)
        .map(|i| b.exec(&format!("RUN sleep {i}"), &[("sleep_ms", "200")]))
        .collect();
    leaves.extend((0..3).map(|i| b.source(&format!("copy-{i}"), &[("sleep_ms", "50")])));
    let root = b.merge("join", &leaves);
    let mut req = request(&b.finish(root));
    req.ctx = Arc::new(BuildCtx {
        build_permits: Some(Arc::new(tokio::sync::Semaphore::new(1))),
        ..Default::default()
    });
    let started = std::time::Instant::now();
    s.solve(req).await.unwrap();
    // 4 RUNs at once plus at most one CPU op beside them.
    assert_eq!(w.max_running.load(Ordering::SeqCst), 5);
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_parallel_runs_bounds_runs() {
    let worker = ScriptWorker::default();
    let s = Solver::new(
        worker.clone(),
        Arc::new(MemoryIndex::default()),
        SolverConfig {
            max_parallelism: 64,
            max_parallel_runs: 2,
        },
    );
    let mut b = DefBuilder::default();
    let leaves: Vec<_> = (0..6)
        .map(|i| b.exec(&format!("RUN {i}"), &[("sleep_ms", "30")]))
        .collect();
    let root = b.merge("join", &leaves);
    s.solve(request(&b.finish(root))).await.unwrap();
    assert_eq!(worker.max_running.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_builds_share_identical_vertices() {
    let (s, _) = solver(64);
    let def = wide(8, &[("sleep_ms", "100")]);
    let (a, b) = tokio::join!(s.solve(request(&def)), s.solve(request(&def)));
    assert_eq!(a.unwrap().output, b.unwrap().output);
    assert_eq!(
        s.executed(),
        9,
        "each vertex executed once across both builds"
    );
}

#[tokio::test]
async fn unreferenced_vertices_never_run() {
    let (s, _) = solver(8);
    let mut b = DefBuilder::default();
    let used = b.source("used", &[("sleep_ms", "1")]);
    let _unused = b.source("unused-stage", &[("fail", "must not run")]);
    let def = b.finish(used);
    s.solve(request(&def)).await.unwrap();
    assert_eq!(s.executed(), 1);
}

#[tokio::test]
async fn second_solve_is_served_from_cache() {
    let index = Arc::new(MemoryIndex::default());
    let def = wide(4, &[("sleep_ms", "1")]);
    let (s1, _) = solver_with(8, index.clone());
    let first = s1.solve(request(&def)).await.unwrap();
    assert!(!first.cached);
    // A new solver over the same index, as after a restart.
    let (s2, _) = solver_with(8, index);
    let second = s2.solve(request(&def)).await.unwrap();
    assert!(second.cached);
    assert_eq!(second.cache_key, first.cache_key);
    assert_eq!(s2.executed(), 0);
}

#[tokio::test]
async fn errors_name_the_vertex_and_stop_dependents() {
    let (s, _) = solver(8);
    let mut b = DefBuilder::default();
    let ok = b.source("fine", &[("sleep_ms", "1")]);
    let bad = b.source(
        "[stage-0 2/3] COPY nope /",
        &[("fail", "\"/nope\": not found")],
    );
    let root = b.merge("root", &[ok, bad]);
    let err = s.solve(request(&b.finish(root))).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "[stage-0 2/3] COPY nope /: \"/nope\": not found"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_waiter_cancels_the_work() {
    let (s, w) = solver(8);
    let def = wide(3, &[("block", "")]);
    let solve = s.solve(request(&def));
    let mut solve = Box::pin(solve);
    // Let the three blocked leaves start.
    let started = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            tokio::select! {
                _ = &mut solve => panic!("blocked solve finished"),
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
            if w.running.load(Ordering::SeqCst) == 3 {
                break;
            }
        }
    })
    .await;
    assert!(started.is_ok(), "leaves never started");
    drop(solve);
    tokio::time::timeout(Duration::from_secs(10), async {
        while w.dropped.load(Ordering::SeqCst) < 3 || s.live_jobs() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("cancelled executions were not dropped");
    assert_eq!(w.running.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_that_leaves_does_not_cancel_shared_work() {
    let (s, _) = solver(8);
    let def = wide(2, &[("sleep_ms", "200")]);
    let keep = s.solve(request(&def));
    let leave = s.solve(request(&def));
    let (kept, _) = tokio::join!(keep, async {
        let _ = tokio::time::timeout(Duration::from_millis(50), leave).await;
    });
    kept.unwrap();
    assert_eq!(s.executed(), 3);
}

#[test]
fn graph_rejects_bad_definitions() {
    let mut b = DefBuilder::default();
    let a = b.source("a", &[]);
    let mut def = b.finish(a);
    def.result = Some(buildd_proto::llb::Input {
        digest: format!("sha256:{}", "0".repeat(64)),
        index: 0,
    });
    assert!(matches!(
        Graph::load(&def),
        Err(GraphError::UnknownResult(_))
    ));
    def.def.push(vec![0xff, 0xff]);
    assert!(matches!(Graph::load(&def), Err(GraphError::Decode { .. })));
}
