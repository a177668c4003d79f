//! How buildd's tests skip, in one place.
//!
//! A test that needs something the machine may lack (a tool such as runc or skopeo,
//! root, a file such as `/bin/busybox`, the conformance data) asks for it here and
//! returns early when the answer is `false`:
//!
//! ```no_run
//! if !buildd_testkit::require_tool("skopeo") {
//!     return;
//! }
//! ```
//!
//! When the requirement is missing, the helper writes
//! `skipped: <test>: <why>` to stderr and returns `false`. Under CI (`CI` set and
//! not empty) a missing requirement is a failure instead: CI must provide what the
//! tests need (`.ci/run` installs it), so a test never passes there by not running.
//! The only exception is a skip whose tag is listed in `BUILDD_TEST_ALLOW_SKIP`
//! (comma-separated), which `.ci/run` sets only for the skips it reports itself
//! (`ci: skipped: ...`), such as the conformance data a clone may lack.
//!
//! [`process`] holds what tests need of the processes they start.

pub mod process;

use std::fmt::Display;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The environment variable naming the tags that may skip under CI.
pub const ALLOW_SKIP_ENV: &str = "BUILDD_TEST_ALLOW_SKIP";

/// What becomes of a test whose requirement is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not under CI: the test says why and skips.
    Skip,
    /// Under CI, with the tag allowed by [`ALLOW_SKIP_ENV`]: the test says why and skips.
    SkipAllowed,
    /// Under CI and not allowed: the test fails.
    Fail,
}

/// The verdict for a missing requirement tagged `tag`, given the values of `CI` and
/// [`ALLOW_SKIP_ENV`] (`None` when unset). Any non-empty `CI` means CI (even
/// `false`: CI systems set it, people do not unset it that way); the allow
/// list is comma-separated, spaces around a tag ignored.
pub fn verdict(ci: Option<&str>, allow: Option<&str>, tag: &str) -> Verdict {
    if ci.is_none_or(str::is_empty) {
        return Verdict::Skip;
    }
    let allowed = allow
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .any(|t| !t.is_empty() && t == tag);
    if allowed {
        Verdict::SkipAllowed
    } else {
        Verdict::Fail
    }
}

/// `true` when `available`; otherwise says why the calling test skips and returns
/// `false`, or panics under CI unless `tag` is allowed (see the crate docs).
///
/// `tag` names the requirement (`"runc"`, `"root"`, `"conformance"` …): it is what
/// `BUILDD_TEST_ALLOW_SKIP` lists. `why` says what is missing and how to get it.
#[track_caller]
pub fn skip_unless(available: bool, tag: &str, why: impl Display) -> bool {
    if available {
        return true;
    }
    let env = |name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
    let (ci, allow) = (env("CI"), env(ALLOW_SKIP_ENV));
    decide(ci.as_deref(), allow.as_deref(), tag, &why.to_string())
}

/// [`skip_unless`] for a missing requirement, with the environment's values given:
/// says why and returns `false`, or panics.
#[track_caller]
fn decide(ci: Option<&str>, allow: Option<&str>, tag: &str, why: &str) -> bool {
    match report(ci, allow, tag, why, &test_name()) {
        Ok(line) => say(&line),
        Err(failure) => panic!("{failure}"),
    }
    false
}

/// What a missing requirement of `test` prints when it skips (`Ok`), or the
/// message it fails with (`Err`).
fn report(
    ci: Option<&str>,
    allow: Option<&str>,
    tag: &str,
    why: &str,
    test: &str,
) -> Result<String, String> {
    assert!(
        !tag.is_empty() && !tag.contains([',', ' ']),
        "skip tag {tag:?} must be one word without commas"
    );
    match verdict(ci, allow, tag) {
        Verdict::Skip => Ok(format!("skipped: {test}: {why}")),
        Verdict::SkipAllowed => Ok(format!(
            "skipped: {test}: {why} (allowed under CI: {ALLOW_SKIP_ENV} lists {tag:?})"
        )),
        Verdict::Fail => Err(format!(
            "{test}: {why}; CI must provide this ({tag:?}: .ci/run installs what the \
             tests need), so under CI it fails instead of skipping. Only a skip that \
             .ci/run reports itself may be listed in {ALLOW_SKIP_ENV}."
        )),
    }
}

/// Writes straight to stderr rather than through `eprintln!`, which the test harness
/// captures and hides for passing tests: a skip is always visible.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// The running test: the harness names each test's thread after it; otherwise (a
/// thread of the test's own, or a harness that runs tests on `main`) the caller's
/// source location.
#[track_caller]
fn test_name() -> String {
    name_of(
        std::thread::current().name(),
        std::panic::Location::caller(),
    )
}

fn name_of(thread: Option<&str>, caller: &std::panic::Location<'_>) -> String {
    match thread {
        Some(name) if name != "main" => name.to_owned(),
        _ => caller.to_string(),
    }
}

/// Whether the external tool `name` (a name looked up on `PATH`, or a path) is
/// installed; skips (or fails under CI) when it is not. The tag is the tool's file
/// name.
#[track_caller]
pub fn require_tool(name: impl AsRef<Path>) -> bool {
    let name = name.as_ref();
    let tag = name
        .file_name()
        .map_or_else(|| name.to_string_lossy(), |n| n.to_string_lossy());
    skip_unless(
        which(name).is_some(),
        &tag,
        format_args!(
            "{} is not installed (not an executable on PATH)",
            name.display()
        ),
    )
}

