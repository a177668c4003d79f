//! Conformance with BuildKit: builds the golden cases of
//! `../shared/conformance/golden` and the project's own `tests/parity/cases`
//! (generated with the reference BuildKit, see tests/parity/README.md), and
//! compares the image's filesystem (diffed against its base) and config with
//! what BuildKit produced.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use buildd_tests::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The name BuildKit's run knew the base by: the `ignore` case copies its own
/// Dockerfile, so the substituted name is part of the expected content.
const BASE: &str = "127.0.0.1:5000/busybox:latest";
/// The files of a case folder that are not part of its build context.
const NOT_CONTEXT: [&str; 3] = [
    "expected-fs.txt",
    "expected-config.json",
    "context-modes.txt",
];
/// The config fields that the golden files record.
const CONFIG_FIELDS: [&str; 12] = [
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "Labels",
    "ExposedPorts",
    "Volumes",
    "StopSignal",
    "Healthcheck",
    "OnBuild",
    "Shell",
];

macro_rules! golden_cases {
    ($($test:ident => $case:literal,)*) => {$(
        #[test]
        fn $test() {
            conform($case);
        }
    )*};
}

golden_cases! {
    add_local_tar => "add-local-tar",
    args_scope => "args-scope",
    copy_dirs => "copy-dirs",
    heredoc => "heredoc",
    ignore => "ignore",
    image_config => "image-config",
    owners => "owners",
    run_changes => "run-changes",
    stages => "stages",
}

/// The project's own cases, one per BuildKit behaviour of issue 13's classes.
macro_rules! parity_cases {
    ($($test:ident => $case:literal,)*) => {$(
        #[test]
        fn $test() {
            if can_run_busybox() {
                conform_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("parity/cases").join($case));
            }
        }
    )*};
}

parity_cases! {
    parity_onbuild_final => "onbuild-final",
    parity_onbuild_stage => "onbuild-stage",
    parity_onbuild_chain => "onbuild-chain",
    parity_workdir_slash => "workdir-slash",
    parity_workdir_user => "workdir-user",
    parity_workdir_forms => "workdir-forms",
    parity_workdir_known_user => "workdir-known-user",
    parity_chown_names => "chown-names",
    parity_copy_dir_modes => "copy-dir-modes",
    parity_copy_dir_onto => "copy-dir-onto",
    parity_copy_chmod_parents => "copy-chmod-parents",
    parity_copy_chmod_symbolic => "copy-chmod-symbolic",
    parity_copy_parents => "copy-parents",
    parity_add_archive_conflicts => "add-archive-conflicts",
    parity_add_archive_formats => "add-archive-formats",
    parity_arg_redeclared => "arg-redeclared",
    parity_run_user_groups => "run-user-groups",
    parity_cache_mount_identity => "cache-mount-identity",
    parity_mounts_from_stage => "mounts-from-stage",

    parity_glob_doublestar => "glob-doublestar",
    parity_ignore_allowlist => "ignore-allowlist",
}

/// The golden folder, or `None` (said why through `buildd_testkit`) when the tools
/// or data are missing.
fn golden() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/golden");
    let present = buildd_testkit::require_dir(
        &dir,
        "conformance",
        "the conformance data is not part of a user's clone",
    );
    (present && can_run_busybox()).then_some(dir)
}

fn conform(case: &str) {
    let Some(golden) = golden() else { return };
    conform_dir(&golden.join("cases").join(case));
}

