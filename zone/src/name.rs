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

/// Longest dashed address label: an IPv6 address in text (45 bytes) and two added zeros.
pub const MAX_DASHED_LEN: usize = 48;

/// The endpoint label for an address without a hostname: `.` and `:` become `-`
/// (`10-0-0-1`, `fd00--1`), and a label that would start or end with `-` (an IPv6 address
/// starting or ending in `::`) gets a `0` there (`0--1`, `2001-db8--0`), as CoreDNS spells it.
pub fn dashed(ip: IpAddr) -> String {
    let mut out = [0u8; MAX_DASHED_LEN];
    let len = write_dashed(ip, &mut out);
    String::from_utf8_lossy(&out[..len]).into_owned()
}

/// Writes [`dashed`]`(ip)` into `out` without allocating; returns its length.
pub fn write_dashed(ip: IpAddr, out: &mut [u8; MAX_DASHED_LEN]) -> usize {
    use std::io::Write as _;
    if let IpAddr::V4(v4) = ip {
        // The common case, on the answer path: four decimal octets without the formatter.
        let mut at = 0;
        for (i, octet) in v4.octets().into_iter().enumerate() {
            if i > 0 {
                out[at] = b'-';
                at += 1;
            }
            if octet >= 100 {
                out[at] = b'0' + octet / 100;
                at += 1;
            }
            if octet >= 10 {
                out[at] = b'0' + octet / 10 % 10;
                at += 1;
            }
            out[at] = b'0' + octet % 10;
            at += 1;
        }
        return at;
    }
    let mut text = [0u8; MAX_DASHED_LEN];
    let mut cursor = &mut text[..];
    // An address in text is at most 45 bytes, so this always fits.
    let _ = write!(cursor, "{ip}");
    let len = MAX_DASHED_LEN - cursor.len();
    let mut at = 0;
    if text[0] == b':' {
        out[at] = b'0';
        at += 1;
    }
    for &b in &text[..len] {
        out[at] = if b == b'.' || b == b':' { b'-' } else { b };
        at += 1;
    }
    if len > 0 && text[len - 1] == b':' {
        out[at] = b'0';
        at += 1;
    }
    at
}

/// Parses a dashed address label: four dash-separated decimal octets, else an IPv6 address with
/// `-` for `:` (CoreDNS's rule: exactly three dashes and no `--` means IPv4). No allocation.
pub fn parse_dashed_ip(label: &[u8]) -> Option<IpAddr> {
    if label.len() > 45 {
        return None;
    }
    let dashes = label.iter().filter(|&&b| b == b'-').count();
    let doubled = label.windows(2).any(|w| w == b"--");
    let mut text = [0u8; 45];
    let separator = if dashes == 3 && !doubled { b'.' } else { b':' };
    for (dst, &src) in text.iter_mut().zip(label) {
        *dst = if src == b'-' { separator } else { src };
    }
    let text = std::str::from_utf8(&text[..label.len()]).ok()?;
    text.parse().ok()
}

/// The address a lowercase reverse name stands for: exactly four decimal labels (no leading
/// zeros) under `in-addr.arpa.`, or exactly 32 nibble labels under `ip6.arpa.`; `None` for any
/// other name, so each address has one reverse name.
pub fn parse_reverse(name: &[u8]) -> Option<IpAddr> {
    const V4: &[u8] = b"\x07in-addr\x04arpa\x00";
    const V6: &[u8] = b"\x03ip6\x04arpa\x00";
    if let Some(labels) = name.strip_suffix(V4) {
        let mut octets = [0u8; 4];
        let mut parts = self::labels(labels);
        for slot in octets.iter_mut().rev() {
            let label = parts.next()?;
            if label.is_empty() || label.len() > 3 || (label.len() > 1 && label[0] == b'0') {
                return None;
            }
            let mut value = 0u16;
            for &digit in label {
                if !digit.is_ascii_digit() {
                    return None;
                }
                value = value * 10 + u16::from(digit - b'0');
            }
            *slot = u8::try_from(value).ok()?;
        }
        if parts.next().is_some()
            || labels.len() != 4 + octets.iter().map(|o| decimal_len(*o)).sum::<usize>()
        {
            return None;
        }
        return Some(IpAddr::from(octets));
    }
    let labels = name.strip_suffix(V6)?;
    if labels.len() != 64 {
        return None;
    }
    let mut octets = [0u8; 16];
    for (i, pair) in labels.chunks_exact(2).enumerate() {
        if pair[0] != 1 {
            return None;
        }
        let nibble = (pair[1] as char).to_digit(16)? as u8;
        let byte = 15 - i / 2;
        octets[byte] |= if i % 2 == 0 { nibble } else { nibble << 4 };
    }
    Some(IpAddr::from(octets))
}

/// Digits of `octet` in decimal.
fn decimal_len(octet: u8) -> usize {
    match octet {
        0..=9 => 1,
        10..=99 => 2,
        _ => 3,
    }
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

    #[test]
    fn dashes_addresses_that_start_or_end_with_double_colons() {
        let trailing: IpAddr = "2001:db8:3333:4444:5555:6666::".parse().unwrap();
        assert_eq!(dashed(trailing), "2001-db8-3333-4444-5555-6666--0");
        let leading: IpAddr = "::1".parse().unwrap();
        assert_eq!(dashed(leading), "0--1");
        for ip in [trailing, leading] {
            assert_eq!(parse_dashed_ip(dashed(ip).as_bytes()), Some(ip));
        }
    }

    #[test]
    fn parses_reverse_names_of_one_spelling_only() {
        for text in ["10.96.0.1", "fd00::1", "::", "255.255.255.255"] {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(
                parse_reverse(reverse_name(ip).as_bytes()),
                Some(ip),
                "{text}"
            );
        }
        for bad in [
            "01.0.96.10.in-addr.arpa",
            "0.96.10.in-addr.arpa",
            "256.0.96.10.in-addr.arpa",
            "1.1.0.96.10.in-addr.arpa",
            "1.ip6.arpa",
        ] {
            let name = WireName::from_dotted(bad).unwrap();
            assert_eq!(parse_reverse(name.as_bytes()), None, "{bad}");
        }
    }
}
