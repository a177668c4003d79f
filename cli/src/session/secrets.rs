//! `--secret id=ID[,src=PATH|,env=VAR][,type=file|env]`, in buildx's syntax. Values
//! are read only when the daemon asks for them and never printed.

use std::collections::BTreeMap;

use buildd_specs::{SecretSource, parse_secret};

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
        let (id, source) = parse_secret(spec).map_err(bad)?;
        if self.sources.contains_key(&id) {
            return Err(bad(format!("secret {id:?} given twice")));
        }
        // Fail before the build starts rather than in the middle of it.
        source.check().map_err(bad)?;
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
            Some(source) => source.read().map(Some).map_err(fail),
        }
    }
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
