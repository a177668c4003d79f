//! `RUN --mount=...` values (BuildKit's `commands_runmount.go`): a CSV list of
//! `key=value` fields, checked per mount type. Values arrive expanded.

use std::borrow::Cow;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl fmt::Display for MountType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sharing {
    Shared,
    Private,
    Locked,
}

/// One parsed `--mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountSpec {
    pub kind: MountType,
    pub from: Option<String>,
    pub source: Option<String>,
    pub target: Option<String>,
    pub readonly: bool,
    /// `id=`: the cache, secret or ssh id.
    pub id: Option<String>,
    pub sharing: Option<Sharing>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mode: Option<u32>,
    /// tmpfs size in bytes.
    pub size: Option<i64>,
    pub required: bool,
    /// Secret exposed as this environment variable (the name, never the value).
    pub env: Option<String>,
}

/// BuildKit's `csv.Reader` reading of one record: commas split fields, a field
/// may be double-quoted with `""` standing for a quote.
fn csv_fields(value: &str) -> Result<Vec<Cow<'_, str>>, String> {
    // Without quotes (the usual case) the fields are slices of the value.
    if !value.contains('"') {
        return Ok(value.split(',').map(Cow::Borrowed).collect());
    }
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = value.chars().peekable();
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match c {
            '"' if at_start => {
                loop {
                    match chars.next() {
                        None => return Err(format!("unterminated quote in {value:?}")),
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(c) => field.push(c),
                    }
                }
                at_start = false;
            }
            ',' => {
                fields.push(Cow::Owned(std::mem::take(&mut field)));
                at_start = true;
            }
            c => {
                field.push(c);
                at_start = false;
            }
        }
    }
    fields.push(Cow::Owned(field));
    Ok(fields)
}

/// `s` lower-cased, copied only when it has upper-case letters.
fn ascii_lowercase(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

fn parse_bool(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("invalid value for {key}: {v}")),
    }
}

/// Docker's `units.RAMInBytes`: `64m`, `1.5GiB`, `1024` (binary multiples).
pub(crate) fn ram_in_bytes(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid size: {s:?}");
    let num_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(num_len);
    let value: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let exp = match unit {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return Err(bad()),
    };
    Ok((value * 1024f64.powi(exp)) as i64)
}

