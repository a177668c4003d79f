//! `--cache-from` and `--cache-to`, as buildx takes them: `type=registry,ref=R`,
//! `type=local,src=DIR` / `dest=DIR`, with `mode=min|max` and `compression=…` on
//! export.

use std::collections::BTreeMap;
use std::path::PathBuf;

use buildd_oci::Compression;

/// Where a cache lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLocation {
    /// A tag in a registry: `type=registry,ref=R`.
    Registry(String),
    /// An OCI image layout directory: `type=local,src=DIR` (import) or `dest=DIR`.
    Local(PathBuf),
    /// `type=inline` (export only): the records go into the built image's config,
    /// its layers are the blobs; import with `type=registry,ref=IMAGE`.
    Inline,
}

/// Which steps an export records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// The steps whose results are the final image's layers.
    #[default]
    Min,
    /// Every step of every stage.
    Max,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheImport {
    pub location: CacheLocation,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheExport {
    pub location: CacheLocation,
    pub mode: CacheMode,
    pub compression: Compression,
    /// `ignore-error=true`: a failed export is a warning, not a failed build.
    pub ignore_error: bool,
    /// `cache-mounts=true`: the build's `RUN --mount=type=cache` contents too.
    pub cache_mounts: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cache option {spec:?}: {message}")]
pub struct CacheSpecError {
    pub spec: String,
    pub message: String,
}

/// `key=value,…` into a map (the form `bctl` sends to the daemon).
pub fn parse_attrs(spec: &str) -> Result<(String, BTreeMap<String, String>), CacheSpecError> {
    let invalid = |message: String| CacheSpecError {
        spec: spec.to_owned(),
        message,
    };
    let mut attrs = BTreeMap::new();
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| invalid(format!("{part:?} is not key=value")))?;
        if attrs
            .insert(k.trim().to_owned(), v.trim().to_owned())
            .is_some()
        {
            return Err(invalid(format!("{k} given twice")));
        }
    }
    let kind = attrs
        .remove("type")
        .ok_or_else(|| invalid("missing type= (registry or local)".to_owned()))?;
    Ok((kind, attrs))
}

fn describe(kind: &str, attrs: &BTreeMap<String, String>) -> String {
    let mut s = format!("type={kind}");
    for (k, v) in attrs {
        s.push_str(&format!(",{k}={v}"));
    }
    s
}

impl CacheImport {
    pub fn parse(spec: &str) -> Result<Self, CacheSpecError> {
        let (kind, attrs) = parse_attrs(spec)?;
        Self::from_attrs(&kind, attrs)
    }

    pub fn from_attrs(
        kind: &str,
        mut attrs: BTreeMap<String, String>,
    ) -> Result<Self, CacheSpecError> {
        let spec = describe(kind, &attrs);
        if kind == "inline" {
            return Err(CacheSpecError {
                spec,
                message: "an inline cache is read from its image: type=registry,ref=IMAGE"
                    .to_owned(),
            });
        }
        let location = location(kind, &mut attrs, "src", &spec)?;
        no_more(attrs, &spec)?;
        Ok(Self { location })
    }
}

impl CacheExport {
    pub fn parse(spec: &str) -> Result<Self, CacheSpecError> {
        let (kind, attrs) = parse_attrs(spec)?;
        Self::from_attrs(&kind, attrs)
    }