fn conform_dir(case_dir: &Path) {
    let case = case_dir.file_name().unwrap().to_string_lossy();
    let ws = Workspace::new();
    let base_fs = build_base(&ws);

    let ctx = ws.ctx();
    prepare_context(case_dir, &ctx);
    let out = ws.path("out");
    let layout = ws.path("layout");
    buildd(
        &ws,
        &[
            "build".as_ref(),
            "--progress=plain".as_ref(),
            "-o".as_ref(),
            format!("type=local,dest={}", out.display()).as_ref(),
            "-o".as_ref(),
            format!("type=oci,tar=false,dest={}", layout.display()).as_ref(),
            ctx.as_os_str(),
        ],
    );

    let dockerfile = fs::read_to_string(ctx.join("Dockerfile")).unwrap();
    let against = if final_stage_is_scratch(&dockerfile) {
        BTreeMap::new()
    } else {
        base_fs
    };
    let mut problems = Vec::new();
    let fs_expected = parse_changes(&read(&case_dir.join("expected-fs.txt")));
    let fs_actual = diff(&against, &listing(&out));
    if let Some(report) = compare_changes(&fs_expected, &fs_actual) {
        problems.push(format!("filesystem differs from BuildKit's:\n{report}"));
    }
    let cfg_expected: Value = serde_json::from_str(&read(&case_dir.join("expected-config.json")))
        .expect("expected-config.json is JSON");
    let cfg_actual = read_image_config(&layout);
    if let Some(report) = compare_config(&cfg_expected, &cfg_actual["config"]) {
        problems.push(format!("config differs from BuildKit's:\n{report}"));
    }
    assert!(
        problems.is_empty(),
        "golden case {case}:\n{}",
        problems.join("\n")
    );
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs `buildd --root ROOT ARGS…` and insists that it succeeds.
#[track_caller]
fn buildd(ws: &Workspace, args: &[&std::ffi::OsStr]) -> Run {
    Run::of(
        Command::new(buildd_bin())
            .arg("--root")
            .arg(ws.root())
            .args(args)
            .output()
            .expect("run buildd"),
    )
    .success()
}

/// The README's busybox root filesystem as a layer tarball. Made once per process:
/// every test waits here, so no test forks while the fresh copy of busybox is open
/// for writing (its exec would fail with "text file busy").
fn base_tarball() -> &'static [u8] {
    static TARBALL: OnceLock<Vec<u8>> = OnceLock::new();
    TARBALL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        for d in [
            "bin", "etc", "proc", "sys", "dev", "tmp", "root", "var", "run",
        ] {
            fs::create_dir_all(rootfs.join(d)).unwrap();
            set_mode(&rootfs.join(d), 0o755);
        }
        set_mode(&rootfs, 0o755);
        set_mode(&rootfs.join("tmp"), 0o1777);
        fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        set_mode(&rootfs.join("bin/busybox"), 0o755);
        let install = Command::new("chroot")
            .arg(&rootfs)
            .args(["/bin/busybox", "--install", "-s", "/bin"])
            .output()
            .expect("run chroot");
        assert!(install.status.success(), "busybox --install: {install:?}");
        for (name, text) in [
            ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
            ("etc/group", "root:x:0:\n"),
        ] {
            fs::write(rootfs.join(name), text).unwrap();
            set_mode(&rootfs.join(name), 0o644);
        }
        pack(&rootfs)
    })
}

/// Imports the base as `golden-raw`, stores it with its config as [`BASE`]
/// and returns its listing.
fn build_base(ws: &Workspace) -> BTreeMap<String, Value> {
    let tarball = ws.path("base.tar");
    fs::write(&tarball, base_tarball()).unwrap();
    buildd(
        ws,
        &[
            "import".as_ref(),
            tarball.as_os_str(),
            "golden-raw".as_ref(),
        ],
    );

    let ctx = ws.path("base-ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM golden-raw\nCMD [\"/bin/sh\"]\n",
    )
    .unwrap();
    let exported = ws.path("base-out");
    buildd(
        ws,
        &[
            "build".as_ref(),
            "--progress=plain".as_ref(),
            "-t".as_ref(),
            BASE.as_ref(),
            "-o".as_ref(),
            format!("type=local,dest={}", exported.display()).as_ref(),
            ctx.as_os_str(),
        ],
    );
    listing(&exported)
}

