//! Secrets and SSH agents of the machine the build runs on, for `buildd build`:
//! `--secret` and `--ssh` in buildx's syntax.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

use futures_util::future::BoxFuture;
use zeroize::Zeroizing;

pub use buildd_specs::SecretSource;

use super::{AgentStream, DEFAULT_SSH_ID, SecretStore, SecretValue, SessionError, SshStore};

/// Secrets by id, read from files and environment variables.
#[derive(Debug, Default, Clone)]
pub struct LocalSecrets {
    sources: BTreeMap<String, SecretSource>,
}

impl LocalSecrets {
    /// Adds a `--secret` spec: `id=ID[,src=PATH|,env=VAR][,type=file|env]`. With
    /// neither `src` nor `env`, the secret is the environment variable named ID if
    /// it is set and else the file ID, as BuildKit decides.
    pub fn add_spec(&mut self, spec: &str) -> Result<(), SessionError> {
        let bad = |message: String| SessionError::Spec {
            flag: "--secret",
            spec: spec.to_owned(),
            message,
        };
        let (id, source) = buildd_specs::parse_secret(spec).map_err(bad)?;
        self.insert(id, source)
    }

    /// Adds secret `id`; a file must exist and be small enough now.
    pub fn insert(&mut self, id: String, source: SecretSource) -> Result<(), SessionError> {
        let fail = |message: String| SessionError::Secret {
            id: id.clone(),
            message,
        };
        if self.sources.contains_key(&id) {
            return Err(fail("given twice".to_owned()));
        }
        source.check().map_err(fail)?;
        self.sources.insert(id, source);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }
}

impl SecretStore for LocalSecrets {
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<SecretValue>, SessionError>> {
        Box::pin(async move {
            let fail = |message: String| SessionError::Secret {
                id: id.to_owned(),
                message,
            };
            let Some(source) = self.sources.get(id).cloned() else {
                return Ok(None);
            };
            // Off the async threads: a secret file may sit on a slow filesystem.
            let value = tokio::task::spawn_blocking(move || source.read())
                .await
                .map_err(|e| fail(format!("reading: {e}")))?
                .map(Zeroizing::new)
                .map_err(fail)?;
            Ok(Some(value))
        })
    }
}

/// SSH agent sockets by id.
#[derive(Debug, Default, Clone)]
pub struct LocalSsh {
    agents: BTreeMap<String, PathBuf>,
}

impl LocalSsh {
    /// Adds an `--ssh` spec: `ID[=SOCKET]`, where a bare ID means `$SSH_AUTH_SOCK`.
    /// Private key files (which buildx loads into an agent of its own) are refused
    /// with a hint: load them into an agent with `ssh-add` instead.
    pub fn add_spec(&mut self, spec: &str) -> Result<(), SessionError> {
        let (id, paths) = match spec.split_once('=') {
            Some((id, paths)) => (id, Some(paths)),
            None => (spec, None),
        };
        let id = if id.is_empty() { DEFAULT_SSH_ID } else { id };
        let fail = |message: String| SessionError::Ssh {
            id: id.to_owned(),
            message,
        };
        let socket = match paths {
            None => std::env::var_os("SSH_AUTH_SOCK")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .ok_or_else(|| {
                    fail("SSH_AUTH_SOCK is not set: start an agent or give --ssh ID=SOCKET".into())
                })?,
            Some(paths) if paths.contains(',') => {
                return Err(fail(
                    "private key files are not supported: load them into an agent with ssh-add and give its socket"
                        .into(),
                ));
            }
            Some(path) => PathBuf::from(path),
        };
        let meta = std::fs::metadata(&socket)
            .map_err(|e| fail(format!("failed to stat {}: {e}", socket.display())))?;
        if !meta.file_type().is_socket() {
            return Err(fail(format!(
                "{} is not a socket; private key files are not supported: load them into an agent with ssh-add and give its socket",
                socket.display()
            )));
        }
        if self.agents.insert(id.to_owned(), socket).is_some() {
            return Err(fail("given twice".to_owned()));
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }
}

impl SshStore for LocalSsh {
    fn has<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, SessionError>> {
        Box::pin(async move { Ok(self.agents.contains_key(id)) })
    }

