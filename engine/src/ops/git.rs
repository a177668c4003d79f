//! git sources (`ADD git://…`, `ADD https://…/repo.git`, git build contexts), as
//! BuildKit's: `git://HOST/PATH#REF:SUBDIR` with the URL to fetch in the
//! `git.fullurl` attribute. The checkout becomes a snapshot of the work tree
//! (of SUBDIR when given), without `.git` unless `git.keepgitdir`.
//!
//! The cache key is the commit the ref resolves to (`git ls-remote`), so a moved
//! branch fetches again and an unchanged one does not. Only the commit is
//! fetched, shallow. The git CLI runs with no user or system configuration,
//! only the git, http(s) and ssh protocols (never `file://` or `ext::`), no
//! prompts, and credentials from the build's secrets in its environment only.

mod command;
mod spec;

use std::path::Path;
use std::sync::Arc;

use buildd_proto::Digest;
use buildd_proto::llb::SourceOp;
use buildd_snapshot::Snapshot;

pub(crate) use self::command::Git;
use self::spec::Spec;
use super::worker::{Ref, blocking_op};
use crate::root::Root;
use crate::solver::{BuildCtx, LogSink, OpError};

pub(crate) fn is_git(src: &SourceOp) -> bool {
    src.identifier.starts_with("git://")
}

/// What a ref resolved to.
pub struct Resolved {
    commit: String,
    /// The remote ref it came from (`refs/heads/main`), when one was named.
    remote_ref: Option<String>,
    /// The git set up to ask the remote (its home, credentials and agent),
    /// reused by the fetch rather than set up again.
    git: Option<Git>,
}

impl std::fmt::Debug for Resolved {
    // Not the git: its configuration may hold a token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("commit", &self.commit)
            .field("remote_ref", &self.remote_ref)
            .finish_non_exhaustive()
    }
}

impl Resolved {
    /// The content key: the commit says what the checkout holds; the op's own
    /// encoding (URL, subdir, keep-git-dir) is in the cache key already.
    pub(crate) fn key(&self) -> Digest {
        Digest::of(format!("git commit {}", self.commit).as_bytes())
    }
}

/// Resolves the op's ref to a commit, asking the remote unless it names one.
pub(crate) async fn resolve(
    root: &Root,
    src: &SourceOp,
    ctx: &BuildCtx,
) -> Result<Resolved, OpError> {
    let spec = Spec::parse(src)?;
    let resolved = match spec.reference.as_deref() {
        Some(r) if spec::is_commit(r) => Resolved {
            commit: r.to_ascii_lowercase(),
            remote_ref: None,
            git: None,
        },
        reference => {
            let git = Git::new(root, &spec, ctx).await?;
            let listing = git
                .run(None, &["ls-remote", "--", &spec.url])
                .await
                .map_err(|e| spec.error(&e))?;
            let (commit, remote_ref) = spec::pick_ref(&listing, reference).ok_or_else(|| {
                spec.error(&match reference {
                    Some(r) => format!("no branch, tag or ref {r:?}"),
                    None => "the remote has no HEAD".to_owned(),
                })
            })?;
            Resolved {
                commit,
                remote_ref,
                git: Some(git),
            }
        }
    };
    if let Some(want) = &spec.checksum
        && !resolved.commit.starts_with(&want.to_ascii_lowercase())
    {
        return Err(spec.error(&format!(
            "checksum mismatch: --checksum={want}, the ref is at commit {}",
            resolved.commit
        )));
    }
    Ok(resolved)
}

