//! The daemon's copy of a client directory: comparing a client's listing with it
//! and changing it to match, confined to the mirror (every path is opened one
//! component at a time below the mirror's directory, never through a symlink).

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use buildd_fsutil::dirfd::{DirFd, timespec};
use buildd_proto::control::Stat;

use crate::paths::{self, PathError};

const S_IFMT: u32 = libc::S_IFMT;
const S_IFDIR: u32 = libc::S_IFDIR;
const S_IFREG: u32 = libc::S_IFREG;
const S_IFLNK: u32 = libc::S_IFLNK;

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("{path}: listed twice")]
    Duplicate { path: String },
    #[error("{path}: its parent is not listed as a directory before it")]
    ParentNotDir { path: String },
    #[error("mirror {dir}: {path}: {source}")]
    Io {
        dir: PathBuf,
        path: String,
        source: io::Error,
    },
}

/// What a listed entry is, from its mode's file-type bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    /// FIFOs, sockets, devices: listed by some clients, never mirrored.
    Other,
}

pub fn kind(mode: u32) -> Kind {
    match mode & S_IFMT {
        S_IFDIR => Kind::Dir,
        S_IFREG => Kind::File,
        S_IFLNK => Kind::Symlink,
        _ => Kind::Other,
    }
}

/// A validated listing: entries sorted parents first, by index into the client's
/// listing (file requests name those indexes).
pub struct Listing {
    pub stats: Vec<Stat>,
    /// Indexes into `stats`, parents before children.
    pub order: Vec<usize>,
}

impl Listing {
    /// Checks every path (see [`paths::validate`]), refuses duplicates and entries
    /// whose parent is not listed as a directory. Owners become root, as BuildKit
    /// resets them on transfer: builds never see the client's uids, and mirror files
    /// then already have the owner a COPY gives, so COPY can link them.
    pub fn new(mut stats: Vec<Stat>) -> Result<Self, MirrorError> {
        for s in &mut stats {
            s.uid = 0;
            s.gid = 0;
        }
        let mut by_path: BTreeMap<Vec<&str>, usize> = BTreeMap::new();
        for (i, s) in stats.iter().enumerate() {
            paths::validate(&s.path)?;
            if by_path.insert(s.path.split('/').collect(), i).is_some() {
                return Err(MirrorError::Duplicate {
                    path: s.path.clone(),
                });
            }
        }
        for (components, &i) in &by_path {
            if components.len() > 1
                && by_path
                    .get(&components[..components.len() - 1])
                    .is_none_or(|&p| kind(stats[p].mode) != Kind::Dir)
            {
                return Err(MirrorError::ParentNotDir {
                    path: stats[i].path.clone(),
                });
            }
        }
        let order = by_path.into_values().collect();
        Ok(Self { stats, order })
    }

    /// A digest of everything the mirror must match: each entry's path, type,
    /// mode, size, mtime and link target, in order.
    pub fn digest(&self) -> [u8; 32] {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        for &i in &self.order {
            let s = &self.stats[i];
            h.update((s.path.len() as u64).to_le_bytes());
            h.update(s.path.as_bytes());
            h.update(s.mode.to_le_bytes());
            h.update(s.size.to_le_bytes());
            h.update(s.mtime_ns.to_le_bytes());
            h.update((s.linkname.len() as u64).to_le_bytes());
            h.update(s.linkname.as_bytes());
        }
        h.finalize().into()
    }
}

/// What the mirror holds at a path.
#[derive(Debug, Clone, PartialEq)]
struct Held {
    mode: u32,
    size: u64,
    mtime_ns: i64,
    uid: u32,
    gid: u32,
    link: String,
}

