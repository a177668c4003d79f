//! `http://` and `https://` sources (`ADD URL`), as BuildKit's http source: the
//! body becomes a snapshot of one file, `/NAME` (mode 0600, owned by root, its
//! mtime the response's Last-Modified), which the ADD then copies.
//!
//! With `--checksum` the key is the op, checksum included, so an unchanged pin
//! is never fetched again, and a body with another digest fails the build naming
//! both. Without, the body is fetched to compute the key (its digest), so
//! changed content misses and unchanged content hits.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use buildd_proto::Digest;
use buildd_proto::llb::SourceOp;
use buildd_snapshot::Snapshot;

use super::worker::{Ref, blocking_op};
use crate::root::Root;
use crate::solver::{LogSink, OpError};

/// A body in the content store.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub(crate) digest: Digest,
    modified: Option<SystemTime>,
}

pub(crate) fn is_http(src: &SourceOp) -> bool {
    src.identifier.starts_with("http://") || src.identifier.starts_with("https://")
}

/// Whether the op pins its content (`--checksum`).
pub(crate) fn pinned(src: &SourceOp) -> bool {
    src.attrs.contains_key("http.checksum")
}

/// Fetches the body into the content store, checking `--checksum`.
pub(crate) async fn fetch(
    root: &Root,
    src: &SourceOp,
    log: Option<&LogSink>,
) -> Result<Fetched, OpError> {
    let url = &src.identifier;
    let fail = |e: &dyn std::fmt::Display| OpError::new(format!("fetching {url}: {e}"));
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| fail(&error_chain(&e)))?;
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| fail(&error_chain(&e)))?;
    if !resp.status().is_success() {
        return Err(fail(&format!("server answered {}", resp.status())));
    }
    let modified = resp
        .headers()
        .get(reqwest::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    let mut writer = root.content.writer().map_err(|e| fail(&e))?;
    while let Some(chunk) = resp.chunk().await.map_err(|e| fail(&error_chain(&e)))? {
        writer.write_all(&chunk).map_err(|e| fail(&e))?;
    }
    let (digest, size) = tokio::task::spawn_blocking(move || writer.commit(None))
        .await
        .map_err(|e| fail(&format!("internal error: {e}")))?
        .map_err(|e| fail(&e))?;
    if let Some(want) = src.attrs.get("http.checksum")
        && *want != digest.to_string()
    {
        return Err(OpError::new(format!(
            "{url}: checksum mismatch: --checksum={want}, the content is {digest}"
        )));
    }
    if let Some(log) = log {
        log.write(
            1,
            format!("fetched {url}: {size} bytes, {digest}\n").as_bytes(),
        );
    }
    Ok(Fetched { digest, modified })
}

/// The one-file snapshot of a fetched body.
pub(crate) async fn snapshot(
    root: Arc<Root>,
    src: &SourceOp,
    fetched: Fetched,
) -> Result<Ref, OpError> {
    let name = src
        .attrs
        .get("http.filename")
        .cloned()
        .unwrap_or_else(|| "__unnamed__".to_owned());
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(OpError::new(format!(
            "{}: {name:?} is not a file name",
            src.identifier
        )));
    }
    let url = src.identifier.clone();
    blocking_op(move || {
        let fail = |e: &dyn std::fmt::Display| OpError::new(format!("{url}: {e}"));
        let pending = root.layers.begin().map_err(|e| fail(&e))?;
        let path = pending.path().join(&name);
        std::fs::copy(root.content.path(&fetched.digest), &path).map_err(|e| fail(&e))?;
        let file = std::fs::File::options()
            .write(true)
            .open(&path)
            .map_err(|e| fail(&e))?;
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| fail(&e))?;
        file.set_modified(fetched.modified.unwrap_or(SystemTime::UNIX_EPOCH))
            .map_err(|e| fail(&e))?;
        let id = super::fresh_layer_id(fetched.digest);
        pending.commit(&id).map_err(|e| fail(&e))?;
        Ok(Ref::Snapshot(Snapshot::new([id])))
    })
    .await
}

/// "error sending request: connection refused": reqwest's message and its causes.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
