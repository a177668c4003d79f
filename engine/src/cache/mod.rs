//! The cache index: what the engine remembers between builds.
//!
//! A [`CacheIndex`] is a small key-value map split into [`Table`]s. Values point at
//! content in the blob store and layer store; the index itself holds no file data,
//! so losing it loses only speed.

mod memory_index;
pub mod remote;
mod sled_index;
pub mod snapshots;
mod write_behind;

pub use memory_index::MemoryIndex;
pub use sled_index::SledIndex;
pub use write_behind::WriteBehind;

/// The kinds of records the engine keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// vertex cache key → encoded result (a snapshot id, see [`snapshots`])
    Results,
    /// snapshot id → the snapshot id below it and its top layer
    Snapshots,
    /// layer id + compression → exported layer blob (digest, diff_id, size)
    LayerBlobs,
    /// file stat key → content digest, so warm builds do not re-read unchanged files
    FileHashes,
    /// registry + blob digest → a repository there holding the blob, for pushes to
    /// mount it from
    BlobSources,
}

impl Table {
    pub const ALL: [Table; 5] = [
        Table::Results,
        Table::Snapshots,
        Table::LayerBlobs,
        Table::FileHashes,
        Table::BlobSources,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Results => "results",
            Table::Snapshots => "snapshots",
            Table::LayerBlobs => "layer-blobs",
            Table::FileHashes => "file-hashes",
            Table::BlobSources => "blob-sources",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("cache index {path}: {message}")]
    Open { path: String, message: String },
    #[error("cache index: {0}")]
    Storage(String),
}

/// A record as (key, value).
pub type Record = (Vec<u8>, Vec<u8>);

/// Persistent map behind the solver's cache.
pub trait CacheIndex: Send + Sync {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, IndexError>;
    fn put(&self, table: Table, key: &[u8], value: &[u8]) -> Result<(), IndexError>;
    fn remove(&self, table: Table, key: &[u8]) -> Result<(), IndexError>;
    /// Number of records in a table.
    fn len(&self, table: Table) -> usize;
    /// Every record of a table as (key, value), each key once (for checks that
    /// must name or remove records; not for hot paths).
    fn entries(&self, table: Table) -> Result<Vec<Record>, IndexError>;
    /// Every value of a table, each key's once (for recovery scans; not for hot
    /// paths).
    fn values(&self, table: Table) -> Result<Vec<Vec<u8>>, IndexError> {
        Ok(self.entries(table)?.into_iter().map(|(_, v)| v).collect())
    }
    /// Writes many records at once: puts, and removals as `None`. An index may
    /// do it faster than one by one (sled: one batch per table, in key order).
    fn write_batch(
        &self,
        batch: &mut dyn Iterator<Item = BatchItem<'_>>,
    ) -> Result<(), IndexError> {
        for (table, key, value) in batch {
            match value {
                Some(v) => self.put(table, key, v)?,
                None => self.remove(table, key)?,
            }
        }
        Ok(())
    }
    /// Makes every completed `put` durable.
    fn flush(&self) -> Result<(), IndexError>;
}

/// A write of [`CacheIndex::write_batch`]: table, key, value (`None` removes).
pub type BatchItem<'a> = (Table, &'a [u8], Option<&'a [u8]>);

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract every implementation must meet.
    pub(crate) fn exercise(index: &dyn CacheIndex) {
        assert_eq!(index.get(Table::Results, b"k").unwrap(), None);
        index.put(Table::Results, b"k", b"v1").unwrap();
        index.put(Table::LayerBlobs, b"k", b"other table").unwrap();
        assert_eq!(
            index.get(Table::Results, b"k").unwrap().as_deref(),
            Some(&b"v1"[..])
        );
        index.put(Table::Results, b"k", b"v2").unwrap();
        assert_eq!(
            index.get(Table::Results, b"k").unwrap().as_deref(),
            Some(&b"v2"[..])
        );
        assert_eq!(index.len(Table::Results), 1);
        assert_eq!(index.values(Table::Results).unwrap(), vec![b"v2".to_vec()]);
        assert_eq!(
            index.entries(Table::Results).unwrap(),
            vec![(b"k".to_vec(), b"v2".to_vec())]
        );
        index.remove(Table::Results, b"k").unwrap();
        assert_eq!(index.get(Table::Results, b"k").unwrap(), None);
        assert_eq!(
            index.get(Table::LayerBlobs, b"k").unwrap().as_deref(),
            Some(&b"other table"[..])
        );
        let writes: Vec<BatchItem<'_>> = vec![
            (Table::Results, b"b2", Some(b"two")),
            (Table::Snapshots, b"b1", Some(b"one")),
            (Table::LayerBlobs, b"k", None),
        ];
        index.write_batch(&mut writes.into_iter()).unwrap();
        assert_eq!(
            index.get(Table::Results, b"b2").unwrap().as_deref(),
            Some(&b"two"[..])
        );
        assert_eq!(
            index.get(Table::Snapshots, b"b1").unwrap().as_deref(),
            Some(&b"one"[..])
        );
        assert_eq!(index.get(Table::LayerBlobs, b"k").unwrap(), None);
        index.flush().unwrap();
    }

    #[test]
    fn memory_index_meets_contract() {
        exercise(&MemoryIndex::default());
    }
}
