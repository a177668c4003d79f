//! BuildKit's plain progress:
//!
//! ```text
//! #1 [internal] load build definition from Dockerfile
//! #1 DONE 0.0s
//!
//! #2 [stage-0 2/3] RUN make
//! #2 0.153 compiling…
//! #2 DONE 1.2s
//! ```

use std::collections::HashMap;
use std::io::{self, Write};

use buildd_proto::control::{StatusResponse, TransferStats, Vertex, VertexLog};

use super::{Printer, human_bytes, transfer_summary};

#[derive(Default)]
struct Shown {
    num: usize,
    started_ns: i64,
    cached: bool,
    finished: bool,
    /// A log line not ended yet.
    partial: Vec<u8>,
    done_statuses: Vec<String>,
}

/// Prints each change of the build as lines; vertices are numbered in the order
/// they first start.
pub struct Plain<W: Write> {
    out: W,
    shown: HashMap<String, Shown>,
    names: HashMap<String, String>,
    next: usize,
}

impl<W: Write> Plain<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            shown: HashMap::new(),
            names: HashMap::new(),
            next: 1,
        }
    }

    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }

    /// The vertex's entry, printing its header the first time.
    fn header(&mut self, digest: &str) -> io::Result<&mut Shown> {
        if !self.shown.contains_key(digest) {
            let num = self.next;
            self.next += 1;
            if num > 1 {
                writeln!(self.out)?;
            }
            let name = self.names.get(digest).map_or(digest, String::as_str);
            writeln!(self.out, "#{num} {name}")?;
            self.shown.insert(
                digest.to_owned(),
                Shown {
                    num,
                    ..Shown::default()
                },
            );
        }
        Ok(self.shown.get_mut(digest).expect("inserted"))
    }

    fn vertex(&mut self, v: &Vertex) -> io::Result<()> {
        self.names.insert(v.digest.clone(), v.name.clone());
        if v.started_ns == 0 && !v.cached && v.error.is_empty() && v.completed_ns == 0 {
            return Ok(()); // Not started: BuildKit does not show it yet.
        }
        let s = self.header(&v.digest)?;
        if v.started_ns != 0 {
            s.started_ns = v.started_ns;
        }
        let num = s.num;
        if v.cached && !s.cached {
            s.cached = true;
            s.finished = true;
            return writeln!(self.out, "#{num} CACHED");
        }
        if s.finished || (v.completed_ns == 0 && v.error.is_empty()) {
            return Ok(());
        }
        s.finished = true;
        let partial = std::mem::take(&mut s.partial);
        let started_ns = s.started_ns;
        if !partial.is_empty() {
            let t = secs(v.completed_ns - started_ns);
            writeln!(
                self.out,
                "#{num} {t:.3} {}",
                String::from_utf8_lossy(&partial)
            )?;
        }
        if !v.error.is_empty() {
            // The first line: details come once, with the final error.
            let first = v.error.lines().next().unwrap_or_default();
            writeln!(self.out, "#{num} ERROR: {first}")
        } else {
            let d = secs(v.completed_ns - v.started_ns.max(started_ns));
            writeln!(self.out, "#{num} DONE {d:.1}s")
        }
    }

    fn log(&mut self, log: &VertexLog) -> io::Result<()> {
        let s = self.header(&log.vertex)?;
        let num = s.num;
        let t = if s.started_ns != 0 {
            secs(log.timestamp_ns - s.started_ns)
        } else {
            0.0
        };
        s.partial.extend_from_slice(&log.data);
        let Some(end) = s.partial.iter().rposition(|&b| b == b'\n') else {
            return Ok(());
        };
        let complete: Vec<u8> = s.partial.drain(..=end).collect();
        for line in String::from_utf8_lossy(&complete[..end]).split('\n') {
            writeln!(self.out, "#{num} {t:.3} {}", line.trim_end_matches('\r'))?;
        }
        Ok(())
    }
}

