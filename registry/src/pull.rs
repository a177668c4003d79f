//! Pulls: manifests resolved for a platform and blobs streamed with verification,
//! from the registry's mirrors first and then its origin. A mirror that fails is
//! left for the next endpoint at once; the origin is tried again on transient
//! failures (a blob only while none of it has been written).

use std::io::Write;

use buildd_oci::{Descriptor, Manifest, Platform};
use buildd_proto::Digest;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use sha2::{Digest as _, Sha256};

use crate::client::{Client, pull_scope, read_body, status_error};
use crate::config::Endpoint;
use crate::error::{Action, Error, ErrorKind, blob_what};
use crate::limits;
use crate::manifest::{self, ManifestKind, kind_of, parse_digest};
use crate::platform::{platform_string, select};
use crate::reference::Reference;
use crate::retry::Backoff;

/// Manifest bytes as the registry served them, verified against their digest.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub digest: Digest,
    /// An OCI or Docker v2 manifest or index type.
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// The image manifest a reference resolves to for one platform.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Digest of the chosen image manifest.
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Vec<u8>,
    pub manifest: Manifest,
    /// What the reference itself names: the index's digest for a multi-platform
    /// image (what a pinned `name@digest` should record), else `digest`.
    pub root_digest: Digest,
}

impl Client {
    /// Fetches the manifest or index a reference names (by digest when pinned).
    pub async fn fetch_manifest(&self, r: &Reference) -> Result<FetchedManifest, Error> {
        let reference = r.manifest_ref();
        let what = format!("manifest {reference}");
        let mut backoff = Backoff::new(&self.config.retry);
        for ep in self.config.pull_endpoints(&r.registry) {
            loop {
                match self.manifest_at(&ep, r, &reference).await {
                    Ok(m) => return Ok(m),
                    Err(e) if ep.mirror => {
                        tracing::warn!(mirror = %ep.host, image = %r, "mirror failed, trying next: {e}");
                        break;
                    }
                    Err(e) => backoff
                        .wait(e, &what)
                        .await
                        .map_err(|e| e.during(Action::Pulling, r.name()))?,
                }
            }
        }
        unreachable!("the origin endpoint is always last and returns")
    }

    /// Resolves a reference to the image manifest for `platform`, choosing from an
    /// index when the reference names one.
    pub async fn resolve(&self, r: &Reference, platform: &Platform) -> Result<Resolved, Error> {
        let top = self.fetch_manifest(r).await?;
        let fail = |k: ErrorKind| k.during(Action::Pulling, r.name());
        let (chosen, root_digest) = match kind_of(&top.media_type) {
            Some(ManifestKind::Image) => {
                let root = top.digest;
                (top, root)
            }
            _ => {
                let what = format!("index {}", top.digest);
                let index = manifest::parse_index(&what, &top.bytes).map_err(fail)?;
                let desc = select(&index, platform).ok_or_else(|| {
                    let available: Vec<String> = index
                        .manifests
                        .iter()
                        .filter_map(|d| d.platform.as_ref().map(platform_string))
                        .collect();
                    fail(ErrorKind::NoPlatform {
                        wanted: platform_string(platform),
                        index: top.digest,
                        available: if available.is_empty() {
                            "no platforms".to_owned()
                        } else {
                            available.join(", ")
                        },
                    })
                })?;
                let digest = parse_digest(&desc.digest).map_err(fail)?;
                let child = self.fetch_manifest(&r.with_digest(digest)).await?;
                if child.bytes.len() as u64 != desc.size {
                    return Err(fail(ErrorKind::SizeMismatch {
                        what: format!("manifest {digest}"),
                        expected: desc.size,
                        actual: child.bytes.len() as u64,
                    }));
                }
                if kind_of(&child.media_type) != Some(ManifestKind::Image) {
                    return Err(fail(ErrorKind::UnsupportedMediaType {
                        what: format!("manifest {digest} (in index {})", top.digest),
                        media_type: child.media_type,
                    }));
                }
                (child, top.digest)
            }
        };
        let what = format!("manifest {}", chosen.digest);
        let manifest =
            manifest::parse_manifest(&what, &chosen.bytes, &chosen.media_type).map_err(fail)?;
        Ok(Resolved {
            digest: chosen.digest,
            media_type: chosen.media_type,
            bytes: chosen.bytes,
            manifest,
            root_digest,
        })
    }