/// The changes that make a mirror match a listing.
#[derive(Debug, Default)]
pub struct Changes {
    /// Mirror paths to remove (whole trees), top-most only.
    pub remove: Vec<String>,
    /// Listing indexes to create or fix, parents first, excluding file contents.
    pub make: Vec<usize>,
    /// Listing indexes of regular files whose content must be fetched.
    pub fetch: Vec<usize>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.make.is_empty() && self.fetch.is_empty()
    }
}

/// Compares the mirror at `dir` with `listing`. Reads only.
pub fn diff(dir: &Path, listing: &Listing) -> Result<Changes, MirrorError> {
    Ok(compare(&scan(dir)?, listing))
}

/// Compares a mirror known to equal `held` (the listing of its last sync) with
/// `listing`, without looking at the disk: what [`diff`] would find there.
pub fn diff_listings(held: &Listing, listing: &Listing) -> Changes {
    let kept = |s: &&Stat| kind(s.mode) != Kind::Other;
    let before = held.order.iter().map(|&i| &held.stats[i]).filter(kept);
    let after = listing.order.iter().map(|&i| (i, &listing.stats[i]));
    let after = after.filter(|(_, s)| kept(s));
    // The common case, the same paths of the same kinds (files edited in place):
    // entry by entry, nothing to remove.
    if before.clone().count() == after.clone().count()
        && before
            .clone()
            .zip(after.clone())
            .all(|(h, (_, s))| h.path == s.path && kind(h.mode) == kind(s.mode))
    {
        let mut changes = Changes::default();
        for (h, (i, s)) in before.zip(after) {
            decide(Some(&Held::of(h)), i, s, &mut changes);
        }
        return changes;
    }
    let held = before.map(|s| (s.path.clone(), Held::of(s))).collect();
    compare(&held, listing)
}

impl Held {
    /// What a sync leaves for a listed entry: the listed size, mtime, owner (root)
    /// and link target (a directory's size and mtime are never compared).
    fn of(s: &Stat) -> Self {
        Self {
            mode: s.mode,
            size: s.size,
            mtime_ns: s.mtime_ns,
            uid: s.uid,
            gid: s.gid,
            link: s.linkname.clone(),
        }
    }
}

fn compare(held: &HashMap<String, Held>, listing: &Listing) -> Changes {
    let listed: HashMap<&str, usize> = listing
        .order
        .iter()
        .map(|&i| (listing.stats[i].path.as_str(), i))
        .collect();
    let mut changes = Changes::default();
    // Sorted, so a removed directory comes before everything below it.
    let mut removed: Option<String> = None;
    let mut held_paths: Vec<&String> = held.keys().collect();
    held_paths.sort_by(|a, b| a.split('/').cmp(b.split('/')));
    for path in held_paths {
        if let Some(r) = &removed
            && path.starts_with(r.as_str())
            && path.as_bytes().get(r.len()) == Some(&b'/')
        {
            continue;
        }
        let keep = listed.get(path.as_str()).is_some_and(|&i| {
            let want = kind(listing.stats[i].mode);
            want != Kind::Other && want == kind(held[path].mode)
        });
        if !keep {
            changes.remove.push(path.clone());
            removed = Some(path.clone());
        }
    }
    for &i in &listing.order {
        let s = &listing.stats[i];
        if kind(s.mode) != Kind::Other {
            decide(held.get(&s.path), i, s, &mut changes);
        }
    }
    changes
}

/// What listing entry `i` (`s`, not [`Kind::Other`]) needs given what the mirror
/// holds at its path.
fn decide(held: Option<&Held>, i: usize, s: &Stat, changes: &mut Changes) {
    let k = kind(s.mode);
    let have = held.filter(|h| kind(h.mode) == k);
    let same_meta = |h: &Held| {
        h.mode & 0o7777 == s.mode & 0o7777
            && h.uid == s.uid
            && h.gid == s.gid
            && (k == Kind::Dir || h.mtime_ns == s.mtime_ns)
    };
    match (k, have) {
        (Kind::File, Some(h)) if h.size == s.size && h.mtime_ns == s.mtime_ns => {
            if !same_meta(h) {
                changes.make.push(i);
            }
        }
        (Kind::File, _) => changes.fetch.push(i),
        (Kind::Symlink, Some(h)) if h.link == s.linkname && same_meta(h) => {}
        (Kind::Dir, Some(h)) if same_meta(h) => {}
        _ => changes.make.push(i),
    }
}

