//! What a git source op asks for, read from its identifier and attributes.

use std::io;
use std::path::{Component, Path, PathBuf};

use buildd_proto::llb::SourceOp;

use crate::solver::OpError;

#[derive(Debug, Clone)]
pub(crate) struct Spec {
    /// What git fetches: `git.fullurl`, else `https://HOST/PATH` as BuildKit.
    pub url: String,
    /// The ref (branch, tag, full ref or commit); `None`: the remote's HEAD.
    pub reference: Option<String>,
    /// Only this directory of the work tree, relative, never with `..`.
    pub subdir: Option<String>,
    pub keep_git_dir: bool,
    /// `ADD --checksum`: a prefix of the commit the ref must resolve to.
    pub checksum: Option<String>,
    /// The build's SSH agent to use for `ssh` URLs (`git.mountsshsock`).
    pub ssh_id: Option<String>,
}

impl Spec {
    pub(crate) fn parse(src: &SourceOp) -> Result<Self, OpError> {
        let id = &src.identifier;
        let body = id
            .strip_prefix("git://")
            .ok_or_else(|| OpError::new(format!("{id}: not a git source")))?;
        let (path, fragment) = body.split_once('#').unwrap_or((body, ""));
        let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
        let url = src
            .attrs
            .get("git.fullurl")
            .cloned()
            .unwrap_or_else(|| format!("https://{path}"));
        let spec = Spec {
            url,
            reference: Some(reference.to_owned()).filter(|r| !r.is_empty()),
            subdir: clean_subdir(subdir)
                .map_err(|m| OpError::new(format!("{id}: subdirectory {subdir:?} {m}")))?,
            keep_git_dir: src.attrs.get("git.keepgitdir").is_some_and(|v| v == "true"),
            checksum: src.attrs.get("git.checksum").cloned(),
            ssh_id: src.attrs.get("git.mountsshsock").cloned(),
        };
        if !spec.url_allowed() {
            return Err(
                spec.error("only git://, http(s)://, ssh:// and user@host:path URLs are fetched")
            );
        }
        if let Some(r) = &spec.reference
            && (r.starts_with('-') || r.contains(['\0', '\n', ' ']))
        {
            return Err(spec.error(&format!("{r:?} is not a valid ref")));
        }
        Ok(spec)
    }

    fn url_allowed(&self) -> bool {
        let u = self.url.as_str();
        if u.starts_with('-') || u.contains(['\0', '\n']) {
            return false;
        }
        match u.split_once("://") {
            Some((scheme, _)) => {
                matches!(
                    scheme.to_ascii_lowercase().as_str(),
                    "git" | "http" | "https" | "ssh"
                )
            }
            // scp-like `[user@]host:path`; `ext::…` and paths are not URLs to fetch.
            None => {
                !u.contains("::")
                    && u.split_once(':').is_some_and(|(host, _)| {
                        !host.is_empty() && !host.contains('/') && host != "ext"
                    })
            }
        }
    }

    /// Whether git reaches the remote over ssh.
    pub(crate) fn is_ssh(&self) -> bool {
        let u = self.url.as_str();
        u.get(..6).is_some_and(|s| s.eq_ignore_ascii_case("ssh://")) || !u.contains("://")
    }

    /// The remote's `host[:port]`, without user information.
    pub(crate) fn host_port(&self) -> Option<&str> {
        let rest = self.url.split_once("://")?.1;
        let authority = rest.split('/').next()?;
        Some(authority.rsplit_once('@').map_or(authority, |(_, h)| h))
    }

    /// The remote's host, for per-host credentials (`GIT_AUTH_TOKEN.HOST`).
    pub(crate) fn host(&self) -> Option<&str> {
        let host_port = self.host_port()?;
        Some(host_port.split(':').next().unwrap_or(host_port))
    }

    /// The URL with any password replaced, for messages and logs.
    pub(crate) fn shown_url(&self) -> String {
        redact(&self.url)
    }

    pub(crate) fn error(&self, message: &str) -> OpError {
        let mut what = self.shown_url();
        if let Some(r) = &self.reference {
            what.push('#');
            what.push_str(r);
        }
        if let Some(s) = &self.subdir {
            what.push_str(if self.reference.is_some() { ":" } else { "#:" });
            what.push_str(s);
        }
        OpError::new(format!(
            "git source {what}: {}",
            redact_all(message, &self.url)
        ))
    }
}

/// `https://user:secret@host/…` → `https://user:xxxxx@host/…`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:xxxxx@{host}{}", &rest[authority_end..])
        }
        _ => url.to_owned(),
    }
}

/// git repeats the URL in its messages; never its password.
fn redact_all(message: &str, url: &str) -> String {
    let shown = redact(url);
    if shown == url {
        message.to_owned()
    } else {
        message.replace(url, &shown)
    }
}

fn clean_subdir(subdir: &str) -> Result<Option<String>, &'static str> {
    let mut parts = Vec::new();
    for c in Path::new(subdir).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str().ok_or("is not UTF-8")?),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return Err("leaves the repository"),
        }
    }
    Ok(Some(parts.join("/")).filter(|s| !s.is_empty()))
}

