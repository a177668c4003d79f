//! Parsing `-o type=…,key=value,…` the way `docker buildx build -o` and `buildctl
//! --output` take it.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use buildd_oci::Compression;

/// How an image archive is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArchiveFormat {
    /// An OCI image layout (`type=oci`).
    #[default]
    Oci,
    /// An OCI image layout plus the `manifest.json` that `docker load` reads
    /// (`type=docker`), as BuildKit writes it: OCI media types, which docker
    /// since 24 and skopeo load.
    Docker,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSpec {
    Oci {
        dest: PathBuf,
        tar: bool,
        name: Option<String>,
        compression: Compression,
        format: ArchiveFormat,
    },
    Local {
        dest: PathBuf,
    },
    /// An OCI layout tar written to `sink` as it is produced (a daemon streams it to
    /// its client), never staged in a file.
    OciStream {
        sink: StreamSink,
        name: Option<String>,
        compression: Compression,
        format: ArchiveFormat,
    },
    /// `type=tar,dest=F`: the result's filesystem as one tar archive.
    Tar {
        dest: PathBuf,
    },
    /// The filesystem's tar written to `sink` as it is produced.
    TarStream {
        sink: StreamSink,
    },
    /// `type=image,name=N[,push=true]`: stored in the local image store under `name`,
    /// and pushed to its registry when `push` is set.
    Image {
        name: String,
        push: bool,
        compression: Compression,
    },
}

/// The writer a streamed output goes to. The export takes it, writes the whole
/// archive and drops it; a sink is used once.
#[derive(Clone)]
pub struct StreamSink(Arc<Mutex<Option<Box<dyn Write + Send>>>>);

impl StreamSink {
    pub fn new(w: impl Write + Send + 'static) -> Self {
        Self(Arc::new(Mutex::new(Some(Box::new(w)))))
    }

    /// The writer, the first time.
    pub fn take(&self) -> Option<Box<dyn Write + Send>> {
        self.0.lock().unwrap().take()
    }
}

impl fmt::Debug for StreamSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StreamSink")
    }
}

/// Sinks are equal when they are the same one.
impl PartialEq for StreamSink {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for StreamSink {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputSpecError {
    #[error("output {spec:?}: {message}")]
    Invalid { spec: String, message: String },
}

impl std::str::FromStr for OutputSpec {
    type Err = OutputSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let invalid = |message: String| OutputSpecError::Invalid {
            spec: spec.to_owned(),
            message,
        };
        let mut fields = BTreeMap::new();
        for part in spec.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| invalid(format!("{part:?} is not key=value")))?;
            if fields
                .insert(k.trim().to_owned(), v.trim().to_owned())
                .is_some()
            {
                return Err(invalid(format!("{k} given twice")));
            }
        }
        let kind = fields.remove("type").ok_or_else(|| {
            invalid("missing type= (oci, docker, tar, local or image)".to_owned())
        })?;
        let mut dest = || {
            fields
                .remove("dest")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .ok_or_else(|| invalid("missing dest=".to_owned()))
        };
        let out = match kind.as_str() {
            "oci" | "docker" => {
                let dest = dest()?;
                let format = if kind == "docker" {
                    ArchiveFormat::Docker
                } else {
                    ArchiveFormat::Oci
                };
                let tar = flag(&mut fields, "tar", true).map_err(invalid)?;
                if !tar && format == ArchiveFormat::Docker {
                    return Err(invalid("type=docker is always a tar archive".to_owned()));
                }
                OutputSpec::Oci {
                    dest,
                    tar,
                    name: fields.remove("name").filter(|n| !n.is_empty()),
                    compression: compression(&mut fields).map_err(invalid)?,
                    format,
                }
            }
            "local" => OutputSpec::Local { dest: dest()? },
            "tar" => OutputSpec::Tar { dest: dest()? },
            "image" => OutputSpec::Image {
                name: fields
                    .remove("name")
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| invalid("missing name=".to_owned()))?,
                push: flag(&mut fields, "push", false).map_err(invalid)?,
                compression: compression(&mut fields).map_err(invalid)?,
            },
            other => {
                return Err(invalid(format!(
                    "unknown type {other:?}; supported: oci, docker, tar, local, image"
                )));
            }
        };
        if let Some(k) = fields.keys().next() {
            return Err(invalid(format!("unknown key {k:?} for type={kind}")));
        }
        Ok(out)
    }
}

fn flag(fields: &mut BTreeMap<String, String>, key: &str, default: bool) -> Result<bool, String> {
    match fields.remove(key).as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(format!("{key}={other}: want true or false")),
    }
}

fn compression(fields: &mut BTreeMap<String, String>) -> Result<Compression, String> {
    match fields.remove("compression") {
        None => Ok(Compression::Gzip),
        Some(c) => c.parse().map_err(|e| format!("{e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildkit_style_specs() {
        assert_eq!(
            "type=oci,dest=out.tar".parse::<OutputSpec>().unwrap(),
            OutputSpec::Oci {
                dest: "out.tar".into(),
                tar: true,
                name: None,
                compression: Compression::Gzip,
                format: ArchiveFormat::Oci,
            }
        );
        assert_eq!(
            "type=docker,dest=d.tar,name=app:1"
                .parse::<OutputSpec>()
                .unwrap(),
            OutputSpec::Oci {
                dest: "d.tar".into(),
                tar: true,
                name: Some("app:1".into()),
                compression: Compression::Gzip,
                format: ArchiveFormat::Docker,
            }
        );
        assert_eq!(
            "type=tar,dest=fs.tar".parse::<OutputSpec>().unwrap(),
            OutputSpec::Tar {
                dest: "fs.tar".into()
            }
        );
        assert_eq!(
            "type=oci,dest=d,tar=false,name=app:1,compression=zstd"
                .parse::<OutputSpec>()
                .unwrap(),
            OutputSpec::Oci {
                dest: "d".into(),
                tar: false,
                name: Some("app:1".into()),
                compression: Compression::Zstd,
                format: ArchiveFormat::Oci,
            }
        );
        assert_eq!(
            "type=local,dest=out".parse::<OutputSpec>().unwrap(),
            OutputSpec::Local { dest: "out".into() }
        );
        assert_eq!(
            "type=image,name=localhost:5000/app:1,push=true"
                .parse::<OutputSpec>()
                .unwrap(),
            OutputSpec::Image {
                name: "localhost:5000/app:1".into(),
                push: true,
                compression: Compression::Gzip
            }
        );
    }

    #[test]
    fn rejects_what_it_does_not_understand() {
        for (spec, msg) in [
            ("dest=x", "missing type="),
            ("type=oci", "missing dest="),
            ("type=registry,dest=x", "unknown type \"registry\""),
            ("type=docker,dest=x,tar=false", "always a tar"),
            ("type=tar", "missing dest="),
            ("type=local,dest=x,foo=1", "unknown key \"foo\""),
            ("type=oci,dest=x,tar=maybe", "tar=maybe"),
            ("type=oci,dest=x,compression=lz4", "lz4"),
            ("type=image", "missing name="),
            ("type=image,name=a,push=yes", "push=yes"),
        ] {
            let err = spec.parse::<OutputSpec>().unwrap_err().to_string();
            assert!(err.contains(msg), "{spec}: {err}");
        }
    }
}
