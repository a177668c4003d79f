//! Snapshots in the cache index, each as its top layer over the snapshot below,
//! so a record costs the same at any depth: a `Results` value names a snapshot
//! by id (`snapshot sha256:…`) and the `Snapshots` table maps an id to the id
//! below it and its top layer. Records of stacks written before this format (a
//! JSON list of every layer) are still read.

use std::collections::{HashMap, HashSet};

use buildd_proto::Digest;
use buildd_snapshot::{LayerId, LayerStore, SCRATCH_ID, Snapshot};

use super::{CacheIndex, IndexError, Table};

const PREFIX: &str = "snapshot ";

/// The `Results` value naming `snap`; first records every node of it this process
/// has not recorded yet (usually just the top one). Nodes go in before the value
/// that names them, so a reader never follows an id to nothing that was written.
pub fn encode(
    index: &dyn CacheIndex,
    layers: &LayerStore,
    snap: &Snapshot,
) -> Result<Vec<u8>, IndexError> {
    let mut cur = snap;
    let mut fresh = Vec::new();
    while let Some(top) = cur.top() {
        if layers.snapshots.get(&cur.id()).is_some() {
            break;
        }
        index.put(
            Table::Snapshots,
            cur.id().as_bytes(),
            &node_value(&cur.below().id(), top),
        )?;
        fresh.push(cur);
        cur = cur.below();
    }
    for s in fresh {
        layers.snapshots.remember(s);
    }
    // The top node rides along, so a decode whose lower stack is alive (a
    // chain's input) needs no second lookup.
    Ok(match snap.top() {
        Some(top) => format!("{PREFIX}{} {} {top}", snap.id(), snap.below().id().hex()),
        None => format!("{PREFIX}{}", snap.id()),
    }
    .into_bytes())
}

fn node_value(below: &Digest, layer: &LayerId) -> Vec<u8> {
    let mut v = Vec::with_capacity(32 + layer.as_str().len());
    v.extend_from_slice(below.as_bytes());
    v.extend_from_slice(layer.as_str().as_bytes());
    v
}

fn parse_node(value: &[u8]) -> Option<(Digest, LayerId)> {
    let below: [u8; 32] = value.get(..32)?.try_into().ok()?;
    let layer = LayerId::new(std::str::from_utf8(&value[32..]).ok()?).ok()?;
    Some((Digest::from_bytes(below), layer))
}

/// What a `Results` value names.
enum Named {
    /// With the id below it and its top layer, when the value carries them.
    Snapshot(Digest, Option<(Digest, LayerId)>),
    /// The older form: every layer, bottom first.
    Layers(Vec<String>),
}

fn parse(value: &[u8]) -> Result<Named, String> {
    if let Some(rest) = value.strip_prefix(PREFIX.as_bytes()) {
        let text = std::str::from_utf8(rest).map_err(|e| e.to_string())?;
        let mut words = text.split(' ');
        let id = words.next().unwrap_or_default();
        let id = id.parse::<Digest>().map_err(|e| e.to_string())?;
        let top = match (words.next(), words.next()) {
            (Some(below), Some(layer)) => Some((
                Digest::from_hex(below).map_err(|e| e.to_string())?,
                LayerId::new(layer).map_err(|e| e.to_string())?,
            )),
            _ => None,
        };
        return Ok(Named::Snapshot(id, top));
    }
    serde_json::from_slice::<Vec<String>>(value)
        .map(Named::Layers)
        .map_err(|e| e.to_string())
}

/// The snapshot a `Results` value names; `None` when a layer or record of it is
/// gone. Reuses the nodes of stacks alive in this process, so a deep chain costs
/// one lookup per step, not one per layer.
pub fn decode(
    index: &dyn CacheIndex,
    layers: &LayerStore,
    value: &[u8],
) -> Result<Option<Snapshot>, IndexError> {
    let id = match parse(value) {
        Ok(Named::Snapshot(id, top)) => {
            if let Some(s) = layers.snapshots.get(&id) {
                return Ok(Some(s));
            }
            if let Some((below, layer)) = top
                && let Some(base) = layers.snapshots.get(&below)
            {
                if !layers.exists(&layer) {
                    return Ok(None);
                }
                let snap = base.with_layer(layer);
                if snap.id() != id {
                    return Ok(None);
                }
                layers.snapshots.remember(&snap);
                return Ok(Some(snap));
            }
            id
        }
        Ok(Named::Layers(ids)) => {
            let ids: Option<Vec<LayerId>> = ids.into_iter().map(|i| LayerId::new(i).ok()).collect();
            return Ok(ids
                .filter(|ids| ids.iter().all(|i| layers.exists(i)))
                .map(Snapshot::new));
        }
        Err(_) => return Ok(None),
    };
    // Down to a node alive here (or scratch), then back up.
    let mut missing = Vec::new();
    let mut cur = id;
    let base = loop {
        if let Some(s) = layers.snapshots.get(&cur) {
            break s;
        }
        let Some(value) = index.get(Table::Snapshots, cur.as_bytes())? else {
            return Ok(None);
        };
        let Some((below, layer)) = parse_node(&value) else {
            return Ok(None);
        };
        if !layers.exists(&layer) {
            return Ok(None);
        }
        missing.push((cur, layer));
        cur = below;
    };
    let mut snap = base;
    for (want, layer) in missing.into_iter().rev() {
        snap = snap.with_layer(layer);
        if snap.id() != want {
            return Ok(None); // a record that does not hash to its key
        }
        layers.snapshots.remember(&snap);
    }
    Ok(Some(snap))
}

