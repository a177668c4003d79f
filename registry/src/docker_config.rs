//! Credentials from a Docker client config (`~/.docker/config.json`): `auths`,
//! `credHelpers` and `credsStore`, looked up the way the docker CLI does.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::credentials::{Credential, CredentialError, CredentialSource};
use crate::reference::{DOCKER_HUB, DOCKER_HUB_API};

/// The key Docker Hub's credentials are stored under.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperOutput {
    username: String,
    secret: String,
}

/// A parsed Docker client config.
#[derive(Debug, Default)]
pub struct DockerConfig {
    path: PathBuf,
    file: File,
    /// Directories searched for `docker-credential-<name>`; `None` means `$PATH`.
    helper_dirs: Option<Vec<PathBuf>>,
}

impl DockerConfig {
    /// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
            return Some(PathBuf::from(dir).join("config.json"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
    }

    /// Loads the default config; a missing file means no credentials.
    pub fn load() -> Result<Self, CredentialError> {
        match Self::default_path() {
            Some(path) => Self::from_path(&path),
            None => Ok(Self::default()),
        }
    }

    /// Loads `dir/config.json` (a `DOCKER_CONFIG` directory).
    pub fn from_dir(dir: &Path) -> Result<Self, CredentialError> {
        Self::from_path(&dir.join("config.json"))
    }

    /// Loads a config file; a missing file means no credentials.
    pub fn from_path(path: &Path) -> Result<Self, CredentialError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(CredentialError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let file = if text.trim().is_empty() {
            File::default()
        } else {
            serde_json::from_str(&text).map_err(|source| CredentialError::Parse {
                path: path.to_owned(),
                source,
            })?
        };
        Ok(Self {
            path: path.to_owned(),
            file,
            helper_dirs: None,
        })
    }

    /// Looks credential helpers up in `dirs` instead of `$PATH`.
    pub fn with_helper_dirs(mut self, dirs: Vec<PathBuf>) -> Self {
        self.helper_dirs = Some(dirs);
        self
    }

    fn auths_entry(&self, registry: &str) -> Result<Option<Credential>, CredentialError> {
        let Some(entry) = self
            .file
            .auths
            .iter()
            .find(|(key, _)| matches_key(key, registry))
            .map(|(_, e)| e)
        else {
            return Ok(None);
        };
        let bad = |reason: &str| CredentialError::BadAuth {
            path: self.path.clone(),
            registry: registry.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let decoded = STANDARD
                .decode(auth.trim())
                .map_err(|_| bad("\"auth\" is not base64"))?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad("\"auth\" is not utf-8"))?;
            let (user, pass) = decoded
                .split_once(':')
                .ok_or_else(|| bad("\"auth\" is not base64 of user:password"))?;
            return Ok(Some(Credential {
                username: user.to_owned(),
                secret: pass.to_owned(),
            }));
        }
        match (&entry.username, &entry.password) {
            (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credential {
                username: u.clone(),
                secret: p.clone(),
            })),
            _ => Ok(None),
        }
    }

    fn find_helper(&self, name: &str) -> Result<PathBuf, CredentialError> {
        let bin = format!("docker-credential-{name}");
        let dirs: Vec<PathBuf> = match &self.helper_dirs {
            Some(d) => d.clone(),
            None => std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect(),
        };
        dirs.iter()
            .map(|d| d.join(&bin))
            .find(|p| p.is_file())
            .ok_or_else(|| CredentialError::HelperNotFound {
                helper: bin,
                searched: std::env::join_paths(&dirs)
                    .unwrap_or_else(|_| OsString::from("?"))
                    .to_string_lossy()
                    .into_owned(),
            })
    }

    /// Runs `docker-credential-<name> get` with the server on stdin.
    fn run_helper(
        &self,
        name: &str,
        registry: &str,
    ) -> Result<Option<Credential>, CredentialError> {
        let helper = self.find_helper(name)?;
        let server = if registry == DOCKER_HUB {
            DOCKER_HUB_KEY
        } else {
            registry
        };
        let spawn_err = |source| CredentialError::HelperSpawn {
            helper: helper.clone(),
            source,
        };
        let mut child = Command::new(&helper)
            .arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        // Dropping stdin after the write closes it, so the helper sees EOF.
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(server.as_bytes()).map_err(spawn_err)?;
        }
        let out = child.wait_with_output().map_err(spawn_err)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            // The helper protocol's way of saying "no entry".
            if stdout.contains("credentials not found") {
                return Ok(None);
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            let message = [stdout.trim(), stderr.trim()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(": ");
            return Err(CredentialError::HelperFailed {
                helper,
                registry: registry.to_owned(),
                message: if message.is_empty() {
                    out.status.to_string()
                } else {
                    message
                },
            });
        }
        let parsed: HelperOutput =
            serde_json::from_str(&stdout).map_err(|source| CredentialError::HelperOutput {
                helper: helper.clone(),
                registry: registry.to_owned(),
                source,
            })?;
        if parsed.username.is_empty() && parsed.secret.is_empty() {
            return Ok(None);
        }
        Ok(Some(Credential {
            username: parsed.username,
            secret: parsed.secret,
        }))
    }
}

