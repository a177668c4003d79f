//! A Solve's exporters: which outputs the engine writes (into a temporary
//! directory under the root) and how each goes back to the client.
//!
//! `type=oci`, `docker`, `tar` and `local` outputs are produced on the daemon and streamed to
//! the client over the session ([`ExportData`]): a file as its bytes, a directory
//! as a tar stream. `type=image` names the result in the daemon's image store and,
//! with `push=true`, pushes it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use buildd_engine::export::{ArchiveFormat, OutputSpec, StreamSink};
use buildd_proto::control::{ExportData, Exporter, server_message::Msg};
use tokio::sync::mpsc;

use crate::session::{Answer, Answers, Session, SessionError};

/// Bytes per ExportData message.
const CHUNK: usize = 256 << 10;

#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    #[error("exporter {index}: {message}")]
    Invalid { index: usize, message: String },
    #[error("exporter {index} (type={kind}) is not supported yet")]
    Unsupported { index: usize, kind: String },
    #[error("exporter {index}: sending the output to the client: {source}")]
    Session { index: usize, source: SessionError },
    #[error("exporter {index}: the client could not write the output: {message}")]
    Client { index: usize, message: String },
    #[error("exporter {index}: reading {path}: {source}")]
    Io {
        index: usize,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What the daemon does for one exporter.
#[derive(Debug, Clone)]
pub enum Plan {
    /// An engine output written to `path` and streamed to the client.
    Stream {
        index: usize,
        spec: OutputSpec,
        path: PathBuf,
        directory: bool,
    },
    /// An engine output (an OCI tar) going to the client as the engine writes it.
    Live {
        index: usize,
        spec: OutputSpec,
        chunks: LiveChunks,
    },
    /// Names for the daemon's image store, and pushed to their registries when
    /// `push` is set.
    Image { names: Vec<String>, push: bool },
}

/// The plans of `exporters`, with outputs placed under `scratch`.
pub fn plan(exporters: &[Exporter], scratch: &Path) -> Result<Vec<Plan>, ExporterError> {
    exporters
        .iter()
        .enumerate()
        .map(|(index, e)| plan_one(index, e, scratch))
        .collect()
}

fn plan_one(index: usize, e: &Exporter, scratch: &Path) -> Result<Plan, ExporterError> {
    let invalid = |message: String| ExporterError::Invalid { index, message };
    let mut attrs: BTreeMap<&str, &str> = e
        .attrs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // Where the client puts it; the daemon does not care.
    attrs.remove("dest");
    let path = scratch.join(format!("out-{index}"));
    let plan = match e.r#type.as_str() {
        "oci" | "docker" => {
            let format = if e.r#type == "docker" {
                ArchiveFormat::Docker
            } else {
                ArchiveFormat::Oci
            };
            let tar = match attrs.remove("tar") {
                None | Some("true") => true,
                Some("false") if format == ArchiveFormat::Docker => {
                    return Err(invalid("type=docker is always a tar archive".to_owned()));
                }
                Some("false") => false,
                Some(other) => return Err(invalid(format!("tar={other}: want true or false"))),
            };
            let compression = match attrs.remove("compression") {
                None => Default::default(),
                Some(c) => c.parse().map_err(|e| invalid(format!("{e}")))?,
            };
            let name = attrs
                .remove("name")
                .filter(|n| !n.is_empty())
                .map(str::to_owned);
            if tar {
                let (sink, chunks) = LiveChunks::new();
                Plan::Live {
                    index,
                    spec: OutputSpec::OciStream {
                        sink,
                        name,
                        compression,
                        format,
                    },
                    chunks,
                }
            } else {
                Plan::Stream {
                    index,
                    spec: OutputSpec::Oci {
                        dest: path.clone(),
                        tar: false,
                        name,
                        compression,
                        format,
                    },
                    path,
                    directory: true,
                }
            }
        }
        "tar" => {
            let (sink, chunks) = LiveChunks::new();
            Plan::Live {
                index,
                spec: OutputSpec::TarStream { sink },
                chunks,
            }
        }
        "local" => Plan::Stream {
            index,
            spec: OutputSpec::Local { dest: path.clone() },
            path,
            directory: true,
        },
        "image" => {
            let push = match attrs.remove("push") {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => return Err(invalid(format!("push={other}: want true or false"))),
            };
            let names = attrs
                .remove("name")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>();
            if names.is_empty() {
                return Err(invalid("type=image needs name=".into()));
            }
            Plan::Image { names, push }
        }
        other => {
            return Err(ExporterError::Unsupported {
                index,
                kind: other.to_owned(),
            });
        }
    };
    if let Some(k) = attrs.keys().next() {
        return Err(invalid(format!(
            "unknown attribute {k:?} for type={}",
            e.r#type
        )));
    }
    Ok(plan)
}

