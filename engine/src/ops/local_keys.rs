//! Content digests of selections from versioned local directories, kept in
//! memory: while a directory keeps its version (the daemon's mirror between two
//! syncs that change it) a selection hashes to the same digest, so a warm build
//! needs no walk, stat or index lookup per file.

use std::collections::HashMap;
use std::sync::Mutex;

use buildd_fsutil::select::SelectOptions;
use buildd_proto::Digest;
use sha2::{Digest as _, Sha256};

/// Entries kept at most; past it the memo starts over (each entry is a few
/// dozen bytes, and a version's entries are useless once it is replaced).
const MAX_ENTRIES: usize = 4096;

#[derive(Default)]
pub struct LocalKeys {
    digests: Mutex<HashMap<[u8; 32], Digest>>,
}

impl LocalKeys {
    pub(crate) fn get(&self, key: &[u8; 32]) -> Option<Digest> {
        self.digests.lock().unwrap().get(key).copied()
    }

    pub(crate) fn put(&self, key: [u8; 32], digest: Digest) {
        let mut digests = self.digests.lock().unwrap();
        if digests.len() >= MAX_ENTRIES {
            digests.clear();
        }
        digests.insert(key, digest);
    }
}

/// The memo key of selecting `src` with `opts` from the directory `content_id`
/// names: every option that changes what is selected or how.
pub(crate) fn key(content_id: &[u8; 32], src: &str, opts: &SelectOptions<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(content_id);
    let mut text = |s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    text(src);
    for (tag, patterns) in [
        ("include", opts.include_patterns),
        ("exclude", opts.exclude_patterns),
    ] {
        text(tag);
        patterns.iter().for_each(|p| text(p));
    }
    h.update([
        u8::from(opts.follow_symlink),
        u8::from(opts.allow_wildcard),
        u8::from(opts.allow_empty_wildcard),
        u8::from(opts.replaced_only),
        u8::from(opts.context_excludes.is_some()),
    ]);
    h.finalize().into()
}
