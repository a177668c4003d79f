//! ADD's remote sources: plain URLs (`https://…`) and git repositories, as
//! LLB source identifiers with their attributes.

use std::collections::BTreeMap;

/// A source ADD fetches rather than reads from a context or stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Remote {
    /// `http://` or `https://`: one file named `filename`.
    Http {
        url: String,
        filename: String,
    },
    Git(GitRef),
}

/// A git URL: `git://`, `ssh://`, `git@host:path`, or an HTTP(S) URL whose path
/// ends in `.git`; `#ref[:subdir]` selects what to check out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GitRef {
    /// The URL without its fragment, as given.
    pub remote: String,
    /// `host/path`, the identifier's body.
    pub path: String,
    pub fragment: Option<String>,
}

pub(crate) fn classify(src: &str) -> Option<Remote> {
    let (base, fragment) = match src.split_once('#') {
        Some((b, f)) => (b, Some(f.to_owned()).filter(|f| !f.is_empty())),
        None => (src, None),
    };
    let git = |path: &str| {
        Some(Remote::Git(GitRef {
            remote: base.to_owned(),
            path: path.to_owned(),
            fragment: fragment.clone(),
        }))
    };
    for scheme in ["git://", "ssh://"] {
        if let Some(rest) = base.strip_prefix(scheme) {
            // Drop any `user@`, which is not part of the repository's name.
            let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
            return git(rest);
        }
    }
    if let Some(rest) = base.strip_prefix("git@") {
        let (host, path) = rest.split_once(':')?;
        return git(&format!("{host}/{}", path.trim_start_matches('/')));
    }
    // Schemes are case-insensitive; compared in place, as most sources are
    // plain paths and a lower-cased copy of each would be wasted.
    let rest = ["https://", "http://"].iter().find_map(|s| {
        base.get(..s.len())
            .filter(|p| p.eq_ignore_ascii_case(s))
            .map(|_| &base[s.len()..])
    })?;
    let path_end = rest.find(['?']).unwrap_or(rest.len());
    if rest[..path_end].ends_with(".git") {
        return git(rest);
    }
    Some(Remote::Http {
        url: src.to_owned(),
        filename: url_filename(rest),
    })
}

/// The last path segment of `host/path?query`, or BuildKit's `__unnamed__`.
fn url_filename(rest: &str) -> String {
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let path = rest.split_once('/').map_or("", |(_, p)| p);
    path.rsplit('/')
        .find(|s| !s.is_empty() && *s != ".")
        .map_or_else(|| "__unnamed__".to_owned(), str::to_owned)
}

impl Remote {
    /// The SourceOp identifier and attributes.
    pub(crate) fn source(
        &self,
        checksum: Option<&str>,
        keep_git_dir: bool,
    ) -> (String, BTreeMap<String, String>) {
        let mut attrs = BTreeMap::new();
        match self {
            Remote::Http { url, filename } => {
                attrs.insert("http.filename".to_owned(), filename.clone());
                if let Some(c) = checksum {
                    attrs.insert("http.checksum".to_owned(), c.to_owned());
                }
                (url.clone(), attrs)
            }
            Remote::Git(g) => {
                attrs.insert("git.fullurl".to_owned(), g.remote.clone());
                if keep_git_dir {
                    attrs.insert("git.keepgitdir".to_owned(), "true".to_owned());
                }
                if let Some(c) = checksum {
                    attrs.insert("git.checksum".to_owned(), c.to_owned());
                }
                let id = match &g.fragment {
                    Some(f) => format!("git://{}#{f}", g.path),
                    None => format!("git://{}", g.path),
                };
                (id, attrs)
            }
        }
    }

    /// Checks a `--checksum` value: a digest for URLs, a commit hash for git.
    pub(crate) fn check_checksum(&self, v: &str) -> Result<(), String> {
        let hex = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        };
        let ok = match self {
            Remote::Http { .. } => v.split_once(':').is_some_and(|(algo, h)| {
                let len = match algo {
                    "sha256" => 64,
                    "sha384" => 96,
                    "sha512" => 128,
                    _ => return false,
                };
                h.len() == len && hex(h)
            }),
            Remote::Git(_) => (7..=64).contains(&v.len()) && hex(v),
        };
        if ok {
            return Ok(());
        }
        Err(match self {
            Remote::Http { .. } => {
                format!(
                    "invalid --checksum value {v:?}, expected a digest such as sha256:<64 hex digits>"
                )
            }
            Remote::Git(_) => {
                format!("invalid --checksum value {v:?}, expected a git commit hash")
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_sources() {
        assert_eq!(classify("src/app"), None);
        assert_eq!(
            classify("https://example.com/dl/tool.tar.gz?x=1"),
            Some(Remote::Http {
                url: "https://example.com/dl/tool.tar.gz?x=1".into(),
                filename: "tool.tar.gz".into()
            })
        );
        let Some(Remote::Http { filename, .. }) = classify("https://example.com") else {
            panic!()
        };
        assert_eq!(filename, "__unnamed__");
        let Some(Remote::Git(g)) = classify("https://github.com/moby/buildkit.git#v0.13:docs")
        else {
            panic!()
        };
        assert_eq!(g.path, "github.com/moby/buildkit.git");
        assert_eq!(g.fragment.as_deref(), Some("v0.13:docs"));
        let (id, attrs) = Remote::Git(g).source(None, true);
        assert_eq!(id, "git://github.com/moby/buildkit.git#v0.13:docs");
        assert_eq!(attrs["git.fullurl"], "https://github.com/moby/buildkit.git");
        assert_eq!(attrs["git.keepgitdir"], "true");
        let Some(Remote::Git(g)) = classify("git@github.com:moby/buildkit.git") else {
            panic!()
        };
        assert_eq!(g.path, "github.com/moby/buildkit.git");
        let Some(Remote::Git(g)) = classify("ssh://git@host/r.git") else {
            panic!()
        };
        assert_eq!(g.path, "host/r.git");
    }

    #[test]
    fn checksums() {
        let http = classify("https://x/y").unwrap();
        assert!(
            http.check_checksum(&format!("sha256:{}", "a".repeat(64)))
                .is_ok()
        );
        assert!(http.check_checksum("sha256:abc").is_err());
        assert!(http.check_checksum("md5:abc").is_err());
        let git = classify("git://h/r").unwrap();
        assert!(git.check_checksum("0123abc").is_ok());
        assert!(git.check_checksum("xyz").is_err());
    }
}
