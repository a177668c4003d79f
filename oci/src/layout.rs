//! OCI image layouts (`oci-layout`, `index.json`, `blobs/sha256/*`) written as a directory or
//! as a tar archive.
//!
//! Nothing half-written is ever visible under a final name: directory blobs and JSON files are
//! written to temporary names and renamed, and a tar archive is built next to its destination
//! and renamed over it once complete and synced.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use buildd_proto::Digest;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::spec::Index;
use crate::tarfmt::{self, EntryHeader, Kind};

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutTarget {
    Dir(PathBuf),
    Tar(PathBuf),
    /// A tar archive written to a stream by [`LayoutWriter::finish_stream`], as it
    /// is produced (to a daemon's client), never staged in a file.
    TarStream,
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("blob {digest} at {path} is {actual} bytes, expected {expected}")]
    SizeMismatch {
        digest: Digest,
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("blob at {path} has digest {actual}, expected {expected}")]
    DigestMismatch {
        path: PathBuf,
        expected: Digest,
        actual: Digest,
    },
    #[error("index.json refers to manifest {digest} which is not in the layout")]
    MissingBlob { digest: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The JSON bytes of `v` as stored in a blob: compact serde_json, whose field order is the
/// struct's and whose maps are sorted for the [`crate::spec`] types.
///
/// # Panics
/// If `v` cannot be serialized to JSON (e.g. a map with non-string keys); never for the
/// [`crate::spec`] types.
pub fn json_blob<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("value serializes to JSON")
}

enum TarBlob {
    File { path: PathBuf, size: u64 },
    Bytes(Vec<u8>),
}

enum State {
    Dir(PathBuf),
    /// Blobs are kept (by path, or in memory for small JSON) until `finish` writes them sorted.
    Tar {
        /// None for [`LayoutTarget::TarStream`].
        dest: Option<PathBuf>,
        blobs: BTreeMap<Digest, TarBlob>,
    },
}

pub struct LayoutWriter {
    state: State,
    /// Files beside `index.json` (a docker archive's `manifest.json`), by name.
    extra: BTreeMap<String, Vec<u8>>,
}

impl LayoutWriter {
    pub fn new(target: LayoutTarget) -> Result<Self, LayoutError> {
        let state = match target {
            LayoutTarget::Dir(root) => {
                let blobs = root.join("blobs/sha256");
                fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
                State::Dir(root)
            }
            LayoutTarget::Tar(dest) => {
                // Fail now rather than after every blob has been gathered.
                let parent = parent_dir(&dest);
                fs::metadata(parent)
                    .and_then(|md| {
                        if md.is_dir() {
                            Ok(())
                        } else {
                            Err(io::Error::from(io::ErrorKind::NotADirectory))
                        }
                    })
                    .map_err(io_err(parent))?;
                State::Tar {
                    dest: Some(dest),
                    blobs: BTreeMap::new(),
                }
            }
            LayoutTarget::TarStream => State::Tar {
                dest: None,
                blobs: BTreeMap::new(),
            },
        };
        Ok(Self {
            state,
            extra: BTreeMap::new(),
        })
    }

    /// Adds a file at the top of the layout beside `index.json`, such as the
    /// `manifest.json` that makes an OCI layout tar a docker archive too. `name`
    /// is a plain file name, not a layout file or a path.
    pub fn add_file(&mut self, name: &str, bytes: Vec<u8>) {
        assert!(
            !name.is_empty()
                && !name.contains('/')
                && !matches!(name, "." | ".." | "index.json" | "oci-layout" | "blobs"),
            "{name:?} is not a free top-level name"
        );
        self.extra.insert(name.to_owned(), bytes);
    }

    /// Adds a blob already on disk at `path`, copying it and verifying the digest while
    /// copying.
    pub fn add_blob_file(
        &mut self,
        digest: Digest,
        size: u64,
        path: &Path,
    ) -> Result<(), LayoutError> {
        check_size(digest, size, path)?;
        match &mut self.state {
            State::Dir(root) => {
                let dest = blob_path(root, &digest);
                // The destination belongs to the user: a blob already there counts only
                // if its content checks out.
                if fs::symlink_metadata(&dest).is_ok_and(|md| md.is_file() && md.len() == size)
                    && copy_verified(digest, size, &dest, &mut io::sink()).is_ok()
                {
                    return Ok(());
                }
                // Always a copy, never a hard link: editing the exported file must not
                // be able to change the engine's content store.
                let tmp = temp_name(&dest);
                let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
                let copied = copy_verified(digest, size, path, &mut f)
                    .and_then(|()| f.sync_all().map_err(io_err(&tmp)));
                if let Err(e) = copied {
                    let _ = fs::remove_file(&tmp);
                    return Err(e);
                }
                rename(&tmp, &dest)
            }
            State::Tar { blobs, .. } => {
                blobs.insert(
                    digest,
                    TarBlob::File {
                        path: path.to_owned(),
                        size,
                    },
                );
                Ok(())
            }
        }
    }

