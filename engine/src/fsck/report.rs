//! What a check found and what a repair did, each printable as one line.

use std::fmt;
use std::path::PathBuf;

use buildd_proto::Digest;

use crate::cache::Table;

/// The outcome of [`check`](super::check).
#[derive(Debug, Default)]
pub struct FsckReport {
    /// Blobs in the content store that were hashed.
    pub blobs: usize,
    /// Index records (results and layer blobs) that were checked.
    pub records: usize,
    /// Image records that were checked.
    pub images: usize,
    pub problems: Vec<Problem>,
    /// What `repair` changed, in the order it did it.
    pub repairs: Vec<Repair>,
    /// Worth knowing, not wrong: leftovers of processes that died.
    pub notes: Vec<Note>,
}

impl FsckReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// `fsck: 12 blobs, 3 records, 1 images checked; 0 problems`, plus what was
    /// repaired when anything was.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "fsck: {} blobs, {} records, {} images checked; {} problems",
            self.blobs,
            self.records,
            self.images,
            self.problems.len()
        );
        if !self.repairs.is_empty() {
            line.push_str(&format!(", {} repairs", self.repairs.len()));
        }
        line
    }
}

/// Something in the root that is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A blob whose content does not hash to its name.
    CorruptBlob { path: PathBuf, actual: Digest },
    /// A blob that could not be read through.
    UnreadableBlob { path: PathBuf, message: String },
    /// An entry of the blob directory that is not a file named by a sha256 digest.
    StrayBlobEntry { path: PathBuf },
    /// An index record that does not decode.
    UnreadableRecord {
        table: Table,
        key: String,
        message: String,
    },
    /// An index record naming a layer the layer store does not have.
    RecordMissingLayer {
        table: Table,
        key: String,
        layer: String,
    },
    /// A layer-blob record naming a blob that is missing, corrupt or of another size.
    RecordBadBlob {
        key: String,
        digest: String,
        state: BlobState,
    },
    /// An image record file that does not decode.
    UnreadableImage { path: PathBuf, message: String },
    /// An image record stored under another name's file, so lookups miss it.
    MisfiledImage { path: PathBuf, name: String },
    /// An image naming a layer the layer store does not have.
    ImageMissingLayer {
        name: String,
        path: PathBuf,
        layer: String,
    },
}

/// Why a record's blob cannot serve it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobState {
    Missing,
    Corrupt,
    Size { expected: u64, actual: u64 },
}

impl Problem {
    /// Whether `repair` fixes this: cache records and corrupt blobs can go (the
    /// cache rebuilds, a pull fetches again); anything else is left for a person.
    pub fn repairable(&self) -> bool {
        matches!(
            self,
            Problem::CorruptBlob { .. }
                | Problem::UnreadableRecord { .. }
                | Problem::RecordMissingLayer { .. }
                | Problem::RecordBadBlob { .. }
        )
    }

    /// Why `repair` leaves this alone, for problems it does not fix.
    pub fn why_not_repaired(&self) -> Option<&'static str> {
        match self {
            _ if self.repairable() => None,
            Problem::UnreadableImage { .. }
            | Problem::MisfiledImage { .. }
            | Problem::ImageMissingLayer { .. } => Some(
                "images are never discarded silently; rebuild it with -t or re-import it, \
                 or remove its record by hand",
            ),
            _ => Some("not something fsck removes; look at it by hand"),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::CorruptBlob { path, actual } => {
                write!(f, "blob {}: content has digest {actual}", path.display())
            }
            Problem::UnreadableBlob { path, message } => {
                write!(f, "blob {}: unreadable: {message}", path.display())
            }
            Problem::StrayBlobEntry { path } => write!(
                f,
                "blob store {}: not a file named by a sha256 digest",
                path.display()
            ),
            Problem::UnreadableRecord {
                table,
                key,
                message,
            } => write!(f, "{} record {key}: unreadable: {message}", table.name()),
            Problem::RecordMissingLayer { table, key, layer } => write!(
                f,
                "{} record {key}: names layer {layer}, which is missing",
                table.name()
            ),
            Problem::RecordBadBlob { key, digest, state } => {
                write!(f, "layer-blobs record {key}: names blob {digest}, which ")?;
                match state {
                    BlobState::Missing => write!(f, "is missing"),
                    BlobState::Corrupt => write!(f, "is corrupt"),
                    BlobState::Size { expected, actual } => {
                        write!(f, "has {actual} bytes, not {expected}")
                    }
                }
            }
            Problem::UnreadableImage { path, message } => {
                write!(f, "image record {}: unreadable: {message}", path.display())
            }
            Problem::MisfiledImage { path, name } => write!(
                f,
                "image {name}: record is stored as {}, where lookups of that name do not look",
                path.display()
            ),
            Problem::ImageMissingLayer { name, path, layer } => write!(
                f,
                "image {name} ({}): names layer {layer}, which is missing",
                path.display()
            ),
        }
    }
}

/// A change `repair` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    RemovedBlob { path: PathBuf },
    RemovedRecord { table: Table, key: String },
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Repair::RemovedBlob { path } => write!(
                f,
                "removed corrupt blob {} (fetched or rebuilt when next needed)",
                path.display()
            ),
            Repair::RemovedRecord { table, key } => write!(
                f,
                "removed {} record {key} (the cache rebuilds what it named)",
                table.name()
            ),
        }
    }
}

/// Not a problem, but worth a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// The root's last user died without closing it; opening it ran crash recovery.
    Unclean,
    /// Something a process that died left behind.
    Leftover {
        path: PathBuf,
        what: &'static str,
        /// Whether opening the root removed it, as every buildd process does.
        removed: bool,
    },
    /// A mount under the root that is still mounted.
    Mounted { path: PathBuf },
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::Unclean => write!(
                f,
                "root was not closed cleanly; opening it ran crash recovery"
            ),
            Note::Leftover {
                path,
                what,
                removed,
            } => {
                write!(f, "leftover {}: {what}", path.display())?;
                if *removed {
                    write!(f, " (removed on open)")?;
                }
                Ok(())
            }
            Note::Mounted { path } => write!(f, "still mounted: {}", path.display()),
        }
    }
}
