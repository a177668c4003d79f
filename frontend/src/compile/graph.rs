//! The LLB graph under construction, and its deterministic serialisation.

use std::collections::{BTreeMap, HashMap};

use buildd_proto::llb::{
    self, Definition, Input, Location, Op, OpMetadata, Platform, Range, SourceInfo,
};
use prost::Message;

/// One output of a vertex in the [`Graph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Output {
    pub vertex: usize,
    pub index: i64,
}

/// A filesystem state: `None` is scratch, which has no vertex.
pub(crate) type State = Option<Output>;

struct Vertex {
    /// The op without `inputs`; they are filled in from `inputs` when digested.
    op: Op,
    inputs: Vec<Output>,
    name: String,
    /// Line range (1-based, inclusive) in the Dockerfile, if any.
    lines: Option<(u32, u32)>,
}

/// Vertices added in any order; [`Graph::marshal`] orders them.
#[derive(Default)]
pub(crate) struct Graph {
    vertices: Vec<Vertex>,
}

impl Graph {
    pub(crate) fn add(
        &mut self,
        op: Op,
        inputs: Vec<Output>,
        name: String,
        lines: Option<(u32, u32)>,
    ) -> Output {
        self.vertices.push(Vertex {
            op,
            inputs,
            name,
            lines,
        });
        Output {
            vertex: self.vertices.len() - 1,
            index: 0,
        }
    }

    /// Access to a vertex's op, to finish it before marshalling (follow paths).
    pub(crate) fn op_mut(&mut self, out: Output) -> &mut Op {
        &mut self.vertices[out.vertex].op
    }

    /// Serialises everything `result` depends on: inputs before their users, in
    /// depth-first order of the inputs, so equal graphs give equal bytes.
    pub(crate) fn marshal(
        &self,
        result: State,
        platform: &Platform,
        source: SourceInfo,
    ) -> Definition {
        let mut m = Marshaller {
            graph: self,
            platform,
            digests: HashMap::new(),
            def: Vec::new(),
            metadata: BTreeMap::new(),
        };
        let result = result.map(|out| Input {
            digest: m.visit(out.vertex),
            index: out.index,
        });
        Definition {
            def: m.def,
            metadata: m.metadata,
            result,
            sources: vec![source],
        }
    }
}

struct Marshaller<'a> {
    graph: &'a Graph,
    platform: &'a Platform,
    digests: HashMap<usize, String>,
    def: Vec<Vec<u8>>,
    metadata: BTreeMap<String, OpMetadata>,
}

impl Marshaller<'_> {
    /// Digests `root` and everything it depends on, emitting each vertex
    /// after its inputs, inputs in order. Iterative, so that long chains of
    /// instructions cannot overflow the stack.
    fn visit(&mut self, root: usize) -> String {
        // (vertex, how many of its inputs are done)
        let mut stack = vec![(root, 0usize)];
        while let Some((id, done)) = stack.pop() {
            if self.digests.contains_key(&id) {
                continue;
            }
            let inputs = &self.graph.vertices[id].inputs;
            if let Some(next) = inputs.get(done) {
                stack.push((id, done + 1));
                if !self.digests.contains_key(&next.vertex) {
                    stack.push((next.vertex, 0));
                }
                continue;
            }
            self.emit(id);
        }
        self.digests[&root].clone()
    }

    /// Encodes vertex `id`, whose inputs are all digested.
    fn emit(&mut self, id: usize) {
        let v = &self.graph.vertices[id];
        let inputs = v
            .inputs
            .iter()
            .map(|i| Input {
                digest: self.digests[&i.vertex].clone(),
                index: i.index,
            })
            .collect();
        let op = Op {
            inputs,
            platform: Some(self.platform.clone()),
            ..v.op.clone()
        };
        let digest = op.digest().to_string();
        if !self.metadata.contains_key(&digest) {
            self.def.push(op.encode_to_vec());
            let mut description = BTreeMap::new();
            description.insert(llb::CUSTOM_NAME.to_owned(), v.name.clone());
            let locations = v
                .lines
                .map(|(start, end)| Location {
                    source_index: 0,
                    ranges: vec![Range {
                        start: Some(llb::Position {
                            line: start as i32,
                            character: 0,
                        }),
                        end: Some(llb::Position {
                            line: end as i32,
                            character: 0,
                        }),
                    }],
                })
                .into_iter()
                .collect();
            self.metadata.insert(
                digest.clone(),
                OpMetadata {
                    ignore_cache: false,
                    description,
                    locations,
                },
            );
        }
        self.digests.insert(id, digest);
    }
}
