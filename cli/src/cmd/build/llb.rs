//! `bctl build --llb`: a serialized LLB definition instead of a Dockerfile, and
//! the directories its `local://` sources name.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use buildd_proto::llb::Definition;
use prost::Message as _;

/// Definitions larger than this are refused before connecting (the daemon
/// refuses larger requests anyway).
const MAX_DEFINITION: u64 = 32 << 20;

/// Reads the definition at `path` (`-`: stdin) and checks that it decodes, so a
/// wrong file fails here, not as a protocol error.
pub(super) fn read_definition(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let what = if path == Path::new("-") {
        std::io::stdin()
            .lock()
            .take(MAX_DEFINITION + 1)
            .read_to_end(&mut bytes)
            .context("reading the LLB definition from stdin")?;
        "stdin".to_owned()
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_DEFINITION + 1).read_to_end(&mut bytes))
            .with_context(|| format!("reading the LLB definition {}", path.display()))?;
        path.display().to_string()
    };
    if bytes.len() as u64 > MAX_DEFINITION {
        bail!("LLB definition {what} is larger than {MAX_DEFINITION} bytes");
    }
    let def = Definition::decode(bytes.as_slice())
        .with_context(|| format!("LLB definition {what} is not a serialized Definition"))?;
    if def.def.is_empty() {
        bail!("LLB definition {what} has no ops");
    }
    Ok(bytes)
}

/// The local sources: CONTEXT as "context", then each `--local NAME=DIR`.
pub(super) fn locals(
    context: Option<&Path>,
    specs: &[String],
) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut named: Vec<(&str, &Path)> = context.map(|dir| ("context", dir)).into_iter().collect();
    for spec in specs {
        let (name, dir) = spec
            .split_once('=')
            .filter(|(n, d)| !n.is_empty() && !d.is_empty())
            .with_context(|| format!("--local {spec:?}: expected NAME=DIR"))?;
        named.push((name, Path::new(dir)));
    }
    let mut locals = BTreeMap::new();
    for (name, dir) in named {
        let real = dir
            .canonicalize()
            .with_context(|| format!("local {name:?}: {}", dir.display()))?;
        if !real.is_dir() {
            bail!("local {name:?}: {} is not a directory", dir.display());
        }
        if locals.insert(name.to_owned(), real).is_some() {
            bail!("local {name:?} is given twice");
        }
    }
    Ok(locals)
}
