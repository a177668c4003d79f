//! A filesystem as a stack of layers, held as a persistent list: stacking a layer
//! on a snapshot shares everything below, so a chain of N steps holds N nodes, not
//! N²/2 layer names, and a step costs the same at any depth.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, Weak};

use buildd_proto::Digest;

use crate::error::SnapshotError;
use crate::merged::{self, MergedDir};
use crate::store::{LayerId, LayerStore};

/// A stack of layers, bottom first; no layers is the empty filesystem.
///
/// Equal stacks have equal [`id`](Self::id)s: the id chains the layer names
/// (`id(S + L) = sha256(id(S) ‖ L)`), so comparing and hashing cost O(1).
#[derive(Clone, Default)]
pub struct Snapshot(Option<Arc<Node>>);

struct Node {
    below: Snapshot,
    layer: LayerId,
    len: usize,
    id: Digest,
    /// The merged tree of this stack once a view of it asked, with the layer
    /// store's generation it was built in (a removed layer makes it stale).
    merged: Mutex<Option<(u64, Arc<MergedDir>)>>,
}

/// The id of the empty snapshot.
pub const SCRATCH_ID: Digest = Digest::from_bytes([0; 32]);

impl Snapshot {
    pub fn scratch() -> Self {
        Snapshot(None)
    }

    /// The stack of `layers`, bottom first.
    pub fn new(layers: impl IntoIterator<Item = LayerId>) -> Self {
        layers
            .into_iter()
            .fold(Snapshot::scratch(), |s, l| s.with_layer(l))
    }

    /// This snapshot with `top` stacked on it.
    pub fn with_layer(&self, top: LayerId) -> Self {
        let mut bytes = Vec::with_capacity(32 + top.as_str().len());
        bytes.extend_from_slice(self.id().as_bytes());
        bytes.extend_from_slice(top.as_str().as_bytes());
        Snapshot(Some(Arc::new(Node {
            below: self.clone(),
            len: self.len() + 1,
            id: Digest::of(&bytes),
            layer: top,
            merged: Mutex::new(None),
        })))
    }

    /// Names the stack: equal ids, equal layers in the same order.
    pub fn id(&self) -> Digest {
        self.0.as_ref().map_or(SCRATCH_ID, |n| n.id)
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |n| n.len)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The topmost layer.
    pub fn top(&self) -> Option<&LayerId> {
        self.0.as_ref().map(|n| &n.layer)
    }

    /// The snapshot without its topmost layer (scratch stays scratch).
    pub fn below(&self) -> &Snapshot {
        static SCRATCH: Snapshot = Snapshot(None);
        self.0.as_ref().map_or(&SCRATCH, |n| &n.below)
    }

    /// The layers, topmost first, without copying the stack.
    pub fn iter_top_down(&self) -> impl Iterator<Item = &LayerId> {
        let mut cur = self;
        std::iter::from_fn(move || {
            let node = cur.0.as_ref()?;
            cur = &node.below;
            Some(&node.layer)
        })
    }

    /// The layers, bottom first (a copy of the stack: O(len)).
    pub fn layers(&self) -> Vec<LayerId> {
        let mut out: Vec<LayerId> = self.iter_top_down().cloned().collect();
        out.reverse();
        out
    }

    /// Whether `lower` is this stack or a stack this one was built on; then the
    /// layers above it, bottom first. Costs the number of layers above.
    pub fn layers_above(&self, lower: &Snapshot) -> Option<Vec<LayerId>> {
        let mut above = Vec::new();
        let mut cur = self;
        while cur.len() > lower.len() {
            above.push(cur.top().expect("non-empty").clone());
            cur = cur.below();
        }
        if cur.id() != lower.id() {
            return None;
        }
        above.reverse();
        Some(above)
    }

    /// The merged tree of this stack (`None` for scratch), built on the nearest
    /// stack below that has one; every node keeps its own, so a chain's next step
    /// applies just its new layer.
    pub(crate) fn merged(
        &self,
        store: &LayerStore,
    ) -> Result<Option<Arc<MergedDir>>, SnapshotError> {
        let generation = store.generation();
        let mut todo = Vec::new();
        let mut cur = self;
        let mut tree = None;
        while let Some(node) = &cur.0 {
            if let Some((g, m)) = &*node.merged.lock().unwrap()
                && *g == generation
            {
                tree = Some(m.clone());
                break;
            }
            todo.push(node);
            cur = &node.below;
        }
        for node in todo.into_iter().rev() {
            let m =
                merged::apply(store, tree.as_ref(), &node.layer).map_err(|e| match e.kind() {
                    io::ErrorKind::NotFound if !store.exists(&node.layer) => {
                        SnapshotError::LayerMissing(node.layer.to_string())
                    }
                    _ => SnapshotError::io("read", store.diff_dir(&node.layer))(e),
                })?;
            // Another thread may have built it meanwhile: both are equal.
            *node.merged.lock().unwrap() = Some((generation, m.clone()));
            tree = Some(m);
        }
        Ok(tree)
    }

