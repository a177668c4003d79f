//! Pushes: blobs (existence check, cross-repository mount, monolithic or chunked
//! upload) and manifests, always to the registry's origin. Transient failures are
//! tried again; a blob upload then starts over with a new upload session.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use buildd_oci::Descriptor;
use buildd_proto::Digest;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Body, Response, StatusCode, Url};

use crate::client::{Client, pull_scope, push_scope, status_error};
use crate::config::Endpoint;
use crate::error::{Action, Error, ErrorKind, blob_what};
use crate::manifest::parse_digest;
use crate::reference::Reference;
use crate::retry::Backoff;

const OCTET_STREAM: &str = "application/octet-stream";

/// Where a blob's bytes come from. Re-readable, because a request may be retried
/// after an authentication challenge.
#[derive(Debug, Clone)]
pub enum BlobSource {
    Path(PathBuf),
    Bytes(Vec<u8>),
}

/// How a blob got into the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobPush {
    /// It was there already.
    Exists,
    /// Mounted from another repository of the same registry, without upload.
    Mounted,
    Uploaded,
}

struct Upload<'a> {
    ep: Endpoint,
    scopes: Vec<String>,
    desc: &'a Descriptor,
    digest: Digest,
    what: String,
    source: &'a BlobSource,
}

impl Client {
    /// Whether the repository has the blob (a HEAD request).
    pub async fn blob_exists(&self, r: &Reference, desc: &Descriptor) -> Result<bool, Error> {
        let fail = |k: ErrorKind| k.during(Action::Pushing, r.name());
        let digest = parse_digest(&desc.digest).map_err(fail)?;
        let ep = self.config.origin(&r.registry);
        let scopes = [push_scope(&r.repository)];
        let what = blob_what(&desc.media_type, &desc.digest);
        let mut backoff = Backoff::new(&self.config.retry);
        loop {
            match self.exists_at(&ep, &scopes, r, digest, &what).await {
                Ok(found) => return Ok(found),
                Err(e) => backoff.wait(e, &what).await.map_err(fail)?,
            }
        }
    }

    /// Pushes a blob unless the repository has it, mounting it from `mount_from` (a
    /// repository of the same registry) when the registry allows.
    pub async fn push_blob(
        &self,
        r: &Reference,
        desc: &Descriptor,
        source: &BlobSource,
        mount_from: Option<&str>,
    ) -> Result<BlobPush, Error> {
        let fail = |k: ErrorKind| k.during(Action::Pushing, r.name());
        let digest = parse_digest(&desc.digest).map_err(fail)?;
        let what = blob_what(&desc.media_type, &desc.digest);
        let source_size = match source {
            BlobSource::Bytes(b) => b.len() as u64,
            BlobSource::Path(p) => tokio::fs::metadata(p)
                .await
                .map_err(|e| fail(source_error(&what, p, e)))?
                .len(),
        };
        if source_size != desc.size {
            return Err(fail(ErrorKind::SizeMismatch {
                what,
                expected: desc.size,
                actual: source_size,
            }));
        }
        let mut scopes = vec![push_scope(&r.repository)];
        if let Some(from) = mount_from {
            scopes.push(pull_scope(from));
        }
        let up = Upload {
            ep: self.config.origin(&r.registry),
            scopes,
            desc,
            digest,
            what,
            source,
        };
        let mut backoff = Backoff::new(&self.config.retry);
        loop {
            match self.upload(&up, r, mount_from).await {
                Ok(pushed) => return Ok(pushed),
                Err(e) => backoff.wait(e, &up.what).await.map_err(fail)?,
            }
        }
    }

    /// Puts a manifest under the reference's tag (or its digest when it has no tag)
    /// and returns the manifest's digest.
    pub async fn push_manifest(
        &self,
        r: &Reference,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, Error> {
        let fail = |k: ErrorKind| k.during(Action::Pushing, r.name());
        let digest = Digest::of(bytes);
        if let Some(pinned) = r.digest
            && pinned != digest
        {
            return Err(fail(ErrorKind::DigestMismatch {
                what: format!("manifest {pinned}"),
                actual: digest,
            }));
        }
        let target = r.tag.clone().unwrap_or_else(|| digest.to_string());
        let ep = self.config.origin(&r.registry);
        let url = format!("{}/v2/{}/manifests/{target}", ep.base_url(), r.repository);
        let scopes = [push_scope(&r.repository)];
        let what = format!("manifest {digest}");
        let mut backoff = Backoff::new(&self.config.retry);
        let resp = loop {
            let sent = self
                .send(&ep, &scopes, &url, &|http| {
                    Ok(http
                        .put(&url)
                        .header(CONTENT_TYPE, media_type)
                        .body(bytes.to_vec()))
                })
                .await;
            let err = match sent {
                Ok(resp) if resp.status().is_success() => break resp,
                Ok(resp) => status_error(resp, what.clone(), &url, &ep.host).await,
                Err(e) => e,
            };
            backoff.wait(err, &what).await.map_err(fail)?;
        };
        if let Some(served) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok())
            && served != digest
        {
            return Err(fail(ErrorKind::DigestMismatch {
                what,
                actual: served,
            }));
        }
        Ok(digest)
    }

