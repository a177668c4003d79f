//! Registry credentials from the client's docker config: `auths` entries of
//! `$DOCKER_CONFIG/config.json` (or `~/.docker/config.json`). Credential helpers
//! are not run; a host without an entry is anonymous.

use std::path::{Path, PathBuf};

use base64::Engine as _;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub secret: String,
}

/// Where the docker config is, if anywhere.
pub fn config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(Path::new(&dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker/config.json"))
}

/// Credentials for registry `host`, anonymous when the config has none or cannot be
/// read (a build pulling public images must not fail on a broken config).
pub fn lookup(config: Option<&Path>, host: &str) -> Credentials {
    config
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|v| from_config(&v, host))
        .unwrap_or_default()
}

fn from_config(config: &serde_json::Value, host: &str) -> Option<Credentials> {
    let auths = config.get("auths")?.as_object()?;
    let want = normalize(host);
    let entry = auths
        .iter()
        .find(|(key, _)| normalize(key) == want)
        .map(|(_, v)| v)?;
    let field = |name: &str| entry.get(name).and_then(|v| v.as_str()).unwrap_or_default();
    if !field("identitytoken").is_empty() {
        // A refresh token: no username, as BuildKit passes it on.
        return Some(Credentials {
            username: String::new(),
            secret: field("identitytoken").to_owned(),
        });
    }
    if !field("auth").is_empty() {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(field("auth").trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, pass) = decoded.split_once(':')?;
        return Some(Credentials {
            username: user.to_owned(),
            secret: pass.trim_end_matches('\0').to_owned(),
        });
    }
    Some(Credentials {
        username: field("username").to_owned(),
        secret: field("password").to_owned(),
    })
}

/// A registry's name as `docker login` keys may spell it: with or without a scheme
/// and path; all of Docker Hub's names (`docker login` keys it
/// `https://index.docker.io/v1/`) are one.
fn normalize(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key).to_ascii_lowercase();
    match host.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_owned()
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), json).unwrap();
        f
    }

    #[test]
    fn finds_auth_by_host_however_the_key_is_spelled() {
        let f = config(
            r#"{"auths": {
                "https://index.docker.io/v1/": {"auth": "aHViOmh1YnBhc3M="},
                "registry.example.com:5000": {"auth": "dXNlcjpwYTpzcw=="},
                "http://plain.example/v2/": {"username": "u", "password": "p"},
                "tok.example": {"identitytoken": "refresh"}
            }}"#,
        );
        let get = |host| lookup(Some(f.path()), host);
        assert_eq!(
            get("registry.example.com:5000"),
            Credentials {
                username: "user".into(),
                secret: "pa:ss".into()
            }
        );
        assert_eq!(get("registry-1.docker.io").username, "hub");
        assert_eq!(get("docker.io").secret, "hubpass");
        assert_eq!(get("plain.example").secret, "p");
        assert_eq!(
            get("tok.example"),
            Credentials {
                username: String::new(),
                secret: "refresh".into()
            }
        );
        assert_eq!(get("other.example"), Credentials::default());
    }

    #[test]
    fn a_missing_or_broken_config_is_anonymous() {
        assert_eq!(lookup(None, "x"), Credentials::default());
        let f = config("{not json");
        assert_eq!(lookup(Some(f.path()), "x"), Credentials::default());
        let missing = Path::new("/nonexistent/config.json");
        assert_eq!(lookup(Some(missing), "x"), Credentials::default());
    }
}