impl CredentialSource for DockerConfig {
    fn credential(&self, registry: &str) -> Result<Option<Credential>, CredentialError> {
        let registry = if registry == DOCKER_HUB_API {
            DOCKER_HUB
        } else {
            registry
        };
        let helper = self
            .file
            .cred_helpers
            .iter()
            .find(|(key, _)| matches_key(key, registry))
            .map(|(_, h)| h)
            .or(self.file.creds_store.as_ref())
            .filter(|h| !h.is_empty());
        if let Some(helper) = helper
            && let Some(cred) = self.run_helper(helper, registry)?
        {
            return Ok(Some(cred));
        }
        self.auths_entry(registry)
    }
}

/// Whether a config key (`host`, `https://host/v1/` …) names `registry`.
fn matches_key(key: &str, registry: &str) -> bool {
    let host = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = host.split('/').next().unwrap_or(host);
    if registry == DOCKER_HUB {
        matches!(host, "index.docker.io" | "docker.io" | DOCKER_HUB_API)
    } else {
        host == registry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> DockerConfig {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), json).unwrap();
        DockerConfig::from_dir(dir.path()).unwrap()
    }

    fn cred(u: &str, p: &str) -> Option<Credential> {
        Some(Credential {
            username: u.into(),
            secret: p.into(),
        })
    }

    #[test]
    fn auths_in_every_spelling() {
        let c = config(
            r#"{"auths": {
                "https://index.docker.io/v1/": {"auth": "aHViOmh1YnB3"},
                "reg.example:5000": {"username": "u", "password": "p:w"},
                "http://other.example/v2/": {"auth": "bzpwOng="},
                "empty.example": {}
            }}"#,
        );
        assert_eq!(c.credential("docker.io").unwrap(), cred("hub", "hubpw"));
        assert_eq!(c.credential(DOCKER_HUB_API).unwrap(), cred("hub", "hubpw"));
        assert_eq!(c.credential("reg.example:5000").unwrap(), cred("u", "p:w"));
        assert_eq!(c.credential("other.example").unwrap(), cred("o", "p:x"));
        assert_eq!(c.credential("empty.example").unwrap(), None);
        assert_eq!(c.credential("reg.example").unwrap(), None);
    }

    #[test]
    fn missing_file_is_anonymous_and_bad_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let c = DockerConfig::from_dir(dir.path()).unwrap();
        assert_eq!(c.credential("docker.io").unwrap(), None);

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{nope").unwrap();
        let err = DockerConfig::from_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");

        let c = config(r#"{"auths": {"r.io": {"auth": "!!!"}}}"#);
        let err = c.credential("r.io").unwrap_err().to_string();
        assert!(
            err.contains("auth for r.io") && err.contains("base64"),
            "{err}"
        );
    }

    #[test]
    fn missing_helper_is_reported_with_the_search_path() {
        let c =
            config(r#"{"credsStore": "nothere"}"#).with_helper_dirs(vec!["/nonexistent".into()]);
        let err = c.credential("r.io").unwrap_err().to_string();
        assert_eq!(
            err,
            "credential helper docker-credential-nothere not found in /nonexistent"
        );
    }
}
