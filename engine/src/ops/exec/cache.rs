//! Cache mounts (`RUN --mount=type=cache`) and their sharing modes.
//!
//! A cache id may have several instances, each a persistent directory. As in
//! BuildKit, a run takes an instance that no other run holds, and when all are
//! held: `private` makes a new empty instance (kept for later runs), `locked` waits
//! for one to be released, and `shared` joins the instance other `shared` runs
//! hold, or else behaves like `private`.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use buildd_proto::llb::{CacheOpt, CacheSharingOpt, Mount, MountType};
use sha2::{Digest as _, Sha256};
use tokio::sync::Notify;

use crate::solver::OpError;

/// The directory of instance `n` of cache `id`. Instance 0 keeps the path of
/// the time when a cache had one instance only.
pub(super) fn instance_dir(root: &Path, id: &str, n: usize) -> PathBuf {
    let name = hex::encode(Sha256::digest(id.as_bytes()));
    let name = if n == 0 { name } else { format!("{name}-{n}") };
    root.join("cache-mounts").join(name)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    Free,
    Shared(usize),
    Exclusive,
}

/// Which instances of each cache id the runs of this process hold. The root's
/// lock keeps other processes out, so this is all the holding there is.
#[derive(Default)]
pub(super) struct CacheMounts {
    held: Mutex<HashMap<String, Vec<Holder>>>,
    released: Notify,
}

/// An instance held by a run, released when dropped.
pub(super) struct CacheLease {
    mounts: Arc<CacheMounts>,
    id: String,
    pub(super) instance: usize,
}

impl Drop for CacheLease {
    fn drop(&mut self) {
        {
            let mut held = self.mounts.held.lock().unwrap();
            if let Some(h) = held
                .get_mut(&self.id)
                .and_then(|v| v.get_mut(self.instance))
            {
                *h = match *h {
                    Holder::Shared(n) if n > 1 => Holder::Shared(n - 1),
                    _ => Holder::Free,
                };
            }
        }
        self.mounts.released.notify_waiters();
    }
}

impl CacheMounts {
    /// Takes an instance of cache `id` as `sharing` says, waiting for `locked`.
    async fn acquire(
        self: &Arc<Self>,
        root: &Path,
        id: &str,
        sharing: CacheSharingOpt,
    ) -> CacheLease {
        loop {
            // Registered before looking, so a release in between still wakes us.
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Some(instance) = self.try_acquire(root, id, sharing) {
                return CacheLease {
                    mounts: self.clone(),
                    id: id.to_owned(),
                    instance,
                };
            }
            released.await;
        }
    }

    fn try_acquire(&self, root: &Path, id: &str, sharing: CacheSharingOpt) -> Option<usize> {
        let mut held = self.held.lock().unwrap();
        let held = held.entry(id.to_owned()).or_default();
        if sharing == CacheSharingOpt::CacheSharingShared
            && let Some(i) = held.iter().position(|h| matches!(h, Holder::Shared(_)))
        {
            let Holder::Shared(n) = held[i] else {
                unreachable!()
            };
            held[i] = Holder::Shared(n + 1);
            return Some(i);
        }
        let free = held
            .iter()
            .position(|h| *h == Holder::Free)
            .unwrap_or(held.len());
        let busy = held.iter().any(|h| *h != Holder::Free);
        // A free instance that exists is taken in every mode; a new one is made
        // unless the run must wait for a held one.
        let exists = instance_dir(root, id, free).is_dir();
        if sharing == CacheSharingOpt::CacheSharingLocked && busy && !exists {
            return None;
        }
        if free == held.len() {
            held.push(Holder::Free);
        }
        held[free] = match sharing {
            CacheSharingOpt::CacheSharingShared => Holder::Shared(1),
            _ => Holder::Exclusive,
        };
        Some(free)
    }
}

