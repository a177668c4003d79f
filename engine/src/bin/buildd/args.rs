//! Argument conventions shared by subcommands.

use std::collections::BTreeMap;

/// `--build-arg KEY=VALUE`; a bare `KEY` takes the value from the environment and
/// is skipped when unset, as `docker build` does.
pub fn build_args(raw: &[String]) -> BTreeMap<String, String> {
    raw.iter()
        .filter_map(|a| match a.split_once('=') {
            Some((k, v)) => Some((k.to_owned(), v.to_owned())),
            None => std::env::var(a).ok().map(|v| (a.clone(), v)),
        })
        .collect()
}
