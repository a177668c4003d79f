//! Serving a `FileRequest`: the contents of listed files, in chunks.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use buildd_proto::control::{ClientMessage, FileData, Stat, client_message::Msg};
use tokio::sync::mpsc;

/// Chunk size of file data on the wire.
pub const CHUNK: usize = 64 * 1024;

/// A listing sent for a sync request: what its indexes name.
#[derive(Debug)]
pub struct Listing {
    pub root: PathBuf,
    pub stats: Vec<Stat>,
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("file index {0} is not in the listing")]
    BadIndex(u32),
    #[error("{0:?} is not a regular file")]
    NotAFile(String),
    #[error("cannot read {path:?}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("the session closed")]
    Closed,
}

/// Sends the files `indexes` of `listing` as `FileData` chunks answering file
/// request `request_id`, each file ending with `eof`. Blocking: run it off the
/// async threads.
pub fn send(
    listing: &Listing,
    request_id: u64,
    indexes: &[u32],
    tx: &mpsc::Sender<ClientMessage>,
) -> Result<(), FileError> {
    let mut buf = vec![0u8; CHUNK];
    let mut next = vec![0u8; CHUNK];
    for &index in indexes {
        let stat = listing
            .stats
            .get(index as usize)
            .ok_or(FileError::BadIndex(index))?;
        if stat.mode & libc::S_IFMT != libc::S_IFREG {
            return Err(FileError::NotAFile(stat.path.clone()));
        }
        let read_err = |source| FileError::Read {
            path: stat.path.clone(),
            source,
        };
        // The listing never went through a symlink; neither does the read. A file
        // that grew since it was listed is sent as listed (the daemon refuses more):
        // the next sync sees its new size and fetches it again.
        let mut file = File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(listing.root.join(&stat.path))
            .map_err(read_err)?
            .take(stat.size);
        let mut n = fill(&mut file, &mut buf).map_err(read_err)?;
        loop {
            // One read ahead, so the last chunk carries `eof` itself.
            let m = if n == CHUNK {
                fill(&mut file, &mut next).map_err(read_err)?
            } else {
                0
            };
            let msg = FileData {
                request_id,
                index,
                data: buf[..n].to_vec(),
                eof: m == 0,
            };
            tx.blocking_send(ClientMessage {
                msg: Some(Msg::File(msg)),
            })
            .map_err(|_| FileError::Closed)?;
            if m == 0 {
                break;
            }
            std::mem::swap(&mut buf, &mut next);
            n = m;
        }
    }
    Ok(())
}

/// Reads until `buf` is full or the file ends.
fn fill(file: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::walk::{Filter, walk};

    fn received(rx: &mut mpsc::Receiver<ClientMessage>) -> Vec<FileData> {
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            match m.msg {
                Some(Msg::File(f)) => out.push(f),
                other => panic!("unexpected {other:?}"),
            }
        }
        out
    }

    #[test]
    fn sends_chunks_ending_in_eof() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big"), vec![7u8; CHUNK * 2 + 5]).unwrap();
        std::fs::write(dir.path().join("empty"), "").unwrap();
        std::fs::write(dir.path().join("exact"), vec![1u8; CHUNK]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let listing = Listing {
            root: dir.path().to_owned(),
            stats: walk(dir.path(), &Filter::default()).unwrap(),
        };
        let (tx, mut rx) = mpsc::channel(64);
        send(&listing, 9, &[0, 1, 2], &tx).unwrap();
        let got = received(&mut rx);
        let shape: Vec<(u32, usize, bool)> =
            got.iter().map(|f| (f.index, f.data.len(), f.eof)).collect();
        assert_eq!(
            shape,
            [
                (0, CHUNK, false),
                (0, CHUNK, false),
                (0, 5, true),
                (1, 0, true),
                (2, CHUNK, true)
            ]
        );
        assert!(got.iter().all(|f| f.request_id == 9));
        let err = send(&listing, 9, &[3], &tx).unwrap_err().to_string();
        assert_eq!(err, "\"sub\" is not a regular file");
        let err = send(&listing, 9, &[4], &tx).unwrap_err().to_string();
        assert_eq!(err, "file index 4 is not in the listing");

        // Grown since the listing: sent as listed.
        std::fs::write(dir.path().join("empty"), "now longer").unwrap();
        send(&listing, 9, &[1], &tx).unwrap();
        let shape: Vec<(usize, bool)> = received(&mut rx)
            .iter()
            .map(|f| (f.data.len(), f.eof))
            .collect();
        assert_eq!(shape, [(0, true)]);
    }
}
