//! Image references, normalized the way Docker does (`busybox` is
//! `docker.io/library/busybox:latest`).

use std::fmt;
use std::str::FromStr;

use buildd_proto::Digest;

/// The registry that names without a registry host belong to.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that serves Docker Hub's registry API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
const DEFAULT_TAG: &str = "latest";
const NAME_MAX: usize = 255;
const TAG_MAX: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    #[error("invalid reference format: empty reference")]
    Empty,
    #[error("invalid reference format {0:?}")]
    Format(String),
    #[error(
        "invalid reference format {reference:?}: repository name {repository:?} must be lowercase"
    )]
    Uppercase {
        reference: String,
        repository: String,
    },
    #[error("invalid reference format {0:?}: name is longer than {NAME_MAX} characters")]
    NameTooLong(String),
    #[error("invalid reference format {reference:?}: bad registry host {registry:?}")]
    Registry { reference: String, registry: String },
    #[error("invalid reference format {reference:?}: bad tag {tag:?}")]
    Tag { reference: String, tag: String },
    #[error(
        "invalid reference format {reference:?}: bad digest {digest:?} (expected sha256:<64 hex digits>)"
    )]
    Digest { reference: String, digest: String },
    #[error("invalid repository name {0:?}: a 64-character hex string is an image id, not a name")]
    ImageId(String),
}

/// A parsed, normalized image reference.
///
/// At least one of `tag` and `digest` is set: parsing adds `latest` when neither is given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// The registry as users name it (`docker.io`, `localhost:5000`, `[::1]:5000`).
    pub registry: String,
    /// The repository path inside the registry (`library/busybox`).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    pub fn parse(s: &str) -> Result<Self, RefError> {
        if s.is_empty() {
            return Err(RefError::Empty);
        }
        let format = || RefError::Format(s.to_owned());
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => {
                let digest = d.parse::<Digest>().map_err(|_| RefError::Digest {
                    reference: s.to_owned(),
                    digest: d.to_owned(),
                })?;
                (rest, Some(digest))
            }
            None => (s, None),
        };
        // A ':' after the last '/' starts the tag; earlier ones belong to a port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(format());
        }
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(RefError::Tag {
                reference: s.to_owned(),
                tag: tag.to_owned(),
            });
        }
        if name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(RefError::ImageId(name.to_owned()));
        }
        if name.len() > NAME_MAX {
            return Err(RefError::NameTooLong(s.to_owned()));
        }

        let (registry, remote) = split_registry(name);
        if registry.is_empty() || !valid_registry(registry) {
            return Err(RefError::Registry {
                reference: s.to_owned(),
                registry: registry.to_owned(),
            });
        }
        if remote.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(RefError::Uppercase {
                reference: s.to_owned(),
                repository: remote.to_owned(),
            });
        }
        if !remote.split('/').all(valid_path_component) {
            return Err(format());
        }
        let registry = if registry == DOCKER_HUB_LEGACY {
            DOCKER_HUB
        } else {
            registry
        };
        let repository = if registry == DOCKER_HUB && !remote.contains('/') {
            format!("library/{remote}")
        } else {
            remote.to_owned()
        };
        let tag = match (tag, digest) {
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (t, _) => t.map(str::to_owned),
        };
        Ok(Self {
            registry: registry.to_owned(),
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The host (and port) that serves this registry's API.
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }

    /// What the manifest is fetched by: the digest when pinned, else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_owned(),
        }
    }

    /// The same image pinned to `digest` (the tag is kept for display).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// `registry/repository@digest`, without a tag: e.g. to push a manifest by
    /// digest only.
    pub fn at_digest(&self, digest: Digest) -> Self {
        Self {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }
}

/// The API host of a registry as users name it: Docker Hub's differs.
pub fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        DOCKER_HUB_API
    } else {
        registry
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = RefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Docker's rule: the first component is a registry host when it has a '.' or ':',
/// is `localhost`, or has upper-case letters (which repository names cannot).
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DOCKER_HUB, name),
    }
}

fn valid_registry(registry: &str) -> bool {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return false,
            },
        }
    } else {
        match registry.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (registry, None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    if host.is_empty() {
        return registry.starts_with('[');
    }
    host.split('.').all(|c| {
        !c.is_empty()
            && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !c.starts_with('-')
            && !c.ends_with('-')
    })
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`.
fn valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= TAG_MAX
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn normalizes_like_docker() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("user/app", "docker.io/user/app:latest"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest",
            ),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/app:v1", "localhost:5000/app:v1"),
            ("127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000/a/b/c:t"),
            ("[::1]:5000/app", "[::1]:5000/app:latest"),
            ("ghcr.io/o/r:1.0-rc.1", "ghcr.io/o/r:1.0-rc.1"),
            ("Example.com/app", "Example.com/app:latest"),
            ("a_b/c__d/e--f.g", "docker.io/a_b/c__d/e--f.g:latest"),
            (
                &format!("busybox@{D}"),
                &format!("docker.io/library/busybox@{D}"),
            ),
            (
                &format!("busybox:1.36@{D}"),
                &format!("docker.io/library/busybox:1.36@{D}"),
            ),
            (
                &format!("localhost:5000/app@{D}"),
                &format!("localhost:5000/app@{D}"),
            ),
        ];
        for (input, want) in cases {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), want, "{input}");
            assert_eq!(Reference::parse(&r.to_string()).unwrap(), r, "{input}");
        }
    }

    #[test]
    fn fields_and_hosts() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.repository, "library/busybox");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(r.digest, None);
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.manifest_ref(), "latest");
        let r = Reference::parse(&format!("localhost:5000/x:t@{D}")).unwrap();
        assert_eq!(r.api_host(), "localhost:5000");
        assert_eq!(r.manifest_ref(), D);
        assert_eq!(r.name(), "localhost:5000/x");
    }

    #[test]
    fn rejects_bad_references() {
        let cases: &[(&str, &str)] = &[
            ("", "empty reference"),
            ("Busybox", "must be lowercase"),
            ("docker.io/Library/busybox", "must be lowercase"),
            ("busybox:", "bad tag"),
            ("busybox:-x", "bad tag"),
            ("busybox:a/b", "invalid reference format"),
            ("busybox@sha256:abc", "bad digest"),
            ("busybox@md5:abcd", "bad digest"),
            ("a//b", "invalid reference format"),
            ("a/b/", "invalid reference format"),
            ("-a", "invalid reference format"),
            ("a..b", "invalid reference format"),
            ("a b", "invalid reference format"),
            ("host:port/app", "bad registry host"),
            ("-host.io/app", "bad registry host"),
            ("[::1/app", "bad registry host"),
            (":tag", "invalid reference format"),
            (
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "image id",
            ),
        ];
        for (input, want) in cases {
            let err = Reference::parse(input).expect_err(input).to_string();
            assert!(err.contains(want), "{input:?}: {err}");
        }
        let long = format!("a/{}", "b".repeat(300));
        assert!(matches!(
            Reference::parse(&long),
            Err(RefError::NameTooLong(_))
        ));
        let long_tag = format!("a:{}", "t".repeat(129));
        assert!(matches!(
            Reference::parse(&long_tag),
            Err(RefError::Tag { .. })
        ));
    }
}
