use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use buildd_fsutil::hash::{HashCache, HashError, StatKey, selection_digest};
use buildd_fsutil::select::{SelectOptions, select};
use buildd_proto::Digest;

fn write_tree(root: &Path) {
    fs::create_dir_all(root.join("src/sub")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    fs::write(root.join("src/main.rs"), "fn main() {}\n").unwrap();
    fs::write(root.join("src/sub/lib.rs"), "pub fn f() {}\n").unwrap();
    fs::write(root.join("README"), "hello\n").unwrap();
    symlink("src/main.rs", root.join("link")).unwrap();
}

fn digest_with(root: &Path, src: &str, cache: Option<&dyn HashCache>) -> Digest {
    let opts = SelectOptions {
        allow_wildcard: true,
        ..Default::default()
    };
    let sel = select(root, src, &opts).unwrap();
    selection_digest(root, &sel, cache).unwrap()
}

fn digest(root: &Path) -> Digest {
    digest_with(root, ".", None)
}

fn tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    write_tree(t.path());
    t
}

#[test]
fn deterministic_and_independent_of_times_and_inodes() {
    let a = tree();
    let d = digest(a.path());
    assert_eq!(digest(a.path()), d);
    // A second checkout: other inode numbers, other times, same digest.
    let b = tree();
    let old = SystemTime::now() - Duration::from_secs(86_400);
    fs::File::options()
        .write(true)
        .open(b.path().join("README"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert_eq!(digest(b.path()), d);
}

type Change = fn(&Path);

#[test]
fn content_mode_target_and_names_matter() {
    let base = digest(tree().path());
    let changes: [(&str, Change); 6] = [
        ("content", |r| {
            fs::write(r.join("README"), "hellO\n").unwrap()
        }),
        ("mode", |r| {
            fs::set_permissions(r.join("README"), fs::Permissions::from_mode(0o600)).unwrap()
        }),
        ("symlink target", |r| {
            fs::remove_file(r.join("link")).unwrap();
            symlink("src/sub/lib.rs", r.join("link")).unwrap();
        }),
        ("rename", |r| {
            fs::rename(r.join("README"), r.join("README.md")).unwrap()
        }),
        ("new empty dir", |r| {
            fs::create_dir(r.join("empty/more")).unwrap()
        }),
        ("file becomes dir", |r| {
            fs::remove_file(r.join("README")).unwrap();
            fs::create_dir(r.join("README")).unwrap();
        }),
    ];
    for (what, change) in changes {
        let t = tree();
        change(t.path());
        assert_ne!(digest(t.path()), base, "{what} must change the digest");
    }
}

#[test]
fn wildcard_match_names_are_part_of_the_digest() {
    let (a, b, c) = (tree(), tree(), tree());
    fs::write(a.path().join("x.rs"), "same").unwrap();
    fs::write(b.path().join("y.rs"), "same").unwrap();
    fs::write(c.path().join("x.rs"), "same").unwrap();
    let da = digest_with(a.path(), "*.rs", None);
    assert_ne!(da, digest_with(b.path(), "*.rs", None));
    assert_eq!(da, digest_with(c.path(), "*.rs", None));
}

#[test]
fn hard_links_are_grouped() {
    let linked = tempfile::tempdir().unwrap();
    fs::write(linked.path().join("a"), "same").unwrap();
    fs::hard_link(linked.path().join("a"), linked.path().join("b")).unwrap();
    let copied = tempfile::tempdir().unwrap();
    fs::write(copied.path().join("a"), "same").unwrap();
    fs::write(copied.path().join("b"), "same").unwrap();
    assert_ne!(digest(linked.path()), digest(copied.path()));
}

/// Remembers digests and counts what it is asked.
#[derive(Default)]
struct CountingCache {
    map: Mutex<HashMap<StatKey, Digest>>,
    hits: AtomicUsize,
    puts: AtomicUsize,
}

impl HashCache for CountingCache {
    fn get(&self, key: &StatKey) -> Option<Digest> {
        let d = self.map.lock().unwrap().get(key).copied();
        if d.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        d
    }

    fn put(&self, key: &StatKey, digest: Digest) {
        self.puts.fetch_add(1, Ordering::Relaxed);
        self.map.lock().unwrap().insert(key.clone(), digest);
    }
}

#[test]
fn cache_hits_avoid_reading_and_changes_rehash() {
    let t = tree();
    let r = t.path();
    let cache = CountingCache::default();
    let cold = digest_with(r, ".", Some(&cache));
    assert_eq!(cold, digest(r), "the cache does not change the result");
    assert_eq!(cache.puts.load(Ordering::Relaxed), 3);

    // Poison the cached digest of README: if the warm run used the file's content
    // the poison would go unnoticed.
    let readme = r.join("README");
    {
        let mut map = cache.map.lock().unwrap();
        let key = map.keys().find(|k| k.path == readme).unwrap().clone();
        map.insert(key, Digest::of(b"poison"));
    }
    let warm = digest_with(r, ".", Some(&cache));
    assert_ne!(warm, cold, "README was not read again");
    assert_eq!(cache.puts.load(Ordering::Relaxed), 3);
    assert_eq!(cache.hits.load(Ordering::Relaxed), 3);

    // A changed mtime makes a new key: README is read and hashed again.
    fs::File::options()
        .write(true)
        .open(&readme)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(60))
        .unwrap();
    assert_eq!(digest_with(r, ".", Some(&cache)), cold);
    assert_eq!(cache.puts.load(Ordering::Relaxed), 4);
}

#[test]
fn many_files_hash_deterministically() {
    let t = tempfile::tempdir().unwrap();
    for i in 0..300 {
        let d = t.path().join(format!("d{}", i % 7));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(format!("f{i}")), format!("{i}").repeat(i)).unwrap();
    }
    let first = digest(t.path());
    for _ in 0..3 {
        assert_eq!(digest(t.path()), first);
    }
}

#[test]
fn owners_are_not_part_of_the_digest() {
    // Context files are copied as root:root whatever their owner on the host.
    let a = tree();
    let b = tree();
    std::os::unix::fs::lchown(b.path().join("README"), Some(4321), Some(4321)).unwrap();
    std::os::unix::fs::lchown(b.path().join("src"), Some(4321), Some(4321)).unwrap();
    assert_eq!(digest(a.path()), digest(b.path()));
}

#[test]
fn a_parent_swapped_for_a_symlink_after_the_walk_is_not_followed() {
    let t = tree();
    let r = t.path();
    let opts = SelectOptions::default();
    let sel = select(r, ".", &opts).unwrap();
    // Same file, same inode, now reached through a symlink: following it would
    // read what the symlink points at, which could be anywhere.
    fs::rename(r.join("src"), r.join("moved")).unwrap();
    symlink("moved", r.join("src")).unwrap();
    let err = selection_digest(r, &sel, None).unwrap_err();
    assert!(
        matches!(&err, HashError::Changed { path } if path.ends_with("src/main.rs")
            || path.ends_with("src/sub/lib.rs")),
        "{err:?}"
    );
}

#[test]
fn a_fifo_swapped_in_for_a_file_fails_without_hanging() {
    let t = tree();
    let r = t.path();
    let sel = select(r, ".", &SelectOptions::default()).unwrap();
    fs::remove_file(r.join("README")).unwrap();
    let c = std::ffi::CString::new(r.join("README").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let err = selection_digest(r, &sel, None).unwrap_err();
    assert!(matches!(err, HashError::Changed { .. }), "{err:?}");
}
