//! MergeOp and DiffOp work on layer stacks alone: no file is touched.

use std::collections::HashSet;
use std::sync::Arc;

use buildd_proto::llb::DiffOp;
use buildd_snapshot::{LayerId, Snapshot};

use super::worker::Ref;
use crate::solver::{OpError, Resolved};

/// Stacks the inputs, later ones on top. A layer already present lower down is
/// kept only at its highest position, since a stack cannot name a layer twice.
/// Costs the inputs' layers once: an input built on what is stacked so far
/// replaces it, and the rest are checked against a set of what is stacked.
pub(crate) fn merge(inputs: &[Arc<Resolved<Ref>>]) -> Result<Ref, OpError> {
    let mut acc = Snapshot::scratch();
    // The layers of `acc`, once an input needs checking against them.
    let mut stacked: Option<HashSet<LayerId>> = None;
    for (i, input) in inputs.iter().enumerate() {
        let snap = input.output.snapshot(&format!("merge input {i}"))?;
        if snap.layers_above(&acc).is_some() {
            acc = snap.clone();
            stacked = None;
            continue;
        }
        let set = stacked.get_or_insert_with(|| acc.iter_top_down().cloned().collect());
        let layers = snap.layers();
        if layers.iter().any(|l| set.contains(l)) {
            let moved: HashSet<&LayerId> = layers.iter().collect();
            let kept = acc.layers().into_iter().filter(|l| !moved.contains(l));
            acc = Snapshot::new(kept.chain(layers.iter().cloned()));
            set.extend(layers);
        } else {
            for l in layers {
                set.insert(l.clone());
                acc = acc.with_layer(l);
            }
        }
    }
    Ok(Ref::Snapshot(acc))
}

/// The layers `upper` adds on top of `lower`. Only stacks that extend each other
/// can be diffed without comparing files; anything else is reported.
pub(crate) fn diff(op: &DiffOp, inputs: &[Arc<Resolved<Ref>>]) -> Result<Ref, OpError> {
    let pick = |i: i64, what: &str| -> Result<Snapshot, OpError> {
        if i < 0 {
            return Ok(Snapshot::scratch());
        }
        inputs
            .get(i as usize)
            .ok_or_else(|| OpError::new(format!("diff {what} input {i} does not exist")))?
            .output
            .snapshot(&format!("diff {what}"))
            .cloned()
    };
    let lower = pick(op.lower, "lower")?;
    let upper = pick(op.upper, "upper")?;
    match upper.layers_above(&lower) {
        Some(above) => Ok(Ref::Snapshot(Snapshot::new(above))),
        None => Err(OpError::new(
            "diff of snapshots that do not share a layer prefix is not supported yet",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use buildd_proto::Digest;

    fn ids(names: &[&str]) -> Vec<LayerId> {
        names.iter().map(|n| LayerId::new(*n).unwrap()).collect()
    }

    fn input(layers: &[&str]) -> Arc<Resolved<Ref>> {
        Arc::new(Resolved {
            output: Ref::Snapshot(Snapshot::new(ids(layers))),
            cache_key: Digest::of(b"k"),
            cached: false,
        })
    }

    fn merged(inputs: &[&[&str]]) -> Vec<LayerId> {
        let inputs: Vec<_> = inputs.iter().map(|l| input(l)).collect();
        match merge(&inputs).unwrap() {
            Ref::Snapshot(s) => s.layers(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_shared_layer_moves_to_its_highest_position() {
        assert_eq!(
            merged(&[&["a0", "b1"], &["a0", "c2"]]),
            ids(&["b1", "a0", "c2"])
        );
        assert_eq!(
            merged(&[&["a0", "b1"], &["a0", "c2"], &["a0", "d3"]]),
            ids(&["b1", "c2", "a0", "d3"])
        );
    }

    #[test]
    fn disjoint_inputs_stack_and_extensions_replace() {
        assert_eq!(
            merged(&[&["a0"], &["b1"], &["c2"]]),
            ids(&["a0", "b1", "c2"])
        );
        assert_eq!(merged(&[&["a0"], &["a0", "b1"]]), ids(&["a0", "b1"]));
        assert_eq!(merged(&[&[], &["a0"], &[]]), ids(&["a0"]));
        assert_eq!(merged(&[&["a0", "b1"], &["b1"]]), ids(&["a0", "b1"]));
    }
}
