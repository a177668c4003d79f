//! The server side of the incremental upload of a client directory.
//!
//! The daemon keeps one mirror per client directory (the client's local key) under
//! `<root>/contexts/<sha256 of key>/`. A sync asks the client for its listing
//! (already filtered by the include, exclude and follow patterns the daemon sent),
//! compares it with the mirror (type, mode, owner, size, mtime, link target), asks
//! only for the files that differ, writes them under temporary names and renames
//! them in place, removes what the client no longer lists, and applies modes,
//! symlinks and empty directories. The mirror then equals the listing.
//!
//! Builds read a mirror while holding its lock shared; a sync that must change it
//! takes the lock exclusively, so a mirror never changes under a running build.
//! Concurrent syncs of the same directory with the same content change it once
//! and then build side by side.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use buildd_proto::control::{FileRequest, Stat, SyncRequest, TransferStats, server_message::Msg};
use sha2::{Digest as _, Sha256};
use tokio::sync::{OwnedRwLockReadGuard, RwLock};
use tokio::task::block_in_place;

use crate::durability::Durability;
use crate::mirror::{Changes, Kind, Listing, Mirror, MirrorError, PendingFile, kind};
use crate::session::{Answer, Session, SessionError};

/// Most entries one listing may have by default (`--max-context-files`); a
/// listing for a Dockerfile fetch always has this cap.
pub const MAX_ENTRIES: usize = 1_000_000;
/// Files received at once (their chunks may interleave).
const MAX_OPEN_FILES: usize = 128;
/// Indexes per file request, so one message stays small.
const FILES_PER_REQUEST: usize = 4096;
/// File chunks written in one trip to a blocking thread, at most.
const ANSWERS_PER_BATCH: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("local {name:?}: {source}")]
    Invalid { name: String, source: MirrorError },
    #[error("local {name:?}: the listing has more than {limit} entries ({cap})")]
    TooMany {
        name: String,
        limit: usize,
        cap: &'static str,
    },
    #[error(
        "local {name:?}: the build needs {size} bytes of file content, over the cap of {limit} \
         bytes per build (--max-context-bytes)"
    )]
    TooMuchContent { name: String, size: u64, limit: u64 },
    #[error("local {name:?}: {path}: more bytes sent than the {listed} its listing announced")]
    LongerThanListed {
        name: String,
        path: String,
        listed: u64,
    },
    #[error("local {name:?}: {message}")]
    Protocol { name: String, message: String },
    #[error("local {name:?}: {source}")]
    Mirror { name: String, source: MirrorError },
    #[error("local {name:?}: {path} is larger than {limit} bytes")]
    TooLarge {
        name: String,
        path: String,
        limit: u64,
    },
}

impl SyncError {
    /// Whether the client sent something the daemon refuses, as opposed to the
    /// daemon failing.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Self::Invalid { .. }
                | Self::TooMany { .. }
                | Self::TooMuchContent { .. }
                | Self::LongerThanListed { .. }
                | Self::Protocol { .. }
                | Self::TooLarge { .. }
        )
    }
}

/// What to list: a local source and the patterns that select from it.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub name: String,
    pub include_patterns: Vec<String>,
    pub exclude_patterns: Vec<String>,
    pub follow_paths: Vec<String>,
}

/// What one build may upload from its client.
#[derive(Debug, Clone, Copy)]
pub struct ContextLimits {
    /// Entries one listing may have.
    pub max_files: usize,
    /// File content received over all the build's syncs.
    pub max_bytes: u64,
}

impl Default for ContextLimits {
    fn default() -> Self {
        Self {
            max_files: MAX_ENTRIES,
            max_bytes: crate::daemon::DEFAULT_MAX_CONTEXT_BYTES,
        }
    }
}

/// `<root>/contexts/<sha256 of key>`: the mirror of the client directory `key`.
pub fn mirror_dir(root: &Path, key: &str) -> PathBuf {
    root.join("contexts")
        .join(hex::encode(Sha256::digest(key.as_bytes())))
}

