//! BuildKit's plain progress format:
//!
//! ```text
//! #2 [stage-0 2/3] COPY . /app
//! #2 DONE 0.1s
//!
//! #3 [stage-0 3/3] WORKDIR /app
//! #3 CACHED
//! ```

use std::collections::HashMap;
use std::io::Write;

use buildd_proto::Digest;

use crate::solver::ProgressEvent;

/// Numbers vertices in order of first appearance and prints each event as a line.
pub struct PlainPrinter<W: Write> {
    out: W,
    ids: HashMap<Digest, usize>,
    started: HashMap<Digest, std::time::SystemTime>,
}

impl<W: Write> PlainPrinter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            ids: HashMap::new(),
            started: HashMap::new(),
        }
    }

    /// Number of the vertex, and whether this is its first appearance.
    fn id(&mut self, vertex: Digest) -> (usize, bool) {
        let next = self.ids.len() + 1;
        let mut fresh = false;
        let id = *self.ids.entry(vertex).or_insert_with(|| {
            fresh = true;
            next
        });
        (id, fresh)
    }

    fn header(&mut self, vertex: Digest, name: &str) -> std::io::Result<usize> {
        let (id, fresh) = self.id(vertex);
        if fresh {
            if id > 1 {
                writeln!(self.out)?;
            }
            writeln!(self.out, "#{id} {name}")?;
        }
        Ok(id)
    }

    pub fn print(&mut self, ev: &ProgressEvent) -> std::io::Result<()> {
        match ev {
            ProgressEvent::Started { vertex, name, at } => {
                self.header(*vertex, name)?;
                self.started.insert(*vertex, *at);
            }
            ProgressEvent::Cached { vertex, name } => {
                let id = self.header(*vertex, name)?;
                writeln!(self.out, "#{id} CACHED")?;
            }
            ProgressEvent::Completed {
                vertex,
                name,
                duration,
            } => {
                let id = self.header(*vertex, name)?;
                writeln!(self.out, "#{id} DONE {:.1}s", duration.as_secs_f64())?;
            }
            ProgressEvent::Failed {
                vertex,
                name,
                error,
                ..
            } => {
                let id = self.header(*vertex, name)?;
                // The first line; details (such as a RUN's last output, already shown
                // as its log) come once, with the final error.
                let first = error.lines().next().unwrap_or_default();
                writeln!(self.out, "#{id} ERROR: {first}")?;
            }
            ProgressEvent::Log { vertex, data, .. } => {
                let (id, _) = self.id(*vertex);
                let elapsed = self
                    .started
                    .get(vertex)
                    .and_then(|t| t.elapsed().ok())
                    .map_or(0.0, |d| d.as_secs_f64());
                for line in String::from_utf8_lossy(data).lines() {
                    writeln!(self.out, "#{id} {elapsed:.3} {line}")?;
                }
            }
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn prints_buildkit_style_lines() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let mut p = PlainPrinter::new(Vec::new());
        let events = [
            ProgressEvent::Cached {
                vertex: a,
                name: "[stage-0 1/2] COPY a /a".into(),
            },
            ProgressEvent::Started {
                vertex: b,
                name: "[stage-0 2/2] COPY b /b".into(),
                at: SystemTime::now(),
            },
            ProgressEvent::Completed {
                vertex: b,
                name: "[stage-0 2/2] COPY b /b".into(),
                duration: Duration::from_millis(120),
            },
        ];
        for e in &events {
            p.print(e).unwrap();
        }
        assert_eq!(
            String::from_utf8(p.out).unwrap(),
            "#1 [stage-0 1/2] COPY a /a\n#1 CACHED\n\n#2 [stage-0 2/2] COPY b /b\n#2 DONE 0.1s\n"
        );
    }
}
