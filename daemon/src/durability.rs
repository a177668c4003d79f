//! Durability off the critical path. A build does not wait for the disk: it asks
//! for a flush and returns. One background task makes what builds wrote durable,
//! in the order a crash needs:
//!
//! - a context mirror's new files reach the disk before its "syncing" marker goes
//!   (a restarted daemon throws away a mirror whose marker is still there);
//! - layers reach the disk before the cache records naming them (the engine's
//!   write-behind index runs its syncfs before it writes the records).
//!
//! Requests that arrive while a flush runs are served by one more flush, so many
//! builds cost one sync, not one each. Until then a record lives in memory, where
//! every build of this daemon sees it; a crash loses it (a cache miss later), never
//! the content it names. Shutdown flushes what is left.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use buildd_engine::Engine;
use tokio::sync::Notify;

use crate::context_sync::MirrorLock;

#[derive(Default)]
pub struct Durability {
    wanted: Notify,
    /// Mirrors whose last change is complete but not yet on disk.
    mirrors: Mutex<Vec<(PathBuf, Arc<MirrorLock>)>>,
}

impl Durability {
    /// Asks for the engine's records to be made durable soon.
    pub fn request(&self) {
        self.wanted.notify_one();
    }

    /// The mirror at `dir` finished changing: its marker goes once its files are
    /// on disk.
    pub fn mirror_changed(&self, dir: &Path, lock: Arc<MirrorLock>) {
        self.mirrors.lock().unwrap().push((dir.to_owned(), lock));
        self.wanted.notify_one();
    }

    /// Flushes on request, forever: the daemon aborts it at shutdown and flushes
    /// once more itself, after the last build.
    pub async fn run(&self, engine: &Engine) {
        loop {
            self.wanted.notified().await;
            self.flush(engine).await;
        }
    }

    /// Mirrors first (their own filesystem sync), then the engine's layers and
    /// records. Failures are logged: what is not durable stays pending and the
    /// next flush tries again.
    pub async fn flush(&self, engine: &Engine) {
        let mirrors = std::mem::take(&mut *self.mirrors.lock().unwrap());
        for (dir, lock) in mirrors {
            if let Err(e) = lock.make_durable(&dir).await {
                tracing::warn!("making the context mirror {} durable: {e}", dir.display());
                // Left marked: a restart starts this mirror over, which is safe.
            }
        }
        if let Err(e) = engine.flush_async().await {
            tracing::warn!("flushing the cache index: {e}");
        }
    }
}