/// The locks of one mirror directory.
#[derive(Default)]
pub struct MirrorLock {
    /// Builds hold it shared; changing the mirror holds it exclusively.
    rw: Arc<RwLock<()>>,
    /// Held by the one sync deciding to change the mirror.
    change: tokio::sync::Mutex<()>,
    /// The last change is complete but maybe not on disk yet: the marker is
    /// still there, and means "not durable", not "cut short" (see
    /// [`Durability`](crate::durability::Durability)).
    unsynced: AtomicBool,
    /// The listing (and its digest) the mirror matched when last synced by this
    /// process. Only syncs change a mirror, and each clears this first, so a sync
    /// compares the client's listing with this one instead of scanning the disk.
    matched: Mutex<Option<Matched>>,
    /// When `get` last handed this out (a tick of `NEXT_USE`).
    used: AtomicU64,
}

/// Idle mirrors whose listings stay remembered, at most.
const MAX_REMEMBERED: usize = 16;
static NEXT_USE: AtomicU64 = AtomicU64::new(0);

impl MirrorLock {
    /// Syncs the filesystem holding the mirror at `dir` and removes its marker,
    /// unless the mirror is durable already.
    pub(crate) async fn make_durable(&self, dir: &Path) -> std::io::Result<()> {
        // No sync changes the mirror between the flush and the unmarking.
        let _changing = self.change.lock().await;
        if !self.unsynced.load(Ordering::Acquire) {
            return Ok(());
        }
        let (dir, marker) = (dir.to_owned(), syncing_marker(dir));
        tokio::task::spawn_blocking(move || {
            // The parent: a pruned mirror is gone, its directory of mirrors is not.
            buildd_fsutil::dirfd::syncfs(dir.parent().unwrap_or(&dir))?;
            match std::fs::remove_file(&marker) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        })
        .await
        .map_err(std::io::Error::other)??;
        self.unsynced.store(false, Ordering::Release);
        Ok(())
    }
}

/// What a mirror is known to hold: the listing of its last sync.
struct Matched {
    digest: [u8; 32],
    listing: Arc<Listing>,
    /// Names the mirror's content in this process: it changes whenever the
    /// mirror does (see `BuildCtx::local_versions`).
    version: u64,
}

/// Mirror versions, unique in this process.
static NEXT_VERSION: AtomicU64 = AtomicU64::new(1);

impl MirrorLock {
    fn matched(&self) -> Option<([u8; 32], Arc<Listing>)> {
        let m = self.matched.lock().unwrap();
        m.as_ref().map(|m| (m.digest, m.listing.clone()))
    }

    /// Records that the mirror matches `listing`, and returns its version: the
    /// one it had if it was known to match a listing already (nothing changed it
    /// since: every change clears this first), else a new one.
    fn set_matched(&self, digest: [u8; 32], listing: Arc<Listing>) -> u64 {
        let mut matched = self.matched.lock().unwrap();
        let version = match &*matched {
            Some(m) => m.version,
            None => NEXT_VERSION.fetch_add(1, Ordering::Relaxed),
        };
        *matched = Some(Matched {
            digest,
            listing,
            version,
        });
        version
    }

    fn clear_matched(&self) {
        *self.matched.lock().unwrap() = None;
    }
}

/// One lock per mirror directory.
#[derive(Default)]
pub struct MirrorLocks {
    locks: Mutex<HashMap<PathBuf, Arc<MirrorLock>>>,
}

