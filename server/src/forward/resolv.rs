//! Reading upstream resolvers from a resolv.conf file (resolv.conf(5)): the addresses of its
//! `nameserver` lines, on port 53. Other directives (search, options, domain) do not concern a
//! forwarder and are ignored.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// The DNS port upstreams listen on unless told otherwise.
pub const DNS_PORT: u16 = 53;

/// The `nameserver` addresses of resolv.conf text, in file order, duplicates removed. Lines that
/// do not parse (a typo, a scoped IPv6 address such as `fe80::1%eth0`) are skipped, as the C
/// resolver does.
pub fn nameservers(text: &str) -> Vec<SocketAddr> {
    let mut found = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(Ok(ip)) = words.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        let addr = SocketAddr::new(ip, DNS_PORT);
        if !found.contains(&addr) {
            found.push(addr);
        }
    }
    found
}

/// Reads the `nameserver` addresses of the file at `path`.
pub fn read_nameservers(path: &Path) -> std::io::Result<Vec<SocketAddr>> {
    Ok(nameservers(&std::fs::read_to_string(path)?))
}

/// Parses an upstream given as `ip`, `ip:port`, `[ipv6]` or `[ipv6]:port` (port 53 unless given).
pub fn parse_upstream(text: &str) -> Result<SocketAddr, String> {
    parse_upstream_on(text, DNS_PORT)
}

/// [`parse_upstream`] with `port` when none is given (853 for DNS over TLS).
pub fn parse_upstream_on(text: &str, port: u16) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bare = text
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, port))
        .map_err(|_| {
            format!("{text:?} is not an address: expected ip[:port], e.g. 10.0.0.10:{port}")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_lines_in_order_with_port_53() {
        let text = "# generated\nsearch default.svc.cluster.local svc.cluster.local\n\
                    nameserver 10.0.0.10\n  nameserver\t2001:db8::53  \noptions ndots:5\n\
                    nameserver 10.0.0.10\nnameserver not-an-ip\nnameserver fe80::1%eth0\n\
                    ;nameserver 10.9.9.9\n";
        assert_eq!(
            nameservers(text),
            vec![
                "10.0.0.10:53".parse::<SocketAddr>().unwrap(),
                "[2001:db8::53]:53".parse().unwrap(),
            ]
        );
    }

    #[test]
    fn no_nameserver_lines() {
        assert!(nameservers("search example.com\n").is_empty());
        assert!(nameservers("").is_empty());
    }

    #[test]
    fn upstream_forms() {
        let parse = |s| parse_upstream(s).unwrap().to_string();
        assert_eq!(parse("1.1.1.1"), "1.1.1.1:53");
        assert_eq!(parse("1.1.1.1:5353"), "1.1.1.1:5353");
        assert_eq!(parse("2001:db8::1"), "[2001:db8::1]:53");
        assert_eq!(parse("[2001:db8::1]"), "[2001:db8::1]:53");
        assert_eq!(parse("[2001:db8::1]:54"), "[2001:db8::1]:54");
        assert!(parse_upstream("dns.google").is_err());
        assert!(parse_upstream("1.1.1.1:99999").is_err());
    }
}
