//! BuildKit's live progress tree, redrawn in place:
//!
//! ```text
//! [+] Building 3.2s (5/9)
//!  => [internal] load build definition from Dockerfile          0.0s
//!  => CACHED [stage-0 1/3] FROM base                            0.0s
//!  => [stage-0 2/3] RUN make                                    1.2s
//!  => => # compiling
//! ```

use std::io::{self, Write};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use buildd_proto::control::{StatusResponse, TransferStats};

use super::state::{BuildState, VertexState};
use super::{Printer, human_bytes, transfer_summary};

/// Log lines shown under a running step.
const LIVE_LOGS: usize = 6;

pub struct Tty<W: Write> {
    out: W,
    state: BuildState,
    start: Instant,
    /// Lines of the last frame, to move back over.
    drawn: usize,
}

impl<W: Write> Tty<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            state: BuildState::default(),
            start: Instant::now(),
            drawn: 0,
        }
    }

    fn draw(&mut self, finished: bool) -> io::Result<()> {
        let (width, height) = terminal_size();
        let now = now_ns();
        let mut lines = vec![header(
            &self.state,
            self.start.elapsed().as_secs_f64(),
            finished,
        )];
        let mut body = Vec::new();
        for v in self.state.vertices.iter().filter(|v| v.shown()) {
            body.extend(vertex_lines(v, now, finished, width));
        }
        if !finished && body.len() + 1 >= height {
            // Keep the newest steps when the frame does not fit.
            body.drain(..body.len() + 2 - height);
        }
        lines.extend(body);
        let mut frame = String::new();
        if self.drawn > 0 {
            frame.push_str(&format!("\x1b[{}A\r", self.drawn));
        }
        for line in &lines {
            frame.push_str(&fit(line, width));
            frame.push_str("\x1b[K\n");
        }
        frame.push_str("\x1b[J");
        self.drawn = lines.len();
        self.out.write_all(frame.as_bytes())?;
        self.out.flush()
    }
}

impl<W: Write + Send> Printer for Tty<W> {
    fn update(&mut self, resp: &StatusResponse) -> io::Result<()> {
        self.state.apply(resp);
        Ok(())
    }

    fn tick(&mut self) -> io::Result<()> {
        self.draw(false)
    }

    fn finish(&mut self, transfer: Option<&TransferStats>) -> io::Result<()> {
        self.draw(true)?;
        if let Some(t) = transfer {
            writeln!(
                self.out,
                " => transferring context: {}",
                transfer_summary(t)
            )?;
        }
        self.out.flush()
    }
}

fn header(state: &BuildState, elapsed: f64, finished: bool) -> String {
    let shown: Vec<&VertexState> = state.vertices.iter().filter(|v| v.shown()).collect();
    let done = shown.iter().filter(|v| v.done()).count();
    format!(
        "[+] Building {elapsed:.1}s ({done}/{}){}",
        state.vertices.len(),
        if finished { " FINISHED" } else { "" }
    )
}

fn vertex_lines(v: &VertexState, now: i64, finished: bool, width: usize) -> Vec<String> {
    let vx = &v.vertex;
    let failed = !vx.error.is_empty();
    let running = !v.done();
    let prefix = if vx.cached {
        "CACHED "
    } else if failed {
        "ERROR "
    } else {
        ""
    };
    let end = if vx.completed_ns != 0 {
        vx.completed_ns
    } else {
        now
    };
    let secs = if vx.cached || vx.started_ns == 0 {
        0.0
    } else {
        (end - vx.started_ns).max(0) as f64 / 1e9
    };
    let mut lines = vec![aligned(
        &format!(" => {prefix}{}", vx.name),
        &format!("{secs:.1}s"),
        width,
    )];
    if failed {
        lines[0] = format!("\x1b[31m{}\x1b[0m", lines[0]);
    }
    if running || failed {
        for st in &v.statuses {
            let amount = if st.total > 0 {
                format!(
                    "{} / {}",
                    human_bytes(st.current.max(0) as u64),
                    human_bytes(st.total as u64)
                )
            } else {
                human_bytes(st.current.max(0) as u64)
            };
            let done = if st.completed_ns != 0 { " done" } else { "" };
            lines.push(format!(" => => {} {amount}{done}", st.name));
        }
        // A failed step keeps its last output on screen, like BuildKit's.
        let keep = if failed || finished {
            v.logs.len()
        } else {
            LIVE_LOGS
        };
        let skip = v.logs.len().saturating_sub(keep);
        for log in v.logs.iter().skip(skip) {
            lines.push(format!(" => => # {log}"));
        }
    }
    lines
}