/// Why a `Results` value cannot be followed to layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Unreadable(String),
    MissingRecord(Digest),
    MissingLayer(String),
}

/// The whole `Snapshots` table in memory, for scans over every record (recovery,
/// prune, fsck); not for hot paths.
pub struct SnapshotTable {
    nodes: HashMap<Digest, Result<(Digest, String), String>>,
}

impl SnapshotTable {
    pub fn load(index: &dyn CacheIndex) -> Result<Self, IndexError> {
        let mut nodes = HashMap::new();
        for (key, value) in index.entries(Table::Snapshots)? {
            let Ok(key) = <[u8; 32]>::try_from(key.as_slice()) else {
                continue;
            };
            let node = parse_node(&value)
                .map(|(below, layer)| (below, layer.as_str().to_owned()))
                .ok_or_else(|| "not a snapshot node".to_owned());
            nodes.insert(Digest::from_bytes(key), node);
        }
        Ok(Self { nodes })
    }

    /// Ids of every record, with what is unreadable about it, if anything.
    pub fn ids(&self) -> impl Iterator<Item = (&Digest, Option<&str>)> {
        self.nodes
            .iter()
            .map(|(id, n)| (id, n.as_ref().err().map(String::as_str)))
    }

    /// The layer a record stacks, if readable.
    pub fn layer(&self, id: &Digest) -> Option<&str> {
        self.nodes.get(id)?.as_ref().ok().map(|(_, l)| l.as_str())
    }

    /// Calls `f` with every snapshot id a `Results` value reaches (each once over
    /// all calls sharing `seen`) and collects the layers of the older form.
    pub fn reach(
        &self,
        value: &[u8],
        seen: &mut HashSet<Digest>,
        layers: &mut HashSet<String>,
    ) -> Result<(), Fault> {
        match parse(value).map_err(Fault::Unreadable)? {
            Named::Layers(ids) => {
                layers.extend(ids);
                Ok(())
            }
            Named::Snapshot(mut id, _) => {
                while id != SCRATCH_ID && seen.insert(id) {
                    match self.nodes.get(&id) {
                        Some(Ok((below, layer))) => {
                            layers.insert(layer.clone());
                            id = *below;
                        }
                        Some(Err(e)) => return Err(Fault::Unreadable(e.clone())),
                        None => return Err(Fault::MissingRecord(id)),
                    }
                }
                Ok(())
            }
        }
    }

