//! `blobs/sha256/<hex>`: every blob is written to `ingest/`, fsynced, checked against
//! its digest and only then renamed into place, so a crash never leaves a partial blob
//! under a real name. Exported layers skip the fsync ([`ContentStore::writer_deferred`]):
//! the record naming one is written only after a filesystem sync, and recovery
//! drops blobs no durable record names.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use buildd_proto::Digest;
use sha2::{Digest as _, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("content store {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("blob {expected}: content has digest {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob {digest}: {size} bytes, over the {cap} cap of {limit} bytes")]
    TooLarge {
        digest: Digest,
        cap: &'static str,
        limit: u64,
        size: u64,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

#[derive(Debug, Clone)]
pub struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
}

static INGEST_SEQ: AtomicU64 = AtomicU64::new(0);

impl ContentStore {
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let blobs = root.join("blobs").join("sha256");
        let ingest = root.join("ingest");
        fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
        // Leftovers of interrupted writes are never referenced: start clean.
        if ingest.exists() {
            fs::remove_dir_all(&ingest).map_err(io_err(&ingest))?;
        }
        fs::create_dir_all(&ingest).map_err(io_err(&ingest))?;
        Ok(Self { blobs, ingest })
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    /// `blobs/sha256`: one file per blob, named by its digest's hex digits.
    pub fn dir(&self) -> &Path {
        &self.blobs
    }

    /// Deletes a blob; one that is not there is not an error.
    pub fn remove(&self, digest: &Digest) -> Result<(), StoreError> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&path)(e)),
            _ => Ok(()),
        }
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    pub fn size(&self, digest: &Digest) -> Option<u64> {
        fs::metadata(self.path(digest)).ok().map(|m| m.len())
    }

    /// A whole blob in memory, refused when it is over `limit` bytes (`cap` names
    /// the limit in the error, e.g. "manifest"): only manifests and configs are
    /// read this way.
    pub fn read(
        &self,
        digest: &Digest,
        cap: &'static str,
        limit: u64,
    ) -> Result<Vec<u8>, StoreError> {
        let path = self.path(digest);
        let file = File::open(&path).map_err(io_err(&path))?;
        let size = file.metadata().map_err(io_err(&path))?.len();
        let too_large = |size| StoreError::TooLarge {
            digest: *digest,
            cap,
            limit,
            size,
        };
        if size > limit {
            return Err(too_large(size));
        }
        let mut out = Vec::with_capacity(size as usize);
        // Bounded even if the file grows after the check.
        file.take(limit + 1)
            .read_to_end(&mut out)
            .map_err(io_err(&path))?;
        if out.len() as u64 > limit {
            return Err(too_large(out.len() as u64));
        }
        Ok(out)
    }

    /// Starts writing a blob whose digest is known only at the end.
    pub fn writer(&self) -> Result<BlobWriter, StoreError> {
        let seq = INGEST_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = self.ingest.join(format!("{}-{seq}", std::process::id()));
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        Ok(BlobWriter {
            blobs: self.blobs.clone(),
            file: Some(file),
            tmp,
            hasher: Some(Sha256::new()),
            size: 0,
        })
    }

    /// A writer for a blob whose digest the caller computes over the very bytes it
    /// writes (an exported layer), and whose record goes through the write-behind
    /// index, which syncs the filesystem before it writes records: no second hash
    /// and no fsync on the build's path. [`BlobWriter::commit`] then takes the
    /// caller's digest as the name.
    pub fn writer_deferred(&self) -> Result<BlobWriter, StoreError> {
        let mut w = self.writer()?;
        w.hasher = None;
        Ok(w)
    }

    /// Removes blobs changed since `since` whose content is not their name: after
    /// a crash, blobs of [`Self::writer_deferred`] that never reached the disk
    /// whole. Returns how many went.
    pub fn drop_torn_since(&self, since: std::time::SystemTime) -> io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.blobs)? {
            let entry = entry?;
            let md = entry.metadata()?;
            let Some(digest) = entry
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
            else {
                continue;
            };
            if md.is_file()
                && md.modified()? >= since
                && digest_of(&entry.path()).map_or(true, |d| d != digest)
            {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Makes blobs committed through [`Self::writer_deferred`] durable: a sync of
    /// the filesystem holding the store.
    pub fn sync(&self) -> io::Result<()> {
        buildd_fsutil::dirfd::syncfs(&self.blobs)
    }

    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of(bytes);
        if self.contains(&digest) {
            return Ok(digest);
        }
        let mut w = self.writer()?;
        w.write_all(bytes).map_err(io_err(&self.ingest))?;
        w.commit(Some(digest)).map(|(d, _)| d)
    }

    /// Copies a stream in, verifying it against `expected`.
    pub fn put_reader(
        &self,
        mut r: impl Read,
        expected: Option<Digest>,
    ) -> Result<(Digest, u64), StoreError> {
        let mut w = self.writer()?;
        io::copy(&mut r, &mut w).map_err(io_err(&self.ingest))?;
        w.commit(expected)
    }
}