    pub fn from_attrs(
        kind: &str,
        mut attrs: BTreeMap<String, String>,
    ) -> Result<Self, CacheSpecError> {
        let spec = describe(kind, &attrs);
        let invalid = |message: String| CacheSpecError {
            spec: spec.clone(),
            message,
        };
        let location = location(kind, &mut attrs, "dest", &spec)?;
        let mode = match attrs.remove("mode").as_deref() {
            None | Some("min") => CacheMode::Min,
            Some("max") => CacheMode::Max,
            Some(m) => return Err(invalid(format!("mode={m}: expected min or max"))),
        };
        let compression = match attrs.remove("compression") {
            None => Compression::Gzip,
            Some(c) => c.parse().map_err(|e| invalid(format!("{e}")))?,
        };
        let ignore_error = match attrs.remove("ignore-error").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(v) => return Err(invalid(format!("ignore-error={v}: expected true or false"))),
        };
        let cache_mounts = match attrs.remove("cache-mounts").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(v) => return Err(invalid(format!("cache-mounts={v}: expected true or false"))),
        };
        // Accepted for buildx compatibility; buildd's format has one form.
        attrs.remove("oci-mediatypes");
        attrs.remove("image-manifest");
        no_more(attrs, &spec)?;
        if location == CacheLocation::Inline && mode == CacheMode::Max {
            // The image holds only its own layers: intermediate steps have none there.
            return Err(invalid(
                "mode=max is not possible inline (the image holds only its own layers); use type=registry"
                    .to_owned(),
            ));
        }
        if location == CacheLocation::Inline && cache_mounts {
            return Err(invalid(
                "cache-mounts=true is not possible inline; use type=registry".to_owned(),
            ));
        }
        Ok(Self {
            location,
            mode,
            compression,
            ignore_error,
            cache_mounts,
        })
    }
}

fn location(
    kind: &str,
    attrs: &mut BTreeMap<String, String>,
    dir_key: &str,
    spec: &str,
) -> Result<CacheLocation, CacheSpecError> {
    let invalid = |message: String| CacheSpecError {
        spec: spec.to_owned(),
        message,
    };
    match kind {
        "registry" => attrs
            .remove("ref")
            .filter(|r| !r.is_empty())
            .map(CacheLocation::Registry)
            .ok_or_else(|| invalid("missing ref=".to_owned())),
        "local" => attrs
            .remove(dir_key)
            .filter(|d| !d.is_empty())
            .map(|d| CacheLocation::Local(PathBuf::from(d)))
            .ok_or_else(|| invalid(format!("missing {dir_key}="))),
        "inline" => Ok(CacheLocation::Inline),
        other => Err(invalid(format!(
            "type={other} is not supported (registry, local or inline)"
        ))),
    }
}

fn no_more(attrs: BTreeMap<String, String>, spec: &str) -> Result<(), CacheSpecError> {
    match attrs.keys().next() {
        Some(k) => Err(CacheSpecError {
            spec: spec.to_owned(),
            message: format!("unknown option {k}"),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildx_forms() {
        assert_eq!(
            CacheImport::parse("type=registry,ref=127.0.0.1:5000/c:1").unwrap(),
            CacheImport {
                location: CacheLocation::Registry("127.0.0.1:5000/c:1".into())
            }
        );
        let e = CacheExport::parse("type=local,dest=/tmp/c,mode=max,compression=zstd").unwrap();
        assert_eq!(e.location, CacheLocation::Local("/tmp/c".into()));
        assert_eq!(e.mode, CacheMode::Max);
        assert_eq!(e.compression, Compression::Zstd);
        assert!(!e.cache_mounts);
        assert!(
            CacheExport::parse("type=registry,ref=r,cache-mounts=true")
                .unwrap()
                .cache_mounts
        );
        assert_eq!(
            CacheExport::parse("type=registry,ref=r").unwrap().mode,
            CacheMode::Min
        );
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let msg = |s: &str| CacheExport::parse(s).unwrap_err().to_string();
        assert_eq!(
            msg("type=registry"),
            "cache option \"type=registry\": missing ref="
        );
        assert_eq!(
            msg("type=registry,ref=r,mode=all"),
            "cache option \"type=registry,mode=all,ref=r\": mode=all: expected min or max"
        );
        assert_eq!(
            msg("type=gha"),
            "cache option \"type=gha\": type=gha is not supported (registry, local or inline)"
        );
        assert_eq!(
            CacheImport::parse("type=local,dest=x")
                .unwrap_err()
                .to_string(),
            "cache option \"type=local,dest=x\": missing src="
        );
        assert_eq!(
            msg("type=inline,mode=max"),
            "cache option \"type=inline,mode=max\": mode=max is not possible inline (the image holds only its own layers); use type=registry"
        );
        assert_eq!(
            CacheImport::parse("type=inline").unwrap_err().to_string(),
            "cache option \"type=inline\": an inline cache is read from its image: type=registry,ref=IMAGE"
        );
        assert_eq!(
            CacheExport::parse("type=inline").unwrap().location,
            CacheLocation::Inline
        );
    }
}
