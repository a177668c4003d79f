//! The graphs `bctl bench` submits, generated on the client. Every vertex carries
//! the run's salt, so a cold run shares nothing with earlier runs.

use buildd_proto::llb::{
    Definition, ExecOp, FileAction, FileActionMkFile, FileActionRm, FileOp, Input, MergeOp, Meta,
    Mount, NetMode, Op, SourceOp, file_action, op,
};
use clap::ValueEnum;
use prost::Message as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shape {
    /// Each vertex depends on the one before.
    Chain,
    /// Independent vertices joined by one merge.
    Wide,
    /// Levels of 50 vertices between single vertices they fan out from and into.
    Diamond,
    /// A grid: each vertex depends on two of the row before.
    Lattice,
    /// Each vertex depends on one to three random earlier ones (seeded).
    Random,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OpKind {
    /// Ops that change no file: joins are merges, single parents get a salted
    /// `rm` of nothing (roots make one file each).
    Noop,
    /// Each vertex writes one small file over its parents (merged first).
    File,
    /// Each vertex runs a container that sleeps, then writes one file.
    Exec,
}

/// What an exec vertex runs, and on what.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    pub image: String,
    pub sleep_ms: u64,
}

/// A generated graph.
#[derive(Debug)]
pub struct Bench {
    pub definition: Definition,
    /// Ops in the definition (merges made to join parents included).
    pub vertices: usize,
    /// Vertices on the longest dependency path of the shape.
    pub critical_path: usize,
}

/// Diamond width, as the "50 wide by 20 deep".
const DIAMOND_WIDTH: usize = 50;

