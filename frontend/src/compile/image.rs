//! Image-config helpers: the scratch config, history entries, and the small
//! value syntaxes of instructions (ports, owners, modes, paths, durations).

use buildd_oci::{History, ImageConfig, Platform};
use buildd_proto::llb::{self, ChownOpt};

use crate::parser::go_quote;

/// BuildKit's default PATH for Linux images.
pub(crate) const DEFAULT_PATH: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The `comment` BuildKit puts on the history entries it writes.
const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// `os/arch[/variant]`.
pub(crate) fn platform_string(p: &Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

pub(crate) fn proto_platform(p: &Platform) -> llb::Platform {
    llb::Platform {
        os: p.os.clone(),
        architecture: p.architecture.clone(),
        variant: p.variant.clone().unwrap_or_default(),
    }
}

/// The config of `FROM scratch`, as BuildKit starts it.
pub(crate) fn scratch(p: &Platform) -> ImageConfig {
    let mut img = ImageConfig {
        architecture: p.architecture.clone(),
        os: p.os.clone(),
        variant: p.variant.clone(),
        ..Default::default()
    };
    img.config.env = vec![DEFAULT_PATH.to_owned()];
    img.config.working_dir = "/".to_owned();
    img
}

pub(crate) fn add_history(img: &mut ImageConfig, created_by: String, empty_layer: bool) {
    img.history.push(History {
        created_by: Some(created_by),
        comment: Some(HISTORY_COMMENT.to_owned()),
        empty_layer,
        ..Default::default()
    });
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
pub(crate) fn go_quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// Sets `KEY=value` in an env list, replacing an earlier value in place.
pub(crate) fn set_env(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    match env
        .iter_mut()
        .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
    {
        Some(e) => *e = entry,
        None => env.push(entry),
    }
}

/// Go's `path.Clean` for slash-separated paths.
pub(crate) fn clean_path(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// `p` made absolute against `dir`, cleaned; `..` cannot climb above `/`.
pub(crate) fn resolve_path(dir: &str, p: &str) -> String {
    if p.starts_with('/') {
        clean_path(p)
    } else {
        clean_path(&format!("/{dir}/{p}"))
    }
}

/// EXPOSE's `port[/proto]` or `start-end[/proto]` to `port/proto` keys.
pub(crate) fn parse_port(spec: &str) -> Result<Vec<String>, String> {
    let bad = || format!("invalid port specification: {spec:?}");
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_owned()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid port protocol {proto:?} in {spec:?}"));
    }
    let num = |s: &str| s.parse::<u16>().map_err(|_| bad());
    let (start, end) = match ports.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(ports)?, num(ports)?),
    };
    if end < start {
        return Err(bad());
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// `user[:group]`, each numeric (an id) or a name resolved at build time.
pub(crate) fn parse_chown(spec: &str) -> Result<ChownOpt, String> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() || group.is_some_and(str::is_empty) {
        return Err(format!(
            "invalid --chown value {spec:?}, expected user[:group]"
        ));
    }
    let mut opt = ChownOpt::default();
    match user.parse::<u32>() {
        Ok(uid) => opt.uid = Some(uid),
        Err(_) => opt.user_name = user.to_owned(),
    }
    if let Some(group) = group {
        match group.parse::<u32>() {
            Ok(gid) => opt.gid = Some(gid),
            Err(_) => opt.group_name = group.to_owned(),
        }
    }
    Ok(opt)
}

/// An octal `--chmod` mode such as `755` or `0644`.
pub(crate) fn parse_chmod(spec: &str) -> Result<u32, String> {
    u32::from_str_radix(spec, 8)
        .ok()
        .filter(|m| *m <= 0o7777 && !spec.is_empty())
        .ok_or_else(|| {
            format!("invalid --chmod value {spec:?}, expected an octal mode such as 755")
        })
}

/// A Go duration (`1h30m`, `5s`, `250ms`) in nanoseconds.
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid duration {s:?}");
    if s == "0" {
        return Ok(0);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Ok(total.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(clean_path("/a/../../b/./c/"), "/b/c");
        assert_eq!(resolve_path("/app", "../x"), "/x");
        assert_eq!(resolve_path("/app", "src"), "/app/src");
        assert_eq!(resolve_path("/app", "/etc/../.."), "/");
    }

    #[test]
    fn values() {
        assert_eq!(parse_port("80").unwrap(), ["80/tcp"]);
        assert_eq!(parse_port("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(parse_port("8000-8001").unwrap(), ["8000/tcp", "8001/tcp"]);
        assert!(parse_port("http").is_err());
        assert_eq!(parse_chmod("0755").unwrap(), 0o755);
        assert!(parse_chmod("u+x").is_err());
        assert!(parse_chmod("17777").is_err());
        let c = parse_chown("app:1000").unwrap();
        assert_eq!((c.user_name.as_str(), c.gid), ("app", Some(1000)));
        assert!(parse_chown(":1").is_err());
        assert_eq!(parse_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_duration("250ms").unwrap(), 250_000_000);
        assert!(parse_duration("5").is_err());
    }
}
