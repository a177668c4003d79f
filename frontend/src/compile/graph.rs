//! The LLB graph under construction, and its deterministic serialisation.

use std::collections::{BTreeMap, HashSet};

use buildd_proto::Digest;
use buildd_proto::llb::{
    self, Definition, Input, Location, OpMetadata, Platform, Range, SourceInfo,
};

use super::wire::{Writer, varint_len};

/// One output of a vertex in the [`Graph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Output {
    pub vertex: usize,
    pub index: i64,
}

/// A filesystem state: `None` is scratch, which has no vertex.
pub(crate) type State = Option<Output>;

struct Vertex {
    /// The encoded op: room for its inputs, filled in once their digests are
    /// known, then its body (see [`super::encode`]).
    op: Vec<u8>,
    inputs: Vec<Output>,
    name: String,
    /// Line range (1-based, inclusive) in the Dockerfile, if any.
    lines: Option<(u32, u32)>,
}

/// Vertices added in any order; [`Graph::marshal`] orders them.
pub(crate) struct Graph {
    vertices: Vec<Vertex>,
    /// `Op.platform` encoded, the last field of every op.
    platform: Vec<u8>,
}

impl Graph {
    /// An empty graph of ops on `platform`, with room for `n` vertices.
    pub(crate) fn new(n: usize, platform: &Platform) -> Self {
        let mut w = Writer::with_capacity(64);
        w.message(10, |w| {
            w.string(1, &platform.os);
            w.string(2, &platform.architecture);
            w.string(3, &platform.variant);
        });
        Self {
            vertices: Vec::with_capacity(n),
            platform: w.into_bytes(),
        }
    }

    /// Where to write the op of a vertex with `inputs`: the op's bytes are
    /// stored as they are written, so room is left at the front for the
    /// inputs (filled in by [`Graph::marshal`]) and at the end for the
    /// platform.
    pub(crate) fn op_writer(&self, inputs: &[Output]) -> Writer {
        let prefix = inputs_len(inputs);
        let mut w = Writer::with_capacity(prefix + 256 + self.platform.len());
        w.buf.resize(prefix, 0);
        w
    }

    /// Adds the op written to `op` (from [`Graph::op_writer`] with the same
    /// `inputs`).
    pub(crate) fn add(
        &mut self,
        op: Writer,
        inputs: Vec<Output>,
        name: String,
        lines: Option<(u32, u32)>,
    ) -> Output {
        self.vertices.push(Vertex {
            op: op.into_bytes(),
            inputs,
            name,
            lines,
        });
        Output {
            vertex: self.vertices.len() - 1,
            index: 0,
        }
    }

    /// Replaces the op of a vertex without inputs, for one completed only
    /// after it is used (the context's follow paths).
    pub(crate) fn set_op(&mut self, out: Output, op: Writer) {
        let v = &mut self.vertices[out.vertex];
        assert!(v.inputs.is_empty(), "only ops without inputs are replaced");
        v.op = op.into_bytes();
    }

    /// Serialises everything `result` depends on: inputs before their users, in
    /// depth-first order of the inputs, so equal graphs give equal bytes.
    /// Consumes the graph so that names move into the metadata.
    pub(crate) fn marshal(self, result: State, source: SourceInfo) -> Definition {
        let n = self.vertices.len();
        let mut m = Marshaller {
            digests: vec![None; n],
            vertices: self.vertices,
            platform: self.platform,
            input: Writer::with_capacity(128),
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
    /// The encoded platform field every op ends with.
    platform: Vec<u8>,
    /// One encoded input, before it is copied into its op.
    input: Writer,
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

    /// Completes vertex `id`, whose inputs are all digested: its inputs go
    /// into the room left before the body and the platform after it, which
    /// is the order of their tags. Each vertex is emitted once, so its bytes
    /// and name are moved out rather than copied, and the digest is taken of
    /// the very bytes that are stored.
    fn emit(&mut self, id: usize) {
        let v = &mut self.vertices[id];
        let mut bytes = std::mem::take(&mut v.op);
        let mut at = 0;
        for i in &v.inputs {
            let digest = self.digests[i.vertex]
                .as_ref()
                .expect("inputs are emitted first");
            self.input.buf.clear();
            self.input.message(1, |w| {
                w.string(1, digest_text(digest).as_str());
                w.int64(2, i.index);
            });
            let end = at + self.input.buf.len();
            bytes[at..end].copy_from_slice(&self.input.buf);
            at = end;
        }
        debug_assert_eq!(at, inputs_len(&v.inputs), "the room left for inputs");
        bytes.extend_from_slice(&self.platform);
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

/// The encoded length of `Op.inputs` for `inputs`: each is a nested message
/// (tag and a one-byte length) of the digest (tag, length, `sha256:<hex>`)
/// and, unless zero, the index.
fn inputs_len(inputs: &[Output]) -> usize {
    inputs
        .iter()
        .map(|i| {
            let index = match i.index {
                0 => 0,
                n => 1 + varint_len(n as u64),
            };
            2 + 2 + DIGEST_TEXT_LEN + index
        })
        .sum()
}

const DIGEST_TEXT_LEN: usize = 7 + 64;

/// `sha256:<hex>`, as `Digest`'s `Display` writes it, without going through
/// the formatting machinery (or the heap) for each of the many vertices.
struct DigestText([u8; DIGEST_TEXT_LEN]);

impl DigestText {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits are ASCII")
    }
}

fn digest_text(d: &Digest) -> DigestText {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; DIGEST_TEXT_LEN];
    text[..7].copy_from_slice(b"sha256:");
    for (pair, b) in text[7..].chunks_exact_mut(2).zip(d.as_bytes()) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0xf)];
    }
    DigestText(text)
}

fn digest_string(d: &Digest) -> String {
    digest_text(d).as_str().to_owned()
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