/// Every entry below `dir`, by relative path.
fn scan(dir: &Path) -> Result<HashMap<String, Held>, MirrorError> {
    let mut out = HashMap::new();
    let root = match DirFd::open(dir) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(source) => return Err(io_err(dir, "", source)),
    };
    let mut stack = vec![(root, String::new())];
    while let Some((fd, prefix)) = stack.pop() {
        for name in fd.names().map_err(|e| io_err(dir, &prefix, e))? {
            let Ok(name_str) = name.to_str() else {
                // Never written by a sync (names are UTF-8): a stray, removed as such.
                continue;
            };
            let rel = if prefix.is_empty() {
                name_str.to_owned()
            } else {
                format!("{prefix}/{name_str}")
            };
            let Some(st) = fd.lstat(&name).map_err(|e| io_err(dir, &rel, e))? else {
                continue;
            };
            let mode = st.st_mode;
            let link = if mode & S_IFMT == S_IFLNK {
                fd.read_link(&name)
                    .map_err(|e| io_err(dir, &rel, e))?
                    .to_string_lossy()
                    .into_owned()
            } else {
                String::new()
            };
            if mode & S_IFMT == S_IFDIR {
                let child = fd.open_dir(&name).map_err(|e| io_err(dir, &rel, e))?;
                stack.push((child, rel.clone()));
            }
            out.insert(
                rel,
                Held {
                    mode,
                    size: st.st_size as u64,
                    mtime_ns: buildd_fsutil::dirfd::time_ns(st.st_mtime, st.st_mtime_nsec),
                    uid: st.st_uid,
                    gid: st.st_gid,
                    link,
                },
            );
        }
    }
    Ok(out)
}

/// Changes a mirror; every operation stays below its directory.
pub struct Mirror {
    dir: PathBuf,
    root: DirFd,
    /// The directory the last received file went to: files arrive grouped by
    /// directory, so most need no walk from the root.
    last_parent: std::sync::Mutex<Option<(String, Arc<DirFd>)>>,
}