    fn connect<'a>(&'a self, id: &'a str) -> BoxFuture<'a, io::Result<Box<dyn AgentStream>>> {
        Box::pin(async move {
            let path = self.agents.get(id).ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("no ssh agent {id:?}"))
            })?;
            let stream = tokio::net::UnixStream::connect(path).await?;
            Ok(Box::new(stream) as Box<dyn AgentStream>)
        })
    }
}

/// Splits a CSV record as buildx does: commas separate fields, double quotes
/// protect commas, and `""` inside quotes is a quote.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::MAX_SECRET_SIZE;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn secret_specs_follow_buildx() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tok");
        std::fs::write(&file, "from-file").unwrap();
        let mut s = LocalSecrets::default();
        s.add_spec(&format!("id=a,src={}", file.display())).unwrap();
        s.add_spec("id=b,env=BUILDD_TEST_SECRET_B").unwrap();
        s.add_spec("type=env,id=c,src=BUILDD_TEST_SECRET_C")
            .unwrap();
        s.add_spec(&format!("\"id=d\",\"source={}\"", file.display()))
            .unwrap();
        assert_eq!(s.sources["a"], SecretSource::File(file.clone()));
        assert_eq!(
            s.sources["b"],
            SecretSource::Env("BUILDD_TEST_SECRET_B".into())
        );
        assert_eq!(
            s.sources["c"],
            SecretSource::Env("BUILDD_TEST_SECRET_C".into())
        );
        assert_eq!(s.sources["d"], SecretSource::File(file.clone()));

        let value = block_on(s.get("a")).unwrap().unwrap();
        assert_eq!(value.as_slice(), b"from-file");
        assert!(block_on(s.get("nope")).unwrap().is_none());
        // Declared but unset: an error naming the variable, not a silent skip.
        let err = block_on(s.get("b")).unwrap_err().to_string();
        assert!(err.contains("BUILDD_TEST_SECRET_B is not set"), "{err}");
    }

    #[test]
    fn bad_secret_specs_say_why() {
        let err = |spec: &str| {
            LocalSecrets::default()
                .add_spec(spec)
                .unwrap_err()
                .to_string()
        };
        assert!(err("src=/x").contains("missing id"));
        assert!(err("id=a,type=ssh").contains("unsupported secret type"));
        assert!(err("id=a,foo=b").contains("unexpected key \"foo\""));
        assert!(err("id=a,src").contains("key=value"));
        assert!(err("id=a,src=/x,env=Y").contains("exclusive"));
        let missing = err("id=a,src=/does/not/exist");
        assert!(
            missing.contains("secret \"a\": failed to stat /does/not/exist"),
            "{missing}"
        );
        // A bare id that is no environment variable is a file of that name.
        let bare = err("id=buildd-no-such-file-or-var");
        assert!(
            bare.contains("failed to stat buildd-no-such-file-or-var"),
            "{bare}"
        );
    }

    #[test]
    fn oversized_secret_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("big");
        std::fs::write(&file, vec![b'x'; MAX_SECRET_SIZE + 1]).unwrap();
        let err = LocalSecrets::default()
            .add_spec(&format!("id=big,src={}", file.display()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("too big"), "{err}");
    }

    #[test]
    fn ssh_specs_need_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let key = dir.path().join("id_ed25519");
        std::fs::write(&key, "key").unwrap();

        let mut ssh = LocalSsh::default();
        ssh.add_spec(&format!("={}", sock.display())).unwrap();
        ssh.add_spec(&format!("other={}", sock.display())).unwrap();
        assert_eq!(ssh.agents[DEFAULT_SSH_ID], sock);
        assert!(block_on(ssh.has("other")).unwrap());
        assert!(!block_on(ssh.has("third")).unwrap());

        let err = |spec: String| LocalSsh::default().add_spec(&spec).unwrap_err().to_string();
        assert!(err(format!("k={}", key.display())).contains("is not a socket"));
        assert!(err(format!("k={},{}", key.display(), key.display())).contains("ssh-add"));
        let twice = {
            let mut s = LocalSsh::default();
            s.add_spec(&format!("a={}", sock.display())).unwrap();
            s.add_spec(&format!("a={}", sock.display()))
                .unwrap_err()
                .to_string()
        };
        assert!(twice.contains("given twice"), "{twice}");
    }
}