/// The sha256 of the file at `path`.
pub(crate) fn digest_of(path: &Path) -> io::Result<Digest> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(hasher.into()),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// A blob being written; dropped without `commit` it leaves nothing behind. It
/// owns what it needs, so an async caller can move it to a blocking thread for
/// the `commit` (which fsyncs).
pub struct BlobWriter {
    /// The store's `blobs/sha256`.
    blobs: PathBuf,
    file: Option<File>,
    tmp: PathBuf,
    /// None for a deferred writer: the caller names the digest, the next flush
    /// makes it durable.
    hasher: Option<Sha256>,
    size: u64,
}

impl BlobWriter {
    /// Fsyncs, checks the digest (when one is expected) and renames into place.
    pub fn commit(mut self, expected: Option<Digest>) -> Result<(Digest, u64), StoreError> {
        let result = self.finish(expected);
        if result.is_err() {
            let _ = fs::remove_file(&self.tmp);
        }
        result
    }

    fn finish(&mut self, expected: Option<Digest>) -> Result<(Digest, u64), StoreError> {
        let file = self.file.take().expect("file present until commit");
        let Some(hasher) = self.hasher.take() else {
            let digest = expected.ok_or_else(|| StoreError::Io {
                path: self.tmp.clone(),
                source: io::Error::other("a deferred blob needs the digest it is written as"),
            })?;
            drop(file);
            let dest = self.blobs.join(digest.hex());
            fs::rename(&self.tmp, &dest).map_err(io_err(&dest))?;
            return Ok((digest, self.size));
        };
        file.sync_all().map_err(io_err(&self.tmp))?;
        drop(file);
        let actual: Digest = hasher.into();
        if let Some(expected) = expected
            && expected != actual
        {
            return Err(StoreError::DigestMismatch { expected, actual });
        }
        let dest = self.blobs.join(actual.hex());
        fs::rename(&self.tmp, &dest).map_err(io_err(&dest))?;
        // Make the rename itself durable.
        if let Ok(dir) = File::open(&self.blobs) {
            let _ = dir.sync_all();
        }
        Ok((actual, self.size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.as_mut().expect("open").write(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("open").flush()
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deferred_blobs_are_named_by_the_caller_and_torn_ones_go_at_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let since = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
        let write = |bytes: &[u8]| {
            let mut w = store.writer_deferred().unwrap();
            w.write_all(bytes).unwrap();
            w.commit(Some(Digest::of(bytes))).unwrap().0
        };
        let (whole, torn) = (write(b"whole"), write(b"torn"));
        // What a crash before the flush may leave: the name, not the bytes.
        fs::write(store.path(&torn), b"\0\0\0\0").unwrap();
        // Without the digest a deferred blob has no name.
        assert!(store.writer_deferred().unwrap().commit(None).is_err());
        assert_eq!(store.drop_torn_since(since).unwrap(), 1);
        assert_eq!(store.size(&whole), Some(5));
        assert_eq!(store.size(&torn), None);
    }

    #[test]
    fn put_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let d = store.put_bytes(b"hello").unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        assert_eq!(store.read(&d, "test", 5).unwrap(), b"hello");
        assert_eq!(store.size(&d), Some(5));
        let err = store.read(&d, "test", 4).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("blob {d}: 5 bytes, over the test cap of 4 bytes")
        );
    }

    #[test]
    fn wrong_digest_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let wrong = Digest::of(b"other");
        let err = store.put_reader(&b"hello"[..], Some(wrong)).unwrap_err();
        assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
        assert!(!store.contains(&wrong));
        assert!(!store.contains(&Digest::of(b"hello")));
        assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0);
    }
}