impl MirrorLocks {
    pub fn get(&self, dir: &Path) -> Arc<MirrorLock> {
        let mut locks = self.locks.lock().unwrap();
        // Forget locks nobody holds and nothing is known of (one per mirror on
        // disk at most), so the map does not grow forever.
        locks.retain(|_, l| {
            Arc::strong_count(l) > 1
                || Arc::strong_count(&l.rw) > 1
                || l.matched.lock().unwrap().is_some()
        });
        // A remembered listing costs memory (about 150 bytes an entry): keep the
        // most recently used ones; an idle mirror that loses its listing is
        // scanned on its next sync.
        let mut idle: Vec<_> = locks
            .values()
            .filter(|l| Arc::strong_count(l) == 1 && Arc::strong_count(&l.rw) == 1)
            .filter(|l| l.matched.lock().unwrap().is_some())
            .collect();
        if idle.len() > MAX_REMEMBERED {
            idle.sort_by_key(|l| l.used.load(Ordering::Relaxed));
            for l in &idle[..idle.len() - MAX_REMEMBERED] {
                l.clear_matched();
            }
        }
        let lock = locks.entry(dir.to_owned()).or_default().clone();
        lock.used
            .store(NEXT_USE.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        lock
    }

    /// Takes `dir`'s lock exclusively if nobody holds it (for prune, which may
    /// remove the mirror: what was known of it goes).
    pub fn try_exclusive(&self, dir: &Path) -> Option<tokio::sync::OwnedRwLockWriteGuard<()>> {
        let lock = self.get(dir);
        let guard = lock.rw.clone().try_write_owned().ok()?;
        lock.clear_matched();
        Some(guard)
    }
}

/// A mirror in use: it does not change while this lives.
pub struct SyncedMirror {
    pub dir: PathBuf,
    /// Names the mirror's content in this process, while this lives.
    pub version: u64,
    _guard: OwnedRwLockReadGuard<()>,
}

/// Lists `sel` on the client: the request id and the validated listing of at
/// most `max_entries` entries (`cap` names that limit in the error).
pub async fn list(
    session: &Session,
    sel: &Selection,
    max_entries: usize,
    cap: &'static str,
) -> Result<(u64, Listing), SyncError> {
    let id = session.next_id();
    let mut answers = session
        .request(
            id,
            Msg::Sync(SyncRequest {
                id,
                name: sel.name.clone(),
                include_patterns: sel.include_patterns.clone(),
                exclude_patterns: sel.exclude_patterns.clone(),
                follow_paths: sel.follow_paths.clone(),
            }),
        )
        .await?;
    let mut stats = Vec::new();
    loop {
        let Answer::Stats(chunk) = answers.next().await? else {
            return Err(answers.unexpected().into());
        };
        if stats.len() + chunk.stats.len() > max_entries {
            return Err(SyncError::TooMany {
                name: sel.name.clone(),
                limit: max_entries,
                cap,
            });
        }
        stats.extend(chunk.stats);
        if chunk.last {
            break;
        }
    }
    let listing = Listing::new(stats).map_err(|source| SyncError::Invalid {
        name: sel.name.clone(),
        source,
    })?;
    Ok((id, listing))
}

/// Makes the mirror at `dir` equal to the client's listing of `sel` and returns
/// it locked for reading, with what went over the wire. `progress` gets (bytes
/// received, bytes to receive). The build already received `received` bytes in
/// earlier syncs; with this one it may not pass `limits.max_bytes`, which is
/// checked before the mirror changes.
#[allow(clippy::too_many_arguments)]
pub async fn sync(
    session: &Session,
    locks: &MirrorLocks,
    durability: &Durability,
    dir: &Path,
    sel: &Selection,
    limits: &ContextLimits,
    received: u64,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<(SyncedMirror, TransferStats), SyncError> {
    let (list_id, listing) = list(
        session,
        sel,
        limits.max_files,
        "the cap set by --max-context-files",
    )
    .await?;
    let mirror_err = |source| SyncError::Mirror {
        name: sel.name.clone(),
        source,
    };
    let mut stats = TransferStats {
        entries_listed: listing.stats.len() as u64,
        ..Default::default()
    };
    let lock = locks.get(dir);
    let listing = Arc::new(listing);
    let listed = listing.digest();
    // What makes the mirror match: from the listing this process last synced it
    // to when there is one (nothing to read but that the mirror is still there:
    // prune removes unused ones), else from a scan of the disk.
    // The last answer, with the listing it compared against: the check after
    // taking the change lock reuses it when no sync came in between.
    let last: Mutex<Option<(Arc<Listing>, Arc<Changes>)>> = Mutex::new(None);
    let changes_needed = || -> Result<Arc<Changes>, SyncError> {
        let (digest, held) = match lock.matched() {
            Some(matched) if dir.is_dir() => matched,
            _ => {
                *last.lock().unwrap() = None;
                let changes = block_in_place(|| crate::mirror::diff(dir, &listing));
                return changes.map(Arc::new).map_err(mirror_err);
            }
        };
        if digest == listed {
            return Ok(Arc::default());
        }
        let mut last = last.lock().unwrap();
        if let Some((basis, changes)) = &*last
            && Arc::ptr_eq(basis, &held)
        {
            return Ok(changes.clone());
        }
        let changes = Arc::new(block_in_place(|| {
            crate::mirror::diff_listings(&held, &listing)
        }));
        *last = Some((held, changes.clone()));
        Ok(changes)
    };
    // Most syncs change nothing: check that under the shared lock, so builds of
    // the same directory run side by side.
    let unchanged = async || -> Result<Option<(OwnedRwLockReadGuard<()>, u64)>, SyncError> {
        let read = lock.rw.clone().read_owned().await;
        let same = changes_needed()?.is_empty()
            // An empty listing diffs clean against no directory at all, but the
            // build still needs the (empty) mirror to exist.
            && dir.is_dir()
            && (lock.unsynced.load(Ordering::Acquire) || !syncing_marker(dir).exists());
        Ok(same.then(|| (read, lock.set_matched(listed, listing.clone()))))
    };
    let done = |(guard, version)| {
        Ok((
            SyncedMirror {
                dir: dir.to_owned(),
                version,
                _guard: guard,
            },
            stats,
        ))
    };
    if let Some(read) = unchanged().await? {
        return done(read);
    }
    // One changer at a time; a sync that waited here may find the mirror already
    // as it needs it (a concurrent build of the same directory), and then must not
    // wait for that build to end.
    let _changing = lock.change.lock().await;
    if let Some(read) = unchanged().await? {
        return done(read);
    }
    let write = lock.rw.clone().write_owned().await;
    let marker = syncing_marker(dir);
    // A sync cut short (crash) may have left files whose metadata says more than
    // their data: start that mirror over. A marker of a complete change that is
    // not durable yet is not that.
    if marker.exists() && !lock.unsynced.load(Ordering::Acquire) {
        lock.clear_matched();
        let _ = block_in_place(|| std::fs::remove_dir_all(dir));
    }
    let changes = changes_needed()?;
    // From here until the sync completes, the mirror is not what any listing says.
    lock.clear_matched();
    let total: u64 = changes
        .fetch
        .iter()
        .fold(0u64, |sum, &i| sum.saturating_add(listing.stats[i].size));
    // Refused before anything changes, so the mirror stays usable.
    if received.saturating_add(total) > limits.max_bytes {
        return Err(SyncError::TooMuchContent {
            name: sel.name.clone(),
            size: received.saturating_add(total),
            limit: limits.max_bytes,
        });
    }
    let mirror = block_in_place(|| {
        std::fs::create_dir_all(dir.parent().unwrap_or(dir))
            .and_then(|()| std::fs::write(&marker, b""))
            .map_err(|source| MirrorError::Io {
                dir: dir.to_owned(),
                path: String::new(),
                source,
            })?;
        Mirror::open(dir)
    })
    .map_err(mirror_err)?;
    block_in_place(|| apply_tree(&mirror, &listing, &changes)).map_err(mirror_err)?;
    progress(0, total);
    receive(
        session,
        list_id,
        &listing,
        &changes.fetch,
        &mut stats,
        sel,
        |i, s| mirror.begin_file(i, s),
        |p, s| mirror.commit_file(p, s),
        &|done| progress(done, total),
    )
    .await?;
    block_in_place(|| mirror.finish_dirs(&listing)).map_err(mirror_err)?;
    // The marker goes once the files are on disk, in the background: a crash
    // before that starts the mirror over, it can never leave one that looks
    // complete and is not.
    lock.unsynced.store(true, Ordering::Release);
    durability.mirror_changed(dir, lock.clone());
    let version = lock.set_matched(listed, listing.clone());
    Ok((
        SyncedMirror {
            dir: dir.to_owned(),
            version,
            _guard: write.downgrade(),
        },
        stats,
    ))
}

fn syncing_marker(dir: &Path) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(".syncing");
    PathBuf::from(name)
}

fn apply_tree(mirror: &Mirror, listing: &Listing, changes: &Changes) -> Result<(), MirrorError> {
    for path in &changes.remove {
        mirror.remove(path)?;
    }
    for &i in &changes.make {
        mirror.make(&listing.stats[i])?;
    }
    Ok(())
}

/// Requests the files `wanted` (indexes into the listing `list_id`) and hands
/// their content to `begin`/`commit`.
#[allow(clippy::too_many_arguments)]
async fn receive<P, B, C>(
    session: &Session,
    list_id: u64,
    listing: &Listing,
    wanted: &[usize],
    stats: &mut TransferStats,
    sel: &Selection,
    begin: B,
    commit: C,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(), SyncError>
where
    P: FileSink,
    B: Fn(usize, &Stat) -> Result<P, MirrorError>,
    C: Fn(P, &Stat) -> Result<u64, MirrorError>,
{
    let protocol = |message: String| SyncError::Protocol {
        name: sel.name.clone(),
        message,
    };
    let mirror_err = |source| SyncError::Mirror {
        name: sel.name.clone(),
        source,
    };
    for batch in wanted.chunks(FILES_PER_REQUEST) {
        let id = session.next_id();
        let indexes: Vec<u32> = batch.iter().map(|&i| i as u32).collect();
        let mut answers = session
            .request(
                id,
                Msg::Files(FileRequest {
                    id,
                    request_id: list_id,
                    indexes: indexes.clone(),
                }),
            )
            .await?;
        let mut open: HashMap<u32, P> = HashMap::new();
        let mut left: std::collections::HashSet<u32> = indexes.into_iter().collect();
        while !left.is_empty() {
            // What has arrived goes to the disk in one trip to a blocking thread.
            let mut batch = vec![answers.next().await?];
            while batch.len() < ANSWERS_PER_BATCH
                && let Some(answer) = answers.try_next()
            {
                batch.push(answer?);
            }
            block_in_place(|| -> Result<(), SyncError> {
                for answer in batch {
                    let Answer::File(chunk) = answer else {
                        return Err(answers.unexpected().into());
                    };
                    let index = chunk.index;
                    if !left.contains(&index) {
                        return Err(protocol(format!("file {index} was not requested")));
                    }
                    let stat = &listing.stats[index as usize];
                    if !open.contains_key(&index) {
                        if open.len() >= MAX_OPEN_FILES {
                            return Err(protocol(format!(
                                "more than {MAX_OPEN_FILES} files sent at once"
                            )));
                        }
                        let sink = begin(index as usize, stat).map_err(mirror_err)?;
                        open.insert(index, sink);
                    }
                    let sink = open.get_mut(&index).expect("just inserted");
                    // What is received is bounded by what was listed (whose total the
                    // caller checked against the build's cap), checked before writing:
                    // a file that grew since its listing is sent as listed.
                    if sink.written() + chunk.data.len() as u64 > stat.size {
                        return Err(SyncError::LongerThanListed {
                            name: sel.name.clone(),
                            path: stat.path.clone(),
                            listed: stat.size,
                        });
                    }
                    sink.write(&chunk.data).map_err(|source| {
                        mirror_err(MirrorError::Io {
                            dir: PathBuf::new(),
                            path: stat.path.clone(),
                            source,
                        })
                    })?;
                    stats.bytes_sent += chunk.data.len() as u64;
                    if chunk.eof {
                        let sink = open.remove(&index).expect("just used");
                        commit(sink, stat).map_err(mirror_err)?;
                        left.remove(&index);
                        stats.files_sent += 1;
                    }
                }
                Ok(())
            })?;
            progress(stats.bytes_sent);
        }
    }
    Ok(())
}

/// Where received file content goes.
trait FileSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<()>;
    fn written(&self) -> u64;
}

impl FileSink for PendingFile {
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        PendingFile::write(self, data)
    }
    fn written(&self) -> u64 {
        PendingFile::written(self)
    }
}

