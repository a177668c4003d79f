//! `--progress rawjson`: each `StatusResponse` as one JSON object per line, field
//! names as in control.proto, empty fields left out, log data base64 (as Go's
//! encoding/json writes bytes, which buildctl's rawjson shows).

use std::io::{self, Write};

use base64::Engine as _;
use buildd_proto::control::{StatusResponse, TransferStats};
use serde_json::{Map, Value, json};

use super::Printer;

pub struct RawJson<W: Write> {
    out: W,
}

impl<W: Write> RawJson<W> {
    pub fn new(out: W) -> Self {
        Self { out }
    }
}

impl<W: Write + Send> Printer for RawJson<W> {
    fn update(&mut self, resp: &StatusResponse) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, &to_json(resp))?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }

    fn finish(&mut self, _: Option<&TransferStats>) -> io::Result<()> {
        self.out.flush()
    }
}

fn to_json(resp: &StatusResponse) -> Value {
    let mut top = Map::new();
    let vertexes: Vec<Value> = resp
        .vertexes
        .iter()
        .map(|v| {
            object([
                ("digest", json!(v.digest)),
                ("inputs", json!(v.inputs)),
                ("name", json!(v.name)),
                ("cached", json!(v.cached)),
                ("started_ns", json!(v.started_ns)),
                ("completed_ns", json!(v.completed_ns)),
                ("error", json!(v.error)),
            ])
        })
        .collect();
    let statuses: Vec<Value> = resp
        .statuses
        .iter()
        .map(|s| {
            object([
                ("id", json!(s.id)),
                ("vertex", json!(s.vertex)),
                ("name", json!(s.name)),
                ("current", json!(s.current)),
                ("total", json!(s.total)),
                ("timestamp_ns", json!(s.timestamp_ns)),
                ("started_ns", json!(s.started_ns)),
                ("completed_ns", json!(s.completed_ns)),
            ])
        })
        .collect();
    let logs: Vec<Value> = resp
        .logs
        .iter()
        .map(|l| {
            object([
                ("vertex", json!(l.vertex)),
                ("stream", json!(l.stream)),
                (
                    "data",
                    json!(base64::engine::general_purpose::STANDARD.encode(&l.data)),
                ),
                ("timestamp_ns", json!(l.timestamp_ns)),
            ])
        })
        .collect();
    let warnings: Vec<Value> = resp
        .warnings
        .iter()
        .map(|w| {
            object([
                ("vertex", json!(w.vertex)),
                ("rule", json!(w.rule)),
                ("message", json!(w.message)),
                ("detail", json!(w.detail)),
                ("url", json!(w.url)),
                ("file", json!(w.file)),
                ("line", json!(w.line)),
            ])
        })
        .collect();
    for (k, v) in [
        ("vertexes", vertexes),
        ("statuses", statuses),
        ("logs", logs),
        ("warnings", warnings),
    ] {
        if !v.is_empty() {
            top.insert(k.to_owned(), Value::Array(v));
        }
    }
    Value::Object(top)
}

/// An object without its zero-valued fields (Go's `omitempty`).
fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    };
    Value::Object(
        fields
            .into_iter()
            .filter(|(_, v)| !empty(v))
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use buildd_proto::control::{Vertex, VertexLog};

    #[test]
    fn one_line_per_response_without_empty_fields() {
        let mut p = RawJson::new(Vec::new());
        p.update(&StatusResponse {
            vertexes: vec![Vertex {
                digest: "sha256:a".into(),
                name: "RUN x".into(),
                started_ns: 5,
                ..Vertex::default()
            }],
            logs: vec![VertexLog {
                vertex: "sha256:a".into(),
                stream: 1,
                data: b"hi\n".to_vec(),
                timestamp_ns: 6,
            }],
            ..StatusResponse::default()
        })
        .unwrap();
        p.update(&StatusResponse::default()).unwrap();
        assert_eq!(
            String::from_utf8(p.out).unwrap(),
            "{\"logs\":[{\"data\":\"aGkK\",\"stream\":1,\"timestamp_ns\":6,\"vertex\":\"sha256:a\"}],\
             \"vertexes\":[{\"digest\":\"sha256:a\",\"name\":\"RUN x\",\"started_ns\":5}]}\n{}\n"
        );
    }
}