/// Parents of each vertex of `shape` with about `size` vertices, parents first.
pub fn edges(shape: Shape, size: usize, seed: u64) -> Vec<Vec<usize>> {
    let n = size.max(1);
    match shape {
        Shape::Chain => (0..n)
            .map(|i| i.checked_sub(1).into_iter().collect())
            .collect(),
        Shape::Wide => {
            let mut e: Vec<Vec<usize>> = vec![Vec::new(); n.saturating_sub(1).max(1)];
            if n > 1 {
                e.push((0..n - 1).collect());
            }
            e
        }
        Shape::Diamond => {
            let w = DIAMOND_WIDTH.min(n);
            let levels = (n / (w + 1)).max(1);
            let mut e = vec![Vec::new()];
            let mut neck = 0;
            for _ in 0..levels {
                let first = e.len();
                e.extend((0..w).map(|_| vec![neck]));
                neck = e.len();
                e.push((first..neck).collect());
            }
            e
        }
        Shape::Lattice => {
            let w = (n as f64).sqrt().ceil() as usize;
            let rows = n.div_ceil(w);
            let mut e = Vec::with_capacity(rows * w);
            for r in 0..rows {
                for c in 0..w {
                    e.push(match r {
                        0 => Vec::new(),
                        _ => {
                            let above = (r - 1) * w;
                            let mut p = vec![above + c, above + (c + 1) % w];
                            p.dedup();
                            p
                        }
                    });
                }
            }
            e
        }
        Shape::Random => {
            let mut state = seed | 1;
            let mut next = move || {
                // xorshift64: reproducible from the seed, good enough for shapes.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            (0..n)
                .map(|i| {
                    if i == 0 {
                        return Vec::new();
                    }
                    let mut p: Vec<usize> = (0..1 + next() % 3)
                        .map(|_| (next() % i as u64) as usize)
                        .collect();
                    p.sort_unstable();
                    p.dedup();
                    p
                })
                .collect()
        }
    }
}

/// Vertices on the longest path through `edges`.
pub fn critical_path(edges: &[Vec<usize>]) -> usize {
    let mut depth = vec![0usize; edges.len()];
    for (i, parents) in edges.iter().enumerate() {
        depth[i] = 1 + parents.iter().map(|&p| depth[p]).max().unwrap_or(0);
    }
    depth.into_iter().max().unwrap_or(0)
}

/// The definition of `edges` with `kind` ops, salted with `salt`; everything is
/// joined into one result.
pub fn build(edges: &[Vec<usize>], kind: OpKind, exec: Option<&ExecSpec>, salt: &str) -> Bench {
    let mut b = Builder::default();
    let image = exec.map(|e| {
        b.add(Op {
            op: Some(op::Op::Source(SourceOp {
                identifier: format!("docker-image://{}", e.image),
                ..Default::default()
            })),
            ..Default::default()
        })
    });
    let mut out: Vec<Input> = Vec::with_capacity(edges.len());
    let mut has_child = vec![false; edges.len()];
    for (i, parents) in edges.iter().enumerate() {
        for &p in parents {
            has_child[p] = true;
        }
        let inputs: Vec<Input> = parents.iter().map(|&p| out[p].clone()).collect();
        let data = format!("{salt} {i}\n");
        let v = match (kind, exec, image.clone()) {
            (OpKind::Exec, Some(spec), Some(image)) => {
                let base = match inputs.first() {
                    Some(_) if inputs.len() > 1 => b.merge(inputs.clone()),
                    Some(first) => first.clone(),
                    None => image,
                };
                b.exec(base, spec, &data)
            }
            (OpKind::Noop, ..) if inputs.len() > 1 => b.merge(inputs),
            (OpKind::Noop, ..) if inputs.len() == 1 => {
                b.rm_nothing(inputs[0].clone(), &format!("/.bench-{salt}-{i}"))
            }
            _ => {
                let base = match inputs.len() {
                    0 => None,
                    1 => Some(inputs[0].clone()),
                    _ => Some(b.merge(inputs)),
                };
                b.mkfile(base, &format!("/v{i}"), &data)
            }
        };
        out.push(v);
    }
    let sinks: Vec<Input> = (0..edges.len())
        .filter(|&i| !has_child[i])
        .map(|i| out[i].clone())
        .collect();
    let result = if sinks.len() == 1 {
        sinks.into_iter().next().expect("one sink")
    } else {
        b.merge(sinks)
    };
    let vertices = b.ops.len();
    Bench {
        definition: Definition {
            def: b.ops,
            result: Some(result),
            ..Default::default()
        },
        vertices,
        critical_path: critical_path(edges),
    }
}

#[derive(Default)]
struct Builder {
    ops: Vec<Vec<u8>>,
    /// Digests of `ops`: an op made twice (a merge of the same parents) is one
    /// vertex, as the solver sees it.
    seen: std::collections::HashSet<String>,
}

impl Builder {
    fn add(&mut self, op: Op) -> Input {
        let digest = op.digest().to_string();
        if self.seen.insert(digest.clone()) {
            self.ops.push(op.encode_to_vec());
        }
        Input { digest, index: 0 }
    }

    fn rm_nothing(&mut self, base: Input, path: &str) -> Input {
        self.add(Op {
            inputs: vec![base],
            op: Some(op::Op::File(FileOp {
                base: 0,
                actions: vec![FileAction {
                    action: Some(file_action::Action::Rm(FileActionRm {
                        path: path.to_owned(),
                        allow_not_found: true,
                        allow_wildcard: false,
                    })),
                }],
            })),
            ..Default::default()
        })
    }

    fn merge(&mut self, inputs: Vec<Input>) -> Input {
        self.add(Op {
            inputs,
            op: Some(op::Op::Merge(MergeOp {})),
            ..Default::default()
        })
    }

    fn mkfile(&mut self, base: Option<Input>, path: &str, data: &str) -> Input {
        self.add(Op {
            op: Some(op::Op::File(FileOp {
                base: if base.is_some() { 0 } else { -1 },
                actions: vec![FileAction {
                    action: Some(file_action::Action::Mkfile(FileActionMkFile {
                        path: path.to_owned(),
                        mode: 0o644,
                        data: data.as_bytes().to_vec(),
                        ..Default::default()
                    })),
                }],
            })),
            inputs: base.into_iter().collect(),
            ..Default::default()
        })
    }

    fn exec(&mut self, base: Input, spec: &ExecSpec, data: &str) -> Input {
        let script = format!(
            "sleep {}.{:03} && echo '{}' >> /bench",
            spec.sleep_ms / 1000,
            spec.sleep_ms % 1000,
            data.trim()
        );
        self.add(Op {
            inputs: vec![base],
            op: Some(op::Op::Exec(ExecOp {
                meta: Some(Meta {
                    args: vec!["/bin/sh".into(), "-c".into(), script],
                    env: vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin".into()],
                    cwd: "/".into(),
                    ..Default::default()
                }),
                mounts: vec![Mount {
                    input: 0,
                    dest: "/".into(),
                    output: 0,
                    ..Default::default()
                }],
                network: NetMode::None as i32,
                ..Default::default()
            })),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_have_their_size_and_depth() {
        let chain = edges(Shape::Chain, 100, 1);
        assert_eq!((chain.len(), critical_path(&chain)), (100, 100));
        let wide = edges(Shape::Wide, 100, 1);
        assert_eq!((wide.len(), critical_path(&wide)), (100, 2));
        // 50 wide by 20 deep.
        let diamond = edges(Shape::Diamond, 1020, 1);
        assert_eq!((diamond.len(), critical_path(&diamond)), (1021, 41));
        let lattice = edges(Shape::Lattice, 100, 1);
        assert_eq!((lattice.len(), critical_path(&lattice)), (100, 10));
        let random = edges(Shape::Random, 500, 7);
        assert_eq!(random.len(), 500);
        assert_eq!(random, edges(Shape::Random, 500, 7));
        for (i, parents) in random.iter().enumerate() {
            assert!(parents.iter().all(|&p| p < i));
        }
    }

    #[test]
    fn every_vertex_is_salted_and_inputs_come_first() {
        for kind in [OpKind::Noop, OpKind::File] {
            let e = edges(Shape::Lattice, 64, 1);
            let a = build(&e, kind, None, "a");
            let b = build(&e, kind, None, "b");
            let digests = |d: &Definition| -> std::collections::HashSet<Vec<u8>> {
                d.def.iter().cloned().collect()
            };
            // Nothing in common between two runs: a cold run is cold.
            assert!(digests(&a.definition).is_disjoint(&digests(&b.definition)));
            let mut seen = std::collections::HashSet::new();
            for bytes in &a.definition.def {
                let op = Op::decode(bytes.as_slice()).unwrap();
                assert!(op.inputs.iter().all(|i| seen.contains(&i.digest)));
                seen.insert(op.digest().to_string());
            }
            assert!(seen.contains(&a.definition.result.as_ref().unwrap().digest));
        }
    }
}