impl FileSink for Vec<u8> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.extend_from_slice(data);
        Ok(())
    }
    fn written(&self) -> u64 {
        self.len() as u64
    }
}

/// Fetches the regular files `sel` lists into memory (a Dockerfile and its
/// .dockerignore), each at most `limit` bytes, by path.
pub async fn fetch_small(
    session: &Session,
    sel: &Selection,
    limit: u64,
) -> Result<BTreeMap<String, Vec<u8>>, SyncError> {
    let (list_id, listing) =
        list(session, sel, MAX_ENTRIES, "the cap on a Dockerfile fetch").await?;
    let wanted: Vec<usize> = (0..listing.stats.len())
        .filter(|&i| kind(listing.stats[i].mode) == Kind::File)
        .collect();
    if let Some(&big) = wanted.iter().find(|&&i| listing.stats[i].size > limit) {
        return Err(SyncError::TooLarge {
            name: sel.name.clone(),
            path: listing.stats[big].path.clone(),
            limit,
        });
    }
    let out = Mutex::new(BTreeMap::new());
    let mut stats = TransferStats::default();
    receive(
        session,
        list_id,
        &listing,
        &wanted,
        &mut stats,
        sel,
        |_, _| Ok(Vec::new()),
        |data: Vec<u8>, s| {
            let n = data.len() as u64;
            out.lock().unwrap().insert(s.path.clone(), data);
            Ok(n)
        },
        &|_| {},
    )
    .await?;
    if let Some((path, _)) = out
        .lock()
        .unwrap()
        .iter()
        .find(|(_, d)| d.len() as u64 > limit)
    {
        return Err(SyncError::TooLarge {
            name: sel.name.clone(),
            path: path.clone(),
            limit,
        });
    }
    Ok(out.into_inner().unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_most_recently_used_idle_listings_are_remembered() {
        let locks = MirrorLocks::default();
        let dir = |i: usize| PathBuf::from(format!("/m/{i}"));
        let empty = Arc::new(Listing::new(Vec::new()).unwrap());
        let busy = locks.get(&dir(0));
        busy.set_matched([0; 32], empty.clone());
        for i in 1..=MAX_REMEMBERED + 4 {
            locks.get(&dir(i)).set_matched([0; 32], empty.clone());
        }
        locks.get(&dir(99));
        let remembered = |i: usize| {
            let locks = locks.locks.lock().unwrap();
            locks.get(&dir(i)).is_some_and(|l| l.matched().is_some())
        };
        // The one in use keeps its listing; of the idle ones, the oldest lost theirs.
        assert!(remembered(0));
        assert!((1..=4).all(|i| !remembered(i)));
        assert!((5..=MAX_REMEMBERED + 4).all(remembered));
        // A mirror that keeps matching keeps its version.
        let v = locks.get(&dir(7)).set_matched([1; 32], empty.clone());
        assert_eq!(locks.get(&dir(7)).set_matched([2; 32], empty.clone()), v);
        locks.get(&dir(7)).clear_matched();
        assert_ne!(locks.get(&dir(7)).set_matched([2; 32], empty), v);
    }
}
