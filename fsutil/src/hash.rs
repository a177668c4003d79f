//! The content digest of a [`Selection`]: the cache key of a COPY from the context.
//!
//! For each selected root (its name included, since a copy names the result after
//! it) and each entry in order, the digest covers the path relative to the
//! selected root, the kind, mode, symlink target, device number, for a regular file
//! the sha256 of its content, and which earlier entry a file is a hard link of. It
//! leaves out times, inode numbers and sizes of directories, so the same tree checked
//! out twice hashes the same, and owners: a copy from a context makes every file
//! root:root unless it has --chown, which is part of the op and so of the key
//! already. Files are opened below the root without following any symlink. Every field is length-prefixed or
//! fixed-size, so distinct selections cannot encode to the same bytes.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use buildd_proto::Digest;
use sha2::{Digest as _, Sha256};

use crate::dirfd::{self, DirFd};
use crate::select::{Entry, EntryKind, Selection, Stamp};

/// Identifies one version of a file for a per-file hash cache: any write changes
/// the mtime, size or stamp (ctime, or the inode's birth time where files are
/// only replaced), so a changed file is simply re-hashed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StatKey {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub stamp: Stamp,
}

/// A store of file content digests, e.g. persisted by the engine across builds.
pub trait HashCache: Sync {
    fn get(&self, key: &StatKey) -> Option<Digest>;
    fn put(&self, key: &StatKey, digest: Digest);
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("cannot read {path:?}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path:?} changed while it was being hashed")]
    Changed { path: PathBuf },
}

/// The digest of `sel`, whose entries live under `root`. File contents are
/// hashed in parallel; with a `cache`, files whose [`StatKey`] it knows are not
/// read at all. `root` is part of the cache keys, so pass it in a stable form.
pub fn selection_digest(
    root: &Path,
    sel: &Selection,
    cache: Option<&dyn HashCache>,
) -> Result<Digest, HashError> {
    // Each inode's content is hashed once, however often it is selected.
    let mut inode_slot: HashMap<(u64, u64), usize> = HashMap::new();
    let mut files: Vec<&Entry> = Vec::new();
    for e in sel.roots.iter().flat_map(|r| &r.entries) {
        if e.kind == EntryKind::File {
            inode_slot.entry((e.dev, e.ino)).or_insert_with(|| {
                files.push(e);
                files.len() - 1
            });
        }
    }
    let root_fd = DirFd::open(root).map_err(|source| HashError::Io {
        path: root.to_owned(),
        source,
    })?;
    let contents = hash_files(root, &root_fd, &files, cache)?;

    let mut h = Sha256::new();
    h.update(b"buildd-fsutil selection v1\0");
    put_u64(&mut h, sel.roots.len() as u64);
    // First (root index, relative path) of each multiply linked inode.
    let mut first_link: HashMap<(u64, u64), (usize, &str)> = HashMap::new();
    for (ri, root_sel) in sel.roots.iter().enumerate() {
        put_bytes(&mut h, root_sel.rel.as_bytes());
        put_u64(&mut h, root_sel.entries.len() as u64);
        let base = root_sel.entries.first().map_or("", |e| e.rel.as_str());
        for e in &root_sel.entries {
            let rel = relative_to(&e.rel, base);
            put_bytes(&mut h, rel.as_bytes());
            h.update(e.mode.to_be_bytes());
            match &e.kind {
                EntryKind::File => {
                    h.update([b'f']);
                    h.update(contents[inode_slot[&(e.dev, e.ino)]].as_bytes());
                    let first = if e.nlink > 1 {
                        first_link.get(&(e.dev, e.ino)).copied()
                    } else {
                        None
                    };
                    match first {
                        Some((fr, fp)) => {
                            h.update([1]);
                            put_u64(&mut h, fr as u64);
                            put_bytes(&mut h, fp.as_bytes());
                        }
                        None => {
                            h.update([0]);
                            if e.nlink > 1 {
                                first_link.insert((e.dev, e.ino), (ri, rel));
                            }
                        }
                    }
                }
                EntryKind::Dir => h.update([b'd']),
                EntryKind::Symlink { target } => {
                    h.update([b'l']);
                    put_bytes(&mut h, target.as_bytes());
                }
                EntryKind::Fifo => h.update([b'p']),
                EntryKind::CharDev { rdev } => {
                    h.update([b'c']);
                    put_u64(&mut h, *rdev);
                }
                EntryKind::BlockDev { rdev } => {
                    h.update([b'b']);
                    put_u64(&mut h, *rdev);
                }
                EntryKind::Socket => h.update([b's']),
            }
        }
    }
    Ok(h.into())
}

