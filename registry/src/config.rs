//! Which endpoints serve a registry: plain HTTP or HTTPS, and mirrors tried first.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr};

use crate::reference::api_host;
use crate::retry::RetryPolicy;

/// How the client reaches registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// Registries spoken to over plain HTTP: `HOST:PORT`, or `HOST` for any port.
    /// Loopback registries (`localhost`, `127.0.0.0/8`, `::1`) always are, as in Docker.
    pub insecure: Vec<String>,
    /// Registry (as named in references, e.g. `docker.io`) → mirror hosts tried in
    /// order before it for pulls. A mirror may be written `http://HOST` to force plain
    /// HTTP; otherwise the insecure rules above decide.
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// Upload blobs in PATCH chunks of this many bytes; `None` uploads each blob with
    /// one PUT.
    pub upload_chunk_size: Option<u64>,
    /// Retries of transient failures (connection errors, 429 and 5xx answers).
    pub retry: RetryPolicy,
}

/// One host serving the registry API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `HOST[:PORT]`, as used for credentials and token caching.
    pub host: String,
    pub plain_http: bool,
    pub mirror: bool,
}

impl Endpoint {
    /// `scheme://host`, without a trailing slash.
    pub fn base_url(&self) -> String {
        let scheme = if self.plain_http { "http" } else { "https" };
        format!("{scheme}://{}", self.host)
    }
}

impl RegistryConfig {
    /// The origin endpoint of `registry` (a registry as named in references).
    pub fn origin(&self, registry: &str) -> Endpoint {
        let host = api_host(registry).to_owned();
        Endpoint {
            plain_http: self.is_plain_http(registry) || self.is_plain_http(&host),
            host,
            mirror: false,
        }
    }

    /// Endpoints to pull from: the mirrors of `registry` in order, then its origin.
    pub fn pull_endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let mut out: Vec<Endpoint> = self
            .mirrors
            .get(registry)
            .into_iter()
            .flatten()
            .map(|m| {
                let (host, forced) = if let Some(h) = m.strip_prefix("http://") {
                    (h, Some(true))
                } else if let Some(h) = m.strip_prefix("https://") {
                    (h, Some(false))
                } else {
                    (m.as_str(), None)
                };
                let host = host.trim_end_matches('/').to_owned();
                Endpoint {
                    plain_http: forced.unwrap_or_else(|| self.is_plain_http(&host)),
                    host,
                    mirror: true,
                }
            })
            .collect();
        out.push(self.origin(registry));
        out
    }

    /// Whether `host` (`HOST[:PORT]`) is reached over plain HTTP.
    pub fn is_plain_http(&self, host: &str) -> bool {
        let bare = strip_port(host);
        is_loopback(bare)
            || self
                .insecure
                .iter()
                .any(|i| i == host || (!has_port(i) && strip_port(i) == bare))
    }
}

fn has_port(host: &str) -> bool {
    strip_port(host) != host
}

/// `HOST` of `HOST[:PORT]`, with IPv6 brackets removed.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(h, _)| h);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn is_loopback(host: &str) -> bool {
    if host == "localhost" {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => v6 == Ipv6Addr::LOCALHOST,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_for_loopback_and_insecure() {
        let c = RegistryConfig {
            insecure: vec!["reg.local:5000".into(), "other.local".into()],
            ..Default::default()
        };
        for host in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "reg.local:5000",
            "other.local",
            "other.local:8080",
        ] {
            assert!(c.is_plain_http(host), "{host}");
        }
        for host in [
            "reg.local",
            "reg.local:5001",
            "example.com",
            "10.0.0.1:5000",
            "[::2]:5000",
        ] {
            assert!(!c.is_plain_http(host), "{host}");
        }
    }

    #[test]
    fn mirrors_come_first_then_origin() {
        let mut c = RegistryConfig::default();
        c.mirrors.insert(
            "docker.io".into(),
            vec!["mirror.example".into(), "http://cache.lan:5000/".into()],
        );
        let eps = c.pull_endpoints("docker.io");
        let got: Vec<_> = eps.iter().map(|e| (e.base_url(), e.mirror)).collect();
        assert_eq!(
            got,
            [
                ("https://mirror.example".to_owned(), true),
                ("http://cache.lan:5000".to_owned(), true),
                ("https://registry-1.docker.io".to_owned(), false),
            ]
        );
        assert_eq!(c.pull_endpoints("ghcr.io").len(), 1);
    }
}
