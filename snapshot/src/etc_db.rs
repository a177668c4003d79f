//! passwd-style databases (`/etc/passwd`, `/etc/group`) read from a snapshot, for
//! resolving user and group names as BuildKit does: COPY --chown and RUN's USER.

use std::io::Read;
use std::path::Path;

use crate::error::SnapshotError;
use crate::view::LayeredView;

/// The text of `file` in the view; empty when it does not exist.
pub fn read(view: &LayeredView<'_>, file: &str) -> Result<String, SnapshotError> {
    let mut bytes = Vec::new();
    match view.open(Path::new(file)) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)
                .map_err(SnapshotError::io("read", file))?;
        }
        Err(
            SnapshotError::NotFound(_)
            | SnapshotError::NotAFile(_)
            | SnapshotError::NotADirectory(_),
        ) => {}
        Err(e) => return Err(e),
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The `:`-separated fields of each entry (comments and blank lines skipped).
pub fn entries(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
}
