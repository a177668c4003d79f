//! Per-file content hashes kept in the cache index, so a warm build reads only the
//! files whose stat changed.

use buildd_fsutil::hash::{HashCache, StatKey};
use buildd_fsutil::select::Stamp;
use buildd_proto::Digest;
use sha2::{Digest as _, Sha256};

use crate::cache::{CacheIndex, Table};

pub(crate) struct IndexHashCache<'a>(pub(crate) &'a dyn CacheIndex);

fn key(k: &StatKey) -> [u8; 32] {
    let mut h = Sha256::new();
    let path = k.path.as_os_str().as_encoded_bytes();
    h.update((path.len() as u64).to_le_bytes());
    h.update(path);
    for n in [k.dev, k.ino, k.size] {
        h.update(n.to_le_bytes());
    }
    // The stamp's kind is part of the key: a ctime and a birth time are never
    // compared with each other.
    let (kind, stamp) = match k.stamp {
        Stamp::Ctime(ns) => (0u8, ns),
        Stamp::Born(ns) => (1u8, ns),
    };
    for n in [k.mtime_ns, stamp] {
        h.update(n.to_le_bytes());
    }
    h.update([kind]);
    h.finalize().into()
}

impl HashCache for IndexHashCache<'_> {
    fn get(&self, k: &StatKey) -> Option<Digest> {
        let v = self.0.get(Table::FileHashes, &key(k)).ok()??;
        Some(Digest::from_bytes(v.try_into().ok()?))
    }

    fn put(&self, k: &StatKey, digest: Digest) {
        // A lost entry only costs a re-read next time.
        let _ = self.0.put(Table::FileHashes, &key(k), digest.as_bytes());
    }
}