fn relative_to<'a>(rel: &'a str, base: &str) -> &'a str {
    if rel == base {
        ""
    } else if base.is_empty() {
        rel
    } else {
        &rel[base.len() + 1..]
    }
}

fn put_u64(h: &mut Sha256, v: u64) {
    h.update(v.to_be_bytes());
}

fn put_bytes(h: &mut Sha256, b: &[u8]) {
    put_u64(h, b.len() as u64);
    h.update(b);
}

/// The content digests of `files`, in order, computed by a bounded set of threads.
fn hash_files(
    root: &Path,
    root_fd: &DirFd,
    files: &[&Entry],
    cache: Option<&dyn HashCache>,
) -> Result<Vec<Digest>, HashError> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let worker = || -> Result<Vec<(usize, Digest)>, HashError> {
        let mut done = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while !failed.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(e) = files.get(i) else { break };
            match hash_file(root, root_fd, e, cache, &mut buf) {
                Ok(d) => done.push((i, d)),
                Err(err) => {
                    failed.store(true, Ordering::Relaxed);
                    return Err(err);
                }
            }
        }
        Ok(done)
    };
    let workers = crate::workers::count(8, 1).min(files.len()).max(1);
    let parts = std::thread::scope(|s| {
        let handles: Vec<_> = (1..workers).map(|_| s.spawn(worker)).collect();
        let mut parts = vec![worker()];
        parts.extend(
            handles
                .into_iter()
                .map(|h| h.join().expect("hash worker panicked")),
        );
        parts
    });
    let mut out = vec![Digest::from_bytes([0; 32]); files.len()];
    for part in parts {
        for (i, d) in part? {
            out[i] = d;
        }
    }
    Ok(out)
}

fn hash_file(
    root: &Path,
    root_fd: &DirFd,
    e: &Entry,
    cache: Option<&dyn HashCache>,
    buf: &mut [u8],
) -> Result<Digest, HashError> {
    let key = StatKey {
        path: root.join(&e.rel),
        dev: e.dev,
        ino: e.ino,
        size: e.size,
        mtime_ns: e.mtime_ns,
        stamp: e.stamp,
    };
    if let Some(d) = cache.and_then(|c| c.get(&key)) {
        return Ok(d);
    }
    let changed = || HashError::Changed {
        path: key.path.clone(),
    };
    let io_err = |source| HashError::Io {
        path: key.path.clone(),
        source,
    };
    // No following a symlink swapped in since the walk, no blocking on a FIFO.
    let mut file = match root_fd.open_file_beneath(&e.rel) {
        Ok(f) => f,
        Err(err) if dirfd::swapped(&err) => return Err(changed()),
        Err(err) => return Err(io_err(err)),
    };
    // The digest must describe the file the walk saw, or it would be cached under
    // the wrong key.
    if !e.same_file(&file.metadata().map_err(io_err)?) {
        return Err(changed());
    }
    let mut h = Sha256::new();
    loop {
        match file.read(buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(io_err(err)),
        }
    }
    if !e.same_file(&file.metadata().map_err(io_err)?) {
        return Err(changed());
    }
    let d = Digest::from(h);
    if let Some(c) = cache {
        c.put(&key, d);
    }
    Ok(d)
}
