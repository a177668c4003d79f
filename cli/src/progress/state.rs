//! The build as the status stream has described it so far, for the live view.

use std::collections::{HashMap, VecDeque};

use buildd_proto::control::{StatusResponse, Vertex, VertexStatus};

/// Log lines kept per vertex: the live view shows the last few.
const LOG_TAIL: usize = 10;

#[derive(Debug, Default)]
pub struct VertexState {
    pub vertex: Vertex,
    pub statuses: Vec<VertexStatus>,
    pub logs: VecDeque<String>,
    partial: Vec<u8>,
}

impl VertexState {
    pub fn shown(&self) -> bool {
        self.vertex.started_ns != 0 || self.vertex.cached || !self.vertex.error.is_empty()
    }

    pub fn done(&self) -> bool {
        self.vertex.cached || self.vertex.completed_ns != 0 || !self.vertex.error.is_empty()
    }
}

#[derive(Debug, Default)]
pub struct BuildState {
    /// In order of first appearance.
    pub vertices: Vec<VertexState>,
    index: HashMap<String, usize>,
}

impl BuildState {
    pub fn apply(&mut self, resp: &StatusResponse) {
        for v in &resp.vertexes {
            self.entry(&v.digest).vertex = v.clone();
        }
        for st in &resp.statuses {
            let e = self.entry(&st.vertex);
            match e.statuses.iter_mut().find(|s| s.id == st.id) {
                Some(s) => *s = st.clone(),
                None => e.statuses.push(st.clone()),
            }
        }
        for log in &resp.logs {
            let e = self.entry(&log.vertex);
            e.partial.extend_from_slice(&log.data);
            while let Some(end) = e.partial.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = e.partial.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line[..end]);
                e.logs.push_back(text.trim_end_matches('\r').to_owned());
                if e.logs.len() > LOG_TAIL {
                    e.logs.pop_front();
                }
            }
        }
    }

    fn entry(&mut self, digest: &str) -> &mut VertexState {
        let i = *self.index.entry(digest.to_owned()).or_insert_with(|| {
            self.vertices.push(VertexState {
                vertex: Vertex {
                    digest: digest.to_owned(),
                    ..Vertex::default()
                },
                ..VertexState::default()
            });
            self.vertices.len() - 1
        });
        &mut self.vertices[i]
    }
}
