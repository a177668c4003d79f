//! A [`CacheIndex`] that holds writes in memory until [`flush`](CacheIndex::flush).
//!
//! A cache record must never be durable before the content it names. The engine
//! commits layers without syncing each one; at flush it takes the pending records,
//! runs `before_flush` (syncfs of the layer store), and only then hands the records
//! to the durable index. Records written while a flush runs wait for the next one.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use super::{CacheIndex, IndexError, Record, Table};

type Pending = HashMap<(Table, Vec<u8>), Option<Vec<u8>>>;
type Hook = Box<dyn Fn() -> Result<(), IndexError> + Send + Sync>;

pub struct WriteBehind<I> {
    inner: I,
    pending: Mutex<Pending>,
    /// The batch a flush is writing: still visible to readers until the inner
    /// index has it (a lookup in between found nothing, and work was done twice).
    in_flight: Mutex<Arc<Pending>>,
    /// Serializes flushes, so one flush's records never overtake another's sync.
    flushing: Mutex<()>,
    before_flush: Hook,
}

impl<I: CacheIndex> WriteBehind<I> {
    pub fn new(inner: I, before_flush: Hook) -> Self {
        Self {
            inner,
            pending: Mutex::new(HashMap::new()),
            in_flight: Mutex::default(),
            flushing: Mutex::new(()),
            before_flush,
        }
    }

    pub fn inner(&self) -> &I {
        &self.inner
    }
}

