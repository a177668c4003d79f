//! The `/etc/hosts` and `/etc/resolv.conf` a container sees. They are generated per run
//! and bind-mounted read-only, so they never end up in the layer.

use std::fmt::Write;
use std::net::IpAddr;

use crate::Network;
use crate::netns::SLIRP_DNS;

/// Public resolvers used when the host has only loopback ones, as Docker does.
const FALLBACK_DNS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

pub fn hosts(hostname: &str, extra: &[(String, IpAddr)]) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    let _ = writeln!(s, "127.0.0.1\t{hostname}");
    for (name, ip) in extra {
        let _ = writeln!(s, "{ip}\t{name}");
    }
    s
}

/// `host` is the content of the host's resolv.conf. With the host's network it is used
/// as is; in a private namespace loopback nameservers cannot be reached and are dropped.
pub fn resolv_conf(host: &str, network: Network, slirp: bool) -> String {
    match network {
        Network::Host => return host.to_owned(),
        Network::Default if slirp => {
            let mut s = format!("nameserver {SLIRP_DNS}\n");
            for line in host
                .lines()
                .filter(|l| is_option(l, "search") || is_option(l, "options"))
            {
                s.push_str(line);
                s.push('\n');
            }
            return s;
        }
        Network::Default | Network::None => {}
    }
    let mut s = String::new();
    let mut servers = 0;
    for line in host.lines() {
        if is_option(line, "nameserver") {
            let addr = line.split_whitespace().nth(1).unwrap_or_default();
            if addr.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
                continue;
            }
            servers += 1;
        }
        s.push_str(line);
        s.push('\n');
    }
    if servers == 0 {
        for ns in FALLBACK_DNS {
            let _ = writeln!(s, "nameserver {ns}");
        }
    }
    s
}

fn is_option(line: &str, key: &str) -> bool {
    line.split_whitespace().next() == Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_nameservers_are_replaced_in_private_namespaces() {
        let host = "nameserver 127.0.0.53\nsearch example.org\n";
        let got = resolv_conf(host, Network::None, false);
        assert_eq!(
            got,
            "search example.org\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        assert_eq!(resolv_conf(host, Network::Host, false), host);
        let slirp = resolv_conf(host, Network::Default, true);
        assert_eq!(slirp, "nameserver 10.0.2.3\nsearch example.org\n");
    }

    #[test]
    fn other_nameservers_are_kept() {
        let host = "nameserver 192.0.2.1\n";
        assert_eq!(resolv_conf(host, Network::None, false), host);
    }

    #[test]
    fn hosts_name_the_container_and_extra_entries() {
        let h = hosts("box", &[("db".into(), "192.0.2.7".parse().unwrap())]);
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.contains("127.0.0.1\tbox\n"));
        assert!(h.ends_with("192.0.2.7\tdb\n"));
    }
}
