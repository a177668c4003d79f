//! Where a Dockerfile build's context comes from: a directory (uploaded as the
//! "context" local, the Dockerfile's directory as "dockerfile"), a git or
//! http(s) URL (sent for the daemon to fetch, as buildx sends one), or standard
//! input (a tar archive or a Dockerfile, unpacked here and uploaded).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

#[derive(Debug, Default)]
pub(super) struct Context {
    pub locals: BTreeMap<String, PathBuf>,
    /// The Dockerfile's name in the "dockerfile" local, or its path in `url`.
    pub dockerfile_name: String,
    pub url: Option<String>,
    /// Holds what standard input held while the build reads it.
    _stdin: Option<tempfile::TempDir>,
}

impl Context {
    /// The locals of an `--llb` build, as given.
    pub(super) fn locals(locals: BTreeMap<String, PathBuf>) -> Self {
        Self {
            locals,
            ..Self::default()
        }
    }

    pub(super) fn of(arg: &Path, file: Option<&Path>) -> anyhow::Result<Self> {
        let text = arg.to_string_lossy();
        if text == "-" {
            return Self::stdin(file);
        }
        if !arg.exists() && (text.contains("://") || text.starts_with("git@")) {
            let name = match file {
                Some(f) => f
                    .to_str()
                    .context("the Dockerfile's path is not valid UTF-8")?
                    .to_owned(),
                None => "Dockerfile".to_owned(),
            };
            return Ok(Self {
                dockerfile_name: name,
                url: Some(text.into_owned()),
                ..Self::default()
            });
        }
        let (locals, dockerfile_name) = dockerfile_locals(arg, file)?;
        Ok(Self {
            locals,
            dockerfile_name,
            ..Self::default()
        })
    }

    fn stdin(file: Option<&Path>) -> anyhow::Result<Self> {
        let tmp = tempfile::Builder::new()
            .prefix("bctl-stdin-")
            .tempdir()
            .context("making a directory for the context on standard input")?;
        let dirs =
            buildd_fsutil::stdin_context::read_into(std::io::stdin().lock(), tmp.path(), file)?;
        let (locals, dockerfile_name) =
            dockerfile_locals(&dirs.context, dirs.dockerfile.as_deref())?;
        Ok(Self {
            locals,
            dockerfile_name,
            url: None,
            _stdin: Some(tmp),
        })
    }
}

/// The locals of a Dockerfile build, "context" and "dockerfile", and the
/// Dockerfile's name in the latter.
fn dockerfile_locals(
    context_arg: &Path,
    file: Option<&Path>,
) -> anyhow::Result<(BTreeMap<String, PathBuf>, String)> {
    let context = context_arg
        .canonicalize()
        .with_context(|| format!("context {}", context_arg.display()))?;
    if !context.is_dir() {
        bail!("context {} is not a directory", context_arg.display());
    }
    // As docker build: -f is relative to the working directory.
    let file = file.map_or_else(|| context.join("Dockerfile"), Path::to_owned);
    let file = file
        .canonicalize()
        .with_context(|| format!("cannot find Dockerfile {}", file.display()))?;
    if !file.is_file() {
        bail!("Dockerfile {} is not a file", file.display());
    }
    let dockerfile_dir = file.parent().expect("a file has a parent").to_owned();
    let dockerfile_name = file
        .file_name()
        .and_then(|n| n.to_str())
        .context("the Dockerfile's name is not valid UTF-8")?
        .to_owned();
    let locals = BTreeMap::from([
        ("context".to_owned(), context),
        ("dockerfile".to_owned(), dockerfile_dir),
    ]);
    Ok((locals, dockerfile_name))
}