/// A Solve's scratch directory under `<root>/tmp/` (the staged Dockerfile, outputs
/// being streamed). It may hold a whole exported tree, so it is removed on a
/// blocking thread: awaited by [`Scratch::remove`], handed off when dropped (a
/// cancelled Solve).
pub struct Scratch(Option<tempfile::TempDir>);

impl Scratch {
    pub fn new(parent: &Path) -> std::io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("solve-")
            .tempdir_in(parent)?;
        Ok(Self(Some(dir)))
    }

    pub fn path(&self) -> &Path {
        self.0.as_ref().expect("present until removed").path()
    }

    /// Removes the directory and waits until it is gone.
    pub async fn remove(mut self) {
        if let Some(dir) = self.0.take() {
            let _ = tokio::task::spawn_blocking(move || drop(dir)).await;
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let Some(dir) = self.0.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn_blocking(move || drop(dir))),
            Err(_) => drop(dir),
        }
    }
}

/// Removes a streamed output (a file, or a directory tree) on a blocking thread.
pub async fn discard(path: PathBuf, directory: bool) {
    let _ = tokio::task::spawn_blocking(move || {
        if directory {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        }
    })
    .await;
}

type Chunks = mpsc::Receiver<std::io::Result<Vec<u8>>>;

/// The receiving end of a live output: what the engine's export writes into the
/// [`StreamSink`] arrives here, to go to the client as it is produced.
#[derive(Clone)]
pub struct LiveChunks(Arc<Mutex<Option<Chunks>>>);

impl LiveChunks {
    /// A sink for the engine and where its chunks arrive.
    fn new() -> (StreamSink, Self) {
        let (tx, rx) = mpsc::channel(4);
        let sink = StreamSink::new(ChunkWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        });
        (sink, Self(Arc::new(Mutex::new(Some(rx)))))
    }

    fn take(&self) -> Option<Chunks> {
        self.0.lock().unwrap().take()
    }
}

impl std::fmt::Debug for LiveChunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveChunks")
    }
}

/// An output whose bytes went to the client, not yet ended: the client keeps it
/// only after [`Forwarded::finish`] (a build that fails after exporting must not
/// leave a complete-looking file).
pub struct Forwarded<'s> {
    session: &'s Session,
    index: usize,
    id: u64,
    directory: bool,
    answers: Option<Answers<'s>>,
}

/// Sends every chunk of `chunks` to the client as exporter `index`'s data, as it
/// comes, until its writer is gone.
pub async fn forward<'s>(
    session: &'s Session,
    index: usize,
    directory: bool,
    mut chunks: Chunks,
    what: &Path,
) -> Result<Forwarded<'s>, ExporterError> {
    let mut out = Forwarded {
        session,
        index,
        id: session.next_id(),
        directory,
        answers: None,
    };
    while let Some(chunk) = chunks.recv().await {
        let data = chunk.map_err(|source| ExporterError::Io {
            index,
            path: what.to_owned(),
            source,
        })?;
        out.send(data, false).await?;
    }
    Ok(out)
}

/// Forwards the live outputs among `plans`, in order (the engine exports them
/// in that order), while the build that writes them runs.
pub async fn forward_live<'s>(
    session: &'s Session,
    plans: &[Plan],
) -> Result<Vec<Forwarded<'s>>, ExporterError> {
    let mut out = Vec::new();
    for plan in plans {
        if let Plan::Live { index, chunks, .. } = plan
            && let Some(rx) = chunks.take()
        {
            out.push(forward(session, *index, false, rx, Path::new("the output stream")).await?);
        }
    }
    Ok(out)
}