impl<I: CacheIndex> CacheIndex for WriteBehind<I> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, IndexError> {
        let k = (table, key.to_vec());
        if let Some(v) = self.pending.lock().unwrap().get(&k) {
            return Ok(v.clone());
        }
        // Moved here from `pending` under its lock, so never missed in between.
        if let Some(v) = self.in_flight.lock().unwrap().get(&k) {
            return Ok(v.clone());
        }
        self.inner.get(table, key)
    }

    fn put(&self, table: Table, key: &[u8], value: &[u8]) -> Result<(), IndexError> {
        self.pending
            .lock()
            .unwrap()
            .insert((table, key.to_vec()), Some(value.to_vec()));
        Ok(())
    }

    fn remove(&self, table: Table, key: &[u8]) -> Result<(), IndexError> {
        self.pending
            .lock()
            .unwrap()
            .insert((table, key.to_vec()), None);
        Ok(())
    }

    fn len(&self, table: Table) -> usize {
        self.entries(table).map_or(0, |v| v.len())
    }

    fn entries(&self, table: Table) -> Result<Vec<Record>, IndexError> {
        // Pending writes win over what the inner index holds; pending removals hide it.
        // What a flush is writing, then what is pending on top of it.
        let pending: BTreeMap<Vec<u8>, Option<Vec<u8>>> = {
            let pending = self.pending.lock().unwrap();
            let in_flight = self.in_flight.lock().unwrap();
            in_flight
                .iter()
                .chain(pending.iter())
                .filter(|((t, _), _)| *t == table)
                .map(|((_, k), v)| (k.clone(), v.clone()))
                .collect()
        };
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = self
            .inner
            .entries(table)?
            .into_iter()
            .filter(|(k, _)| !pending.contains_key(k))
            .collect();
        merged.extend(pending.into_iter().filter_map(|(k, v)| Some((k, v?))));
        Ok(merged.into_iter().collect())
    }

    fn flush(&self) -> Result<(), IndexError> {
        let _one_at_a_time = self.flushing.lock().unwrap();
        // Shared with readers, not copied: a batch can be large.
        let batch = {
            let mut pending = self.pending.lock().unwrap();
            let batch = Arc::new(std::mem::take(&mut *pending));
            *self.in_flight.lock().unwrap() = batch.clone();
            batch
        };
        let result = (|| {
            (self.before_flush)()?;
            self.inner.write_batch(
                &mut batch
                    .iter()
                    .map(|((table, key), value)| (*table, key.as_slice(), value.as_deref())),
            )?;
            self.inner.flush()
        })();
        let mut pending = self.pending.lock().unwrap();
        if result.is_err() {
            // Put the batch back (newer writes win) so a later flush can retry.
            for (k, v) in batch.iter() {
                pending.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        *self.in_flight.lock().unwrap() = Arc::default();
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::cache::MemoryIndex;

    #[test]
    fn meets_contract() {
        let index = WriteBehind::new(MemoryIndex::default(), Box::new(|| Ok(())));
        crate::cache::tests::exercise(&index);
    }

    #[test]
    fn nothing_reaches_the_inner_index_before_the_hook_ran() {
        let synced = Arc::new(AtomicUsize::new(0));
        let s = synced.clone();
        let index = WriteBehind::new(
            MemoryIndex::default(),
            Box::new(move || {
                s.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }),
        );
        index.put(Table::Results, b"k", b"v").unwrap();
        assert_eq!(
            index.get(Table::Results, b"k").unwrap().as_deref(),
            Some(&b"v"[..])
        );
        assert_eq!(index.inner().get(Table::Results, b"k").unwrap(), None);
        index.flush().unwrap();
        assert_eq!(synced.load(Ordering::SeqCst), 1);
        assert_eq!(
            index.inner().get(Table::Results, b"k").unwrap().as_deref(),
            Some(&b"v"[..])
        );
    }

    /// While a flush syncs the stores, the records it took are in neither the
    /// pending map nor the inner index; readers must still see them.
    #[test]
    fn records_stay_visible_while_a_flush_writes_them() {
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let index = Arc::new(WriteBehind::new(
            MemoryIndex::default(),
            Box::new(move || {
                entered_tx.send(()).unwrap();
                release_rx.lock().unwrap().recv().unwrap();
                Ok(())
            }),
        ));
        index.put(Table::Results, b"k", b"v").unwrap();
        let flusher = {
            let index = index.clone();
            std::thread::spawn(move || index.flush())
        };
        entered_rx.recv().unwrap();
        assert_eq!(index.inner().get(Table::Results, b"k").unwrap(), None);
        assert_eq!(
            index.get(Table::Results, b"k").unwrap().as_deref(),
            Some(&b"v"[..])
        );
        assert_eq!(index.len(Table::Results), 1);
        release_tx.send(()).unwrap();
        flusher.join().unwrap().unwrap();
        assert_eq!(
            index.get(Table::Results, b"k").unwrap().as_deref(),
            Some(&b"v"[..])
        );
    }

    #[test]
    fn entries_show_pending_writes_over_flushed_ones() {
        let index = WriteBehind::new(MemoryIndex::default(), Box::new(|| Ok(())));
        index.put(Table::Results, b"a", b"old").unwrap();
        index.put(Table::Results, b"b", b"gone").unwrap();
        index.flush().unwrap();
        index.put(Table::Results, b"a", b"new").unwrap();
        index.remove(Table::Results, b"b").unwrap();
        index.put(Table::Results, b"c", b"added").unwrap();
        assert_eq!(
            index.entries(Table::Results).unwrap(),
            vec![
                (b"a".to_vec(), b"new".to_vec()),
                (b"c".to_vec(), b"added".to_vec())
            ]
        );
    }

    #[test]
    fn a_failed_sync_keeps_the_records_pending() {
        let fail = Arc::new(AtomicUsize::new(1));
        let f = fail.clone();
        let index = WriteBehind::new(
            MemoryIndex::default(),
            Box::new(move || {
                if f.load(Ordering::SeqCst) == 1 {
                    Err(IndexError::Storage("disk on fire".into()))
                } else {
                    Ok(())
                }
            }),
        );
        index.put(Table::Results, b"k", b"v").unwrap();
        assert!(index.flush().is_err());
        assert_eq!(index.inner().get(Table::Results, b"k").unwrap(), None);
        fail.store(0, Ordering::SeqCst);
        index.flush().unwrap();
        assert!(index.inner().get(Table::Results, b"k").unwrap().is_some());
    }
}