pub(crate) fn parse(value: &str) -> Result<MountSpec, String> {
    let mut m = MountSpec {
        kind: MountType::Bind,
        from: None,
        source: None,
        target: None,
        readonly: false,
        id: None,
        sharing: None,
        uid: None,
        gid: None,
        mode: None,
        size: None,
        required: false,
        env: None,
    };
    let mut ro_auto = true;
    let secret_or_ssh = |m: &MountSpec| matches!(m.kind, MountType::Secret | MountType::Ssh);
    for field in csv_fields(value)? {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (ascii_lowercase(k), Some(v)),
            None => (ascii_lowercase(&field), None),
        };
        let unexpected =
            |m: &MountSpec| format!("unexpected key '{key}' for mount type '{}'", m.kind);
        let Some(value) = value else {
            match &*key {
                "readonly" | "ro" => m.readonly = true,
                "readwrite" | "rw" => m.readonly = false,
                "required" if secret_or_ssh(&m) => m.required = true,
                "required" => return Err(unexpected(&m)),
                _ => return Err(format!("unexpected key '{key}' in '{field}'")),
            }
            if key != "required" {
                ro_auto = false;
            }
            continue;
        };
        let uint = |radix: u32| {
            u32::from_str_radix(value, radix)
                .map_err(|_| format!("invalid value for {key}: {value}"))
        };
        match &*key {
            "type" => {
                m.kind = match value.to_ascii_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => {
                        return Err(format!(
                            "unsupported mount type {value:?}, expected bind, cache, tmpfs, secret or ssh"
                        ));
                    }
                }
            }
            "from" => m.from = Some(value.to_owned()),
            "source" | "src" => m.source = Some(value.to_owned()),
            "target" | "dst" | "destination" => m.target = Some(value.to_owned()),
            "readonly" | "ro" => {
                m.readonly = parse_bool(&key, value)?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                m.readonly = !parse_bool(&key, value)?;
                ro_auto = false;
            }
            "required" if secret_or_ssh(&m) => m.required = parse_bool(&key, value)?,
            "size" if m.kind == MountType::Tmpfs => m.size = Some(ram_in_bytes(value)?),
            "sharing" if m.kind == MountType::Cache => {
                m.sharing = Some(match value.to_ascii_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => {
                        return Err(format!(
                            "unsupported sharing value {value:?}, expected shared, private or locked"
                        ));
                    }
                })
            }
            "env" if m.kind == MountType::Secret => m.env = Some(value.to_owned()),
            "required" | "size" | "sharing" | "env" => return Err(unexpected(&m)),
            "id" => m.id = Some(value.to_owned()),
            "mode" => {
                m.mode = Some(uint(8).map_err(|_| format!("invalid value {value} for mode"))?)
            }
            "uid" => m.uid = Some(uint(10)?),
            "gid" => m.gid = Some(uint(10)?),
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    let file_info = matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info {
        for (name, set) in [
            ("mode", m.mode.is_some()),
            ("uid", m.uid.is_some()),
            ("gid", m.gid.is_some()),
        ] {
            if set {
                return Err(format!(
                    "{name} not allowed for {:?} type mounts",
                    m.kind.to_string()
                ));
            }
        }
    }
    if ro_auto {
        m.readonly = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    if m.kind == MountType::Secret {
        if m.from.is_some() {
            return Err("secret mount should not have a from".to_owned());
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() && m.env.is_none() {
            return Err(
                "invalid secret mount, one of source, target, id or env is required".to_owned(),
            );
        }
        if m.source.is_some() && m.id.is_some() {
            return Err("both source and id can't be set".to_owned());
        }
    }
    if m.kind == MountType::Ssh && m.from.is_some() {
        return Err("ssh mount should not have a from".to_owned());
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        let m = parse("type=cache,target=/root/.cache,id=go,sharing=locked,uid=1,gid=2,mode=0700")
            .unwrap();
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.target.as_deref(), Some("/root/.cache"));
        assert_eq!((m.uid, m.gid, m.mode), (Some(1), Some(2), Some(0o700)));
        assert_eq!(m.sharing, Some(Sharing::Locked));
        assert!(!m.readonly);
        let m = parse("target=/src,from=build,source=/out,rw").unwrap();
        assert_eq!((m.kind, m.readonly), (MountType::Bind, false));
        assert!(parse("dst=/x").unwrap().readonly);
        let m = parse("type=tmpfs,destination=/tmp,size=64m").unwrap();
        assert_eq!(m.size, Some(64 << 20));
        let m = parse("type=secret,id=tok,env=TOKEN,required").unwrap();
        assert_eq!((m.env.as_deref(), m.required), (Some("TOKEN"), true));
        let m = parse("type=ssh,required=false,\"target=/a,b\"").unwrap();
        assert_eq!(m.target.as_deref(), Some("/a,b"));
    }

    #[test]
    fn rejects_bad_fields() {
        let e = |v: &str| parse(v).unwrap_err();
        assert_eq!(
            e("type=volume,target=/x"),
            "unsupported mount type \"volume\", expected bind, cache, tmpfs, secret or ssh"
        );
        assert_eq!(
            e("target=/x,size=1"),
            "unexpected key 'size' for mount type 'bind'"
        );
        assert_eq!(
            e("target=/x,bogus=1"),
            "unexpected key 'bogus' in 'bogus=1'"
        );
        assert_eq!(
            e("type=tmpfs,target=/x,uid=1"),
            "uid not allowed for \"tmpfs\" type mounts"
        );
        assert_eq!(
            e("type=cache,target=/x,sharing=no"),
            "unsupported sharing value \"no\", expected shared, private or locked"
        );
        assert_eq!(
            e("type=secret"),
            "invalid secret mount, one of source, target, id or env is required"
        );
        assert_eq!(
            e("type=secret,id=a,src=b"),
            "both source and id can't be set"
        );
        assert_eq!(e("type=cache,target=/x,mode=9"), "invalid value 9 for mode");
        assert_eq!(e("target=/x,ro=maybe"), "invalid value for ro: maybe");
    }

    #[test]
    fn sizes() {
        assert_eq!(ram_in_bytes("1024").unwrap(), 1024);
        assert_eq!(ram_in_bytes("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(ram_in_bytes("2 kb").unwrap(), 2048);
        assert!(ram_in_bytes("lots").is_err());
    }
}