impl Forwarded<'_> {
    pub fn index(&self) -> usize {
        self.index
    }

    async fn send(&mut self, data: Vec<u8>, eof: bool) -> Result<(), ExporterError> {
        let msg = Msg::Export(ExportData {
            id: self.id,
            exporter: self.index as u32,
            data,
            eof,
            directory: self.directory,
        });
        let session_err = |source| ExporterError::Session {
            index: self.index,
            source,
        };
        if self.answers.is_none() {
            // The first message opens the request the client acknowledges.
            self.answers = Some(
                self.session
                    .request(self.id, msg)
                    .await
                    .map_err(session_err)?,
            );
        } else {
            self.session.send(msg).await.map_err(session_err)?;
        }
        Ok(())
    }

    /// Ends the output and waits for the client's acknowledgement.
    pub async fn finish(mut self) -> Result<(), ExporterError> {
        self.send(Vec::new(), true).await?;
        let index = self.index;
        let session_err = |source| ExporterError::Session { index, source };
        let mut answers = self.answers.take().expect("the eof chunk was sent");
        match answers.next().await.map_err(session_err)? {
            Answer::ExportAck(ack) if ack.error.is_empty() => Ok(()),
            Answer::ExportAck(ack) => Err(ExporterError::Client {
                index,
                message: ack.error,
            }),
            _ => Err(session_err(answers.unexpected())),
        }
    }
}

/// Streams the output at `path` (a file, or a directory as a tar stream) to the
/// client as exporter `index`'s data and waits for the client's acknowledgement.
pub async fn send(
    session: &Session,
    index: usize,
    path: &Path,
    directory: bool,
) -> Result<(), ExporterError> {
    let (tx, rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    let (src, dir) = (path.to_owned(), directory);
    // Reading and tarring are blocking; chunks come back over a small channel.
    let reader = tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let result = if dir {
            tar_dir(&src, &mut out)
        } else {
            std::fs::File::open(&src).and_then(|mut f| copy(&mut f, &mut out))
        }
        .and_then(|()| out.flush());
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let forwarded = forward(session, index, directory, rx, path).await;
    let _ = reader.await;
    forwarded?.finish().await
}

fn copy(r: &mut impl Read, w: &mut impl Write) -> std::io::Result<()> {
    std::io::copy(r, w).map(drop)
}

/// A directory as a tar stream: symlinks stored as links, never followed.
fn tar_dir(dir: &Path, out: &mut ChunkWriter) -> std::io::Result<()> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    // The tar crate takes a file with no blocks for all hole (ext4 reports none for
    // small files in some states, losing their bytes), and bctl unpacks no sparse
    // entries: every file goes whole.
    b.sparse(false);
    b.mode(tar::HeaderMode::Complete);
    b.append_dir_all(".", dir)?;
    b.finish()
}

struct ChunkWriter {
    tx: mpsc::Sender<std::io::Result<Vec<u8>>>,
    buf: Vec<u8>,
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "export cancelled"))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// A file without data blocks (a hole, or what ext4 reports for some small
    /// files) goes as a plain file with all its bytes: bctl unpacks no sparse
    /// entries.
    #[test]
    fn directories_tar_without_sparse_entries() {
        let dir = tempfile::tempdir().unwrap();
        let hole = std::fs::File::create(dir.path().join("hole")).unwrap();
        hole.set_len(300_000).unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let mut out = ChunkWriter {
            tx,
            buf: Vec::new(),
        };
        tar_dir(dir.path(), &mut out).unwrap();
        out.flush().unwrap();
        drop(out);
        let mut bytes = Vec::new();
        while let Ok(chunk) = rx.try_recv() {
            bytes.extend(chunk.unwrap());
        }
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut entry = archive
            .entries()
            .unwrap()
            .map(Result::unwrap)
            .find(|e| e.path().unwrap().ends_with("hole"))
            .expect("the file is in the archive");
        assert_eq!(entry.header().entry_type(), tar::EntryType::Regular);
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        assert_eq!(data, vec![0u8; 300_000]);
    }
}
