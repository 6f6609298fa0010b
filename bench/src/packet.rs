//! DNS query packets and names built by hand, for the benches and for checking generated query
//! files against a snapshot.

use std::fmt::Write as _;
use std::net::IpAddr;

use clusterdns_zone::wire::{CLASS_IN, FLAG_RD, TYPE_OPT};
use clusterdns_zone::WireName;

/// A standard query for `name` (dotted, trailing dot optional) and `qtype`, with RD set and an
/// OPT record advertising `edns_payload` when given; `None` when `name` is not a valid name.
pub fn query_packet(id: u16, name: &str, qtype: u16, edns_payload: Option<u16>) -> Option<Vec<u8>> {
    let name = WireName::from_dotted(name)?;
    let mut packet = Vec::with_capacity(12 + name.as_bytes().len() + 4 + 11);
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&FLAG_RD.to_be_bytes());
    let additional = u16::from(edns_payload.is_some());
    for count in [1u16, 0, 0, additional] {
        packet.extend_from_slice(&count.to_be_bytes());
    }
    packet.extend_from_slice(name.as_bytes());
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&CLASS_IN.to_be_bytes());
    if let Some(payload) = edns_payload {
        packet.push(0); // root owner
        packet.extend_from_slice(&TYPE_OPT.to_be_bytes());
        packet.extend_from_slice(&payload.to_be_bytes());
        packet.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // extended rcode, version, flags, rdlen
    }
    Some(packet)
}

/// The rcode (low four bits) of a response header; `None` when shorter than a header.
pub fn response_rcode(response: &[u8]) -> Option<u8> {
    Some(response.get(3)? & 0x0F)
}

/// The answer count of a response header; `None` when shorter than a header.
pub fn response_answers(response: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*response.get(6)?, *response.get(7)?]))
}

/// The reverse (PTR) name of an address, dotted without trailing dot: `d.c.b.a.in-addr.arpa`
/// or the nibble form under `ip6.arpa`.
pub fn reverse_dotted(ip: IpAddr) -> String {
    let mut out = String::with_capacity(72);
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            let _ = write!(out, "{d}.{c}.{b}.{a}.in-addr.arpa");
        }
        IpAddr::V6(v6) => {
            for byte in v6.octets().iter().rev() {
                let _ = write!(out, "{:x}.{:x}.", byte & 0x0F, byte >> 4);
            }
            out.push_str("ip6.arpa");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_layout() {
        let packet = query_packet(0x1234, "a.b", 1, None).expect("valid name");
        assert_eq!(
            packet,
            [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 1, b'b', 0, 0, 1, 0, 1]
        );
        let with_edns = query_packet(1, "a.b.", 28, Some(1232)).expect("valid name");
        assert_eq!(with_edns.len(), packet.len() + 11);
        assert_eq!(with_edns[11], 1);
        assert_eq!(
            &with_edns[with_edns.len() - 11..][..5],
            &[0, 0, 41, 0x04, 0xD0]
        );
        assert!(query_packet(1, "a..b", 1, None).is_none());
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_dotted("10.96.1.2".parse().expect("ip")),
            "2.1.96.10.in-addr.arpa"
        );
        let v6 = reverse_dotted("fd00:10:96::1:2".parse().expect("ip"));
        assert!(v6.starts_with("2.0.0.0.1.0.0.0.0.0.0.0"), "{v6}");
        assert!(v6.ends_with("0.0.d.f.ip6.arpa"), "{v6}");
        assert_eq!(v6.split('.').count(), 34);
    }
}
