//! `--secret id=ID[,src=PATH|,env=VAR][,type=file|env]`, in buildx's syntax. Values
//! are read only when the daemon asks for them and never printed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// BuildKit's limit on the size of one secret.
pub const MAX_SECRET_SIZE: u64 = 500 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    /// An environment variable of this process.
    Env(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("invalid --secret {spec:?}: {message}")]
    Spec { spec: String, message: String },
    #[error("secret {id:?}: {message}")]
    Value { id: String, message: String },
}

#[derive(Debug, Default, Clone)]
pub struct Secrets {
    sources: BTreeMap<String, SecretSource>,
}

impl Secrets {
    /// Adds a `--secret` spec. With neither `src` nor `env`, the secret is the
    /// environment variable named ID if it is set and else the file ID, as buildx
    /// decides.
    pub fn add_spec(&mut self, spec: &str) -> Result<(), SecretError> {
        let bad = |message: String| SecretError::Spec {
            spec: spec.to_owned(),
            message,
        };
        let (mut id, mut src, mut env, mut typ) = (None, None, None, None);
        for field in spec.split(',').filter(|f| !f.is_empty()) {
            let Some((key, value)) = field.split_once('=') else {
                return Err(bad(format!("field {field:?} must be a key=value pair")));
            };
            let value = value.to_owned();
            match key.to_ascii_lowercase().as_str() {
                "type" if value == "file" || value == "env" => typ = Some(value),
                "type" => return Err(bad(format!("unsupported secret type {value:?}"))),
                "id" => id = Some(value),
                "source" | "src" => src = Some(value),
                "env" => env = Some(value),
                k => return Err(bad(format!("unexpected key {k:?}"))),
            }
        }
        if typ.as_deref() == Some("env") && env.is_none() {
            env = src.take();
        }
        let id = id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| bad("missing id".to_owned()))?;
        let source = match (src, env) {
            (Some(_), Some(_)) => return Err(bad("src and env are exclusive".to_owned())),
            (Some(path), None) => SecretSource::File(path.into()),
            (None, Some(var)) => SecretSource::Env(var),
            (None, None) if std::env::var_os(&id).is_some() => SecretSource::Env(id.clone()),
            (None, None) => SecretSource::File(id.clone().into()),
        };
        if self.sources.contains_key(&id) {
            return Err(bad(format!("secret {id:?} given twice")));
        }
        // Fail before the build starts rather than in the middle of it.
        if let SecretSource::File(path) = &source {
            let meta = std::fs::metadata(path)
                .map_err(|e| bad(format!("cannot stat {}: {e}", path.display())))?;
            check_size(meta.len(), path).map_err(bad)?;
        }
        self.sources.insert(id, source);
        Ok(())
    }

    /// The value of secret `id`, `None` when this client has no such secret.
    pub fn get(&self, id: &str) -> Result<Option<Vec<u8>>, SecretError> {
        let fail = |message: String| SecretError::Value {
            id: id.to_owned(),
            message,
        };
        match self.sources.get(id) {
            None => Ok(None),
            Some(SecretSource::Env(var)) => std::env::var_os(var)
                .map(|v| Some(v.into_encoded_bytes()))
                .ok_or_else(|| fail(format!("environment variable {var} is not set"))),
            Some(SecretSource::File(path)) => {
                let value = std::fs::read(path)
                    .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
                check_size(value.len() as u64, path).map_err(fail)?;
                Ok(Some(value))
            }
        }
    }
}

fn check_size(len: u64, path: &Path) -> Result<(), String> {
    if len > MAX_SECRET_SIZE {
        return Err(format!(
            "{} is too big: the limit is {} KiB",
            path.display(),
            MAX_SECRET_SIZE / 1024
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_and_env_on_demand() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cr3t").unwrap();
        let mut s = Secrets::default();
        s.add_spec(&format!("id=tok,src={}", file.display()))
            .unwrap();
        // PATH is always set; the value is read when asked, not when parsed.
        s.add_spec("id=p,env=PATH").unwrap();
        assert_eq!(s.get("tok").unwrap().unwrap(), b"s3cr3t");
        assert!(!s.get("p").unwrap().unwrap().is_empty());
        assert!(s.get("other").unwrap().is_none());
        std::fs::write(&file, "rotated").unwrap();
        assert_eq!(s.get("tok").unwrap().unwrap(), b"rotated");
    }

    #[test]
    fn rejects_bad_specs_naming_them() {
        let mut s = Secrets::default();
        for (spec, msg) in [
            ("src=x", "missing id"),
            ("id=a,src=x,env=Y", "exclusive"),
            ("id=a,type=ssh", "unsupported secret type"),
            ("id=a,what=1", "unexpected key"),
            ("id=a,src=/nonexistent/secret", "/nonexistent/secret"),
        ] {
            let err = s.add_spec(spec).unwrap_err().to_string();
            assert!(err.contains(msg) && err.contains(spec), "{spec}: {err}");
        }
    }
}
