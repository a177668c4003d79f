//! An in-memory [`CacheIndex`] for unit tests and benchmarks.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{CacheIndex, IndexError, Record, Table};

type Records = HashMap<(Table, Vec<u8>), Vec<u8>>;

#[derive(Debug, Default)]
pub struct MemoryIndex {
    map: Mutex<Records>,
}

impl CacheIndex for MemoryIndex {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, IndexError> {
        Ok(self
            .map
            .lock()
            .unwrap()
            .get(&(table, key.to_vec()))
            .cloned())
    }

    fn put(&self, table: Table, key: &[u8], value: &[u8]) -> Result<(), IndexError> {
        self.map
            .lock()
            .unwrap()
            .insert((table, key.to_vec()), value.to_vec());
        Ok(())
    }

    fn remove(&self, table: Table, key: &[u8]) -> Result<(), IndexError> {
        self.map.lock().unwrap().remove(&(table, key.to_vec()));
        Ok(())
    }

    fn len(&self, table: Table) -> usize {
        self.map
            .lock()
            .unwrap()
            .keys()
            .filter(|(t, _)| *t == table)
            .count()
    }

    fn entries(&self, table: Table) -> Result<Vec<Record>, IndexError> {
        let mut out: Vec<_> = self
            .map
            .lock()
            .unwrap()
            .iter()
            .filter(|((t, _), _)| *t == table)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect();
        out.sort();
        Ok(out)
    }

    fn flush(&self) -> Result<(), IndexError> {
        Ok(())
    }
}
