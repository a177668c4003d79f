//! `buildd debug fsck`: checks that a root's records and content agree. With
//! `repair` it removes what can be made again (cache records naming missing
//! content, corrupt blobs); images are reported, never removed.

mod leftovers;
mod report;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use buildd_proto::Digest;
use buildd_snapshot::LayerId;

use crate::cache::snapshots::{Fault, SnapshotTable};
use crate::cache::{IndexError, Table};
use crate::export::{BlobRecord, blob_key_layer};
use crate::images::{ImageError, ImageRecord};
use crate::root::{Root, RootError, RootLock};
use crate::store::StoreError;

pub use report::{BlobState, FsckReport, Note, Problem, Repair};

#[derive(Debug, thiserror::Error)]
pub enum FsckError {
    #[error("root {0} does not exist")]
    NoRoot(PathBuf),
    #[error(transparent)]
    Root(#[from] RootError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Images(#[from] ImageError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

#[derive(Debug, Clone, Copy, Default)]
pub struct FsckOptions {
    /// Remove dangling index records and corrupt blobs.
    pub repair: bool,
}

/// Locks and opens the root at `path` (refused while another process uses it),
/// checks blobs, index records and images, and repairs what `opts` allows.
pub fn check(path: &Path, opts: FsckOptions) -> Result<FsckReport, FsckError> {
    if !path.is_dir() {
        return Err(FsckError::NoRoot(path.to_owned()));
    }
    let lock = RootLock::acquire(path)?;
    let mut report = FsckReport::default();
    if lock.unclean() {
        report.notes.push(Note::Unclean);
    }
    report.notes.extend(leftovers::scan(path));
    let root = Root::open_locked(lock, None)?;

    let corrupt = check_blobs(&root, opts, &mut report)?;
    let mut doomed = Vec::new();
    check_results(&root, &mut report, &mut doomed)?;
    check_layer_blobs(&root, &corrupt, &mut report, &mut doomed)?;
    check_images(&root, &mut report)?;

    if opts.repair {
        for (table, key) in doomed {
            root.index.remove(table, &key)?;
            report.repairs.push(Repair::RemovedRecord {
                table,
                key: key_text(table, &key),
            });
        }
        root.flush()?;
    }
    Ok(report)
}

/// Removes the index records that name layers or blobs no longer there (what a
/// prune leaves), so the index never points at nothing; returns how many went.
pub fn drop_dangling_records(root: &Root) -> Result<usize, FsckError> {
    let mut report = FsckReport::default();
    let mut doomed = Vec::new();
    check_results(root, &mut report, &mut doomed)?;
    check_layer_blobs(root, &HashSet::new(), &mut report, &mut doomed)?;
    for (table, key) in &doomed {
        root.index.remove(*table, key)?;
    }
    // Snapshots remembered as recorded may have lost their records.
    root.layers.snapshots.clear();
    root.flush()?;
    Ok(doomed.len())
}

/// Hashes every blob; returns the digests of corrupt ones (removed under repair).
fn check_blobs(
    root: &Root,
    opts: FsckOptions,
    report: &mut FsckReport,
) -> Result<HashSet<Digest>, FsckError> {
    let dir = root.content.dir();
    let io_err = |source| FsckError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(io_err)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io_err)?;
    names.sort();
    let mut corrupt = HashSet::new();
    for name in names {
        let path = dir.join(&name);
        let named = name.to_str().and_then(|n| Digest::from_hex(n).ok());
        let Some(digest) = named.filter(|_| path.symlink_metadata().is_ok_and(|m| m.is_file()))
        else {
            report.problems.push(Problem::StrayBlobEntry { path });
            continue;
        };
        report.blobs += 1;
        match crate::store::digest_of(&path) {
            Ok(actual) if actual == digest => {}
            Ok(actual) => {
                corrupt.insert(digest);
                report.problems.push(Problem::CorruptBlob {
                    path: path.clone(),
                    actual,
                });
                if opts.repair {
                    root.content.remove(&digest)?;
                    report.repairs.push(Repair::RemovedBlob { path });
                }
            }
            Err(e) => report.problems.push(Problem::UnreadableBlob {
                path,
                message: e.to_string(),
            }),
        }
    }
    Ok(corrupt)
}

/// sha256 of a file, streamed.
/// `Results`: cache key → a snapshot whose records and layers must all exist.
/// `Snapshots`: a record whose layer is gone, or that no result reaches (left by
/// a prune or a crash between writes), is dropped too.
fn check_results(
    root: &Root,
    report: &mut FsckReport,
    doomed: &mut Vec<(Table, Vec<u8>)>,
) -> Result<(), FsckError> {
    let snapshots = SnapshotTable::load(root.index.as_ref())?;
    let exists = |id: &str| layer_exists(root, id);
    let mut known = HashMap::new();
    let mut reached = HashSet::new();
    let table = Table::Results;
    for (key, value) in root.index.entries(table)? {
        report.records += 1;
        let fault = snapshots.check(&value, &exists, &mut known);
        if fault.is_none() {
            let _ = snapshots.reach(&value, &mut reached, &mut HashSet::new());
        }
        let text = key_text(table, &key);
        let problem = fault.map(|f| match f {
            Fault::Unreadable(message) => Problem::UnreadableRecord {
                table,
                key: text,
                message,
            },
            Fault::MissingLayer(layer) => Problem::RecordMissingLayer {
                table,
                key: text,
                layer,
            },
            Fault::MissingRecord(id) => Problem::UnreadableRecord {
                table,
                key: text,
                message: format!("snapshot {id} has no record"),
            },
        });
        if let Some(p) = problem {
            report.problems.push(p);
            doomed.push((table, key));
        }
    }
    let table = Table::Snapshots;
    for (id, unreadable) in snapshots.ids() {
        report.records += 1;
        let key = key_text(table, id.as_bytes());
        let problem = match (unreadable, snapshots.layer(id)) {
            (Some(message), _) => Some(Problem::UnreadableRecord {
                table,
                key,
                message: message.to_owned(),
            }),
            (None, Some(layer)) if !exists(layer) => Some(Problem::RecordMissingLayer {
                table,
                key,
                layer: layer.to_owned(),
            }),
            _ => None,
        };
        if let Some(p) = problem {
            report.problems.push(p);
        } else if reached.contains(id) {
            continue;
        }
        doomed.push((table, id.as_bytes().to_vec()));
    }
    Ok(())
}

/// `LayerBlobs`: layer + compression → the blob it was exported as; the layer and
/// the blob (whole, of the recorded size) must exist.
fn check_layer_blobs(
    root: &Root,
    corrupt: &HashSet<Digest>,
    report: &mut FsckReport,
    doomed: &mut Vec<(Table, Vec<u8>)>,
) -> Result<(), FsckError> {
    let table = Table::LayerBlobs;
    for (key, value) in root.index.entries(table)? {
        report.records += 1;
        let text = key_text(table, &key);
        let problem = match serde_json::from_slice::<BlobRecord>(&value) {
            Err(e) => Some(Problem::UnreadableRecord {
                table,
                key: text,
                message: e.to_string(),
            }),
            Ok(rec) => match blob_key_layer(&text) {
                Some(layer) if !layer_exists(root, layer) => Some(Problem::RecordMissingLayer {
                    table,
                    layer: layer.to_owned(),
                    key: text,
                }),
                None => Some(Problem::UnreadableRecord {
                    table,
                    key: text,
                    message: "key names no layer".to_owned(),
                }),
                Some(_) => blob_state(root, corrupt, &rec).map(|state| Problem::RecordBadBlob {
                    key: text,
                    digest: rec.digest,
                    state,
                }),
            },
        };
        if let Some(p) = problem {
            report.problems.push(p);
            doomed.push((table, key));
        }
    }
    Ok(())
}

/// What is wrong with the blob a layer-blob record names, if anything.
fn blob_state(root: &Root, corrupt: &HashSet<Digest>, rec: &BlobRecord) -> Option<BlobState> {
    let Ok(digest) = rec.digest.parse::<Digest>() else {
        return Some(BlobState::Missing);
    };
    if corrupt.contains(&digest) {
        return Some(BlobState::Corrupt);
    }
    match root.content.size(&digest) {
        None => Some(BlobState::Missing),
        Some(actual) if actual != rec.size => Some(BlobState::Size {
            expected: rec.size,
            actual,
        }),
        Some(_) => None,
    }
}

/// Every image record decodes, is filed under its name and names layers that exist.
/// Image records hold their config inline, so they name no blobs.
fn check_images(root: &Root, report: &mut FsckReport) -> Result<(), FsckError> {
    for path in root.images.record_files()? {
        report.images += 1;
        let record = fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<ImageRecord>(&b).map_err(|e| e.to_string()));
        let image = match record {
            Ok(image) => image,
            Err(message) => {
                report
                    .problems
                    .push(Problem::UnreadableImage { path, message });
                continue;
            }
        };
        if root.images.path(&image.name) != path {
            report.problems.push(Problem::MisfiledImage {
                path: path.clone(),
                name: image.name.clone(),
            });
        }
        for layer in image.layers.iter().filter(|id| !layer_exists(root, id)) {
            report.problems.push(Problem::ImageMissingLayer {
                name: image.name.clone(),
                path: path.clone(),
                layer: layer.clone(),
            });
        }
    }
    Ok(())
}

fn layer_exists(root: &Root, id: &str) -> bool {
    LayerId::new(id).is_ok_and(|id| root.layers.exists(&id))
}

/// A record key as text: results and snapshot keys are raw sha256 digests, others
/// are text.
fn key_text(table: Table, key: &[u8]) -> String {
    match (table, <[u8; 32]>::try_from(key)) {
        (Table::Results | Table::Snapshots, Ok(bytes)) => Digest::from_bytes(bytes).to_string(),
        _ => match std::str::from_utf8(key) {
            Ok(s) if s.chars().all(|c| c.is_ascii_graphic()) => s.to_owned(),
            _ => format!("0x{}", hex::encode(key)),
        },
    }
}
