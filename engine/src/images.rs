//! The local image store: named images kept in the root, as `buildd build -t NAME`
//! or `buildd import` leave them and `FROM NAME` finds them (before any registry,
//! as Buildah does).
//!
//! One JSON file per name under `<root>/images/`, written atomically. An image is a
//! layer stack in the layer store plus its config; unlike the cache index, image
//! records are never discarded, so crash recovery counts their layers as in use.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use buildd_oci::{Compression, History, ImageConfig};
use buildd_proto::Digest;
use buildd_snapshot::{LayerId, LayerStore, Snapshot};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image store {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("image {name:?}: record is unreadable: {message}")]
    Corrupt { name: String, message: String },
    #[error("invalid image name {0:?}")]
    InvalidName(String),
    #[error("importing {name:?}: {message}")]
    Import { name: String, message: String },
    #[error(
        "image store {path}: {size} bytes, over the image record cap of {MAX_RECORD_BYTES} bytes"
    )]
    TooLarge { path: PathBuf, size: u64 },
}

/// Largest image record read: its config pretty-printed (a pulled config is at
/// most [`buildd_registry::limits::MAX_CONFIG_BYTES`]) plus the layer ids.
pub const MAX_RECORD_BYTES: u64 = 2 * buildd_registry::limits::MAX_CONFIG_BYTES;

