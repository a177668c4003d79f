//! The registry client: HTTP requests with the challenge/credential/token dance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode};

use crate::auth::{AuthCache, Challenge, TokenResponse, parse_challenges};
use crate::config::{Endpoint, RegistryConfig};
use crate::credentials::{Credential, CredentialError, CredentialSource};
use crate::error::ErrorKind;
use crate::limits::{self, Cap};
use crate::reference::{DOCKER_HUB, DOCKER_HUB_API};

#[derive(Debug, thiserror::Error)]
#[error("creating the registry http client: {0}")]
pub struct InitError(#[source] reqwest::Error);

/// A registry client; cheap to share behind an `Arc`, all methods take `&self`.
pub struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) config: RegistryConfig,
    creds: Arc<dyn CredentialSource>,
    /// Credentials per host, so helpers run once per client and host.
    cred_cache: Mutex<HashMap<String, Option<Credential>>>,
    auth: AuthCache,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Builds a request; called again for the retry after a 401, so bodies are rebuilt.
pub(crate) type BuildRequest<'a> =
    &'a (dyn Fn(&reqwest::Client) -> Result<RequestBuilder, ErrorKind> + Sync);

impl Client {
    pub fn new(
        config: RegistryConfig,
        creds: Arc<dyn CredentialSource>,
    ) -> Result<Self, InitError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("buildd/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            // Per read, not per request: large layers may take long, stalls may not.
            .read_timeout(Duration::from_secs(300))
            .build()
            .map_err(InitError)?;
        Ok(Self {
            http,
            config,
            creds,
            cred_cache: Mutex::new(HashMap::new()),
            auth: AuthCache::default(),
        })
    }

    /// A client with the same settings and connection pool but other credentials
    /// (and its own token cache): cheap, unlike [`Client::new`], which loads the
    /// system's root certificates.
    pub fn with_credentials(&self, creds: Arc<dyn CredentialSource>) -> Client {
        Self {
            http: self.http.clone(),
            config: self.config.clone(),
            creds,
            cred_cache: Mutex::new(HashMap::new()),
            auth: AuthCache::default(),
        }
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// The credential for an API host, asked of the source once (off the runtime,
    /// since helpers are processes).
    async fn credential(&self, host: &str) -> Result<Option<Credential>, ErrorKind> {
        let registry = if host == DOCKER_HUB_API {
            DOCKER_HUB
        } else {
            host
        };
        if let Some(c) = self
            .cred_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(registry)
        {
            return Ok(c.clone());
        }
        let creds = Arc::clone(&self.creds);
        let key = registry.to_owned();
        let found = match tokio::task::spawn_blocking(move || creds.credential(&key)).await {
            Ok(found) => found,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(CredentialError::Interrupted),
        }
        .map_err(|source| ErrorKind::Credentials {
            registry: registry.to_owned(),
            source,
        })?;
        self.cred_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(registry.to_owned(), found.clone());
        Ok(found)
    }

    /// Sends a request, answering one 401 challenge with basic credentials or a
    /// bearer token for `scopes` (cached per host and scope).
    pub(crate) async fn send(
        &self,
        ep: &Endpoint,
        scopes: &[String],
        url: &str,
        build: BuildRequest<'_>,
    ) -> Result<Response, ErrorKind> {
        let scope = scopes.join(" ");
        let mut header = self.auth.get(&ep.host, &scope);
        let mut answered = false;
        loop {
            let mut req = build(&self.http)?;
            if let Some(h) = &header {
                req = req.header(AUTHORIZATION, h);
            }
            let resp = req.send().await.map_err(|e| http_error(url, e))?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            if answered {
                return Err(self.rejected(&ep.host, &scope, &resp).await);
            }
            if header.is_some() {
                // Expired or revoked: start over from the challenge.
                self.auth.forget(&ep.host, &scope);
            }
            header = Some(self.authorize(ep, scopes, &resp).await?);
            answered = true;
        }
    }

    /// The error for a 401 after answering the challenge. Without credentials that
    /// is a request for some; with them, either they were wrong or (for a token
    /// that lacks the scope) the user may not do this.
    async fn rejected(&self, host: &str, scope: &str, resp: &Response) -> ErrorKind {
        match self.credential(host).await {
            Ok(Some(_)) if insufficient_scope(resp) => ErrorKind::Denied {
                registry: host.to_owned(),
                detail: format!(": the token does not grant {scope}"),
            },
            Ok(Some(c)) => ErrorKind::Unauthorized {
                registry: host.to_owned(),
                username: c.username,
            },
            Ok(None) => ErrorKind::AuthRequired {
                registry: host.to_owned(),
            },
            Err(e) => e,
        }
    }

    /// Answers a 401: returns (and caches) the Authorization header to retry with.
    async fn authorize(
        &self,
        ep: &Endpoint,
        scopes: &[String],
        resp: &Response,
    ) -> Result<String, ErrorKind> {
        let raw: Vec<&str> = resp
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let challenges: Vec<Challenge> = raw.iter().flat_map(|v| parse_challenges(v)).collect();
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let (token, lifetime) = self.fetch_token(ep, scopes, bearer).await?;
            let header = format!("Bearer {token}");
            self.auth
                .put(&ep.host, &scopes.join(" "), header.clone(), Some(lifetime));
            return Ok(header);
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            let Some(cred) = self.credential(&ep.host).await? else {
                return Err(ErrorKind::AuthRequired {
                    registry: ep.host.clone(),
                });
            };
            let pair = format!("{}:{}", cred.username, cred.secret);
            let header = format!("Basic {}", STANDARD.encode(pair));
            self.auth.put(&ep.host, "", header.clone(), None);
            return Ok(header);
        }
        Err(ErrorKind::Challenge {
            registry: ep.host.clone(),
            challenge: if raw.is_empty() {
                "(none)".to_owned()
            } else {
                raw.join(", ")
            },
        })
    }