    /// The first fault on the way from a `Results` value down to scratch, with
    /// `known` remembering verdicts per snapshot id so a scan of every record
    /// walks each node once.
    pub fn check(
        &self,
        value: &[u8],
        exists: &dyn Fn(&str) -> bool,
        known: &mut HashMap<Digest, Option<Fault>>,
    ) -> Option<Fault> {
        let id = match parse(value) {
            Err(e) => return Some(Fault::Unreadable(e)),
            Ok(Named::Layers(ids)) => {
                return ids
                    .into_iter()
                    .find(|l| !exists(l))
                    .map(Fault::MissingLayer);
            }
            Ok(Named::Snapshot(id, _)) => id,
        };
        let mut path = Vec::new();
        let mut cur = id;
        let verdict = loop {
            if cur == SCRATCH_ID {
                break None;
            }
            if let Some(v) = known.get(&cur) {
                break v.clone();
            }
            path.push(cur);
            match self.nodes.get(&cur) {
                None => break Some(Fault::MissingRecord(cur)),
                Some(Err(e)) => break Some(Fault::Unreadable(e.clone())),
                Some(Ok((_, layer))) if !exists(layer) => {
                    break Some(Fault::MissingLayer(layer.clone()));
                }
                Some(Ok((below, _))) => cur = *below,
            }
        };
        for id in path {
            known.insert(id, verdict.clone());
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::MemoryIndex;

    fn store_with(dir: &std::path::Path, ids: &[&str]) -> (LayerStore, Vec<LayerId>) {
        let store = LayerStore::open(dir).unwrap();
        let ids: Vec<LayerId> = ids.iter().map(|i| LayerId::new(*i).unwrap()).collect();
        for id in &ids {
            store.begin().unwrap().commit(id).unwrap();
        }
        (store, ids)
    }

    #[test]
    fn a_record_names_its_top_and_decodes_in_another_process() {
        let dir = tempfile::tempdir().unwrap();
        let index = MemoryIndex::default();
        let (store, ids) = store_with(dir.path(), &["a1", "b2", "c3"]);
        let lower = Snapshot::new(ids[..2].to_vec());
        let upper = lower.with_layer(ids[2].clone());
        let v_lower = encode(&index, &store, &lower).unwrap();
        assert_eq!(index.len(Table::Snapshots), 2);
        let v_upper = encode(&index, &store, &upper).unwrap();
        // Only the new top was written.
        assert_eq!(index.len(Table::Snapshots), 3);
        let want = format!("snapshot {} {} c3", upper.id(), lower.id().hex());
        assert_eq!(v_upper, want.into_bytes());

        // A fresh store (another process) rebuilds from the records alone.
        let again = LayerStore::open(dir.path()).unwrap();
        let got = decode(&index, &again, &v_upper).unwrap().unwrap();
        assert_eq!(got.layers(), ids);
        let got_lower = decode(&index, &again, &v_lower).unwrap().unwrap();
        assert_eq!(got_lower, lower);

        // Scratch needs no record.
        let v = encode(&index, &store, &Snapshot::scratch()).unwrap();
        assert_eq!(
            decode(&index, &again, &v).unwrap(),
            Some(Snapshot::scratch())
        );
    }

    #[test]
    fn a_missing_layer_or_record_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let index = MemoryIndex::default();
        let (store, ids) = store_with(dir.path(), &["a1", "b2"]);
        let snap = Snapshot::new(ids.clone());
        let value = encode(&index, &store, &snap).unwrap();
        store.remove(&ids[0]).unwrap();
        assert_eq!(decode(&index, &store, &value).unwrap(), None);

        let index = MemoryIndex::default();
        let (store, ids) = store_with(dir.path(), &["a1"]);
        let snap = Snapshot::new([ids[0].clone(), LayerId::new("b2").unwrap()]);
        let value = encode(&index, &store, &snap).unwrap();
        index
            .remove(Table::Snapshots, snap.below().id().as_bytes())
            .unwrap();
        let fresh = LayerStore::open(dir.path()).unwrap();
        assert_eq!(decode(&index, &fresh, &value).unwrap(), None);
        let table = SnapshotTable::load(&index).unwrap();
        let mut known = HashMap::new();
        assert_eq!(
            table.check(&value, &|_| true, &mut known),
            Some(Fault::MissingRecord(snap.below().id()))
        );
    }

    #[test]
    fn a_record_that_does_not_hash_to_its_key_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let index = MemoryIndex::default();
        let (store, ids) = store_with(dir.path(), &["a1", "b2"]);
        let snap = Snapshot::new(ids.clone());
        let value = encode(&index, &store, &snap).unwrap();
        // The node below names another layer than its id was made from.
        index
            .put(
                Table::Snapshots,
                snap.below().id().as_bytes(),
                &node_value(&SCRATCH_ID, &ids[1]),
            )
            .unwrap();
        let fresh = LayerStore::open(dir.path()).unwrap();
        assert_eq!(decode(&index, &fresh, &value).unwrap(), None);

        // So does the top node a value carries, with the stack below alive.
        let below = decode(
            &index,
            &store,
            &encode(&index, &store, snap.below()).unwrap(),
        );
        assert!(below.unwrap().is_some());
        let text = String::from_utf8(value).unwrap().replace(" b2", " a1");
        let fresh = LayerStore::open(dir.path()).unwrap();
        fresh.snapshots.remember(snap.below());
        assert_eq!(decode(&index, &fresh, text.as_bytes()).unwrap(), None);
    }

    #[test]
    fn older_records_list_every_layer() {
        let dir = tempfile::tempdir().unwrap();
        let index = MemoryIndex::default();
        let (store, ids) = store_with(dir.path(), &["a1", "b2"]);
        let got = decode(&index, &store, br#"["a1","b2"]"#).unwrap().unwrap();
        assert_eq!(got.layers(), ids);
        assert_eq!(decode(&index, &store, br#"["a1","ff"]"#).unwrap(), None);
        assert_eq!(decode(&index, &store, b"garbage").unwrap(), None);
    }

    #[test]
    fn scans_reach_each_node_once() {
        let dir = tempfile::tempdir().unwrap();
        let index = MemoryIndex::default();
        let (store, ids) = store_with(dir.path(), &["a1", "b2", "c3"]);
        let a = encode(&index, &store, &Snapshot::new(ids[..2].to_vec())).unwrap();
        let b = encode(&index, &store, &Snapshot::new(ids.clone())).unwrap();
        let table = SnapshotTable::load(&index).unwrap();
        let (mut seen, mut layers) = (HashSet::new(), HashSet::new());
        table.reach(&a, &mut seen, &mut layers).unwrap();
        table.reach(&b, &mut seen, &mut layers).unwrap();
        table.reach(br#"["dd"]"#, &mut seen, &mut layers).unwrap();
        assert_eq!(seen.len(), 3);
        let want: HashSet<String> = ["a1", "b2", "c3", "dd"].map(String::from).into();
        assert_eq!(layers, want);
        let mut known = HashMap::new();
        assert_eq!(
            table.check(&b, &|l| l != "a1", &mut known),
            Some(Fault::MissingLayer("a1".into()))
        );
        assert_eq!(
            table.check(&a, &|_| true, &mut known),
            Some(Fault::MissingLayer("a1".into()))
        );
    }
}
