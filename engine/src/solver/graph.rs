//! Loading a [`Definition`] into a validated, pruned, topologically ordered graph.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use buildd_proto::Digest;
use buildd_proto::llb::{CUSTOM_NAME, Definition, Op, op};
use petgraph::graph::{DiGraph, NodeIndex};
use prost::Message;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("definition has no result")]
    NoResult,
    #[error("op {index} is not a valid encoded op: {message}")]
    Decode { index: usize, message: String },
    #[error("op {index} has no operation")]
    EmptyOp { index: usize },
    #[error("op {index} is not in canonical encoding (unknown fields or field order)")]
    NotCanonical { index: usize },
    #[error("result refers to output {0}; only output 0 exists")]
    BadResultOutput(i64),
    #[error("vertex {vertex} refers to undefined input {input}")]
    UnknownInput { vertex: Digest, input: String },
    #[error("vertex {vertex} uses output {output} of {input}, which has only one output")]
    BadOutput {
        vertex: Digest,
        input: Digest,
        output: i64,
    },
    #[error("result refers to undefined vertex {0}")]
    UnknownResult(String),
    #[error("definition has a cycle through {0}")]
    Cycle(Digest),
}

/// Where a vertex came from in the frontend's source, e.g. `Dockerfile:3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexLocation {
    pub file: String,
    pub start_line: i32,
    pub end_line: i32,
}

impl fmt::Display for VertexLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.end_line > self.start_line {
            write!(f, "{}:{}-{}", self.file, self.start_line, self.end_line)
        } else {
            write!(f, "{}:{}", self.file, self.start_line)
        }
    }
}

#[derive(Debug)]
pub struct Vertex {
    pub digest: Digest,
    pub op: Op,
    /// Positions in [`Graph::vertices`] of `op.inputs`, in the same order.
    pub inputs: Vec<usize>,
    pub name: String,
    pub ignore_cache: bool,
    pub location: Option<VertexLocation>,
    /// Names of the local sources this vertex or any ancestor reads.
    pub locals: BTreeSet<String>,
}

impl Vertex {
    pub fn kind(&self) -> &'static str {
        match &self.op.op {
            Some(op::Op::Exec(_)) => "exec",
            Some(op::Op::Source(_)) => "source",
            Some(op::Op::File(_)) => "file",
            Some(op::Op::Merge(_)) => "merge",
            Some(op::Op::Diff(_)) => "diff",
            None => "empty",
        }
    }
}

/// The part of a definition that its result needs, inputs before users.
#[derive(Debug)]
pub struct Graph {
    pub vertices: Vec<Arc<Vertex>>,
    pub result: usize,
}

impl Graph {
    pub fn load(def: &Definition) -> Result<Self, GraphError> {
        let mut ops: HashMap<Digest, Op> = HashMap::with_capacity(def.def.len());
        for (index, bytes) in def.def.iter().enumerate() {
            let op = Op::decode(bytes.as_slice()).map_err(|e| GraphError::Decode {
                index,
                message: e.to_string(),
            })?;
            if op.op.is_none() {
                return Err(GraphError::EmptyOp { index });
            }
            // Cache keys are computed from the decoded op; bytes it does not round-trip
            // to (unknown fields, another encoder's field order) would let two
            // different vertices share a key.
            if op.encode_to_vec() != *bytes {
                return Err(GraphError::NotCanonical { index });
            }
            ops.insert(Digest::of(bytes), op);
        }
        let result = def.result.as_ref().ok_or(GraphError::NoResult)?;
        let result_digest: Digest = result
            .digest
            .parse()
            .map_err(|_| GraphError::UnknownResult(result.digest.clone()))?;
        if !ops.contains_key(&result_digest) {
            return Err(GraphError::UnknownResult(result.digest.clone()));
        }
        if result.index != 0 {
            return Err(GraphError::BadResultOutput(result.index));
        }

        // Walk from the result so unreferenced ops are never even considered.
        let mut g: DiGraph<Digest, ()> = DiGraph::new();
        let mut nodes: HashMap<Digest, NodeIndex> = HashMap::new();
        let mut stack = vec![result_digest];
        nodes.insert(result_digest, g.add_node(result_digest));
        while let Some(d) = stack.pop() {
            let user = nodes[&d];
            for input in &ops[&d].inputs {
                let id: Digest = input
                    .digest
                    .parse()
                    .ok()
                    .filter(|id| ops.contains_key(id))
                    .ok_or_else(|| GraphError::UnknownInput {
                        vertex: d,
                        input: input.digest.clone(),
                    })?;
                if input.index != 0 {
                    return Err(GraphError::BadOutput {
                        vertex: d,
                        input: id,
                        output: input.index,
                    });
                }
                let node = *nodes.entry(id).or_insert_with(|| {
                    stack.push(id);
                    g.add_node(id)
                });
                g.add_edge(node, user, ());
            }
        }
        let order =
            petgraph::algo::toposort(&g, None).map_err(|c| GraphError::Cycle(g[c.node_id()]))?;

        let mut position: HashMap<Digest, usize> = HashMap::with_capacity(order.len());
        let mut vertices: Vec<Arc<Vertex>> = Vec::with_capacity(order.len());
        for node in order {
            let digest = g[node];
            let op = ops.remove(&digest).expect("reachable op present");
            let inputs: Vec<usize> = op
                .inputs
                .iter()
                .map(|i| position[&i.digest.parse::<Digest>().expect("validated")])
                .collect();
            let mut locals: BTreeSet<String> = inputs
                .iter()
                .flat_map(|&i| vertices[i].locals.iter().cloned())
                .collect();
            if let Some(op::Op::Source(src)) = &op.op
                && let Some(name) = src.identifier.strip_prefix("local://")
            {
                locals.insert(name.to_owned());
            }
            let meta = def.metadata.get(&digest.to_string());
            let name = meta
                .and_then(|m| m.description.get(CUSTOM_NAME).cloned())
                .unwrap_or_else(|| default_name(&op));
            let location = meta.and_then(|m| m.locations.first()).and_then(|loc| {
                let file = def.sources.get(loc.source_index as usize)?.filename.clone();
                let range = loc.ranges.first()?;
                Some(VertexLocation {
                    file,
                    start_line: range.start.as_ref().map_or(0, |p| p.line),
                    end_line: range.end.as_ref().map_or(0, |p| p.line),
                })
            });
            position.insert(digest, vertices.len());
            vertices.push(Arc::new(Vertex {
                digest,
                inputs,
                name,
                ignore_cache: meta.is_some_and(|m| m.ignore_cache),
                location,
                locals,
                op,
            }));
        }
        let result = position[&result_digest];
        Ok(Self { vertices, result })
    }
}

fn default_name(op: &Op) -> String {
    match &op.op {
        Some(op::Op::Source(s)) => s.identifier.clone(),
        Some(op::Op::Exec(e)) => e
            .meta
            .as_ref()
            .map(|m| m.args.join(" "))
            .unwrap_or_else(|| "exec".to_owned()),
        Some(op::Op::File(_)) => "file".to_owned(),
        Some(op::Op::Merge(_)) => "merge".to_owned(),
        Some(op::Op::Diff(_)) => "diff".to_owned(),
        None => "empty".to_owned(),
    }
}