    /// Streams a blob into `sink` as it arrives, checking its size and sha256.
    ///
    /// On error the sink may hold partial or wrong content and must be discarded
    /// (a content store writer's `commit(expected)` does so). A mirror that fails
    /// before the first byte is written is skipped for the next endpoint; one that
    /// fails later is not, since the sink cannot be rewound. The sink is written on
    /// the calling task, so it should be a local file or memory, not a network.
    pub async fn fetch_blob(
        &self,
        r: &Reference,
        desc: &Descriptor,
        sink: &mut (dyn Write + Send),
    ) -> Result<(), Error> {
        let fail = |k: ErrorKind| k.during(Action::Pulling, r.name());
        let expected = parse_digest(&desc.digest).map_err(fail)?;
        let what = blob_what(&desc.media_type, &desc.digest);
        let mut backoff = Backoff::new(&self.config.retry);
        for ep in self.config.pull_endpoints(&r.registry) {
            loop {
                let mut wrote = false;
                match self
                    .blob_at(&ep, r, desc, expected, &what, sink, &mut wrote)
                    .await
                {
                    Ok(()) => return Ok(()),
                    Err(e) if ep.mirror && !wrote => {
                        tracing::warn!(mirror = %ep.host, image = %r, "mirror failed, trying next: {e}");
                        break;
                    }
                    // The sink cannot be rewound.
                    Err(e) if wrote => return Err(fail(e)),
                    Err(e) => backoff.wait(e, &what).await.map_err(fail)?,
                }
            }
        }
        unreachable!("the origin endpoint is always last and returns")
    }

    /// A whole blob in memory (an image config), verified; one whose descriptor
    /// says it is over [`limits::MAX_CONFIG_BYTES`] is refused unread (and
    /// [`Client::fetch_blob`] never takes more than the descriptor's size).
    pub async fn fetch_blob_bytes(
        &self,
        r: &Reference,
        desc: &Descriptor,
    ) -> Result<Vec<u8>, Error> {
        if desc.size > limits::CONFIG.limit {
            return Err(ErrorKind::TooLarge {
                what: blob_what(&desc.media_type, &desc.digest),
                cap: limits::CONFIG.name,
                limit: limits::CONFIG.limit,
                size: desc.size,
                at_least: false,
            }
            .during(Action::Pulling, r.name()));
        }
        let mut out = Vec::with_capacity(desc.size as usize);
        self.fetch_blob(r, desc, &mut out).await?;
        Ok(out)
    }

    async fn manifest_at(
        &self,
        ep: &Endpoint,
        r: &Reference,
        reference: &str,
    ) -> Result<FetchedManifest, ErrorKind> {
        let url = format!(
            "{}/v2/{}/manifests/{reference}",
            ep.base_url(),
            r.repository
        );
        let what = format!("manifest {reference}");
        let scopes = [pull_scope(&r.repository)];
        let resp = self
            .send(ep, &scopes, &url, &|http| {
                Ok(http.get(&url).header(ACCEPT, manifest::ACCEPT))
            })
            .await?;
        if !resp.status().is_success() {
            return Err(status_error(resp, what, &url, &ep.host).await);
        }
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header(CONTENT_TYPE.as_str());
        let served_digest = header("docker-content-digest");
        let bytes = read_body(resp, limits::MANIFEST, &what, &url).await?;
        let digest = Digest::of(&bytes);
        // Pinned: the bytes must be what was asked for. By tag: at least what the
        // registry says they are (a mirror could serve anything).
        let expected = reference
            .parse::<Digest>()
            .ok()
            .or_else(|| served_digest.and_then(|d| d.parse().ok()));
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(ErrorKind::DigestMismatch {
                what: format!("manifest {expected}"),
                actual: digest,
            });
        }
        let media_type = manifest::media_type_of(&what, &bytes, content_type.as_deref())?;
        Ok(FetchedManifest {
            digest,
            media_type,
            bytes,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn blob_at(
        &self,
        ep: &Endpoint,
        r: &Reference,
        desc: &Descriptor,
        expected: Digest,
        what: &str,
        sink: &mut (dyn Write + Send),
        wrote: &mut bool,
    ) -> Result<(), ErrorKind> {
        let url = format!("{}/v2/{}/blobs/{expected}", ep.base_url(), r.repository);
        let scopes = [pull_scope(&r.repository)];
        let mut resp = self
            .send(ep, &scopes, &url, &|http| Ok(http.get(&url)))
            .await?;
        if !resp.status().is_success() {
            return Err(status_error(resp, what.to_owned(), &url, &ep.host).await);
        }
        let size_mismatch = |actual| ErrorKind::SizeMismatch {
            what: what.to_owned(),
            expected: desc.size,
            actual,
        };
        if let Some(len) = resp.content_length()
            && len != desc.size
        {
            return Err(size_mismatch(len));
        }
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| crate::client::http_error(&url, e))?
        {
            size += chunk.len() as u64;
            if size > desc.size {
                return Err(size_mismatch(size));
            }
            hasher.update(&chunk);
            *wrote = true;
            sink.write_all(&chunk).map_err(|source| ErrorKind::Sink {
                what: what.to_owned(),
                source,
            })?;
        }
        if size != desc.size {
            return Err(size_mismatch(size));
        }
        let actual = Digest::from(hasher);
        if actual != expected {
            return Err(ErrorKind::DigestMismatch {
                what: what.to_owned(),
                actual,
            });
        }
        Ok(())
    }
}
