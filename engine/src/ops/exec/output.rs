//! The process's output: streamed to the vertex's log, the last lines kept for the
//! error message when it fails.

use std::collections::VecDeque;
use std::sync::Mutex;

use buildd_executor::OutputSink;

use crate::solver::LogSink;

/// Lines shown with a failure, as BuildKit shows.
const TAIL_LINES: usize = 10;
/// Longer lines are cut, so one runaway line cannot hold much memory.
const MAX_LINE: usize = 4096;

pub(super) struct RunOutput {
    log: LogSink,
    tail: Mutex<Tail>,
}

#[derive(Default)]
struct Tail {
    lines: VecDeque<String>,
    /// The unfinished last line of stdout and of stderr.
    partial: [Vec<u8>; 2],
}

impl RunOutput {
    pub(super) fn new(log: LogSink) -> Self {
        Self {
            log,
            tail: Mutex::default(),
        }
    }

    /// The last lines written, oldest first, unfinished lines included.
    pub(super) fn tail(&self) -> Vec<String> {
        let t = self.tail.lock().unwrap();
        let mut lines: Vec<String> = t.lines.iter().cloned().collect();
        lines.extend(
            t.partial
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| String::from_utf8_lossy(p).into_owned()),
        );
        let skip = lines.len().saturating_sub(TAIL_LINES);
        lines.split_off(skip)
    }
}

impl OutputSink for RunOutput {
    fn write(&self, stream: u8, data: &[u8]) {
        self.log.write(stream, data);
        let mut t = self.tail.lock().unwrap();
        let t = &mut *t;
        let partial = &mut t.partial[usize::from(stream == 2)];
        for piece in data.split_inclusive(|&b| b == b'\n') {
            let (text, ended) = match piece.strip_suffix(b"\n") {
                Some(text) => (text, true),
                None => (piece, false),
            };
            let room = MAX_LINE.saturating_sub(partial.len());
            partial.extend_from_slice(&text[..text.len().min(room)]);
            if ended {
                let line = String::from_utf8_lossy(partial)
                    .trim_end_matches('\r')
                    .to_owned();
                partial.clear();
                if t.lines.len() == TAIL_LINES {
                    t.lines.pop_front();
                }
                t.lines.push_back(line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_of_both_streams() {
        let out = RunOutput::new(LogSink::discard());
        for i in 0..15 {
            out.write(1, format!("line {i}\n").as_bytes());
        }
        out.write(2, b"err");
        out.write(2, b"or\nunfinished");
        let tail = out.tail();
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail[TAIL_LINES - 2], "error");
        assert_eq!(tail[TAIL_LINES - 1], "unfinished");
        assert_eq!(tail[0], "line 7");
    }

    #[test]
    fn long_lines_are_cut() {
        let out = RunOutput::new(LogSink::discard());
        out.write(1, &vec![b'x'; 3 * MAX_LINE]);
        out.write(1, b"\n");
        assert_eq!(out.tail()[0].len(), MAX_LINE);
    }
}
