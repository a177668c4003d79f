//! The OCI runtime configuration (`config.json`) of a run, with Docker's defaults.

use std::path::Path;

use serde_json::{Value, json};

use crate::caps;
use crate::error::ExecError;
use crate::seccomp;
use crate::{MountSpec, RunSpec, Security};

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const DEFAULT_HOSTNAME: &str = "buildkitsandbox";

/// Docker's default capability set.
const CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const MASKED: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Which network namespace the container gets.
#[derive(Debug, Clone, Copy)]
pub enum NetNs<'a> {
    /// A new, empty one (the runtime brings `lo` up).
    New,
    /// The host's.
    Host,
    /// An existing one bound at this path.
    Path(&'a Path),
}

/// Files the run provides to the container.
pub struct Files<'a> {
    pub rootfs: &'a Path,
    pub hosts: &'a Path,
    pub resolv_conf: &'a Path,
}

/// Parses `uid[:gid]`; an empty user is root and a missing group is 0, as in Docker.
pub fn parse_user(user: &str) -> Result<(u32, u32), ExecError> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let bad = || ExecError::InvalidSpec(format!("user {user:?} is not numeric uid[:gid]"));
    let (u, g) = user.split_once(':').unwrap_or((user, "0"));
    Ok((u.parse().map_err(|_| bad())?, g.parse().map_err(|_| bad())?))
}

/// The container paths the runtime mounts over, in the order of the config.
pub fn mount_destinations(spec: &RunSpec) -> Vec<&str> {
    let mut d = vec!["/proc", "/dev", "/sys", "/etc/hosts", "/etc/resolv.conf"];
    d.extend(spec.mounts.iter().map(|m| match m {
        MountSpec::Bind { dest, .. }
        | MountSpec::Tmpfs { dest, .. }
        | MountSpec::Layers { dest, .. } => dest.as_str(),
    }));
    d
}

pub fn config(
    spec: &RunSpec,
    files: &Files<'_>,
    net: NetNs<'_>,
    id: &str,
) -> Result<Value, ExecError> {
    if spec.args.is_empty() {
        return Err(ExecError::InvalidSpec("no command to run".into()));
    }
    let (uid, gid) = parse_user(&spec.user)?;
    let mut env = spec.env.clone();
    let secret_names: Vec<&str> = spec.secret_env.names().collect();
    env.retain(|e| !secret_names.contains(&e.split_once('=').map_or(e.as_str(), |(n, _)| n)));
    env.extend(spec.secret_env.0.iter().map(|e| e.to_string()));
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.into());
    }
    let cwd = if spec.cwd.is_empty() {
        "/"
    } else {
        spec.cwd.as_str()
    };
    if !cwd.starts_with('/') {
        return Err(ExecError::InvalidSpec(format!(
            "working directory {cwd:?} is not absolute"
        )));
    }
    let hostname = if spec.hostname.is_empty() {
        DEFAULT_HOSTNAME
    } else {
        &spec.hostname
    };
    let insecure = spec.security == Security::Insecure;
    let all;
    let caps: &[&str] = if insecure {
        all = caps::current();
        &all
    } else {
        &CAPS
    };
    // A non-root process keeps no capabilities across exec anyway; say so explicitly.
    let active: &[&str] = if uid == 0 { caps } else { &[] };

    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    match net {
        NetNs::New => namespaces.push(json!({"type": "network"})),
        NetNs::Path(p) => namespaces.push(json!({"type": "network", "path": p})),
        NetNs::Host => {}
    }
    let sysctl = match net {
        NetNs::Host => json!({}),
        NetNs::New | NetNs::Path(_) => json!({
            "net.ipv4.ip_unprivileged_port_start": "0",
            "net.ipv4.ping_group_range": "0 2147483647",
        }),
    };

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", if insecure { "rw" } else { "ro" }]}),
        json!({"destination": "/etc/hosts", "type": "bind", "source": files.hosts, "options": ["rbind", "ro", "rprivate"]}),
        json!({"destination": "/etc/resolv.conf", "type": "bind", "source": files.resolv_conf, "options": ["rbind", "ro", "rprivate"]}),
    ];
    for m in &spec.mounts {
        mounts.push(match m {
            MountSpec::Bind {
                src,
                dest,
                readonly,
            } => json!({
                "destination": dest, "type": "bind", "source": src,
                "options": ["rbind", if *readonly { "ro" } else { "rw" }, "rprivate"],
            }),
            MountSpec::Tmpfs { dest, size } => {
                let mut options = vec![
                    "nosuid".to_owned(),
                    "nodev".into(),
                    "strictatime".into(),
                    "mode=1777".into(),
                ];
                options.extend(size.map(|s| format!("size={s}")));
                json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": options})
            }
            MountSpec::Layers { .. } => {
                return Err(ExecError::InvalidSpec(
                    "internal error: layer mounts are mounted before the spec is written"
                        .to_owned(),
                ));
            }
        });
    }

    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": format!("/buildd/{id}"),
        "resources": {"devices": [{"allow": insecure, "access": "rwm"}]},
        "sysctl": sysctl,
    });
    if !insecure {
        linux["maskedPaths"] = json!(MASKED);
        linux["readonlyPaths"] = json!(READONLY);
        linux["seccomp"] = seccomp::default_profile(caps);
    }

    Ok(json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": if spec.additional_gids.is_empty() {
                json!({"uid": uid, "gid": gid})
            } else {
                json!({"uid": uid, "gid": gid, "additionalGids": spec.additional_gids})
            },
            "args": spec.args,
            "env": env,
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": active, "permitted": active},
            "rlimits": [nofile_limit()],
            "noNewPrivileges": false,
        },
        "root": {"path": files.rootfs, "readonly": false},
        "hostname": hostname,
        "mounts": mounts,
        "linux": linux,
    }))
}