/// The instances a run's cache mounts use, by mount index, and the leases that
/// hold them until the run ends.
pub(super) struct RunCaches {
    pub(super) instances: BTreeMap<usize, usize>,
    /// Each cache mount's identity (see [`identity`]), by mount index.
    pub(super) ids: BTreeMap<usize, String>,
    _leases: Vec<CacheLease>,
}

impl RunCaches {
    /// Acquires an instance for every cache mount of a run. Mounts of one id
    /// share a lease (the strictest mode among them wins) except `private` ones,
    /// which get one each; ids are taken in order, so runs cannot deadlock.
    /// `from_keys` gives, by input index, the cache key of each input: a mount
    /// seeded `from=` another stage is a cache of that content.
    pub(super) async fn acquire(
        mounts: &Arc<CacheMounts>,
        root: &Path,
        all: &[Mount],
        from_keys: &[buildd_proto::Digest],
    ) -> Self {
        let mut wanted: BTreeMap<String, (CacheSharingOpt, Vec<usize>)> = BTreeMap::new();
        let mut private: Vec<(String, usize)> = Vec::new();
        let mut ids = BTreeMap::new();
        for (i, m) in all.iter().enumerate() {
            if m.mount_type() != MountType::Cache {
                continue;
            }
            let from = usize::try_from(m.input).ok().and_then(|j| from_keys.get(j));
            let (id, sharing) = id_and_sharing(m, from);
            ids.insert(i, id.clone());
            if sharing == CacheSharingOpt::CacheSharingPrivate {
                private.push((id, i));
                continue;
            }
            let entry = wanted.entry(id).or_insert((sharing, Vec::new()));
            if sharing == CacheSharingOpt::CacheSharingLocked {
                entry.0 = sharing;
            }
            entry.1.push(i);
        }
        let mut run = RunCaches {
            instances: BTreeMap::new(),
            ids,
            _leases: Vec::new(),
        };
        // Private mounts never wait, so where they go in the order does not matter.
        for (id, i) in private {
            let lease = mounts
                .acquire(root, &id, CacheSharingOpt::CacheSharingPrivate)
                .await;
            run.instances.insert(i, lease.instance);
            run._leases.push(lease);
        }
        for (id, (sharing, indexes)) in wanted {
            let lease = mounts.acquire(root, &id, sharing).await;
            run.instances
                .extend(indexes.into_iter().map(|i| (i, lease.instance)));
            run._leases.push(lease);
        }
        run
    }
}

/// A cache mount's identity and sharing mode. The identity is its id (its
/// target when it names none) together with the owner and mode it asks for:
/// as in the reference BuildKit, whose frontend makes those a base of the cache,
/// mounts of one id with other `uid`/`gid`/`mode` options are other caches
/// (tests/parity/cases/cache-mount-identity).
/// A mount seeded `from=` another stage is, as in BuildKit, a cache of that
/// content: its identity names the input's cache key and the source path.
pub(super) fn id_and_sharing(
    m: &Mount,
    from: Option<&buildd_proto::Digest>,
) -> (String, CacheSharingOpt) {
    let mut id = identity(m);
    if let Some(key) = from {
        id.push_str(&format!(";from={key};source={}", m.selector));
    }
    let sharing = m
        .cache_opt
        .as_ref()
        .map_or(CacheSharingOpt::CacheSharingShared, |o| o.sharing());
    (id, sharing)
}

/// See [`id_and_sharing`]; without the `from=` part, which only a run knows.
pub(crate) fn identity(m: &Mount) -> String {
    let id = match &m.cache_opt {
        Some(opt) if !opt.id.is_empty() => opt.id.as_str(),
        _ => m.dest.as_str(),
    };
    match &m.cache_opt {
        Some(o) if o.uid.is_some() || o.gid.is_some() || o.mode.is_some() => {
            let n = |v: Option<u32>| v.map_or("-".to_owned(), |v| v.to_string());
            let mode = o.mode.map_or("-".to_owned(), |m| format!("{m:o}"));
            format!("{id};uid={};gid={};mode={mode}", n(o.uid), n(o.gid))
        }
        _ => id.to_owned(),
    }
}