    /// Same stack as `other`'s node in memory (not only equal).
    fn same_node(&self, other: &Snapshot) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        self.same_node(other) || self.id() == other.id()
    }
}

impl Eq for Snapshot {}

impl std::hash::Hash for Snapshot {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id().hash(state)
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A deep stack is not printed whole.
        let mut list = f.debug_list();
        for (i, l) in self.iter_top_down().enumerate() {
            if i == 8 {
                list.entry(&format_args!("... {} more", self.len() - 8));
                break;
            }
            list.entry(&l.as_str());
        }
        list.finish()
    }
}

impl Drop for Node {
    /// Unlinks the list iteratively: dropping a 100,000-deep chain recursively
    /// would overflow the stack.
    fn drop(&mut self) {
        let mut below = self.below.0.take();
        while let Some(node) = below {
            match Arc::try_unwrap(node) {
                Ok(mut n) => below = n.below.0.take(),
                Err(_) => break, // still shared: its other owner drops it
            }
        }
    }
}

/// Snapshots alive in this process by id, so decoding a cache record of a deep
/// stack reuses the nodes below it instead of rebuilding the whole list. Holds no
/// snapshot alive.
#[derive(Default)]
pub struct SnapshotMemo {
    inner: Mutex<MemoInner>,
}

#[derive(Default)]
struct MemoInner {
    nodes: HashMap<Digest, Weak<Node>>,
    /// Entries when dead ones were last swept.
    swept: usize,
}

impl SnapshotMemo {
    pub fn get(&self, id: &Digest) -> Option<Snapshot> {
        if *id == SCRATCH_ID {
            return Some(Snapshot::scratch());
        }
        let inner = self.inner.lock().unwrap();
        inner.nodes.get(id)?.upgrade().map(|n| Snapshot(Some(n)))
    }

    pub fn remember(&self, snap: &Snapshot) {
        let Some(node) = &snap.0 else { return };
        let mut inner = self.inner.lock().unwrap();
        inner.nodes.insert(node.id, Arc::downgrade(node));
        if inner.nodes.len() > 2 * inner.swept.max(1024) {
            inner.nodes.retain(|_, w| w.strong_count() > 0);
            inner.swept = inner.nodes.len();
        }
    }

    /// Forgets everything (a layer was removed: a remembered stack may name it).
    pub fn clear(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.nodes.clear();
        inner.swept = 0;
    }
}

impl fmt::Debug for SnapshotMemo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.inner.lock().unwrap().nodes.len();
        f.debug_struct("SnapshotMemo").field("entries", &n).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> LayerId {
        LayerId::new(s).unwrap()
    }

    #[test]
    fn equal_stacks_have_equal_ids_whatever_built_them() {
        let a = Snapshot::new([id("a1"), id("b2")]);
        let b = Snapshot::scratch()
            .with_layer(id("a1"))
            .with_layer(id("b2"));
        assert_eq!(a, b);
        assert_eq!(a.id(), b.id());
        assert_ne!(a.id(), Snapshot::new([id("b2"), id("a1")]).id());
        assert_ne!(a.id(), a.below().id());
        assert_eq!(Snapshot::scratch().id(), SCRATCH_ID);
        assert_eq!(a.layers(), vec![id("a1"), id("b2")]);
        assert_eq!(a.top(), Some(&id("b2")));
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn layers_above_a_lower_stack() {
        let base = Snapshot::new([id("a1")]);
        let up = base.with_layer(id("b2")).with_layer(id("c3"));
        assert_eq!(up.layers_above(&base), Some(vec![id("b2"), id("c3")]));
        assert_eq!(up.layers_above(&up), Some(vec![]));
        assert_eq!(up.layers_above(&Snapshot::scratch()), Some(up.layers()));
        assert_eq!(up.layers_above(&Snapshot::new([id("ff")])), None);
        assert_eq!(base.layers_above(&up), None);
    }

    #[test]
    fn a_very_deep_stack_drops_without_overflowing() {
        let mut s = Snapshot::scratch();
        let l = id("ab");
        for _ in 0..300_000 {
            s = s.with_layer(l.clone());
        }
        assert_eq!(s.len(), 300_000);
        drop(s);
    }

    #[test]
    fn the_memo_answers_only_for_live_snapshots() {
        let memo = SnapshotMemo::default();
        let s = Snapshot::new([id("a1"), id("b2")]);
        memo.remember(&s);
        let got = memo.get(&s.id()).unwrap();
        assert!(got.same_node(&s));
        assert!(memo.get(&Snapshot::new([id("a1")]).id()).is_none());
        let sid = s.id();
        drop((s, got));
        assert!(memo.get(&sid).is_none());
        assert_eq!(memo.get(&SCRATCH_ID), Some(Snapshot::scratch()));
    }
}
