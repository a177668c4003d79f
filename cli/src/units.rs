//! Sizes, durations and ages as docker and buildctl read and print them.

use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("invalid size {0:?}: want a number with an optional unit (kB, MB, GB, TB)")]
    Size(String),
    #[error("invalid duration {0:?}: want e.g. 90s, 30m, 24h or 1h30m")]
    Duration(String),
}

/// Bytes in `s`, as docker's `RAMInBytes` reads `--keep-storage`: units are powers
/// of 1024 (`10GB` is 10 GiB), a bare number is bytes.
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let bad = || UnitError::Size(s.to_owned());
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    let bytes = num * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// Seconds in a Go-style duration (`1h30m`, `45s`, `24h`); a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<i64, UnitError> {
    let bad = || UnitError::Duration(s.to_owned());
    let t = s.trim();
    if let Ok(n) = t.parse::<i64>() {
        return if n >= 0 { Ok(n) } else { Err(bad()) };
    }
    let mut total = 0.0;
    let mut rest = t;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let num: f64 = rest[..split].parse().map_err(|_| bad())?;
        rest = &rest[split..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += num * factor;
        rest = &rest[unit_len..];
    }
    Ok(total as i64)
}

/// "3 minutes ago", as docker prints ages; "" for an unknown time.
pub fn ago(unix_ns: i64) -> String {
    if unix_ns <= 0 {
        return String::new();
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let secs = ((now - unix_ns) / 1_000_000_000).max(0);
    let (n, unit) = match secs {
        0..60 => return "Less than a minute ago".to_owned(),
        60..3600 => (secs / 60, "minute"),
        3600..86400 => (secs / 3600, "hour"),
        _ => (secs / 86400, "day"),
    };
    if n == 1 {
        format!(
            "About a{} {unit} ago",
            if unit == "hour" { "n" } else { "" }
        )
    } else {
        format!("{n} {unit}s ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_like_docker() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("10GB").unwrap(), 10 << 30);
        assert_eq!(parse_size("1.5m").unwrap(), 3 << 19);
        assert_eq!(parse_size("2 KiB").unwrap(), 2048);
        for bad in ["", "GB", "10XB", "-1", "1e3"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_duration("90").unwrap(), 90);
        assert_eq!(parse_duration("24h").unwrap(), 86400);
        assert_eq!(parse_duration("1h30m").unwrap(), 5400);
        assert_eq!(parse_duration("1.5s").unwrap(), 1);
        for bad in ["", "h", "10d", "-5", "5 m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prints_ages() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        let s = 1_000_000_000;
        assert_eq!(ago(0), "");
        assert_eq!(ago(now - 5 * s), "Less than a minute ago");
        assert_eq!(ago(now - 61 * s), "About a minute ago");
        assert_eq!(ago(now - 3 * 3600 * s), "3 hours ago");
        assert_eq!(ago(now - 3601 * s), "About an hour ago");
    }
}