    /// Docker's token flow: GET realm?service=…&scope=…, with basic credentials when
    /// there are any.
    async fn fetch_token(
        &self,
        ep: &Endpoint,
        scopes: &[String],
        challenge: &Challenge,
    ) -> Result<(String, Duration), ErrorKind> {
        let realm = challenge.params.get("realm").cloned().unwrap_or_default();
        let token_err = |detail: String| ErrorKind::Token {
            realm: realm.clone(),
            detail,
        };
        let mut url = reqwest::Url::parse(&realm)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| ErrorKind::Challenge {
                registry: ep.host.clone(),
                challenge: format!("bearer realm {realm:?} is not an http(s) url"),
            })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = challenge.params.get("service") {
                q.append_pair("service", service);
            }
            let extra = challenge.params.get("scope");
            for scope in scopes.iter().chain(extra.filter(|s| !scopes.contains(s))) {
                q.append_pair("scope", scope);
            }
        }
        let cred = self.credential(&ep.host).await?;
        let mut req = self.http.get(url.clone());
        if let Some(c) = &cred {
            req = req.basic_auth(&c.username, Some(&c.secret));
        }
        let resp = req.send().await.map_err(|e| http_error(url.as_str(), e))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(match cred {
                Some(c) => ErrorKind::Unauthorized {
                    registry: ep.host.clone(),
                    username: c.username,
                },
                None => ErrorKind::AuthRequired {
                    registry: ep.host.clone(),
                },
            });
        }
        let body = read_body(
            resp,
            limits::TOKEN,
            &format!("token server {realm}"),
            url.as_str(),
        )
        .await?;
        if !status.is_success() {
            return Err(token_err(format!(
                "answered {status}{}",
                error_detail(&body)
            )));
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| token_err(format!("invalid json: {e}")))?;
        parsed
            .into_token()
            .ok_or_else(|| token_err("response has no token".to_owned()))
    }
}