/// A full commit hash (SHA-1 or SHA-256).
pub(crate) fn is_commit(r: &str) -> bool {
    (r.len() == 40 || r.len() == 64) && r.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The commit and remote ref `reference` names in `git ls-remote` output, as git
/// resolves a name: the ref itself, then tags (peeled), then branches.
pub(crate) fn pick_ref(listing: &str, reference: Option<&str>) -> Option<(String, Option<String>)> {
    let lines: Vec<(&str, &str)> = listing
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(sha, _)| is_commit(sha))
        .collect();
    let find = |name: &str| lines.iter().find(|(_, n)| *n == name).map(|(s, _)| *s);
    let Some(r) = reference else {
        return find("HEAD").map(|s| (s.to_owned(), None));
    };
    let candidates = [
        r.to_owned(),
        format!("refs/{r}"),
        format!("refs/tags/{r}"),
        format!("refs/heads/{r}"),
    ];
    candidates.iter().find_map(|name| {
        // An annotated tag lists the tag object; `NAME^{}` is its commit.
        let sha = find(&format!("{name}^{{}}")).or_else(|| find(name))?;
        Some((sha.to_owned(), Some(name.clone())))
    })
}

/// `work/subdir`, every component a real directory (a symlink in the repository
/// must not lead the snapshot out of it).
pub(crate) fn subdir_path(work: &Path, subdir: &str) -> io::Result<PathBuf> {
    let mut path = work.to_owned();
    for part in subdir.split('/') {
        path.push(part);
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("subdirectory {subdir:?}: {e}")))?;
        if !meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("subdirectory {subdir:?}: {part:?} is not a directory"),
            ));
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = "\
a32d1a9538142149086442d870db05d5c670bc95\tHEAD
a32d1a9538142149086442d870db05d5c670bc95\trefs/heads/main
1111111111111111111111111111111111111111\trefs/heads/v1
f8da3bfcc80deb3e269b452d0256a3a82514275e\trefs/tags/v1
0af27974cc5f49f6344695b6d98a4b7986c3cfa7\trefs/tags/v2
b4785957bc986dc39c629de9fac9df46972c00fc\trefs/tags/v2^{}
";

    #[test]
    fn refs_resolve_as_git_names_them() {
        let pick = |r| pick_ref(LISTING, r).map(|(s, n)| (s[..7].to_owned(), n));
        assert_eq!(pick(None), Some(("a32d1a9".into(), None)));
        assert_eq!(
            pick(Some("main")),
            Some(("a32d1a9".into(), Some("refs/heads/main".into())))
        );
        // A tag wins over a branch of the same name, and annotated tags peel.
        assert_eq!(
            pick(Some("v1")),
            Some(("f8da3bf".into(), Some("refs/tags/v1".into())))
        );
        assert_eq!(
            pick(Some("v2")),
            Some(("b478595".into(), Some("refs/tags/v2".into())))
        );
        assert_eq!(
            pick(Some("refs/heads/v1")),
            Some(("1111111".into(), Some("refs/heads/v1".into())))
        );
        assert_eq!(pick(Some("nope")), None);
    }

    fn op(id: &str, url: &str) -> SourceOp {
        SourceOp {
            identifier: id.into(),
            attrs: [("git.fullurl".to_owned(), url.to_owned())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn identifiers_give_ref_subdir_and_url() {
        let s = Spec::parse(&op("git://h/r.git#v1:/a/b/", "git://h/r.git")).unwrap();
        assert_eq!(s.reference.as_deref(), Some("v1"));
        assert_eq!(s.subdir.as_deref(), Some("a/b"));
        let s = Spec::parse(&op("git://h/r.git#:sub", "git@h:r.git")).unwrap();
        assert_eq!(
            (s.reference.as_deref(), s.subdir.as_deref()),
            (None, Some("sub"))
        );
        assert!(s.is_ssh());
        let s = Spec::parse(&SourceOp {
            identifier: "git://h/r.git".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.url, "https://h/r.git");
        assert!(!s.is_ssh());
        assert_eq!(s.host(), Some("h"));
    }

    #[test]
    fn bad_urls_refs_and_subdirs_are_refused() {
        for url in [
            "file:///etc",
            "ext::sh -c id",
            "/srv/repo",
            "-uhack",
            "fd::3",
        ] {
            let e = Spec::parse(&op("git://h/r.git", url)).unwrap_err();
            assert!(e.message.contains("only git://"), "{url}: {}", e.message);
        }
        let e = Spec::parse(&op("git://h/r.git#main:../x", "git://h/r.git")).unwrap_err();
        assert_eq!(
            e.message,
            "git://h/r.git#main:../x: subdirectory \"../x\" leaves the repository"
        );
        let e = Spec::parse(&op("git://h/r.git#--upload-pack=x", "git://h/r.git")).unwrap_err();
        assert!(e.message.contains("is not a valid ref"), "{}", e.message);
    }

    #[test]
    fn passwords_never_show() {
        let s = Spec::parse(&op("git://h/r.git#main", "https://me:hunter2@h/r.git")).unwrap();
        let e = s.error("fatal: unable to access 'https://me:hunter2@h/r.git/': refused");
        assert_eq!(
            e.message,
            "git source https://me:xxxxx@h/r.git#main: fatal: unable to access 'https://me:xxxxx@h/r.git/': refused"
        );
        assert_eq!(s.host(), Some("h"));
    }
}