/// A cache mount's content from an imported cache (`cache-mounts=true`), laid
/// into an instance when it is made.
#[derive(Debug, Clone)]
pub(crate) struct CacheSeed {
    /// The layer blob, in the content store.
    pub blob: PathBuf,
    pub compression: buildd_oci::Compression,
    pub diff_id: buildd_proto::Digest,
}

/// The directory of instance `n` of cache `id`, made with the owner and mode the
/// first mount asks for, holding `seed`'s files when given.
pub(super) fn cache_dir(
    root: &Path,
    id: &str,
    n: usize,
    opt: &CacheOpt,
    seed: Option<&CacheSeed>,
    from_dir: Option<&Path>,
) -> Result<PathBuf, OpError> {
    // Creation and set-up are one step for the runs of this process, and the
    // root's lock keeps other processes out.
    static CREATING: Mutex<()> = Mutex::new(());
    let dir = instance_dir(root, id, n);
    let _creating = CREATING.lock().unwrap();
    if dir.is_dir() {
        return Ok(dir);
    }
    let fail =
        |e: std::io::Error| OpError::new(format!("cache mount {id:?} at {}: {e}", dir.display()));
    let parent = dir.parent().expect("joined");
    fs::create_dir_all(parent).map_err(fail)?;
    let tmp = parent.join(format!(
        ".new-{}",
        dir.file_name().expect("joined").to_string_lossy()
    ));
    let _ = fs::remove_dir_all(&tmp); // left by a crash
    fs::create_dir(&tmp).map_err(fail)?;
    let made =
        std::os::unix::fs::chown(&tmp, Some(opt.uid.unwrap_or(0)), Some(opt.gid.unwrap_or(0)))
            .and_then(|()| {
                fs::set_permissions(
                    &tmp,
                    fs::Permissions::from_mode(opt.mode.unwrap_or(0o755) & 0o7777),
                )
            })
            .and_then(|()| {
                if let Some(from) = from_dir {
                    // A `from=` mount starts as the content of its stage.
                    for entry in fs::read_dir(from)? {
                        let entry = entry?;
                        fs::rename(entry.path(), tmp.join(entry.file_name()))?;
                    }
                } else if let Some(seed) = seed {
                    plant(seed, id, &tmp);
                }
                fs::rename(&tmp, &dir)
            });
    if let Err(e) = made {
        let _ = fs::remove_dir(&tmp);
        return Err(fail(e));
    }
    Ok(dir)
}

/// Unpacks `seed` into the new instance `dir`. A seed that cannot be read or
/// is not what its cache says is a warning: the mount starts empty, as it would
/// without the import (its content is never part of a result's key).
fn plant(seed: &CacheSeed, id: &str, dir: &Path) {
    let unpacked = fs::File::open(&seed.blob)
        .map_err(|e| e.to_string())
        .and_then(|f| {
            buildd_oci::unpack_layer(std::io::BufReader::new(f), seed.compression, dir)
                .map_err(|e| e.to_string())
        })
        .and_then(|diff_id| match diff_id == seed.diff_id {
            true => Ok(()),
            false => Err(format!(
                "its content is {diff_id}, the cache says {}",
                seed.diff_id
            )),
        });
    if let Err(e) = unpacked {
        tracing::warn!("cache mount {id:?}: not seeded from the imported cache: {e}");
        if let Ok(entries) = fs::read_dir(dir) {
            for entry in entries.flatten() {
                let p = entry.path();
                let _ = match entry.file_type().is_ok_and(|t| t.is_dir()) {
                    true => fs::remove_dir_all(&p),
                    false => fs::remove_file(&p),
                };
            }
        }
    }
}

