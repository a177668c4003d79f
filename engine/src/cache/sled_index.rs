//! The persistent [`CacheIndex`], a sled database in `<root>/index`.
//!
//! The cache is disposable: an index that is corrupt, unreadable or of another
//! format version is moved aside (with a warning) and the build goes on empty.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{BatchItem, CacheIndex, IndexError, Record, Table};

/// Bumped whenever the meaning of a stored key or value changes.
pub const FORMAT_VERSION: &[u8] = b"buildd-index-1";
const VERSION_KEY: &[u8] = b"format-version";

pub struct SledIndex {
    db: sled::Db,
    trees: Vec<sled::Tree>,
}

impl std::fmt::Debug for SledIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledIndex").finish_non_exhaustive()
    }
}

fn storage(e: sled::Error) -> IndexError {
    IndexError::Storage(e.to_string())
}

impl SledIndex {
    /// Opens (or creates) the index at `path`. The caller holds the root lock, so
    /// a lock failure here is either this process's previous handle, still held
    /// for a moment by sled's background threads after its drop, or another
    /// process that ignored the root lock; waiting briefly tells them apart.
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        let mut attempt = Self::try_open(path);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while matches!(attempt, Err(OpenFailure::InUse(_))) && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
            attempt = Self::try_open(path);
        }
        match attempt {
            Ok(index) => Ok(index),
            Err(OpenFailure::InUse(message)) => Err(IndexError::Open {
                path: path.display().to_string(),
                message,
            }),
            Err(OpenFailure::Unusable(why)) => {
                let aside = aside_path(path);
                tracing::warn!(
                    index = %path.display(),
                    moved_to = %aside.display(),
                    "cache index unusable ({why}); moved aside, starting with an empty cache"
                );
                std::fs::rename(path, &aside).map_err(|e| IndexError::Open {
                    path: path.display().to_string(),
                    message: format!("moving unusable index aside: {e}"),
                })?;
                Self::try_open(path).map_err(|f| IndexError::Open {
                    path: path.display().to_string(),
                    message: f.to_string(),
                })
            }
        }
    }

    fn try_open(path: &Path) -> Result<Self, OpenFailure> {
        let db = sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            // sled's default (1 GiB) lets a daemon's RSS grow with its index; the
            // hot part of an index is far smaller, and the OS caches the rest.
            .cache_capacity(64 << 20)
            // Records become durable only on `flush`, which the engine calls after
            // the layers they name are synced: never a record without its content.
            .flush_every_ms(None)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                    OpenFailure::InUse(format!("root in use by another buildd ({io})"))
                }
                other => OpenFailure::Unusable(other.to_string()),
            })?;
        match db.get(VERSION_KEY) {
            Ok(Some(v)) if v.as_ref() == FORMAT_VERSION => {}
            Ok(Some(v)) => {
                return Err(OpenFailure::Unusable(format!(
                    "format version {:?}, expected {:?}",
                    String::from_utf8_lossy(&v),
                    String::from_utf8_lossy(FORMAT_VERSION)
                )));
            }
            Ok(None) if db.is_empty() && db.tree_names().len() <= 1 => {
                db.insert(VERSION_KEY, FORMAT_VERSION)
                    .map_err(|e| OpenFailure::Unusable(e.to_string()))?;
            }
            Ok(None) => return Err(OpenFailure::Unusable("no format version".to_owned())),
            Err(e) => return Err(OpenFailure::Unusable(e.to_string())),
        }
        let trees = Table::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| OpenFailure::Unusable(e.to_string()))?;
        Ok(Self { db, trees })
    }

    fn tree(&self, table: Table) -> &sled::Tree {
        let i = Table::ALL.iter().position(|t| *t == table).expect("listed");
        &self.trees[i]
    }
}

#[derive(Debug)]
enum OpenFailure {
    InUse(String),
    Unusable(String),
}

impl std::fmt::Display for OpenFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenFailure::InUse(m) | OpenFailure::Unusable(m) => f.write_str(m),
        }
    }
}

fn aside_path(path: &Path) -> PathBuf {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".corrupt-{secs}-{}", std::process::id()));
    path.with_file_name(name)
}

impl CacheIndex for SledIndex {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, IndexError> {
        Ok(self
            .tree(table)
            .get(key)
            .map_err(storage)?
            .map(|v| v.to_vec()))
    }

    fn put(&self, table: Table, key: &[u8], value: &[u8]) -> Result<(), IndexError> {
        self.tree(table).insert(key, value).map_err(storage)?;
        Ok(())
    }

    fn remove(&self, table: Table, key: &[u8]) -> Result<(), IndexError> {
        self.tree(table).remove(key).map_err(storage)?;
        Ok(())
    }

    fn len(&self, table: Table) -> usize {
        self.tree(table).len()
    }

    fn entries(&self, table: Table) -> Result<Vec<Record>, IndexError> {
        self.tree(table)
            .iter()
            .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(storage))
            .collect()
    }

    fn write_batch(
        &self,
        batch: &mut dyn Iterator<Item = BatchItem<'_>>,
    ) -> Result<(), IndexError> {
        // Applied per tree in key order: far fewer node rewrites than one insert
        // at a time for the thousands of records a big build flushes.
        let mut per_table: Vec<sled::Batch> =
            Table::ALL.iter().map(|_| sled::Batch::default()).collect();
        for (table, key, value) in batch {
            let i = Table::ALL.iter().position(|t| *t == table).expect("listed");
            match value {
                Some(v) => per_table[i].insert(key, v),
                None => per_table[i].remove(key),
            }
        }
        for (i, b) in per_table.into_iter().enumerate() {
            self.trees[i].apply_batch(b).map_err(storage)?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), IndexError> {
        self.db.flush().map_err(storage)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meets_contract_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        {
            let index = SledIndex::open(&path).unwrap();
            crate::cache::tests::exercise(&index);
            index.put(Table::Results, b"keep", b"me").unwrap();
            index.flush().unwrap();
        }
        let index = SledIndex::open(&path).unwrap();
        assert_eq!(
            index.get(Table::Results, b"keep").unwrap().as_deref(),
            Some(&b"me"[..])
        );
    }

    #[test]
    fn corrupt_index_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(
            path.join("conf"),
            b"\xff\xfe garbage that is not a sled config",
        )
        .unwrap();
        std::fs::write(path.join("db"), vec![0xa5; 4096]).unwrap();
        let index = SledIndex::open(&path).unwrap();
        index.put(Table::Results, b"k", b"v").unwrap();
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("index.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
    }

    #[test]
    fn other_format_version_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        {
            let db = sled::open(&path).unwrap();
            db.insert(VERSION_KEY, b"buildd-index-0".as_slice())
                .unwrap();
            db.flush().unwrap();
        }
        let index = SledIndex::open(&path).unwrap();
        assert_eq!(index.len(Table::Results), 0);
        assert!(std::fs::read_dir(dir.path()).unwrap().count() >= 2);
    }
}