fn set_mode(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

/// Packs `root` as one layer tarball, owned by root, with a fixed mtime.
fn pack(root: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for path in list_files(root) {
        let host = root.join(&path);
        let meta = fs::symlink_metadata(&host).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_mode(meta.mode() & 0o7777);
        let ft = meta.file_type();
        if ft.is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, &path, fs::read_link(&host).unwrap())
                .unwrap();
        } else if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            b.append_data(&mut h, format!("{path}/"), io::empty())
                .unwrap();
        } else {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(meta.len());
            b.append_data(&mut h, &path, fs::File::open(&host).unwrap())
                .unwrap();
        }
    }
    b.into_inner().unwrap()
}

/// Copies a case into `ctx` without its expected files, with the modes of
/// `context-modes.txt` (a checkout may not have kept them).
fn prepare_context(case_dir: &Path, ctx: &Path) {
    let modes: HashMap<String, u32> = read(&case_dir.join("context-modes.txt"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (mode, path) = l.split_once(' ').expect("MODE PATH");
            (
                path.to_owned(),
                u32::from_str_radix(mode, 8).expect("octal mode"),
            )
        })
        .collect();
    copy_tree(case_dir, ctx);
    for name in NOT_CONTEXT {
        fs::remove_file(ctx.join(name)).unwrap();
    }
    let df = ctx.join("Dockerfile");
    fs::write(&df, read(&df).replace("@BASE@", BASE)).unwrap();
    // Deepest first, so that a folder made read-only is not written into afterwards.
    for path in list_files(ctx).iter().rev() {
        let mode = modes
            .get(path)
            .unwrap_or_else(|| panic!("context-modes.txt does not give a mode for {path}"));
        set_mode(&ctx.join(path), *mode);
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    set_mode(to, 0o755);
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            copy_tree(&src, &dst);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else {
            fs::copy(&src, &dst).unwrap();
            set_mode(&dst, 0o644);
        }
    }
}

/// Whether the last `FROM` names `scratch`: then the golden listing is the whole tree.
fn final_stage_is_scratch(dockerfile: &str) -> bool {
    dockerfile
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let first = words.next()?;
            first
                .eq_ignore_ascii_case("FROM")
                .then(|| words.find(|w| !w.starts_with("--")))
                .flatten()
        })
        .next_back()
        .is_some_and(|image| image == "scratch")
}

/// Whether a path is one of the runtime's mount points, which no image holds.
fn runtime_mount(path: &str) -> bool {
    matches!(
        path,
        "/etc/hosts" | "/etc/hostname" | "/etc/resolv.conf" | "/run/secrets"
    ) || ["/proc/", "/sys/", "/dev/", "/run/secrets/"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// The golden format's listing of a root filesystem: path → attributes.
fn listing(root: &Path) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), Vec<String>> = HashMap::new();
    let mut walk = vec![(root.to_path_buf(), "/".to_owned())];
    while let Some((host, path)) = walk.pop() {
        let meta = fs::symlink_metadata(&host).unwrap();
        let ft = meta.file_type();
        let mut attrs = json!({"uid": meta.uid(), "gid": meta.gid()});
        let kind = if ft.is_dir() {
            for e in fs::read_dir(&host).unwrap() {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                let child = format!("{}/{name}", path.trim_end_matches('/'));
                if !runtime_mount(&child) {
                    walk.push((e.path(), child));
                }
            }
            "dir"
        } else if ft.is_symlink() {
            let target = fs::read_link(&host).unwrap();
            attrs["target"] = json!(target.to_string_lossy());
            "symlink"
        } else if ft.is_file() {
            attrs["size"] = json!(meta.len());
            attrs["sha256"] = json!(format!("sha256:{}", sha256_file(&host)));
            "file"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else if ft.is_fifo() {
            "fifo"
        } else {
            "socket"
        };
        attrs["type"] = json!(kind);
        if !ft.is_symlink() {
            attrs["mode"] = json!(meta.mode() & 0o7777);
        }
        if !ft.is_dir() && meta.nlink() > 1 {
            inodes
                .entry((meta.dev(), meta.ino()))
                .or_default()
                .push(path.clone());
        }
        out.insert(path, attrs);
    }
    for mut paths in inodes.into_values().filter(|p| p.len() > 1) {
        paths.sort();
        for p in &paths {
            out.get_mut(p).unwrap()["hardlinks"] = json!(paths);
        }
    }
    out
}

fn sha256_file(p: &Path) -> String {
    let mut h = Sha256::new();
    io::copy(&mut fs::File::open(p).unwrap(), &mut h).unwrap();
    hex::encode(h.finalize())
}

/// One line of a golden filesystem diff: `Some(attrs)` added or changed, `None` removed.
type Changes = BTreeMap<String, Option<Value>>;

fn diff(base: &BTreeMap<String, Value>, result: &BTreeMap<String, Value>) -> Changes {
    let mut changes: Changes = result
        .iter()
        .filter(|(p, attrs)| base.get(*p) != Some(attrs))
        .map(|(p, attrs)| (p.clone(), Some(attrs.clone())))
        .collect();
    for p in base.keys().filter(|p| !result.contains_key(*p)) {
        changes.insert(p.clone(), None);
    }
    changes
}

fn parse_changes(text: &str) -> Changes {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            if let Some(path) = l.strip_prefix("- ") {
                return (path.to_owned(), None);
            }
            let (path, attrs) = l
                .strip_prefix("+ ")
                .and_then(|rest| rest.split_once('\t'))
                .unwrap_or_else(|| panic!("bad line in expected-fs.txt: {l:?}"));
            let attrs = serde_json::from_str(attrs).expect("attributes are JSON");
            (path.to_owned(), Some(attrs))
        })
        .collect()
}

