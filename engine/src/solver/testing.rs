//! Synthetic graphs and a scriptable worker, for tests and benchmarks of the solver
//! without any filesystem work.
//!
//! A synthetic vertex is a `SourceOp` with identifier `test://NAME`, an `ExecOp`
//! standing for a RUN (attributes in its env), or a `MergeOp` over inputs;
//! attributes script what its execution does: `sleep_ms`, `fail`
//! (error message), `block` (wait until cancelled).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use buildd_proto::Digest;
use buildd_proto::llb::{self, Definition, Input, MergeOp, Op, OpMetadata, SourceOp, op};
use futures_util::future::{BoxFuture, FutureExt};
use prost::Message;

use super::{BuildCtx, LogSink, OpError, Resolved, Vertex, Worker};

/// Builds a definition vertex by vertex.
#[derive(Default)]
pub struct DefBuilder {
    def: Definition,
}

impl DefBuilder {
    pub fn source(&mut self, name: &str, attrs: &[(&str, &str)]) -> Input {
        self.add(
            Op {
                op: Some(op::Op::Source(SourceOp {
                    identifier: format!("test://{name}"),
                    attrs: attrs
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    ..Default::default()
                })),
                ..Default::default()
            },
            name,
        )
    }

    /// A synthetic RUN: an `ExecOp` whose attributes ride in its env as `K=V`.
    pub fn exec(&mut self, name: &str, attrs: &[(&str, &str)]) -> Input {
        self.add(
            Op {
                op: Some(op::Op::Exec(llb::ExecOp {
                    meta: Some(llb::Meta {
                        args: vec![name.to_owned()],
                        env: attrs.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                        ..Default::default()
                    }),
                    ..Default::default()
                })),
                ..Default::default()
            },
            name,
        )
    }

    pub fn merge(&mut self, name: &str, inputs: &[Input]) -> Input {
        self.add(
            Op {
                inputs: inputs.to_vec(),
                op: Some(op::Op::Merge(MergeOp {})),
                ..Default::default()
            },
            name,
        )
    }

    pub fn add(&mut self, op: Op, name: &str) -> Input {
        let bytes = op.encode_to_vec();
        let digest = Digest::of(&bytes).to_string();
        if !self.def.metadata.contains_key(&digest) {
            self.def.def.push(bytes);
            self.def.metadata.insert(
                digest.clone(),
                OpMetadata {
                    description: BTreeMap::from([(llb::CUSTOM_NAME.to_owned(), name.to_owned())]),
                    ..Default::default()
                },
            );
        }
        Input { digest, index: 0 }
    }

    pub fn finish(mut self, result: Input) -> Definition {
        self.def.result = Some(result);
        self.def
    }
}

impl DefBuilder {
    /// A FileOp writing `path` (holding `data`) over `base`, or over scratch.
    pub fn mkfile(&mut self, base: Option<Input>, path: &str, data: &str) -> Input {
        let op = Op {
            op: Some(op::Op::File(llb::FileOp {
                base: if base.is_some() { 0 } else { -1 },
                actions: vec![llb::FileAction {
                    action: Some(llb::file_action::Action::Mkfile(llb::FileActionMkFile {
                        path: path.to_owned(),
                        mode: 0o644,
                        data: data.as_bytes().to_vec(),
                        ..Default::default()
                    })),
                }],
            })),
            inputs: base.into_iter().collect(),
            ..Default::default()
        };
        self.add(op, path)
    }
}

/// A chain of `depth` file ops for the real worker, each writing one small file
/// over the one before; `salt` goes into every file, so a new salt is a cold graph.
pub fn file_chain(depth: usize, salt: &str) -> Definition {
    let mut b = DefBuilder::default();
    let mut prev = None;
    for i in 0..depth {
        prev = Some(b.mkfile(prev, &format!("/f{i}"), salt));
    }
    let result = prev.expect("depth is at least 1");
    b.finish(result)
}