/// Content for the cache mounts of `exec` whose instance does not exist yet,
/// from the build's imported caches (`cache-mounts=true`), blobs fetched now.
/// A seed that cannot be fetched is a warning: the mount starts empty.
pub(super) async fn seeds(
    root: &crate::root::Root,
    caches: &RunCaches,
    ctx: &crate::solver::BuildCtx,
) -> BTreeMap<usize, CacheSeed> {
    let mut seeds = BTreeMap::new();
    let Some(imports) = &ctx.cache_imports else {
        return seeds;
    };
    for (&i, &n) in &caches.instances {
        let id = &caches.ids[&i];
        if instance_dir(&root.path, id, n).exists() {
            continue;
        }
        match imports.cache_mount_seed(root, id).await {
            Ok(Some(seed)) => {
                seeds.insert(i, seed);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("cache mount {id:?}: not seeded from the imported cache: {e}"),
        }
    }
    seeds
}

/// Whether instance `n` of cache `id` exists yet.
pub(super) fn instance_exists(root: &Path, id: &str, n: usize) -> bool {
    instance_dir(root, id, n).exists()
}

/// The directory a cache id's first instance lives in (what `cache-mounts=true`
/// exports).
pub(crate) fn exported_dir(root: &Path, id: &str) -> PathBuf {
    instance_dir(root, id, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SHARED: CacheSharingOpt = CacheSharingOpt::CacheSharingShared;
    const PRIVATE: CacheSharingOpt = CacheSharingOpt::CacheSharingPrivate;
    const LOCKED: CacheSharingOpt = CacheSharingOpt::CacheSharingLocked;

    fn made(root: &Path, n: usize) {
        fs::create_dir_all(instance_dir(root, "k", n)).unwrap();
    }

    #[tokio::test]
    async fn private_runs_get_free_instances_and_make_new_ones() {
        let root = tempfile::tempdir().unwrap();
        let m = Arc::new(CacheMounts::default());
        let a = m.acquire(root.path(), "k", PRIVATE).await;
        let b = m.acquire(root.path(), "k", PRIVATE).await;
        assert_eq!((a.instance, b.instance), (0, 1));
        // Shared joins no private holder: it takes a new instance too.
        let s1 = m.acquire(root.path(), "k", SHARED).await;
        let s2 = m.acquire(root.path(), "k", SHARED).await;
        assert_eq!((s1.instance, s2.instance), (2, 2));
        drop(a);
        // A released instance is reused before anything new is made.
        let c = m.acquire(root.path(), "k", PRIVATE).await;
        assert_eq!(c.instance, 0);
        drop((b, c, s1, s2));
        let d = m.acquire(root.path(), "other", PRIVATE).await;
        assert_eq!(d.instance, 0);
    }

    #[tokio::test]
    async fn locked_waits_only_when_every_instance_is_held() {
        let root = tempfile::tempdir().unwrap();
        let m = Arc::new(CacheMounts::default());
        made(root.path(), 0);
        let first = m.acquire(root.path(), "k", LOCKED).await;
        let waiting = {
            let (m, root) = (m.clone(), root.path().to_owned());
            tokio::spawn(async move { m.acquire(&root, "k", LOCKED).await.instance })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "a locked run must wait for the holder"
        );
        drop(first);
        let got = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, 0);

        // With a second instance on disk, a locked run takes it instead of waiting.
        made(root.path(), 1);
        let _a = m.acquire(root.path(), "k", LOCKED).await;
        let b = tokio::time::timeout(Duration::from_secs(5), m.acquire(root.path(), "k", LOCKED))
            .await
            .unwrap();
        assert_eq!(b.instance, 1);
    }

    #[test]
    fn instance_zero_keeps_the_single_instance_path() {
        let root = Path::new("/r");
        let zero = instance_dir(root, "k", 0);
        assert_eq!(zero.parent().unwrap(), Path::new("/r/cache-mounts"));
        assert_eq!(
            instance_dir(root, "k", 2)
                .file_name()
                .unwrap()
                .to_string_lossy(),
            format!("{}-2", zero.file_name().unwrap().to_string_lossy())
        );
    }
}
