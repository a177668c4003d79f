//! Flag values that both front ends take, `buildd build` (secrets read in the build's
//! own process) and `bctl build` (secrets served to a daemon over the session), so
//! both accept and read exactly the same things.
//!
//! - [`parse_secret`]: `--secret id=ID[,src=PATH|,env=VAR][,type=file|env]`, in
//!   buildx's syntax (CSV fields, so a quoted value may hold a comma).

use std::path::{Path, PathBuf};

/// BuildKit's limit on the size of one secret.
pub const MAX_SECRET_SIZE: usize = 500 * 1024;

/// Where a secret's value is read from, when a RUN asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    /// An environment variable of this process.
    Env(String),
}

/// Parses a `--secret` spec into its id and source. With neither `src` nor `env`,
/// the secret is the environment variable named ID if it is set and else the file
/// ID, as BuildKit decides. The error says what is wrong with the spec.
pub fn parse_secret(spec: &str) -> Result<(String, SecretSource), String> {
    let (mut id, mut src, mut env, mut typ) = (None, None, None, None);
    for field in csv_fields(spec) {
        let Some((key, value)) = field.split_once('=') else {
            return Err(format!("field {field:?} must be a key=value pair"));
        };
        let value = value.to_owned();
        match key.to_ascii_lowercase().as_str() {
            "type" if value == "file" || value == "env" => typ = Some(value),
            "type" => return Err(format!("unsupported secret type {value:?}")),
            "id" => id = Some(value),
            "source" | "src" => src = Some(value),
            "env" => env = Some(value),
            k => return Err(format!("unexpected key {k:?}")),
        }
    }
    if typ.as_deref() == Some("env") && env.is_none() {
        env = src.take();
    }
    let id = id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| "missing id".to_owned())?;
    let source = match (src, env) {
        (Some(_), Some(_)) => return Err("src and env are exclusive".to_owned()),
        (Some(path), None) => SecretSource::File(path.into()),
        (None, Some(var)) => SecretSource::Env(var),
        (None, None) if std::env::var_os(&id).is_some() => SecretSource::Env(id.clone()),
        (None, None) => SecretSource::File(id.clone().into()),
    };
    Ok((id, source))
}

impl SecretSource {
    /// Fails now, before a build starts, for a file that is missing or too big.
    pub fn check(&self) -> Result<(), String> {
        if let SecretSource::File(path) = self {
            let meta = std::fs::metadata(path)
                .map_err(|e| format!("failed to stat {}: {e}", path.display()))?;
            check_size(meta.len(), path)?;
        }
        Ok(())
    }

    /// The value, read now (a file may have changed since it was given).
    pub fn read(&self) -> Result<Vec<u8>, String> {
        match self {
            SecretSource::Env(var) => std::env::var_os(var)
                .map(|v| v.into_encoded_bytes())
                .ok_or_else(|| format!("environment variable {var} is not set")),
            SecretSource::File(path) => {
                let value = std::fs::read(path)
                    .map_err(|e| format!("failed to read {}: {e}", path.display()))?;
                check_size(value.len() as u64, path)?;
                Ok(value)
            }
        }
    }
}

fn check_size(len: u64, path: &Path) -> Result<(), String> {
    if len > MAX_SECRET_SIZE as u64 {
        return Err(format!(
            "{} is too big: the limit is {} KiB",
            path.display(),
            MAX_SECRET_SIZE / 1024
        ));
    }
    Ok(())
}

/// Splits a spec at commas outside double quotes, as Go's encoding/csv reads the
/// flags buildx takes; `""` inside quotes is one quote.
pub fn csv_fields(spec: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = spec.chars().peekable();
    while let Some(c) = chars.next() {
        let field = fields.last_mut().expect("never empty");
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => field.push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_respect_quotes() {
        assert_eq!(csv_fields("a=1,b=2"), ["a=1", "b=2"]);
        assert_eq!(csv_fields("\"src=a,b\",id=x"), ["src=a,b", "id=x"]);
        assert_eq!(csv_fields("\"say \"\"hi\"\"\""), ["say \"hi\""]);
    }

    #[test]
    fn specs_name_their_source() {
        assert_eq!(
            parse_secret("id=a,src=/f").unwrap(),
            ("a".into(), SecretSource::File("/f".into()))
        );
        assert_eq!(
            parse_secret("type=env,id=a,src=VAR").unwrap(),
            ("a".into(), SecretSource::Env("VAR".into()))
        );
        for (spec, msg) in [
            ("src=x", "missing id"),
            ("id=a,src=x,env=Y", "exclusive"),
            ("id=a,type=ssh", "unsupported secret type"),
            ("id=a,what=1", "unexpected key"),
            ("id", "key=value"),
            ("id=a,", "key=value"),
        ] {
            let err = parse_secret(spec).unwrap_err();
            assert!(err.contains(msg), "{spec}: {err}");
        }
    }

    #[test]
    fn files_are_checked_early_and_read_late() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s");
        std::fs::write(&file, "one").unwrap();
        let src = SecretSource::File(file.clone());
        src.check().unwrap();
        std::fs::write(&file, "two").unwrap();
        assert_eq!(src.read().unwrap(), b"two");
        std::fs::write(&file, vec![b'x'; MAX_SECRET_SIZE + 1]).unwrap();
        assert!(src.check().unwrap_err().contains("too big"));
        assert!(src.read().unwrap_err().contains("too big"));
    }
}
