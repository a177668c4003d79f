//! Checks on paths a client sends: they name entries below a directory the daemon
//! owns, so they must not be able to name anything else.

/// Longest path accepted, as Linux's PATH_MAX.
pub const MAX_PATH: usize = 4096;
/// Longest name of one component, as Linux's NAME_MAX.
pub const MAX_NAME: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("invalid path {path:?}: {reason}")]
    Invalid { path: String, reason: &'static str },
}

/// A relative `/`-separated path with no empty, `.` or `..` component, no NUL and
/// bounded lengths.
pub fn validate(path: &str) -> Result<(), PathError> {
    let bad = |reason| {
        Err(PathError::Invalid {
            // Quoting a huge path back would make a huge error.
            path: path.chars().take(200).collect(),
            reason,
        })
    };
    if path.is_empty() {
        return bad("empty");
    }
    if path.len() > MAX_PATH {
        return bad("longer than 4096 bytes");
    }
    if path.starts_with('/') {
        return bad("absolute");
    }
    if path.contains('\0') {
        return bad("contains NUL");
    }
    for c in path.split('/') {
        match c {
            "" => return bad("empty component"),
            "." => return bad("\".\" component"),
            ".." => return bad("\"..\" component"),
            c if c.len() > MAX_NAME => return bad("component longer than 255 bytes"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_relative_paths() {
        for p in ["a", "a/b c", "dir/.hidden", "ü/\n", "a..b/..c"] {
            validate(p).unwrap();
        }
    }

    #[test]
    fn refuses_what_could_escape_or_confuse() {
        let long = "a".repeat(256);
        let huge = vec!["a"; 3000].join("/");
        for p in [
            "",
            "/etc",
            "../x",
            "a/../../x",
            "a/..",
            ".",
            "a/./b",
            "a//b",
            "a/",
            "a\0b",
            &long,
            &huge,
        ] {
            assert!(validate(p).is_err(), "{p:?} accepted");
        }
    }
}