    /// Adds a blob held in memory (configs, manifests) and returns its digest.
    pub fn add_blob_bytes(&mut self, bytes: &[u8]) -> Result<Digest, LayoutError> {
        let digest = Digest::of(bytes);
        match &mut self.state {
            State::Dir(root) => write_atomic(&blob_path(root, &digest), bytes)?,
            State::Tar { blobs, .. } => {
                blobs.insert(digest, TarBlob::Bytes(bytes.to_vec()));
            }
        }
        Ok(digest)
    }

    /// Writes `oci-layout` and `index.json` (last, so a reader never sees an index whose
    /// blobs are missing) and, for a tar target, the archive itself.
    pub fn finish(self, index: &Index) -> Result<(), LayoutError> {
        let index_json = json_blob(index);
        match self.state {
            State::Dir(root) => {
                for m in &index.manifests {
                    let present = m
                        .digest
                        .parse::<Digest>()
                        .is_ok_and(|d| blob_path(&root, &d).is_file());
                    if !present {
                        return Err(LayoutError::MissingBlob {
                            digest: m.digest.clone(),
                        });
                    }
                }
                let blobs = root.join("blobs/sha256");
                sync_dir(&blobs)?;
                for (name, bytes) in &self.extra {
                    write_atomic(&root.join(name), bytes)?;
                }
                write_atomic(&root.join("oci-layout"), OCI_LAYOUT)?;
                write_atomic(&root.join("index.json"), &index_json)?;
                sync_dir(&root)
            }
            State::Tar { dest, blobs } => {
                check_tar_index(&blobs, index)?;
                let dest = dest.ok_or_else(|| LayoutError::Io {
                    path: PathBuf::new(),
                    source: io::Error::other("a streamed layout ends with finish_stream"),
                })?;
                write_tar(&dest, &blobs, &self.extra, &index_json)
            }
        }
    }

    /// Writes the archive of a [`LayoutTarget::TarStream`] layout to `out`.
    pub fn finish_stream(self, index: &Index, out: &mut dyn Write) -> Result<(), LayoutError> {
        let State::Tar { dest: None, blobs } = &self.state else {
            return Err(LayoutError::Io {
                path: PathBuf::new(),
                source: io::Error::other("finish_stream is for a TarStream layout"),
            });
        };
        check_tar_index(blobs, index)?;
        let mut w = BufWriter::with_capacity(1 << 20, out);
        write_tar_entries(
            &mut w,
            blobs,
            &self.extra,
            &json_blob(index),
            Path::new("<stream>"),
        )?;
        w.flush().map_err(io_err(Path::new("<stream>")))
    }
}

fn check_tar_index(blobs: &BTreeMap<Digest, TarBlob>, index: &Index) -> Result<(), LayoutError> {
    for m in &index.manifests {
        if !m
            .digest
            .parse::<Digest>()
            .is_ok_and(|d| blobs.contains_key(&d))
        {
            return Err(LayoutError::MissingBlob {
                digest: m.digest.clone(),
            });
        }
    }
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join("blobs/sha256").join(digest.hex())
}

/// A unique sibling name, so concurrent writers and leftovers never collide.
fn temp_name(dest: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = dest.file_name().unwrap_or_default().to_owned();
    name.push(format!(".tmp-{}-{n}", std::process::id()));
    dest.with_file_name(name)
}

fn rename(from: &Path, to: &Path) -> Result<(), LayoutError> {
    fs::rename(from, to).map_err(|e| {
        let _ = fs::remove_file(from);
        io_err(to)(e)
    })
}

fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
    let tmp = temp_name(dest);
    let written = File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .map_err(io_err(&tmp));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    rename(&tmp, dest)
}

