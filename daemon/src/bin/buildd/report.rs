//! BuildKit-style source excerpts for failed builds:
//!
//! ```text
//! Dockerfile:3
//! --------------------
//!    2 |     FROM scratch
//!    3 | >>> COPY missing.txt /
//! --------------------
//! ```

use buildd_engine::build::{BuildError, BuildRequest, read_frontend_input};
use buildd_engine::solver::SolveError;

pub fn source_snippet(err: &BuildError, req: &BuildRequest) -> Option<String> {
    let (file, start, end) = match err {
        BuildError::Frontend(e) => (e.file.clone(), e.line as usize, e.line as usize),
        BuildError::Solve(SolveError::Vertex {
            location: Some(loc),
            ..
        }) => (
            loc.file.clone(),
            loc.start_line as usize,
            loc.end_line.max(loc.start_line) as usize,
        ),
        _ => return None,
    };
    if start == 0 {
        return None;
    }
    let text = read_frontend_input(&req.context, req.dockerfile.as_deref())
        .ok()?
        .dockerfile;
    let lines: Vec<&str> = text.lines().collect();
    let from = start.saturating_sub(2).max(1);
    let to = end.min(lines.len());
    let mut out = format!("{file}:{start}\n--------------------\n");
    for n in from..=to {
        let marker = if n >= start && n <= end { ">>>" } else { "   " };
        out.push_str(&format!("{n:>4} | {marker} {}\n", lines.get(n - 1)?));
    }
    out.push_str("--------------------\n");
    Some(out)
}