/// Whether a 401 says the token was valid but lacked the scope (e.g. push access).
fn insufficient_scope(resp: &Response) -> bool {
    resp.headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_challenges)
        .any(|c| {
            c.params
                .get("error")
                .is_some_and(|e| e == "insufficient_scope")
        })
}

/// A transport error with its whole cause chain (reqwest's top-level message alone
/// says little, e.g. "error sending request").
pub(crate) fn http_error(url: &str, err: reqwest::Error) -> ErrorKind {
    let err = err.without_url();
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    ErrorKind::Http {
        url: url.to_owned(),
        detail,
    }
}

/// Reads a whole body, refusing one over `cap`: before reading when its
/// Content-Length says so, else as soon as what arrived passes the cap (a server
/// may send no length, or more than it announced).
pub(crate) async fn read_body(
    mut resp: Response,
    cap: Cap,
    what: &str,
    url: &str,
) -> Result<Vec<u8>, ErrorKind> {
    let too_large = |size, at_least| ErrorKind::TooLarge {
        what: what.to_owned(),
        cap: cap.name,
        limit: cap.limit,
        size,
        at_least,
    };
    let announced = resp.content_length();
    if let Some(len) = announced
        && len > cap.limit
    {
        return Err(too_large(len, false));
    }
    let mut out = Vec::with_capacity(announced.unwrap_or(0) as usize);
    while let Some(chunk) = resp.chunk().await.map_err(|e| http_error(url, e))? {
        let size = out.len() as u64 + chunk.len() as u64;
        if size > cap.limit {
            return Err(too_large(size, true));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// `: CODE: message` from a registry error body, or its text, for error messages.
pub(crate) fn error_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<One>,
    }
    #[derive(serde::Deserialize)]
    struct One {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(body)
        && !e.errors.is_empty()
    {
        let parts: Vec<String> = e
            .errors
            .iter()
            .map(|o| format!("{}: {}", o.code, o.message))
            .collect();
        return format!(": {}", parts.join("; "));
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {}", text.chars().take(200).collect::<String>())
    }
}

/// The error for an unexpected response status.
pub(crate) async fn status_error(resp: Response, what: String, url: &str, host: &str) -> ErrorKind {
    let status = resp.status();
    let retry_after = crate::retry::retry_after(&resp);
    let body = read_body(resp, limits::ERROR_BODY, &what, url)
        .await
        .unwrap_or_default();
    match status {
        StatusCode::NOT_FOUND => ErrorKind::NotFound { what },
        StatusCode::FORBIDDEN => ErrorKind::Denied {
            registry: host.to_owned(),
            detail: error_detail(&body),
        },
        _ => ErrorKind::Status {
            what,
            url: url.to_owned(),
            status: status.as_u16(),
            detail: error_detail(&body),
            retry_after,
        },
    }
}

pub(crate) fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

pub(crate) fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BlobSource, NoCredentials, Reference};

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn operations_can_run_on_spawned_tasks() {
        let c = Client::new(RegistryConfig::default(), Arc::new(NoCredentials)).unwrap();
        let r = Reference::parse("localhost:1/x").unwrap();
        let p = buildd_oci::host_platform();
        let d = buildd_oci::Descriptor::new("l", buildd_proto::Digest::of(b""), 0);
        let mut sink = Vec::new();
        assert_send(&c.resolve(&r, &p));
        assert_send(&c.fetch_blob(&r, &d, &mut sink));
        assert_send(&c.push_blob(&r, &d, &BlobSource::Bytes(Vec::new()), None));
        assert_send(&c.push_manifest(&r, "m", b"{}"));
    }

    #[test]
    fn error_details_come_from_registry_json_or_text() {
        let json = br#"{"errors":[{"code":"DIGEST_INVALID","message":"bad digest"}]}"#;
        assert_eq!(error_detail(json), ": DIGEST_INVALID: bad digest");
        assert_eq!(error_detail(b"  plain text\n"), ": plain text");
        assert_eq!(error_detail(b""), "");
    }
}