/// Docker's open-file limit (1024 soft, 524288 hard), capped at what this process may
/// grant: raising a hard limit needs CAP_SYS_RESOURCE.
fn nofile_limit() -> Value {
    // SAFETY: rlimit is plain data filled by the kernel.
    let mut cur: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: valid resource and out pointer.
    let hard = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) } == 0 {
        cur.rlim_max.min(524_288)
    } else {
        1024
    };
    json!({"type": "RLIMIT_NOFILE", "hard": hard, "soft": hard.min(1024)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_parse_as_docker_does() {
        assert_eq!(parse_user("").unwrap(), (0, 0));
        assert_eq!(parse_user("1000").unwrap(), (1000, 0));
        assert_eq!(parse_user("1000:50").unwrap(), (1000, 50));
        assert!(parse_user("nobody").is_err());
        assert!(parse_user("1:x").is_err());
    }

    #[test]
    fn config_has_defaults_and_user_mounts() {
        let spec = RunSpec {
            args: vec!["true".into()],
            user: "5:6".into(),
            mounts: vec![MountSpec::Tmpfs {
                dest: "/cache".into(),
                size: Some(1024),
            }],
            ..Default::default()
        };
        let p = Path::new("/x");
        let files = Files {
            rootfs: p,
            hosts: p,
            resolv_conf: p,
        };
        let c = config(&spec, &files, NetNs::Host, "id").unwrap();
        assert_eq!(c["process"]["user"], json!({"uid": 5, "gid": 6}));
        assert_eq!(c["process"]["cwd"], "/");
        assert_eq!(c["process"]["env"][0], DEFAULT_PATH);
        assert_eq!(c["process"]["capabilities"]["effective"], json!([]));
        assert_eq!(c["hostname"], DEFAULT_HOSTNAME);
        let ns = c["linux"]["namespaces"].as_array().unwrap();
        assert!(!ns.iter().any(|n| n["type"] == "network"));
        let last = c["mounts"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["destination"], "/cache");
        assert_eq!(last["options"][4], "size=1024");
        assert_eq!(mount_destinations(&spec).last(), Some(&"/cache"));
    }

    #[test]
    fn sandboxed_runs_get_seccomp_and_insecure_ones_do_not() {
        let p = Path::new("/x");
        let files = Files {
            rootfs: p,
            hosts: p,
            resolv_conf: p,
        };
        let mut spec = RunSpec {
            args: vec!["true".into()],
            ..Default::default()
        };
        let c = config(&spec, &files, NetNs::New, "id").unwrap();
        assert_eq!(c["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(c["linux"]["maskedPaths"], json!(MASKED));
        assert_eq!(c["process"]["capabilities"]["bounding"], json!(CAPS));

        spec.security = Security::Insecure;
        let c = config(&spec, &files, NetNs::New, "id").unwrap();
        assert!(c["linux"].get("seccomp").is_none());
        assert!(c["linux"].get("maskedPaths").is_none());
        assert_eq!(
            c["process"]["capabilities"]["effective"],
            json!(caps::current())
        );
        assert_eq!(c["linux"]["resources"]["devices"][0]["allow"], true);
    }

    #[test]
    fn relative_cwd_and_empty_args_are_rejected() {
        let p = Path::new("/x");
        let files = Files {
            rootfs: p,
            hosts: p,
            resolv_conf: p,
        };
        let spec = RunSpec {
            args: vec!["true".into()],
            cwd: "rel".into(),
            ..Default::default()
        };
        assert!(config(&spec, &files, NetNs::New, "id").is_err());
        assert!(config(&RunSpec::default(), &files, NetNs::New, "id").is_err());
    }
}