    async fn exists_at(
        &self,
        ep: &Endpoint,
        scopes: &[String],
        r: &Reference,
        digest: Digest,
        what: &str,
    ) -> Result<bool, ErrorKind> {
        let url = format!("{}/v2/{}/blobs/{digest}", ep.base_url(), r.repository);
        let resp = self
            .send(ep, scopes, &url, &|http| Ok(http.head(&url)))
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(status_error(resp, what.to_owned(), &url, &ep.host).await),
        }
    }

    async fn upload(
        &self,
        up: &Upload<'_>,
        r: &Reference,
        mount_from: Option<&str>,
    ) -> Result<BlobPush, ErrorKind> {
        if self
            .exists_at(&up.ep, &up.scopes, r, up.digest, &up.what)
            .await?
        {
            return Ok(BlobPush::Exists);
        }
        let mut url = format!("{}/v2/{}/blobs/uploads/", up.ep.base_url(), r.repository);
        if let Some(from) = mount_from {
            url = format!("{url}?mount={}&from={from}", up.digest);
        }
        let resp = self
            .send(&up.ep, &up.scopes, &url, &|http| {
                Ok(http.post(&url).body(Vec::new()))
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED if mount_from.is_some() => return Ok(BlobPush::Mounted),
            StatusCode::ACCEPTED => {}
            _ => return Err(status_error(resp, up.what.clone(), &url, &up.ep.host).await),
        }
        let mut location = next_location(up, &url, &resp)?;
        match self.config.upload_chunk_size {
            Some(chunk) if chunk > 0 && up.desc.size > chunk => {
                let mut offset = 0;
                while offset < up.desc.size {
                    let len = chunk.min(up.desc.size - offset);
                    let bytes = read_range(up, offset, len).await?;
                    location = self.patch(up, &location, offset, bytes).await?;
                    offset += len;
                }
                self.finish(up, location, None).await?;
            }
            _ => self.finish(up, location, Some(up.source)).await?,
        }
        Ok(BlobPush::Uploaded)
    }

    /// Sends one chunk; returns the location for the next request.
    async fn patch(
        &self,
        up: &Upload<'_>,
        location: &Url,
        offset: u64,
        bytes: Vec<u8>,
    ) -> Result<Url, ErrorKind> {
        let url = location.as_str();
        let end = offset + bytes.len() as u64 - 1;
        let resp = self
            .send(&up.ep, &up.scopes, url, &|http| {
                Ok(http
                    .patch(location.clone())
                    .header(CONTENT_TYPE, OCTET_STREAM)
                    .header("content-range", format!("{offset}-{end}"))
                    .body(bytes.clone()))
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(status_error(resp, up.what.clone(), url, &up.ep.host).await);
        }
        next_location(up, url, &resp)
    }

    /// Closes the upload with `PUT ?digest=`, carrying the whole blob when given.
    async fn finish(
        &self,
        up: &Upload<'_>,
        mut location: Url,
        body: Option<&BlobSource>,
    ) -> Result<(), ErrorKind> {
        location
            .query_pairs_mut()
            .append_pair("digest", &up.digest.to_string());
        let url = location.as_str();
        let resp = self
            .send(&up.ep, &up.scopes, url, &|http| {
                let req = http.put(location.clone());
                Ok(match body {
                    None => req.body(Vec::new()),
                    Some(BlobSource::Bytes(b)) => {
                        req.header(CONTENT_TYPE, OCTET_STREAM).body(b.clone())
                    }
                    Some(BlobSource::Path(p)) => {
                        let file =
                            std::fs::File::open(p).map_err(|e| source_error(&up.what, p, e))?;
                        req.header(CONTENT_TYPE, OCTET_STREAM)
                            .header(CONTENT_LENGTH, up.desc.size)
                            .body(Body::from(tokio::fs::File::from_std(file)))
                    }
                })
            })
            .await?;
        if !resp.status().is_success() {
            return Err(status_error(resp, up.what.clone(), url, &up.ep.host).await);
        }
        Ok(())
    }
}

/// The upload URL a response points to, resolved against the request's URL.
fn next_location(up: &Upload<'_>, url: &str, resp: &Response) -> Result<Url, ErrorKind> {
    let raw = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Url::parse(url)
        .and_then(|base| base.join(raw))
        .ok()
        .filter(|_| !raw.is_empty())
        .ok_or_else(|| ErrorKind::Location {
            what: up.what.clone(),
            url: url.to_owned(),
            location: raw.to_owned(),
        })
}

/// One chunk of the blob; a file is read on a blocking thread.
async fn read_range(up: &Upload<'_>, offset: u64, len: u64) -> Result<Vec<u8>, ErrorKind> {
    match up.source {
        BlobSource::Bytes(b) => Ok(b[offset as usize..(offset + len) as usize].to_vec()),
        BlobSource::Path(p) => {
            let path = p.clone();
            let read = tokio::task::spawn_blocking(move || {
                let mut f = std::fs::File::open(&path)?;
                f.seek(SeekFrom::Start(offset))?;
                let mut buf = vec![0; len as usize];
                f.read_exact(&mut buf)?;
                Ok(buf)
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            read.map_err(|e| source_error(&up.what, p, e))
        }
    }
}

fn source_error(what: &str, path: &std::path::Path, source: std::io::Error) -> ErrorKind {
    ErrorKind::Source {
        what: what.to_owned(),
        path: path.to_owned(),
        source,
    }
}