/// `width` file ops on scratch, merged into one result (see [`file_chain`]).
pub fn file_wide(width: usize, salt: &str) -> Definition {
    let mut b = DefBuilder::default();
    let leaves: Vec<Input> = (0..width)
        .map(|i| b.mkfile(None, &format!("/f{i}"), salt))
        .collect();
    let root = b.merge("root", &leaves);
    b.finish(root)
}

/// `width` independent sources merged into one result.
pub fn wide(width: usize, attrs: &[(&str, &str)]) -> Definition {
    let mut b = DefBuilder::default();
    let leaves: Vec<Input> = (0..width)
        .map(|i| b.source(&format!("leaf-{i}"), attrs))
        .collect();
    let root = b.merge("root", &leaves);
    b.finish(root)
}

/// A chain of `depth` vertices, each the only input of the next.
pub fn chain(depth: usize) -> Definition {
    let mut b = DefBuilder::default();
    let mut prev = b.source("base", &[]);
    for i in 1..depth {
        prev = b.merge(&format!("link-{i}"), &[prev]);
    }
    b.finish(prev)
}

/// `layers` rows of `width` vertices; each vertex depends on two of the row below.
pub fn lattice(layers: usize, width: usize) -> Definition {
    let mut b = DefBuilder::default();
    let mut row: Vec<Input> = (0..width)
        .map(|i| b.source(&format!("l0-{i}"), &[]))
        .collect();
    for l in 1..layers {
        row = (0..width)
            .map(|i| {
                let ins = [row[i].clone(), row[(i + 1) % width].clone()];
                b.merge(&format!("l{l}-{i}"), &ins)
            })
            .collect();
    }
    let root = b.merge("root", &row);
    b.finish(root)
}

/// Executes synthetic vertices; its output is the vertex digest.
#[derive(Default, Clone)]
pub struct ScriptWorker {
    pub running: Arc<AtomicUsize>,
    pub max_running: Arc<AtomicUsize>,
    /// Incremented when a blocked execution is dropped (cancelled).
    pub dropped: Arc<AtomicUsize>,
}

struct DropFlag(Arc<AtomicUsize>);

/// Counts an execution as running until dropped (finished or cancelled).
struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Worker for ScriptWorker {
    type Output = Digest;
    type Prepared = ();

    fn content_key(
        &self,
        _: Arc<Vertex>,
        _: Vec<Arc<Resolved<Digest>>>,
        _: Arc<BuildCtx>,
    ) -> BoxFuture<'static, Result<(Option<Digest>, ()), OpError>> {
        futures_util::future::ready(Ok((None, ()))).boxed()
    }

    fn execute(
        &self,
        vertex: Arc<Vertex>,
        _: Vec<Arc<Resolved<Digest>>>,
        _: (),
        _: Digest,
        _: Arc<BuildCtx>,
        _: LogSink,
    ) -> BoxFuture<'static, Result<Digest, OpError>> {
        let attrs = match &vertex.op.op {
            Some(op::Op::Source(s)) => s.attrs.clone(),
            Some(op::Op::Exec(e)) => e
                .meta
                .iter()
                .flat_map(|m| &m.env)
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            _ => BTreeMap::new(),
        };
        if attrs.is_empty() {
            // The no-op fast path benchmarks measure.
            return futures_util::future::ready(Ok(vertex.digest)).boxed();
        }
        let me = self.clone();
        async move {
            let now = me.running.fetch_add(1, Ordering::SeqCst) + 1;
            me.max_running.fetch_max(now, Ordering::SeqCst);
            let _running = Running(me.running.clone());
            if let Some(ms) = attrs.get("sleep_ms") {
                tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
            }
            if attrs.contains_key("block") {
                let _flag = DropFlag(me.dropped.clone());
                std::future::pending::<()>().await;
            }
            if let Some(msg) = attrs.get("fail") {
                return Err(OpError::new(msg.clone()));
            }
            Ok(vertex.digest)
        }
        .boxed()
    }

    fn encode(&self, output: &Digest) -> Option<Vec<u8>> {
        Some(output.as_bytes().to_vec())
    }

    fn decode(&self, record: &[u8]) -> Option<Digest> {
        Some(Digest::from_bytes(record.try_into().ok()?))
    }
}