fn sync_dir(dir: &Path) -> Result<(), LayoutError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn check_size(digest: Digest, size: u64, path: &Path) -> Result<(), LayoutError> {
    let actual = fs::metadata(path).map_err(io_err(path))?.len();
    if actual != size {
        return Err(LayoutError::SizeMismatch {
            digest,
            path: path.to_owned(),
            expected: size,
            actual,
        });
    }
    Ok(())
}

/// Copies exactly `size` bytes of `path` to `w`, failing if the file's length or digest is
/// not what the caller claimed.
fn copy_verified(
    digest: Digest,
    size: u64,
    path: &Path,
    w: &mut impl Write,
) -> Result<(), LayoutError> {
    let f = File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    // Read one byte past `size` so a file that grew is caught too.
    let mut limited = f.take(size + 1);
    loop {
        let n = limited.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > size {
            break;
        }
        hasher.update(&buf[..n]);
        w.write_all(&buf[..n]).map_err(io_err(path))?;
    }
    if total != size {
        return Err(LayoutError::SizeMismatch {
            digest,
            path: path.to_owned(),
            expected: size,
            actual: total,
        });
    }
    let actual = Digest::from(hasher);
    if actual != digest {
        return Err(LayoutError::DigestMismatch {
            path: path.to_owned(),
            expected: digest,
            actual,
        });
    }
    Ok(())
}

fn write_tar(
    dest: &Path,
    blobs: &BTreeMap<Digest, TarBlob>,
    extra: &BTreeMap<String, Vec<u8>>,
    index_json: &[u8],
) -> Result<(), LayoutError> {
    let parent = parent_dir(dest);
    let tmp = tempfile::Builder::new()
        .prefix(".oci-layout-")
        .tempfile_in(parent)
        .map_err(io_err(parent))?;
    let tmp_path = tmp.path().to_owned();
    let werr = |e| LayoutError::Io {
        path: tmp_path.clone(),
        source: e,
    };
    let mut w = BufWriter::new(tmp.as_file());
    write_tar_entries(&mut w, blobs, extra, index_json, &tmp_path)?;
    w.flush().map_err(werr)?;
    drop(w);
    // tempfile creates 0600; an exported image is an ordinary readable file.
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(werr)?;
    tmp.as_file().sync_all().map_err(werr)?;
    tmp.persist(dest).map_err(|e| LayoutError::Io {
        path: dest.to_owned(),
        source: e.error,
    })?;
    sync_dir(parent)
}

/// The layout's entries, blobs sorted by digest, then index.json, any extra
/// files by name, and oci-layout.
fn write_tar_entries(
    w: &mut impl Write,
    blobs: &BTreeMap<Digest, TarBlob>,
    extra: &BTreeMap<String, Vec<u8>>,
    index_json: &[u8],
    what: &Path,
) -> Result<(), LayoutError> {
    let werr = |e| LayoutError::Io {
        path: what.to_owned(),
        source: e,
    };
    for dir in [&b"blobs/"[..], b"blobs/sha256/"] {
        let mut h = EntryHeader::new(dir, Kind::Dir);
        h.mode = 0o755;
        tarfmt::write_header(w, &h).map_err(werr)?;
    }
    for (digest, blob) in blobs {
        let name = format!("blobs/sha256/{}", digest.hex());
        match blob {
            TarBlob::File { path, size } => {
                tar_file_header(w, name.as_bytes(), *size).map_err(werr)?;
                copy_verified(*digest, *size, path, w)?;
                tarfmt::write_padding(w, *size).map_err(werr)?;
            }
            TarBlob::Bytes(bytes) => tar_file(w, name.as_bytes(), bytes).map_err(werr)?,
        }
    }
    tar_file(w, b"index.json", index_json).map_err(werr)?;
    for (name, bytes) in extra {
        tar_file(w, name.as_bytes(), bytes).map_err(werr)?;
    }
    tar_file(w, b"oci-layout", OCI_LAYOUT).map_err(werr)?;
    tarfmt::write_end(w).map_err(werr)
}

fn tar_file_header(w: &mut impl Write, name: &[u8], size: u64) -> io::Result<()> {
    let mut h = EntryHeader::new(name, Kind::Regular);
    h.mode = 0o644;
    h.size = size;
    tarfmt::write_header(w, &h)
}

fn tar_file(w: &mut impl Write, name: &[u8], bytes: &[u8]) -> io::Result<()> {
    tar_file_header(w, name, bytes.len() as u64)?;
    w.write_all(bytes)?;
    tarfmt::write_padding(w, bytes.len() as u64)
}