/// Fetches the resolved commit and makes its work tree a snapshot.
pub(crate) async fn checkout(
    root: Arc<Root>,
    src: &SourceOp,
    mut resolved: Resolved,
    ctx: &BuildCtx,
    log: &LogSink,
) -> Result<Ref, OpError> {
    let spec = Spec::parse(src)?;
    let fail = |e: &dyn std::fmt::Display| spec.error(&e.to_string());
    let pending = root.layers.begin().map_err(|e| fail(&e))?;
    // The work tree is the layer itself, unless only a subdirectory is wanted.
    let scratch = match &spec.subdir {
        Some(_) => {
            let tmp = root.path.join("tmp");
            std::fs::create_dir_all(&tmp).map_err(|e| fail(&e))?;
            Some(
                tempfile::Builder::new()
                    .prefix("solve-git-")
                    .tempdir_in(&tmp)
                    .map_err(|e| fail(&e))?,
            )
        }
        None => None,
    };
    let work = match &scratch {
        Some(s) => s.path().to_owned(),
        None => pending.path().to_owned(),
    };
    let git = match resolved.git.take() {
        Some(git) => git,
        None => Git::new(&root, &spec, ctx).await?,
    };
    log.write(
        1,
        format!("fetching {} at {}\n", spec.shown_url(), resolved.commit).as_bytes(),
    );
    fetch(&git, &work, &spec, &resolved, log)
        .await
        .map_err(|e| fail(&e))?;

    let commit = resolved.commit.clone();
    let layer = blocking_op(move || {
        let fail = |e: &dyn std::fmt::Display| spec.error(&e.to_string());
        if !spec.keep_git_dir {
            remove_git_dirs(&work).map_err(|e| fail(&e))?;
        }
        if let Some(subdir) = &spec.subdir {
            let from = spec::subdir_path(&work, subdir).map_err(|e| fail(&e))?;
            move_entries(&from, pending.path()).map_err(|e| fail(&e))?;
        }
        drop(scratch);
        let id = super::fresh_layer_id(Digest::of(
            format!("git {commit} {:?} {}", spec.subdir, spec.keep_git_dir).as_bytes(),
        ));
        pending.commit(&id).map_err(|e| fail(&e))?;
        Ok(id)
    })
    .await?;
    Ok(Ref::Snapshot(Snapshot::new([layer])))
}

async fn fetch(
    git: &Git,
    work: &Path,
    spec: &Spec,
    resolved: &Resolved,
    log: &LogSink,
) -> Result<(), String> {
    let commit = resolved.commit.as_str();
    git.run(None, &["init", "-q", &work.to_string_lossy()])
        .await?;
    git.run(Some(work), &["remote", "add", "origin", &spec.url])
        .await?;
    // By commit: exactly what the key names, whatever the ref does meanwhile.
    // Servers that refuse unadvertised objects get the ref, checked against it.
    let by_commit = git
        .run(
            Some(work),
            &["fetch", "--depth=1", "--no-tags", "origin", commit],
        )
        .await;
    if let Err(e) = by_commit {
        let Some(remote_ref) = &resolved.remote_ref else {
            return Err(e);
        };
        git.run(
            Some(work),
            &["fetch", "--depth=1", "--no-tags", "origin", remote_ref],
        )
        .await?;
        let got = git
            .run(Some(work), &["rev-parse", "FETCH_HEAD^{commit}"])
            .await?;
        let got = got.trim();
        if got != commit {
            return Err(format!(
                "{remote_ref} moved from {commit} to {got} during the build; build again"
            ));
        }
    }
    git.run(
        Some(work),
        &["-c", "advice.detachedHead=false", "checkout", "-q", commit],
    )
    .await?;
    if let (Some(name), true) = (&spec.reference, spec.keep_git_dir)
        && !spec::is_commit(name)
    {
        let short = name.rsplit('/').next().unwrap_or(name);
        git.run(
            Some(work),
            &["update-ref", &format!("refs/tags/{short}"), commit],
        )
        .await?;
    }
    if work.join(".gitmodules").exists() {
        let out = git
            .run(
                Some(work),
                &["submodule", "update", "--init", "--recursive", "--depth=1"],
            )
            .await?;
        log.write(1, out.as_bytes());
    }
    Ok(())
}

/// Removes the repository's `.git`, and its submodules' when it has some.
fn remove_git_dirs(work: &Path) -> std::io::Result<()> {
    let submodules = work.join(".gitmodules").exists();
    std::fs::remove_dir_all(work.join(".git"))?;
    if submodules {
        remove_nested_git(work)?;
    }
    Ok(())
}

/// Removes `.git` entries (a submodule's is a file) anywhere under `dir`.
fn remove_nested_git(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if entry.file_name() == ".git" {
            if kind.is_dir() {
                std::fs::remove_dir_all(entry.path())?;
            } else {
                std::fs::remove_file(entry.path())?;
            }
        } else if kind.is_dir() {
            remove_nested_git(&entry.path())?;
        }
    }
    Ok(())
}

/// Moves every entry of `from` into the empty directory `to` (one filesystem).
fn move_entries(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        std::fs::rename(entry.path(), to.join(entry.file_name()))?;
    }
    Ok(())
}