/// Reads a record file, refusing one over [`MAX_RECORD_BYTES`].
fn read_record(path: &Path) -> Result<Vec<u8>, ImageError> {
    let io_err = |source| ImageError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let size = file.metadata().map_err(io_err)?.len();
    let mut out = Vec::with_capacity(size.min(MAX_RECORD_BYTES) as usize);
    // Bounded even if the file grows after the stat.
    file.take(MAX_RECORD_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(io_err)?;
    let size = size.max(out.len() as u64);
    if size > MAX_RECORD_BYTES {
        return Err(ImageError::TooLarge {
            path: path.to_owned(),
            size,
        });
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub name: String,
    /// Layer ids, bottom first.
    pub layers: Vec<String>,
    pub config: ImageConfig,
    pub created: String,
}

impl ImageRecord {
    /// Identifies this content: equal layers and config, equal digest.
    pub fn digest(&self) -> Digest {
        let body = serde_json::to_vec(&(&self.layers, &self.config)).expect("serializable");
        Digest::of(&body)
    }

    pub fn snapshot(&self) -> Result<Snapshot, ImageError> {
        let layers = self
            .layers
            .iter()
            .map(|id| LayerId::new(id.as_str()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ImageError::Corrupt {
                name: self.name.clone(),
                message: e.to_string(),
            })?;
        Ok(Snapshot::new(layers))
    }
}

/// `busybox` → `busybox:latest`; names with a tag or digest are kept as given.
pub fn normalize_name(name: &str) -> Result<String, ImageError> {
    let valid = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with(['-', '/', '.', ':'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b));
    if !valid {
        return Err(ImageError::InvalidName(name.to_owned()));
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    Ok(if last.contains([':', '@']) {
        name.to_owned()
    } else {
        format!("{name}:latest")
    })
}

#[derive(Debug)]
pub struct ImageStore {
    dir: PathBuf,
}

impl ImageStore {
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        let dir = root.join("images");
        fs::create_dir_all(&dir).map_err(|source| ImageError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir })
    }

    /// Where the record of a (normalized) name lives.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir
            .join(format!("{}.json", Digest::of(name.as_bytes()).hex()))
    }

    /// Every record file, readable or not (`list` skips unreadable ones; checks
    /// must not).
    pub fn record_files(&self) -> Result<Vec<PathBuf>, ImageError> {
        let entries = fs::read_dir(&self.dir).map_err(|source| ImageError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let mut out: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        out.sort();
        Ok(out)
    }

    pub fn get(&self, name: &str) -> Result<Option<ImageRecord>, ImageError> {
        let name = normalize_name(name)?;
        let path = self.path(&name);
        match read_record(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| ImageError::Corrupt {
                        name,
                        message: e.to_string(),
                    })
            }
            Err(ImageError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Stores (or replaces) the image under its name: temp file, fsync, rename.
    pub fn put(&self, record: &ImageRecord) -> Result<(), ImageError> {
        let path = self.path(&record.name);
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let io_err = |source| ImageError::Io {
            path: path.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(record).expect("serializable");
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err(e)
        })
    }

    pub fn list(&self) -> Result<Vec<ImageRecord>, ImageError> {
        let mut out = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(|source| ImageError::Io {
            path: self.dir.clone(),
            source,
        })?;
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json")
                && let Ok(bytes) = read_record(&p)
                && let Ok(r) = serde_json::from_slice::<ImageRecord>(&bytes)
            {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

pub fn now_rfc3339() -> String {
    buildd_oci::rfc3339(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    )
}

/// Makes an image from a root filesystem tarball (plain, gzip or zstd), like
/// `docker import`: one layer, and a config with only the default PATH.
pub fn import_rootfs(
    layers: &LayerStore,
    images: &ImageStore,
    mut tarball: impl Read,
    name: &str,
) -> Result<ImageRecord, ImageError> {
    let name = normalize_name(name)?;
    let fail = |message: String| ImageError::Import {
        name: name.clone(),
        message,
    };
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut tarball, &mut magic).map_err(|e| fail(e.to_string()))?;
    let compression = match &magic[..n] {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd] => Compression::Zstd,
        _ => Compression::None,
    };
    let reader = io::Cursor::new(magic[..n].to_vec()).chain(tarball);
    let pending = layers.begin().map_err(|e| fail(e.to_string()))?;
    let diff_id = buildd_oci::unpack_layer(reader, compression, pending.path())
        .map_err(|e| fail(e.to_string()))?;
    let id = crate::ops::fresh_layer_id(diff_id);
    pending.commit(&id).map_err(|e| fail(e.to_string()))?;
    layers.sync().map_err(|e| fail(e.to_string()))?;
    let platform = buildd_oci::host_platform();
    let created = now_rfc3339();
    let mut config = ImageConfig {
        created: Some(created.clone()),
        architecture: platform.architecture,
        os: platform.os,
        variant: platform.variant,
        ..Default::default()
    };
    config.config.env =
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()];
    config.rootfs.diff_ids = vec![diff_id.to_string()];
    config.history = vec![History {
        created: Some(created.clone()),
        created_by: Some("buildd import".to_owned()),
        ..Default::default()
    }];
    let record = ImageRecord {
        name,
        layers: vec![id.to_string()],
        config,
        created,
    };
    images.put(&record)?;
    Ok(record)
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_get_a_default_tag() {
        assert_eq!(normalize_name("busybox").unwrap(), "busybox:latest");
        assert_eq!(normalize_name("busybox:1.36").unwrap(), "busybox:1.36");
        assert_eq!(
            normalize_name("localhost:5000/team/app").unwrap(),
            "localhost:5000/team/app:latest"
        );
        for bad in ["", "-x", "a b", "../etc", "x\n"] {
            assert!(normalize_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn records_round_trip_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let rec = ImageRecord {
            name: "app:1".into(),
            layers: vec!["ab".into()],
            config: ImageConfig::default(),
            created: now_rfc3339(),
        };
        store.put(&rec).unwrap();
        assert_eq!(store.get("app:1").unwrap(), Some(rec.clone()));
        assert_eq!(store.get("other").unwrap(), None);
        assert_eq!(store.list().unwrap(), vec![rec]);
    }

    #[test]
    fn oversized_records_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let path = store.path("big:latest");
        let f = File::create(&path).unwrap();
        f.set_len(MAX_RECORD_BYTES + 1).unwrap();
        let err = store.get("big").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "image store {}: {} bytes, over the image record cap of {MAX_RECORD_BYTES} bytes",
                path.display(),
                MAX_RECORD_BYTES + 1
            )
        );
        assert_eq!(store.list().unwrap(), Vec::new());
    }
}
