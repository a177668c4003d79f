//! Receiving exported outputs: an OCI/docker archive written atomically to a file
//! (or stdout), or a directory's tar stream unpacked confined into a directory.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::unpack::{UnpackError, unpack};

/// Where an exporter's stream goes on this side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportTarget {
    /// An archive (`type=oci|docker`): written to a temporary file beside it,
    /// synced, then renamed into place.
    File(PathBuf),
    /// `dest=-`: the archive on standard output.
    Stdout,
    /// A tar stream unpacked into a directory (`type=local`, `tar=false` layouts).
    Dir(PathBuf),
    /// The exporter sends nothing back (`type=image`).
    None,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot write {dest}")]
    Write {
        dest: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot unpack into {dest}")]
    Unpack {
        dest: PathBuf,
        #[source]
        source: UnpackError,
    },
    #[error("exporter {0} sends no output to this client")]
    NoTarget(u32),
    #[error("the export stream to {0} ended before its end")]
    Truncated(String),
}

enum Chunk {
    Data(Vec<u8>),
    End,
}

/// One output being received: chunks go to a blocking writer thread.
pub struct ExportSink {
    tx: mpsc::Sender<Chunk>,
    done: JoinHandle<Result<(), ExportError>>,
}

impl ExportSink {
    pub fn start(target: &ExportTarget, exporter: u32) -> Result<Self, ExportError> {
        let (tx, rx) = mpsc::channel(8);
        let target = target.clone();
        let done = match target {
            ExportTarget::File(dest) => tokio::task::spawn_blocking(move || write_file(&dest, rx)),
            ExportTarget::Stdout => tokio::task::spawn_blocking(move || {
                let mut out = io::stdout().lock();
                copy(rx, &mut out, "stdout")?;
                out.flush().map_err(|source| ExportError::Write {
                    dest: "-".into(),
                    source,
                })
            }),
            ExportTarget::Dir(dest) => tokio::task::spawn_blocking(move || {
                let reader = ChunkReader {
                    rx,
                    buf: Vec::new(),
                    pos: 0,
                    ended: false,
                };
                unpack(reader, &dest).map_err(|source| ExportError::Unpack { dest, source })
            }),
            ExportTarget::None => return Err(ExportError::NoTarget(exporter)),
        };
        Ok(Self { tx, done })
    }

    /// Queues a chunk; a writer that already failed reports its error at `finish`.
    pub async fn write(&self, data: Vec<u8>) {
        let _ = self.tx.send(Chunk::Data(data)).await;
    }

    /// Ends the stream and waits until the output is complete on disk.
    pub async fn finish(self) -> Result<(), ExportError> {
        let _ = self.tx.send(Chunk::End).await;
        drop(self.tx);
        self.done.await.unwrap_or_else(|e| {
            Err(ExportError::Write {
                dest: PathBuf::new(),
                source: io::Error::other(e),
            })
        })
    }
}

fn write_file(dest: &Path, rx: mpsc::Receiver<Chunk>) -> Result<(), ExportError> {
    let write_err = |source| ExportError::Write {
        dest: dest.to_owned(),
        source,
    };
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = dest
        .file_name()
        .ok_or_else(|| write_err(io::Error::other("not a file name")))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let file = File::create(&tmp).map_err(write_err)?;
        let mut out = Writeback::new(file);
        copy(rx, &mut out, &dest.display().to_string())?;
        // Most of it is on the disk already: this waits for the tail.
        out.file.sync_all().map_err(write_err)?;
        fs::rename(&tmp, dest).map_err(write_err)?;
        // The rename itself must survive a crash too.
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(write_err)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Starts writing each 8 MiB to the disk as soon as it is written, so the sync
/// at the end overlaps the transfer instead of following it (and dirty pages
/// stay bounded).
struct Writeback {
    file: File,
    written: u64,
    started: u64,
}

const WRITEBACK_WINDOW: u64 = 8 << 20;

impl Writeback {
    fn new(file: File) -> Self {
        Self {
            file,
            written: 0,
            started: 0,
        }
    }

    fn range(&self, from: u64, len: u64, flags: libc::c_uint) {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain syscall on a descriptor we own. Only a hint: an error
        // (e.g. a filesystem without it) leaves the final fsync to do the work.
        unsafe {
            libc::sync_file_range(self.file.as_raw_fd(), from as i64, len as i64, flags);
        }
    }
}

impl Write for Writeback {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        while self.written - self.started >= WRITEBACK_WINDOW {
            self.range(self.started, WRITEBACK_WINDOW, libc::SYNC_FILE_RANGE_WRITE);
            // Wait for the window before the last one, so at most two are in flight.
            if self.started >= WRITEBACK_WINDOW {
                self.range(
                    self.started - WRITEBACK_WINDOW,
                    WRITEBACK_WINDOW,
                    libc::SYNC_FILE_RANGE_WAIT_BEFORE
                        | libc::SYNC_FILE_RANGE_WRITE
                        | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                );
            }
            self.started += WRITEBACK_WINDOW;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn copy(
    mut rx: mpsc::Receiver<Chunk>,
    out: &mut impl Write,
    what: &str,
) -> Result<(), ExportError> {
    loop {
        match rx.blocking_recv() {
            Some(Chunk::Data(d)) => out.write_all(&d).map_err(|source| ExportError::Write {
                dest: what.into(),
                source,
            })?,
            Some(Chunk::End) => return Ok(()),
            None => return Err(ExportError::Truncated(what.to_owned())),
        }
    }
}

/// The chunks as a `Read`, for the tar reader.
struct ChunkReader {
    rx: mpsc::Receiver<Chunk>,
    buf: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Chunk::Data(d)) => {
                    self.buf = d;
                    self.pos = 0;
                }
                Some(Chunk::End) => self.ended = true,
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the export stream ended before its end",
                    ));
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_appears_only_when_complete() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.tar");
        let sink = ExportSink::start(&ExportTarget::File(dest.clone()), 0).unwrap();
        sink.write(b"hello ".to_vec()).await;
        sink.write(b"world".to_vec()).await;
        assert!(!dest.exists());
        sink.finish().await.unwrap();
        assert_eq!(fs::read_to_string(&dest).unwrap(), "hello world");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);

        // Abandoned mid-way: nothing is left behind, the old file stays.
        let sink = ExportSink::start(&ExportTarget::File(dest.clone()), 0).unwrap();
        sink.write(b"partial".to_vec()).await;
        drop(sink.tx);
        let err = sink.done.await.unwrap().unwrap_err();
        assert!(matches!(err, ExportError::Truncated(_)), "{err}");
        assert_eq!(fs::read_to_string(&dest).unwrap(), "hello world");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn a_directory_is_unpacked_from_its_tar_stream() {
        let dir = tempfile::tempdir().unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut h, "sub/f", &b"hi"[..]).unwrap();
        let bytes = builder.into_inner().unwrap();
        let dest = dir.path().join("out");
        let sink = ExportSink::start(&ExportTarget::Dir(dest.clone()), 0).unwrap();
        for chunk in bytes.chunks(100) {
            sink.write(chunk.to_vec()).await;
        }
        sink.finish().await.unwrap();
        assert_eq!(fs::read_to_string(dest.join("sub/f")).unwrap(), "hi");
    }
}
