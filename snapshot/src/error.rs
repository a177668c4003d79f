use std::fmt;
use std::io;
use std::path::PathBuf;

/// Errors from the layer store and from reading layered views.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("invalid layer id {0:?}: want 1 to 128 lower-case hex digits")]
    InvalidLayerId(String),
    #[error("layer {0} does not exist")]
    LayerMissing(String),
    #[error("{0:?} does not exist")]
    NotFound(PathBuf),
    #[error("{0:?} is not a directory")]
    NotADirectory(PathBuf),
    #[error("{0:?} is not a symbolic link")]
    NotASymlink(PathBuf),
    #[error("{0:?} is not a regular file")]
    NotAFile(PathBuf),
    #[error("{0}")]
    BadMode(String),
    #[error("invalid pattern {0:?}")]
    BadPattern(String),
    #[error("too many levels of symbolic links resolving {0:?}")]
    SymlinkLoop(PathBuf),
    // The cause is part of the message rather than `source()` so it is never lost by
    // a reporter that prints only the top error.
    #[error("{op} {path:?}: {error}")]
    Io {
        op: &'static str,
        path: PathBuf,
        error: io::Error,
    },
}

impl SnapshotError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |error| SnapshotError::Io { op, path, error }
    }
}

/// A FileOp action failed. Displays as `<action> "<path>": <what went wrong>`, or
/// `fileop: <what went wrong>` for the op as a whole.
#[derive(Debug)]
pub struct FileOpError {
    /// `copy`, `mkdir`, `mkfile`, `rm`, `symlink`, or `fileop` for the op as a whole.
    pub action: &'static str,
    /// The path of the action at fault, as the action spells it; None for the op as
    /// a whole (its errors name what they are about themselves).
    pub path: Option<String>,
    pub kind: FileOpErrorKind,
}

impl fmt::Display for FileOpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{} {p:?}: {}", self.action, self.kind),
            None => write!(f, "{}: {}", self.action, self.kind),
        }
    }
}

impl std::error::Error for FileOpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // `kind` is already part of the message; expose only what lies beneath it.
        std::error::Error::source(&self.kind)
    }
}

/// What went wrong in a FileOp action.
#[derive(Debug, thiserror::Error)]
pub enum FileOpErrorKind {
    #[error("no such file or directory")]
    NotFound,
    #[error("parent directory {0:?} does not exist")]
    ParentNotFound(String),
    #[error("not a directory")]
    NotADirectory,
    #[error("{0:?} is not a directory")]
    ParentNotADirectory(String),
    #[error("is a directory")]
    IsADirectory,
    #[error("file exists")]
    Exists,
    #[error("too many levels of symbolic links")]
    SymlinkLoop,
    #[error("cannot remove the root directory")]
    RemoveRoot,
    #[error("no source files matched")]
    NoMatch,
    #[error("{0}")]
    BadMode(String),
    #[error("invalid pattern {0:?}")]
    BadPattern(String),
    #[error("input index {0} is out of range")]
    BadInput(i64),
    #[error("{0} is not supported")]
    Unsupported(&'static str),
    /// A context file is not the one the cache key was computed from.
    #[error("{0:?} changed during the build")]
    Changed(String),
    /// `.wh.` names mark deletions in OCI layers; a real file so named would be
    /// read back as one.
    #[error("file names starting with \".wh.\" are reserved for whiteouts")]
    ReservedName,
    #[error("archive entry escapes the destination")]
    ArchiveEscape,
    #[error("hard link target {0:?} is not an earlier entry of the archive")]
    ArchiveLink(String),
    #[error("unsupported archive entry type {0}")]
    ArchiveEntryType(String),
    #[error("archive header has an invalid {0}")]
    ArchiveHeader(&'static str),
    #[error("{0}")]
    Select(#[source] buildd_fsutil::select::SelectError),
    #[error("{0}")]
    Io(#[source] io::Error),
    #[error("{0}")]
    Store(#[source] SnapshotError),
}

impl FileOpErrorKind {
    /// Maps a view error met while resolving an action's path.
    pub(crate) fn from_view(err: SnapshotError) -> Self {
        let show = |p: PathBuf| p.to_string_lossy().into_owned();
        match err {
            SnapshotError::NotFound(p) => FileOpErrorKind::ParentNotFound(show(p)),
            SnapshotError::NotADirectory(p) => FileOpErrorKind::ParentNotADirectory(show(p)),
            SnapshotError::SymlinkLoop(_) => FileOpErrorKind::SymlinkLoop,
            SnapshotError::BadPattern(p) => FileOpErrorKind::BadPattern(p),
            other => FileOpErrorKind::Store(other),
        }
    }
}

impl From<io::Error> for FileOpErrorKind {
    fn from(e: io::Error) -> Self {
        FileOpErrorKind::Io(e)
    }
}

impl From<SnapshotError> for FileOpErrorKind {
    fn from(e: SnapshotError) -> Self {
        FileOpErrorKind::from_view(e)
    }
}