impl<W: Write + Send> Printer for Plain<W> {
    fn update(&mut self, resp: &StatusResponse) -> io::Result<()> {
        for v in &resp.vertexes {
            self.vertex(v)?;
        }
        for log in &resp.logs {
            self.log(log)?;
        }
        for st in &resp.statuses {
            if st.completed_ns == 0 {
                continue;
            }
            let s = self.header(&st.vertex)?;
            if s.done_statuses.contains(&st.id) {
                continue;
            }
            s.done_statuses.push(st.id.clone());
            let num = s.num;
            let amount = if st.total > 0 {
                format!(
                    "{} / {}",
                    human_bytes(st.current.max(0) as u64),
                    human_bytes(st.total as u64)
                )
            } else {
                human_bytes(st.current.max(0) as u64)
            };
            let d = secs(st.completed_ns - st.started_ns);
            writeln!(self.out, "#{num} {} {amount} {d:.1}s done", st.name)?;
        }
        self.out.flush()
    }

    fn finish(&mut self, transfer: Option<&TransferStats>) -> io::Result<()> {
        if let Some(t) = transfer {
            let num = self.next;
            self.next += 1;
            if num > 1 {
                writeln!(self.out)?;
            }
            writeln!(
                self.out,
                "#{num} transferring context: {}",
                transfer_summary(t)
            )?;
        }
        self.out.flush()
    }
}

fn secs(ns: i64) -> f64 {
    ns.max(0) as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;
    use buildd_proto::control::VertexStatus;

    const S: i64 = 1_000_000_000;

    fn vertex(d: &str, name: &str, started: i64, completed: i64) -> Vertex {
        Vertex {
            digest: d.into(),
            name: name.into(),
            started_ns: started,
            completed_ns: completed,
            ..Vertex::default()
        }
    }

    fn log(d: &str, at: i64, data: &str) -> VertexLog {
        VertexLog {
            vertex: d.into(),
            stream: 1,
            data: data.as_bytes().to_vec(),
            timestamp_ns: at,
        }
    }

    #[test]
    fn golden_plain_output() {
        let base = 1_700_000_000 * S;
        let updates = [
            StatusResponse {
                vertexes: vec![
                    vertex("sha256:a", "[internal] load build definition from Dockerfile", base, 0),
                    // Not started: not shown yet.
                    vertex("sha256:c", "[stage-0 2/2] RUN make", 0, 0),
                ],
                ..StatusResponse::default()
            },
            StatusResponse {
                vertexes: vec![vertex("sha256:a", "[internal] load build definition from Dockerfile", base, base + S / 10)],
                statuses: vec![VertexStatus {
                    id: "ctx".into(),
                    vertex: "sha256:a".into(),
                    name: "transferring dockerfile:".into(),
                    current: 1234,
                    started_ns: base,
                    completed_ns: base + S / 20,
                    ..VertexStatus::default()
                }],
                ..StatusResponse::default()
            },
            StatusResponse {
                vertexes: vec![
                    Vertex {
                        cached: true,
                        ..vertex("sha256:b", "[stage-0 1/2] COPY . /app", 0, 0)
                    },
                    vertex("sha256:c", "[stage-0 2/2] RUN make", base + S, 0),
                ],
                ..StatusResponse::default()
            },
            StatusResponse {
                logs: vec![
                    log("sha256:c", base + S + S / 8, "compiling\nlinking"),
                    log("sha256:c", base + 2 * S, "...\n"),
                ],
                ..StatusResponse::default()
            },
            StatusResponse {
                vertexes: vec![Vertex {
                    error: "process \"/bin/sh -c make\" did not complete successfully: exit code: 2\ndetails".into(),
                    ..vertex("sha256:c", "[stage-0 2/2] RUN make", base + S, base + 3 * S)
                }],
                ..StatusResponse::default()
            },
        ];
        let mut p = Plain::new(Vec::new());
        for u in &updates {
            p.update(u).unwrap();
        }
        p.finish(Some(&TransferStats {
            entries_listed: 3,
            files_sent: 2,
            bytes_sent: 2048,
        }))
        .unwrap();
        let text = String::from_utf8(p.into_inner()).unwrap();
        assert_eq!(
            text,
            "#1 [internal] load build definition from Dockerfile
#1 DONE 0.1s
#1 transferring dockerfile: 1.23kB 0.1s done

#2 [stage-0 1/2] COPY . /app
#2 CACHED

#3 [stage-0 2/2] RUN make
#3 0.125 compiling
#3 1.000 linking...
#3 ERROR: process \"/bin/sh -c make\" did not complete successfully: exit code: 2

#4 transferring context: 2 files, 2.05kB (3 entries listed)
"
        );
    }
}