fn change_line(path: &str, change: &Option<Value>) -> String {
    match change {
        Some(attrs) => format!("+ {path}\t{attrs}"),
        None => format!("- {path}"),
    }
}

/// A readable report of how `actual` differs from `expected`, if it does.
fn compare_changes(expected: &Changes, actual: &Changes) -> Option<String> {
    let mut missing = Vec::new();
    let mut differing = Vec::new();
    for (path, want) in expected {
        match actual.get(path) {
            None => missing.push(change_line(path, want)),
            Some(got) if got != want => differing.push(format!(
                "  buildkit: {}\n  buildd:   {}",
                change_line(path, want),
                change_line(path, got)
            )),
            Some(_) => {}
        }
    }
    let extra: Vec<_> = actual
        .iter()
        .filter(|(p, _)| !expected.contains_key(*p))
        .map(|(p, c)| change_line(p, c))
        .collect();
    let mut report = String::new();
    for (title, lines) in [
        ("missing (BuildKit has them, buildd does not)", &missing),
        ("extra (buildd has them, BuildKit does not)", &extra),
        ("differing", &differing),
    ] {
        if !lines.is_empty() {
            report += &format!("{title}:\n{}\n", lines.join("\n"));
        }
    }
    (!report.is_empty()).then_some(report)
}

/// `index.json` → manifest → config of an OCI layout directory.
fn read_image_config(layout: &Path) -> Value {
    let blob = |digest: &Value| -> Value {
        let hex = digest.as_str().unwrap().trim_start_matches("sha256:");
        serde_json::from_str(&read(&layout.join("blobs/sha256").join(hex))).unwrap()
    };
    let index: Value = serde_json::from_str(&read(&layout.join("index.json"))).unwrap();
    let manifest = blob(&index["manifests"][0]["digest"]);
    blob(&manifest["config"]["digest"])
}

/// A config field, with empty and missing both counting as absent.
fn field<'a>(config: &'a Value, name: &str) -> Option<&'a Value> {
    config.get(name).filter(|v| match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    })
}

fn compare_config(expected: &Value, actual: &Value) -> Option<String> {
    let show = |v: Option<&Value>| v.map_or("(absent)".to_owned(), Value::to_string);
    let lines: Vec<_> = CONFIG_FIELDS
        .iter()
        .filter_map(|name| {
            let (want, got) = (field(expected, name), field(actual, name));
            (want != got).then(|| {
                format!(
                    "{name}:\n  buildkit: {}\n  buildd:   {}",
                    show(want),
                    show(got)
                )
            })
        })
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}
