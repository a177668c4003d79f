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
    clean_parts(p.starts_with('/'), p.split('/'), p.len())
}

/// `p` made absolute against `dir`, cleaned; `..` cannot climb above `/`.
pub(crate) fn resolve_path(dir: &str, p: &str) -> String {
    if p.starts_with('/') {
        clean_path(p)
    } else {
        clean_parts(
            true,
            dir.split('/').chain(p.split('/')),
            dir.len() + p.len() + 1,
        )
    }
}

/// The cleaning of [`clean_path`] over the `/`-separated parts of a path,
/// written straight into the result.
fn clean_parts<'a>(rooted: bool, parts: impl Iterator<Item = &'a str>, len: usize) -> String {
    let root = usize::from(rooted);
    let mut out = String::with_capacity(len + 1);
    if rooted {
        out.push('/');
    }
    // Components in `out`, and how many of them are leading `..`s (only an
    // unrooted path keeps those); a `..` removes the last other component.
    let mut count = 0;
    let mut ups = 0;
    for part in parts {
        match part {
            "" | "." => {}
            ".." if count > ups => {
                let cut = out.rfind('/').map_or(0, |i| i.max(root));
                out.truncate(cut);
                count -= 1;
            }
            ".." if rooted => {}
            _ => {
                if count > 0 {
                    out.push('/');
                }
                out.push_str(part);
                count += 1;
                if part == ".." {
                    ups += 1;
                }
            }
        }
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

/// A parsed EXPOSE argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PortSpec {
    /// `port/proto` keys for the image config.
    pub keys: Vec<String>,
    /// The protocol was not written in lower case (ExposeProtoCasing).
    pub proto_not_lower: bool,
    /// An IP address or host port was given (ExposeInvalidFormat).
    pub mapping: bool,
}

/// EXPOSE's `[ip:[host_port:]]port[-end][/proto]`; like BuildKit, a host
/// mapping is accepted (with a warning) and ignored.
pub(crate) fn parse_port(spec: &str) -> Result<PortSpec, String> {
    let bad = || format!("invalid port specification: {spec:?}");
    // BuildKit's splitParts: the last two colon-separated parts are the host
    // and container ports, anything before them the IP.
    let mut parts = spec.rsplitn(3, ':');
    let container = parts.next().unwrap_or_default();
    let host = parts.next().unwrap_or_default();
    let ip = parts.next().unwrap_or_default();
    let (ports, proto) = container.split_once('/').unwrap_or((container, "tcp"));
    let lower = proto.to_ascii_lowercase();
    if !matches!(lower.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid port protocol {proto:?} in {spec:?}"));
    }
    let range = |s: &str| -> Result<(u16, u16), String> {
        let num = |s: &str| s.parse::<u16>().map_err(|_| bad());
        let (start, end) = match s.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(s)?, num(s)?),
        };
        if end < start {
            return Err(bad());
        }
        Ok((start, end))
    };
    let (start, end) = range(ports)?;
    if !host.is_empty() {
        range(host)?;
    }
    let ip_ok = ip.is_empty()
        || ip
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok();
    if !ip_ok {
        return Err(format!("invalid IP address {ip:?} in {spec:?}"));
    }
    Ok(PortSpec {
        keys: (start..=end).map(|p| format!("{p}/{lower}")).collect(),
        proto_not_lower: proto != lower,
        mapping: !ip.is_empty() || !host.is_empty(),
    })
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
/// A `--chmod` value: an octal mode, or a symbolic one (`u+x,g-r`) applied to
/// each entry's own mode, as BuildKit's frontend takes both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Chmod {
    Octal(u32),
    Symbolic(String),
}

pub(crate) fn parse_chmod(spec: &str) -> Result<Chmod, String> {
    if !spec.is_empty() && spec.bytes().all(|b| b.is_ascii_digit()) {
        return u32::from_str_radix(spec, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .map(Chmod::Octal)
            .ok_or_else(|| {
                format!("invalid --chmod value {spec:?}, expected an octal mode such as 755")
            });
    }
    buildd_proto::chmod::SymbolicMode::parse(spec)?;
    Ok(Chmod::Symbolic(spec.to_owned()))
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
        assert_eq!(resolve_path("/", "a//./b/"), "/a/b");
        assert_eq!(clean_path(""), ".");
        assert_eq!(clean_path("./"), ".");
        assert_eq!(clean_path("a/../.."), "..");
        assert_eq!(clean_path("../a/../../b"), "../../b");
        assert_eq!(clean_path("a/b/../c"), "a/c");
    }

    #[test]
    fn values() {
        assert_eq!(parse_port("80").unwrap().keys, ["80/tcp"]);
        let udp = parse_port("53/UDP").unwrap();
        assert_eq!(
            (udp.keys.as_slice(), udp.proto_not_lower),
            (&["53/udp".to_owned()][..], true)
        );
        assert_eq!(
            parse_port("8000-8001").unwrap().keys,
            ["8000/tcp", "8001/tcp"]
        );
        let mapped = parse_port("127.0.0.1:8080:80").unwrap();
        assert_eq!(
            (mapped.keys.as_slice(), mapped.mapping),
            (&["80/tcp".to_owned()][..], true)
        );
        assert!(parse_port("[::1]:80:80").unwrap().mapping);
        assert!(parse_port("80:80").unwrap().mapping);
        assert!(parse_port("x.y:80:80").is_err());
        assert!(parse_port("http").is_err());
        assert_eq!(parse_chmod("0755").unwrap(), Chmod::Octal(0o755));
        assert_eq!(parse_chmod("u+x").unwrap(), Chmod::Symbolic("u+x".into()));
        assert!(parse_chmod("17777").is_err());
        assert!(parse_chmod("u+q").is_err());
        assert!(parse_chmod("8").is_err());
        let c = parse_chown("app:1000").unwrap();
        assert_eq!((c.user_name.as_str(), c.gid), ("app", Some(1000)));
        assert!(parse_chown(":1").is_err());
        assert_eq!(parse_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_duration("250ms").unwrap(), 250_000_000);
        assert!(parse_duration("5").is_err());
    }
}
