//! The LLB graph under construction, and its deterministic serialisation.

use std::collections::{BTreeMap, HashSet};

use buildd_proto::Digest;
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
    /// An empty graph with room for `n` vertices.
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            vertices: Vec::with_capacity(n),
        }
    }

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
    /// Consumes the graph so that each op is completed and encoded in place.
    pub(crate) fn marshal(
        self,
        result: State,
        platform: &Platform,
        source: SourceInfo,
    ) -> Definition {
        let n = self.vertices.len();
        let mut m = Marshaller {
            digests: vec![None; n],
            vertices: self.vertices,
            platform: Some(platform.clone()),
            seen: HashSet::with_capacity(n),
            def: Vec::with_capacity(n),
            metadata: Vec::with_capacity(n),
        };
        let result = result.map(|out| Input {
            digest: digest_string(&m.visit(out.vertex)),
            index: out.index,
        });
        // Sorted by digest bytes, which is the order of their hex form: the
        // map is then built from a sorted list without comparing strings.
        m.metadata.sort_unstable_by_key(|(digest, _)| *digest);
        let metadata = m
            .metadata
            .into_iter()
            .map(|(digest, meta)| (digest_string(&digest), meta))
            .collect();
        Definition {
            def: m.def,
            metadata,
            result,
            sources: vec![source],
        }
    }
}

struct Marshaller {
    vertices: Vec<Vertex>,
    /// The platform every op gets; moved into each op while it is encoded
    /// and taken back after, rather than copied for each.
    platform: Option<Platform>,
    /// By vertex: its digest once emitted.
    digests: Vec<Option<Digest>>,
    /// Digests of the ops in `def`: equal ops (say, the same heredoc twice)
    /// are stored once.
    seen: HashSet<Digest>,
    def: Vec<Vec<u8>>,
    metadata: Vec<(Digest, OpMetadata)>,
}

impl Marshaller {
    /// Digests `root` and everything it depends on, emitting each vertex
    /// after its inputs, inputs in order. Iterative, so that long chains of
    /// instructions cannot overflow the stack.
    fn visit(&mut self, root: usize) -> Digest {
        // (vertex, how many of its inputs are done)
        let mut stack = vec![(root, 0usize)];
        while let Some((id, done)) = stack.pop() {
            if self.digests[id].is_some() {
                continue;
            }
            if let Some(next) = self.vertices[id].inputs.get(done) {
                let next = next.vertex;
                stack.push((id, done + 1));
                if self.digests[next].is_none() {
                    stack.push((next, 0));
                }
                continue;
            }
            self.emit(id);
        }
        self.digests[root].expect("the root is emitted")
    }

    /// Encodes vertex `id`, whose inputs are all digested. Each vertex is
    /// emitted once, so its op and name are moved out rather than copied, and
    /// the digest is taken of the very bytes that are stored.
    fn emit(&mut self, id: usize) {
        let v = &mut self.vertices[id];
        let mut op = std::mem::take(&mut v.op);
        op.inputs = v
            .inputs
            .iter()
            .map(|i| Input {
                digest: digest_string(
                    self.digests[i.vertex]
                        .as_ref()
                        .expect("inputs are emitted first"),
                ),
                index: i.index,
            })
            .collect();
        op.platform = self.platform.take();
        let bytes = op.encode_to_vec();
        self.platform = op.platform.take();
        let digest = Digest::of(&bytes);
        if self.seen.insert(digest) {
            self.def.push(bytes);
            let mut description = BTreeMap::new();
            description.insert(llb::CUSTOM_NAME.to_owned(), std::mem::take(&mut v.name));
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
            self.metadata.push((
                digest,
                OpMetadata {
                    ignore_cache: false,
                    description,
                    locations,
                },
            ));
        }
        self.digests[id] = Some(digest);
    }
}

/// `sha256:<hex>`, as `Digest`'s `Display` writes it, without going through
/// the formatting machinery for each of the many vertices.
fn digest_string(d: &Digest) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 7 + 64];
    text[..7].copy_from_slice(b"sha256:");
    for (pair, b) in text[7..].chunks_exact_mut(2).zip(d.as_bytes()) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0xf)];
    }
    std::str::from_utf8(&text)
        .expect("hex digits are ASCII")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_string_is_the_display_form() {
        let d = Digest::of(b"hello");
        assert_eq!(digest_string(&d), d.to_string());
    }
}