/// Whether this process runs as root; skips (or fails under CI) when it does not.
/// `why` says what the test needs root for. The tag is `root`.
#[track_caller]
pub fn require_root(why: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    skip_unless(root, "root", format_args!("not running as root ({why})"))
}

/// Whether `path` is a regular file (after symlinks); skips (or fails under CI)
/// when it is not. `hint` says where it comes from.
#[track_caller]
pub fn require_file(path: impl AsRef<Path>, tag: &str, hint: &str) -> bool {
    let path = path.as_ref();
    skip_unless(
        path.is_file(),
        tag,
        format_args!("{} is absent ({hint})", path.display()),
    )
}

/// Whether `path` is a directory (after symlinks); skips (or fails under CI) when it
/// is not. `hint` says where it comes from.
#[track_caller]
pub fn require_dir(path: impl AsRef<Path>, tag: &str, hint: &str) -> bool {
    let path = path.as_ref();
    skip_unless(
        path.is_dir(),
        tag,
        format_args!("{} is absent ({hint})", path.display()),
    )
}

/// The executable `name` resolves to: itself when it holds a `/`, else the first
/// executable file of that name in a `PATH` directory. No skip: a plain lookup.
pub fn which(name: impl AsRef<Path>) -> Option<PathBuf> {
    let name = name.as_ref();
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.to_string_lossy().contains('/') {
        return executable(name).then(|| name.to_owned());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| executable(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_ci_a_missing_requirement_skips() {
        assert_eq!(verdict(None, None, "runc"), Verdict::Skip);
        assert_eq!(verdict(Some(""), None, "runc"), Verdict::Skip);
        // The allow list means nothing outside CI.
        assert_eq!(verdict(None, Some("runc"), "runc"), Verdict::Skip);
    }

    #[test]
    fn under_ci_a_missing_requirement_fails() {
        for ci in ["true", "1", "yes", "false"] {
            assert_eq!(verdict(Some(ci), None, "runc"), Verdict::Fail, "CI={ci}");
        }
        assert_eq!(verdict(Some("true"), Some(""), "runc"), Verdict::Fail);
        assert_eq!(verdict(Some("true"), Some(",,"), "runc"), Verdict::Fail);
    }

    #[test]
    fn under_ci_only_listed_tags_skip() {
        let allow = Some("crun-cgroups, conformance ,");
        assert_eq!(
            verdict(Some("true"), allow, "conformance"),
            Verdict::SkipAllowed
        );
        assert_eq!(
            verdict(Some("true"), allow, "crun-cgroups"),
            Verdict::SkipAllowed
        );
        // Whole tags only: neither a prefix nor a longer name matches.
        assert_eq!(verdict(Some("true"), allow, "crun"), Verdict::Fail);
        assert_eq!(verdict(Some("true"), allow, "conformance2"), Verdict::Fail);
        assert_eq!(verdict(Some("true"), allow, "runc"), Verdict::Fail);
    }

    #[test]
    fn a_skip_says_which_test_and_why() {
        assert_eq!(
            report(None, None, "skopeo", "skopeo is not installed", "t::x"),
            Ok("skipped: t::x: skopeo is not installed".to_owned())
        );
        assert_eq!(
            report(
                Some("true"),
                Some("conformance"),
                "conformance",
                "no data",
                "t::y"
            ),
            Ok(
                "skipped: t::y: no data (allowed under CI: BUILDD_TEST_ALLOW_SKIP lists \
                 \"conformance\")"
                    .to_owned()
            )
        );
        let failure = report(
            Some("true"),
            Some("conformance"),
            "skopeo",
            "no skopeo",
            "t::z",
        )
        .unwrap_err();
        assert!(
            failure.starts_with("t::z: no skopeo; CI must provide this (\"skopeo\": .ci/run"),
            "{failure}"
        );
    }

    #[test]
    #[should_panic(expected = "t::z: no skopeo; CI must provide this")]
    fn a_skip_panics_under_ci_when_not_allowed() {
        // The thread is named like a test, as the harness names its threads.
        let run = || decide(Some("true"), Some("conformance"), "skopeo", "no skopeo");
        let thread = std::thread::Builder::new().name("t::z".into());
        let result = thread.spawn(run).unwrap().join();
        std::panic::resume_unwind(result.unwrap_err());
    }

    #[test]
    #[should_panic(expected = "must be one word")]
    fn tags_are_single_words() {
        let _ = report(None, None, "a,b", "why", "t");
    }

    #[test]
    fn an_available_requirement_passes_whatever_the_environment() {
        // The environment is not consulted: this holds under CI too.
        assert!(skip_unless(true, "anything", "never shown"));
        assert!(require_tool("sh"));
        assert!(require_dir("/", "root-dir", "always there"));
    }

    #[test]
    fn the_test_is_named_after_its_thread() {
        assert_eq!(test_name(), "tests::the_test_is_named_after_its_thread");
        let here = std::panic::Location::caller();
        assert_eq!(name_of(Some("a::b"), here), "a::b");
        for thread in [None, Some("main")] {
            let name = name_of(thread, here);
            assert!(name.starts_with("testkit/src/lib.rs:"), "{name}");
        }
    }

    #[test]
    fn which_finds_executables_only() {
        let sh = which("sh").expect("sh on PATH");
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{}", sh.display());
        assert_eq!(which(&sh), Some(sh.clone()));
        assert_eq!(which("buildd-testkit-no-such-tool"), None);
        let dir = std::env::temp_dir().join(format!("testkit-which-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plain = dir.join("plain");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(which(&plain), None, "not executable");
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(which(&plain), Some(plain.clone()));
        assert_eq!(which(&dir), None, "a directory");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
