//! Domain names in wire format: building lowercase owner names, reverse (PTR) names and the
//! dashed endpoint labels, and walking the labels of a received name.

use std::fmt::Write as _;
use std::net::IpAddr;

/// Longest name in wire format (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;
/// Longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// A lowercase domain name in wire format (length-prefixed labels, ending with the root label).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WireName(Vec<u8>);

impl WireName {
    /// The root name.
    pub fn root() -> Self {
        WireName(vec![0])
    }

    /// Parses a dotted name (a trailing dot is optional), lowercasing it; `None` when a label is
    /// empty or too long, or the name is too long.
    pub fn from_dotted(name: &str) -> Option<Self> {
        let trimmed = name.strip_suffix('.').unwrap_or(name);
        let mut out = Vec::with_capacity(trimmed.len() + 2);
        if !trimmed.is_empty() {
            for label in trimmed.split('.') {
                if label.is_empty() || label.len() > MAX_LABEL_LEN {
                    return None;
                }
                out.push(label.len() as u8);
                out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
            }
        }
        out.push(0);
        (out.len() <= MAX_NAME_LEN).then_some(WireName(out))
    }

    /// Wraps uncompressed wire-format bytes, lowercasing them; `None` when they are not one
    /// well-formed name.
    pub fn from_wire(wire: &[u8]) -> Option<Self> {
        let mut pos = 0usize;
        loop {
            let len = usize::from(*wire.get(pos)?);
            if len == 0 {
                break;
            }
            if len > MAX_LABEL_LEN {
                return None;
            }
            pos += 1 + len;
        }
        if pos + 1 != wire.len() || wire.len() > MAX_NAME_LEN {
            return None;
        }
        Some(WireName(
            wire.iter().map(|b| b.to_ascii_lowercase()).collect(),
        ))
    }

    /// This name with `label` prepended; `None` when the label or the result is too long.
    pub fn child(&self, label: &str) -> Option<Self> {
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return None;
        }
        let mut out = Vec::with_capacity(self.0.len() + label.len() + 1);
        out.push(label.len() as u8);
        out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        out.extend_from_slice(&self.0);
        (out.len() <= MAX_NAME_LEN).then_some(WireName(out))
    }

    /// The wire bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The name in presentation format with a trailing dot (for logs and tests).
    pub fn to_dotted(&self) -> String {
        dotted(&self.0)
    }
}

/// Whether the wire name `name` is `zone` or below it (label-aligned; both lowercase).
pub fn is_subdomain(name: &[u8], zone: &[u8]) -> bool {
    let mut pos = 0usize;
    while name.len().saturating_sub(pos) > zone.len() {
        match name[pos] {
            0 => return false,
            len => pos += 1 + usize::from(len),
        }
    }
    name.get(pos..) == Some(zone)
}

/// Presentation format of wire-format name bytes (no compression pointers), with a trailing dot.
pub fn dotted(wire: &[u8]) -> String {
    let mut out = String::new();
    for label in labels(wire) {
        out.push_str(&String::from_utf8_lossy(label));
        out.push('.');
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

/// Iterates over the labels of an uncompressed wire-format name, stopping at the root label or
/// at the end of the bytes.
pub fn labels(wire: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let len = usize::from(*wire.get(pos)?);
        if len == 0 {
            return None;
        }
        let label = wire.get(pos + 1..pos + 1 + len)?;
        pos += 1 + len;
        Some(label)
    })
}

/// The endpoint label for an address without a hostname: `.` and `:` become `-`
/// (`10-0-0-1`, `fd00--1`), as CoreDNS spells it.
pub fn dashed(ip: IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

/// The reverse name of an address: `d.c.b.a.in-addr.arpa.` or the nibble `ip6.arpa.` form.
pub fn reverse_name(ip: IpAddr) -> WireName {
    let mut text = String::with_capacity(72);
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            let _ = write!(text, "{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0]);
        }
        IpAddr::V6(v6) => {
            for byte in v6.octets().iter().rev() {
                let _ = write!(text, "{:x}.{:x}.", byte & 0x0f, byte >> 4);
            }
            text.push_str("ip6.arpa");
        }
    }
    // Every label above is short and the whole name is at most 73 bytes.
    WireName::from_dotted(&text).unwrap_or_else(WireName::root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_lowercase_wire_names() {
        let name = WireName::from_dotted("Kubernetes.Default.svc.cluster.local.").unwrap();
        assert_eq!(name.to_dotted(), "kubernetes.default.svc.cluster.local.");
        assert_eq!(name.as_bytes()[0], 10);
        assert_eq!(WireName::from_dotted(".").unwrap(), WireName::root());
        assert!(WireName::from_dotted("a..b").is_none());
        assert!(WireName::from_dotted(&"a".repeat(64)).is_none());
    }

    #[test]
    fn spells_reverse_and_dashed_names() {
        let v4: IpAddr = "10.96.0.1".parse().unwrap();
        assert_eq!(reverse_name(v4).to_dotted(), "1.0.96.10.in-addr.arpa.");
        let v6: IpAddr = "fd00::1".parse().unwrap();
        assert_eq!(
            reverse_name(v6).to_dotted(),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa."
        );
        assert_eq!(dashed(v4), "10-96-0-1");
        assert_eq!(dashed(v6), "fd00--1");
    }
}