/// `left` and `right` on one line short of `width` columns (a full line wraps on
/// some terminals), `left` cut to fit.
fn aligned(left: &str, right: &str, width: usize) -> String {
    let room = width.saturating_sub(right.chars().count() + 2).max(10);
    let left: String = left.chars().take(room).collect();
    let pad = room.saturating_sub(left.chars().count());
    format!("{left}{} {right}", " ".repeat(pad))
}

/// Cuts `line` to `width` visible columns, so no line wraps and the cursor
/// arithmetic holds. Escape sequences take no columns.
fn fit(line: &str, width: usize) -> String {
    let mut out = String::new();
    let mut cols = 0;
    let mut escape = false;
    for c in line.chars() {
        if c == '\x1b' {
            escape = true;
        }
        if escape {
            out.push(c);
            escape = !c.is_ascii_alphabetic();
            continue;
        }
        if cols + 1 >= width {
            continue;
        }
        out.push(if c.is_control() { ' ' } else { c });
        cols += 1;
    }
    out
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Columns and rows of the terminal on stderr; 80×25 when unknown.
fn terminal_size() -> (usize, usize) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the valid struct given.
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 0 && ws.ws_row > 0 {
        (ws.ws_col as usize, ws.ws_row as usize)
    } else {
        (80, 25)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use buildd_proto::control::{Vertex, VertexLog};

    #[test]
    fn frames_show_running_logs_and_end_finished() {
        let now = now_ns();
        let mut p = Tty::new(Vec::new());
        p.update(&StatusResponse {
            vertexes: vec![
                Vertex {
                    digest: "a".into(),
                    name: "[stage-0 1/2] COPY . /".into(),
                    cached: true,
                    ..Vertex::default()
                },
                Vertex {
                    digest: "b".into(),
                    name: "[stage-0 2/2] RUN make".into(),
                    started_ns: now - 1_000_000_000,
                    ..Vertex::default()
                },
                Vertex {
                    digest: "c".into(),
                    name: "exporting".into(),
                    ..Vertex::default()
                },
            ],
            logs: vec![VertexLog {
                vertex: "b".into(),
                data: b"line 1\nline 2\n".to_vec(),
                ..VertexLog::default()
            }],
            ..StatusResponse::default()
        })
        .unwrap();
        p.tick().unwrap();
        p.tick().unwrap();
        let text = String::from_utf8(p.out.clone()).unwrap();
        let frames: Vec<&str> = text.split("\x1b[J").collect();
        assert_eq!(frames.len(), 3, "{text:?}");
        let first = frames[0];
        assert!(
            first.starts_with("[+] Building 0.0s (1/3)\x1b[K\n"),
            "{first:?}"
        );
        assert!(first.contains(" => CACHED [stage-0 1/2] COPY . /"));
        assert!(first.contains(" => [stage-0 2/2] RUN make"));
        assert!(first.contains(" => => # line 1\x1b[K\n => => # line 2\x1b[K\n"));
        assert!(!first.contains("exporting"), "not started yet");
        // The second frame moves back over the first.
        assert!(
            frames[1].starts_with("\x1b[5A\r[+] Building"),
            "{:?}",
            frames[1]
        );

        p.update(&StatusResponse {
            vertexes: vec![Vertex {
                digest: "b".into(),
                name: "[stage-0 2/2] RUN make".into(),
                started_ns: now - 1_000_000_000,
                completed_ns: now,
                ..Vertex::default()
            }],
            ..StatusResponse::default()
        })
        .unwrap();
        p.out.clear();
        p.finish(None).unwrap();
        let last = String::from_utf8(p.out).unwrap();
        assert!(last.contains("(2/3) FINISHED"), "{last:?}");
        assert!(
            last.contains("RUN make") && last.contains(" 1.0s"),
            "{last:?}"
        );
        assert!(!last.contains("line 1"), "done steps drop their logs");
    }

    #[test]
    fn fit_cuts_visible_columns_only() {
        assert_eq!(fit("\x1b[31mabcdef\x1b[0m", 4), "\x1b[31mabc\x1b[0m");
        assert_eq!(fit("a\tb", 10), "a b");
        let line = aligned(" => step", "1.0s", 20);
        assert_eq!(line, " => step       1.0s");
        assert_eq!(line.chars().count(), 19);
    }
}