impl Mirror {
    pub fn open(dir: &Path) -> Result<Self, MirrorError> {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, "", e))?;
        let root = DirFd::open(dir).map_err(|e| io_err(dir, "", e))?;
        Ok(Self {
            dir: dir.to_owned(),
            root,
            last_parent: std::sync::Mutex::new(None),
        })
    }

    /// [`Self::parent`], reusing the last one when it is the same directory. The
    /// tree's directories do not change while files are received.
    fn file_parent(&self, rel: &str) -> Result<(Arc<DirFd>, CString), MirrorError> {
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let name = CString::new(name).map_err(|e| self.err(rel, e.into()))?;
        let mut last = self.last_parent.lock().unwrap();
        if let Some((p, fd)) = &*last
            && p == parent
        {
            return Ok((fd.clone(), name));
        }
        let fd = Arc::new(
            self.root
                .open_dir_beneath(parent)
                .map_err(|e| self.err(rel, e))?,
        );
        *last = Some((parent.to_owned(), fd.clone()));
        Ok((fd, name))
    }

    /// The directory holding `rel`'s entry, and the entry's name in it.
    fn parent(&self, rel: &str) -> Result<(DirFd, CString), MirrorError> {
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let fd = self
            .root
            .open_dir_beneath(parent)
            .map_err(|e| self.err(rel, e))?;
        let name = CString::new(name).map_err(|e| self.err(rel, e.into()))?;
        Ok((fd, name))
    }

    fn err(&self, rel: &str, source: io::Error) -> MirrorError {
        io_err(&self.dir, rel, source)
    }

    pub fn remove(&self, rel: &str) -> Result<(), MirrorError> {
        let (fd, name) = self.parent(rel)?;
        fd.remove_all(&name).map_err(|e| self.err(rel, e))
    }

    /// Creates or fixes a directory or symlink, or fixes a file's metadata.
    pub fn make(&self, s: &Stat) -> Result<(), MirrorError> {
        let (fd, name) = self.parent(&s.path)?;
        let rel = s.path.as_str();
        let held = fd.lstat(&name).map_err(|e| self.err(rel, e))?;
        let held_kind = held.map(|st| kind(st.st_mode));
        match kind(s.mode) {
            Kind::Dir if held_kind != Some(Kind::Dir) => {
                fd.remove_all(&name).map_err(|e| self.err(rel, e))?;
                fd.mkdir(&name, 0o700).map_err(|e| self.err(rel, e))?;
            }
            Kind::Symlink => {
                fd.remove_all(&name).map_err(|e| self.err(rel, e))?;
                let target =
                    CString::new(s.linkname.as_str()).map_err(|e| self.err(rel, e.into()))?;
                fd.symlink(&target, &name).map_err(|e| self.err(rel, e))?;
            }
            // A layer links this file (COPY shares mirror files): the metadata
            // change goes to a copy of its own, the layer's stays as committed.
            Kind::File
                if held.is_some_and(|st| st.st_nlink > 1 && kind(st.st_mode) == Kind::File) =>
            {
                self.unshare(&fd, &name).map_err(|e| self.err(rel, e))?;
            }
            _ => {}
        }
        set_meta(&fd, &name, s).map_err(|e| self.err(rel, e))
    }

    /// Replaces file `name` in `fd` by a copy of itself, under the same name.
    fn unshare(&self, fd: &DirFd, name: &CStr) -> io::Result<()> {
        let temp = c".buildd-sync-unshare";
        fd.remove_all(temp)?;
        let mut from = fd.open_file_beneath(std::ffi::OsStr::from_bytes(name.to_bytes()))?;
        let mut to = fd.create_file(temp)?;
        io::copy(&mut from, &mut to)?;
        fd.rename(temp, name)
    }

    /// Starts writing file `s`'s new content: in place for a file the mirror does
    /// not have (nothing can link it yet), else next to where it goes, to replace
    /// it by rename (a layer may link the old one).
    pub fn begin_file(&self, index: usize, s: &Stat) -> Result<PendingFile, MirrorError> {
        let (fd, name) = self.file_parent(&s.path)?;
        match fd.create_file(&name) {
            Ok(file) => {
                return Ok(PendingFile {
                    dir: fd,
                    temp: None,
                    name,
                    file,
                    written: 0,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(self.err(&s.path, e)),
        }
        let temp = CString::new(format!(".buildd-sync-{index}")).expect("no NUL");
        fd.remove_all(&temp).map_err(|e| self.err(&s.path, e))?;
        let file = fd.create_file(&temp).map_err(|e| self.err(&s.path, e))?;
        Ok(PendingFile {
            dir: fd,
            temp: Some(temp),
            name,
            file,
            written: 0,
        })
    }

    /// Replaces the file with what was written; its metadata comes from `s`. A file
    /// whose size is not what the listing said changed during the upload: it keeps
    /// mtime 0 so the next sync fetches it again.
    pub fn commit_file(&self, pending: PendingFile, s: &Stat) -> Result<u64, MirrorError> {
        let rel = s.path.as_str();
        // Through the open file: no path lookups, and the name shows the new
        // content only with its final metadata.
        let mtime = if pending.written == s.size {
            s.mtime_ns
        } else {
            0
        };
        buildd_fsutil::dirfd::set_meta(
            &pending.file,
            Some((s.uid, s.gid)),
            s.mode,
            timespec(mtime),
        )
        .map_err(|e| self.err(rel, e))?;
        if let Some(temp) = &pending.temp {
            pending
                .dir
                .rename(temp, &pending.name)
                .map_err(|e| self.err(rel, e))?;
        }
        Ok(pending.written)
    }

    /// Sets every listed directory's mtime, deepest first, once their contents
    /// stopped changing.
    pub fn finish_dirs(&self, listing: &Listing) -> Result<(), MirrorError> {
        for &i in listing.order.iter().rev() {
            let s = &listing.stats[i];
            if kind(s.mode) == Kind::Dir {
                let (fd, name) = self.parent(&s.path)?;
                fd.set_ltimes(&name, timespec(s.mtime_ns))
                    .map_err(|e| self.err(&s.path, e))?;
            }
        }
        Ok(())
    }
}

/// A file being received, written under a temporary name in its directory.
pub struct PendingFile {
    dir: Arc<DirFd>,
    /// The temporary name, when the file replaces one the mirror has.
    temp: Option<CString>,
    name: CString,
    file: std::fs::File,
    written: u64,
}

impl PendingFile {
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        use std::io::Write;
        self.file.write_all(data)?;
        self.written += data.len() as u64;
        Ok(())
    }

    pub fn written(&self) -> u64 {
        self.written
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        // After a commit the temporary name is gone and this fails harmlessly.
        if let Some(temp) = &self.temp {
            let _ = self.dir.unlink(temp, false);
        }
    }
}

fn set_meta(fd: &DirFd, name: &CStr, s: &Stat) -> io::Result<()> {
    fd.lchown(name, s.uid, s.gid)?;
    let k = kind(s.mode);
    if k != Kind::Symlink {
        // chown clears setuid bits, so the mode comes after it.
        fd.chmod_nofollow(name, s.mode & S_IFMT, s.mode)?;
    }
    if k != Kind::Dir {
        fd.set_ltimes(name, timespec(s.mtime_ns))?;
    }
    Ok(())
}

fn io_err(dir: &Path, path: &str, source: io::Error) -> MirrorError {
    MirrorError::Io {
        dir: dir.to_owned(),
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(path: &str, mode: u32) -> Stat {
        Stat {
            path: path.to_owned(),
            mode,
            linkname: if kind(mode) == Kind::Symlink {
                "/etc".into()
            } else {
                String::new()
            },
            ..Default::default()
        }
    }

    #[test]
    fn nothing_is_written_through_a_listed_symlink() {
        let err = Listing::new(vec![
            stat("l", S_IFLNK | 0o777),
            stat("l/passwd", S_IFREG | 0o644),
        ])
        .err()
        .unwrap();
        assert!(matches!(err, MirrorError::ParentNotDir { .. }), "{err}");
        let err = Listing::new(vec![stat("orphan/f", S_IFREG | 0o644)])
            .err()
            .unwrap();
        assert!(matches!(err, MirrorError::ParentNotDir { .. }), "{err}");
        let err = Listing::new(vec![stat("a", S_IFREG), stat("a", S_IFREG)])
            .err()
            .unwrap();
        assert!(matches!(err, MirrorError::Duplicate { .. }), "{err}");
    }

    #[test]
    fn a_mirror_comes_to_equal_the_listing() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m");
        let listing = Listing::new(vec![
            stat("d", S_IFDIR | 0o750),
            stat("d/empty", S_IFDIR | 0o700),
            stat("d/link", S_IFLNK | 0o777),
            stat("f", S_IFREG | 0o600),
        ])
        .unwrap();
        let mirror = Mirror::open(&m).unwrap();
        std::fs::write(m.join("stale"), "x").unwrap();
        let changes = diff(&m, &listing).unwrap();
        assert_eq!(changes.remove, ["stale"]);
        assert_eq!(changes.fetch.len(), 1);
        for &i in &changes.make {
            mirror.make(&listing.stats[i]).unwrap();
        }
        let mut p = mirror.begin_file(3, &listing.stats[3]).unwrap();
        p.write(b"").unwrap();
        mirror.commit_file(p, &listing.stats[3]).unwrap();
        mirror.remove("stale").unwrap();
        mirror.finish_dirs(&listing).unwrap();
        assert!(diff(&m, &listing).unwrap().is_empty());
        assert_eq!(
            std::fs::read_link(m.join("d/link")).unwrap(),
            Path::new("/etc")
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(m.join("d")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o750);
    }

    fn sync_to(mirror: &Mirror, m: &Path, listing: &Listing) {
        let changes = diff(m, listing).unwrap();
        for path in &changes.remove {
            mirror.remove(path).unwrap();
        }
        for &i in &changes.make {
            mirror.make(&listing.stats[i]).unwrap();
        }
        for &i in &changes.fetch {
            let s = &listing.stats[i];
            let mut p = mirror.begin_file(i, s).unwrap();
            p.write(&vec![b'x'; s.size as usize]).unwrap();
            mirror.commit_file(p, s).unwrap();
        }
        mirror.finish_dirs(listing).unwrap();
        assert!(diff(m, listing).unwrap().is_empty());
    }

    fn summary(c: &Changes, l: &Listing) -> (Vec<String>, Vec<String>, Vec<String>) {
        let paths = |v: &[usize]| v.iter().map(|&i| l.stats[i].path.clone()).collect();
        (c.remove.clone(), paths(&c.make), paths(&c.fetch))
    }

    #[test]
    fn the_last_listing_answers_as_the_disk_would() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m");
        let file = |path: &str, size: u64, mtime_ns: i64| Stat {
            size,
            mtime_ns,
            ..stat(path, S_IFREG | 0o644)
        };
        let before = Listing::new(vec![
            stat("d", S_IFDIR | 0o755),
            file("d/a", 3, 1_000),
            file("d/b", 4, 2_000),
            stat("d/l", S_IFLNK | 0o777),
            stat("e", S_IFDIR | 0o755),
            file("e/c", 1, 3_000),
            file("f", 2, 4_000),
        ])
        .unwrap();
        let mirror = Mirror::open(&m).unwrap();
        sync_to(&mirror, &m, &before);
        let edits: Vec<Vec<Stat>> = vec![
            // Same paths: a new mtime, a new size, a new mode, a new link target.
            vec![
                stat("d", S_IFDIR | 0o700),
                file("d/a", 3, 1_001),
                file("d/b", 5, 2_000),
                Stat {
                    linkname: "/usr".into(),
                    ..stat("d/l", S_IFLNK | 0o777)
                },
                stat("e", S_IFDIR | 0o755),
                Stat {
                    mode: S_IFREG | 0o600,
                    ..file("e/c", 1, 3_000)
                },
                file("f", 2, 4_000),
            ],
            // Removed and added entries, a file that became a directory.
            vec![
                stat("d", S_IFDIR | 0o755),
                file("d/a", 3, 1_000),
                file("d/new", 9, 9_000),
                stat("f", S_IFDIR | 0o755),
                file("f/g", 1, 1),
            ],
            // Same paths, one of another kind.
            vec![
                stat("d", S_IFDIR | 0o755),
                file("d/a", 3, 1_000),
                file("d/b", 4, 2_000),
                file("d/l", 1, 1),
                stat("e", S_IFDIR | 0o755),
                file("e/c", 1, 3_000),
                file("f", 2, 4_000),
            ],
            vec![],
        ];
        for edit in edits {
            let after = Listing::new(edit).unwrap();
            let on_disk = diff(&m, &after).unwrap();
            let remembered = diff_listings(&before, &after);
            assert_eq!(summary(&remembered, &after), summary(&on_disk, &after));
        }
        assert!(diff_listings(&before, &before).is_empty());
    }
}
