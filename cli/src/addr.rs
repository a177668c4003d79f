//! Daemon addresses: `unix://PATH` and `tcp://HOST:PORT`, as `buildctl --addr`
//! takes them.

use std::fmt;
use std::path::PathBuf;

/// Where `buildd` listens when run as root with no `--addr`.
pub const DEFAULT_ADDR: &str = "unix:///run/buildd/buildd.sock";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    Unix(PathBuf),
    Tcp { host: String, port: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("address {0:?}: want unix://PATH or tcp://HOST:PORT")]
    Scheme(String),
    #[error("address {0:?}: empty socket path")]
    EmptyPath(String),
    #[error("address {0:?}: want tcp://HOST:PORT with a port number")]
    Port(String),
}

impl std::str::FromStr for Addr {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, AddrError> {
        if let Some(path) = s.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(AddrError::EmptyPath(s.to_owned()));
            }
            return Ok(Addr::Unix(PathBuf::from(path)));
        }
        let Some(rest) = s.strip_prefix("tcp://") else {
            return Err(AddrError::Scheme(s.to_owned()));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| AddrError::Port(s.to_owned()))?;
        let port = port.parse().map_err(|_| AddrError::Port(s.to_owned()))?;
        // An IPv6 literal comes bracketed, as in a URL.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() || host.contains(['/', '[', ']']) {
            return Err(AddrError::Port(s.to_owned()));
        }
        Ok(Addr::Tcp {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Unix(p) => write!(f, "unix://{}", p.display()),
            Addr::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Addr::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unix_and_tcp() {
        assert_eq!(
            "unix:///run/buildd/buildd.sock".parse::<Addr>().unwrap(),
            Addr::Unix("/run/buildd/buildd.sock".into())
        );
        assert_eq!(
            "unix://rel.sock".parse::<Addr>().unwrap(),
            Addr::Unix("rel.sock".into())
        );
        assert_eq!(
            "tcp://127.0.0.1:1234".parse::<Addr>().unwrap(),
            Addr::Tcp {
                host: "127.0.0.1".into(),
                port: 1234
            }
        );
        assert_eq!(
            "tcp://[::1]:80".parse::<Addr>().unwrap(),
            Addr::Tcp {
                host: "::1".into(),
                port: 80
            }
        );
        assert_eq!(
            "tcp://[::1]:80".parse::<Addr>().unwrap().to_string(),
            "tcp://[::1]:80"
        );
        assert_eq!(
            DEFAULT_ADDR.parse::<Addr>().unwrap().to_string(),
            DEFAULT_ADDR
        );
    }

    #[test]
    fn rejects_malformed_addresses() {
        for (s, want) in [
            (
                "/run/buildd.sock",
                AddrError::Scheme("/run/buildd.sock".into()),
            ),
            ("http://x:1", AddrError::Scheme("http://x:1".into())),
            ("unix://", AddrError::EmptyPath("unix://".into())),
            ("tcp://host", AddrError::Port("tcp://host".into())),
            ("tcp://host:http", AddrError::Port("tcp://host:http".into())),
            ("tcp://:80", AddrError::Port("tcp://:80".into())),
            (
                "tcp://host:99999",
                AddrError::Port("tcp://host:99999".into()),
            ),
        ] {
            assert_eq!(s.parse::<Addr>().unwrap_err(), want, "{s}");
        }
    }
}
