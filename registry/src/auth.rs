//! `WWW-Authenticate` challenges and the cache of authorization headers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lower-cased (`basic`, `bearer`).
    pub scheme: String,
    /// Parameter names are lower-cased; values are unquoted.
    pub params: BTreeMap<String, String>,
}

/// Parses a `WWW-Authenticate` value (RFC 7235), which may hold several challenges.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut p = Parser {
        s: header.as_bytes(),
        i: 0,
    };
    let mut out = Vec::new();
    loop {
        p.skip(|b| b == b' ' || b == b'\t' || b == b',');
        let scheme = p.token();
        if scheme.is_empty() {
            break;
        }
        let mut params = BTreeMap::new();
        loop {
            p.skip(|b| b == b' ' || b == b'\t' || b == b',');
            let save = p.i;
            let name = p.token();
            if name.is_empty() {
                break;
            }
            p.skip(|b| b == b' ' || b == b'\t');
            if !p.eat(b'=') {
                // A bare token: the next challenge's scheme.
                p.i = save;
                break;
            }
            p.skip(|b| b == b' ' || b == b'\t');
            let value = if p.eat(b'"') { p.quoted() } else { p.token() };
            params.insert(name.to_ascii_lowercase(), value);
        }
        out.push(Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params,
        });
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip(&mut self, f: impl Fn(u8) -> bool) {
        while self.i < self.s.len() && f(self.s[self.i]) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.s.get(self.i) == Some(&b);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn token(&mut self) -> String {
        let start = self.i;
        self.skip(|b| !matches!(b, b' ' | b'\t' | b',' | b'=' | b'"'));
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    fn quoted(&mut self) -> String {
        let mut out = Vec::new();
        while let Some(&b) = self.s.get(self.i) {
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(&n) = self.s.get(self.i) {
                        out.push(n);
                        self.i += 1;
                    }
                }
                _ => out.push(b),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// A token server's answer (Docker's token spec and OAuth2 spellings).
#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    pub fn into_token(self) -> Option<(String, Duration)> {
        let token = self.token.or(self.access_token).filter(|t| !t.is_empty())?;
        // The spec's default lifetime; the floor guards against a zero from servers
        // that mean "unspecified".
        let secs = self.expires_in.unwrap_or(60).max(60);
        Some((token, Duration::from_secs(secs)))
    }
}

/// Authorization headers per (host, scope); basic auth is stored with an empty scope
/// because it is good for every scope of the host.
#[derive(Debug, Default)]
pub(crate) struct AuthCache {
    entries: Mutex<HashMap<(String, String), Cached>>,
}

#[derive(Debug)]
struct Cached {
    header: String,
    /// `None` for basic auth, which does not expire.
    expires: Option<Instant>,
}

/// Tokens are dropped this long before they expire, so a request never carries
/// one that runs out in flight.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);

impl AuthCache {
    pub fn get(&self, host: &str, scope: &str) -> Option<String> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        [scope, ""].iter().find_map(|s| {
            entries
                .get(&(host.to_owned(), (*s).to_owned()))
                .filter(|c| c.expires.is_none_or(|e| e > now))
                .map(|c| c.header.clone())
        })
    }

    pub fn put(&self, host: &str, scope: &str, header: String, lifetime: Option<Duration>) {
        let expires = lifetime.map(|l| Instant::now() + l.saturating_sub(EXPIRY_MARGIN));
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.insert(
            (host.to_owned(), scope.to_owned()),
            Cached { header, expires },
        );
    }

    pub fn forget(&self, host: &str, scope: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(&(host.to_owned(), scope.to_owned()));
        entries.remove(&(host.to_owned(), String::new()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(scheme: &str, params: &[(&str, &str)]) -> Challenge {
        Challenge {
            scheme: scheme.into(),
            params: params
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }
    }

    #[test]
    fn parses_docker_hub_bearer() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#;
        assert_eq!(
            parse_challenges(h),
            [ch(
                "bearer",
                &[
                    ("realm", "https://auth.docker.io/token"),
                    ("service", "registry.docker.io"),
                    ("scope", "repository:library/busybox:pull"),
                ]
            )]
        );
    }

    #[test]
    fn parses_several_challenges_and_odd_spacing() {
        let h = r#"Basic realm="Registry Realm", Bearer Realm = "http://a/t" , error="insufficient_scope",scope="x:y:pull,push", Negotiate abc=="#;
        let got = parse_challenges(h);
        assert_eq!(
            got,
            [
                ch("basic", &[("realm", "Registry Realm")]),
                ch(
                    "bearer",
                    &[
                        ("realm", "http://a/t"),
                        ("error", "insufficient_scope"),
                        ("scope", "x:y:pull,push"),
                    ]
                ),
                ch("negotiate", &[("abc", "")]),
            ]
        );
        assert_eq!(
            parse_challenges(r#"Basic realm="a \"q\" b""#),
            [ch("basic", &[("realm", "a \"q\" b")])]
        );
        assert!(parse_challenges("").is_empty());
    }

    #[test]
    fn cache_keys_by_host_and_scope_and_basic_covers_all_scopes() {
        let c = AuthCache::default();
        c.put(
            "h:1",
            "repository:a:pull",
            "Bearer A".into(),
            Some(Duration::from_secs(60)),
        );
        assert_eq!(
            c.get("h:1", "repository:a:pull").as_deref(),
            Some("Bearer A")
        );
        assert_eq!(c.get("h:1", "repository:b:pull"), None);
        assert_eq!(c.get("h:2", "repository:a:pull"), None);
        c.put("h:2", "", "Basic x".into(), None);
        assert_eq!(
            c.get("h:2", "repository:z:push").as_deref(),
            Some("Basic x")
        );
        c.forget("h:2", "repository:z:push");
        assert_eq!(c.get("h:2", "repository:z:push"), None);
        // A lifetime within the margin is already expired.
        c.put(
            "h:3",
            "s",
            "Bearer old".into(),
            Some(Duration::from_secs(5)),
        );
        assert_eq!(c.get("h:3", "s"), None);
    }

    #[test]
    fn token_response_spellings() {
        let t: TokenResponse = serde_json::from_str(r#"{"token":"a","expires_in":300}"#).unwrap();
        assert_eq!(t.into_token(), Some(("a".into(), Duration::from_secs(300))));
        let t: TokenResponse = serde_json::from_str(r#"{"access_token":"b"}"#).unwrap();
        assert_eq!(t.into_token(), Some(("b".into(), Duration::from_secs(60))));
        let t: TokenResponse = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(t.into_token(), None);
    }
}
