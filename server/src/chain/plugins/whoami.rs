//! CoreDNS's `whoami`: every query that reaches it is answered, whatever its name and type,
//! with an empty answer section and, in the additional section, the client's address and how
//! it came: an A record (IPv4 client) or AAAA record (IPv6) owned by the question name, and an
//! SRV record `_udp.<name>` or `_tcp.<name>` whose port is the client's source port and whose
//! target is the root. Both have TTL 0 and the question's class; the owner is spelled as the
//! client spelled the question (CoreDNS's tests check case is kept). An IPv4 client reached
//! over an IPv6 socket (a mapped address) counts as IPv4, as CoreDNS's `Family` reads it.
//!
//! The records are returned as wire bytes that point at the question (offset 12, where every
//! response of ours echoes it), ready for the response writer.

use std::net::{IpAddr, SocketAddr};

use clusterdns_zone::wire::{HEADER_LEN, TYPE_A, TYPE_AAAA, TYPE_SRV};

/// A compression pointer to the question name, which every response carries at offset 12.
const QUESTION: [u8; 2] = [0xC0, HEADER_LEN as u8];

/// The additional records of `whoami`'s answer to a question of class `qclass` from `client`
/// over TCP (`tcp`) or UDP, as wire bytes, and their section counts (answer, authority,
/// additional).
pub fn records(qclass: u16, client: SocketAddr, tcp: bool) -> (Vec<u8>, [u16; 3]) {
    let mut out = Vec::with_capacity(2 * 12 + 16 + 5 + 7);
    out.extend_from_slice(&QUESTION);
    let address = client.ip().to_canonical();
    let rtype = match address {
        IpAddr::V4(_) => TYPE_A,
        IpAddr::V6(_) => TYPE_AAAA,
    };
    fixed(&mut out, rtype, qclass);
    match address {
        IpAddr::V4(v4) => rdata(&mut out, &v4.octets()),
        IpAddr::V6(v6) => rdata(&mut out, &v6.octets()),
    }
    let proto: &[u8; 5] = if tcp { b"\x04_tcp" } else { b"\x04_udp" };
    out.extend_from_slice(proto);
    out.extend_from_slice(&QUESTION);
    fixed(&mut out, TYPE_SRV, qclass);
    // Priority 0, weight 0, the port, the root as target.
    let [high, low] = client.port().to_be_bytes();
    rdata(&mut out, &[0, 0, 0, 0, high, low, 0]);
    (out, [0, 0, 2])
}

/// Type, class and TTL 0.
fn fixed(out: &mut Vec<u8>, rtype: u16, class: u16) {
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&class.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
}

/// RDLENGTH and RDATA.
fn rdata(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clusterdns_zone::answer::{parse_query, respond_records, Transport};
    use clusterdns_zone::{Answered, Rcode};
    use hickory_proto::op::Message;
    use hickory_proto::rr::RData;

    /// The response `records` makes for `name` A asked by `client`, decoded.
    fn answer(name: &str, client: &str, tcp: bool) -> Message {
        let mut packet = vec![0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name
            .trim_end_matches('.')
            .split('.')
            .filter(|l| !l.is_empty())
        {
            packet.push(label.len() as u8);
            packet.extend_from_slice(label.as_bytes());
        }
        packet.extend_from_slice(&[0, 0, 1, 0, 1]);
        let query = parse_query(&packet).expect("a query");
        let client: SocketAddr = client.parse().expect("an address");
        let (bytes, counts) = records(query.qclass, client, tcp);
        let mut out = [0u8; 512];
        let transport = match tcp {
            true => Transport::Tcp,
            false => Transport::Udp { max_payload: 4096 },
        };
        let written = respond_records(
            &query,
            &packet,
            &mut out,
            transport,
            (Rcode::NoError, true),
            &bytes,
            counts,
        );
        let Answered::Response { len, .. } = written else {
            panic!("no response: {written:?}");
        };
        Message::from_vec(&out[..len]).expect("a valid message")
    }

    /// The additional section as `owner TTL TYPE data` lines.
    fn additional(message: &Message) -> Vec<String> {
        (message.additionals.iter())
            .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), data(&r.data)))
            .collect()
    }

    fn data(rdata: &RData) -> String {
        match rdata {
            RData::SRV(srv) => format!(
                "{} {} {} {}",
                srv.priority, srv.weight, srv.port, srv.target
            ),
            other => other.to_string(),
        }
    }

    // The README's example: `example.org A` from 10.240.0.1 over UDP.
    #[test]
    fn readme_example() {
        let message = answer("example.org", "10.240.0.1:40212", false);
        assert!(message.answers.is_empty(), "the answer section is empty");
        assert!(message.metadata.authoritative);
        assert_eq!(
            additional(&message),
            [
                "example.org. 0 A 10.240.0.1",
                "_udp.example.org. 0 SRV 0 0 40212 .",
            ]
        );
    }

    // CoreDNS's whoami_test.go: the owners, case kept, from IPv4 and IPv6 clients.
    #[test]
    fn owners_keep_the_clients_spelling() {
        for (name, client, rtype) in [
            ("example.org", "10.0.0.1:53", "A"),
            ("Example.ORG", "10.0.0.1:53", "A"),
            ("example.org", "[2003::1]:53", "AAAA"),
            ("Example.ORG", "[2003::1]:53", "AAAA"),
        ] {
            let message = answer(name, client, false);
            let owners: Vec<String> = (message.additionals.iter())
                .map(|r| r.name.to_string())
                .collect();
            assert_eq!(owners, [format!("{name}."), format!("_udp.{name}.")]);
            assert_eq!(message.additionals[0].record_type().to_string(), rtype);
        }
    }

    #[test]
    fn tcp_and_mapped_addresses_and_the_root() {
        let message = answer("example.org", "[2001:db8::7]:5353", true);
        assert_eq!(
            additional(&message),
            [
                "example.org. 0 AAAA 2001:db8::7",
                "_tcp.example.org. 0 SRV 0 0 5353 .",
            ]
        );
        let mapped = answer("example.org", "[::ffff:192.0.2.1]:1000", false);
        assert_eq!(additional(&mapped)[0], "example.org. 0 A 192.0.2.1");
        // The root's SRV owner is `_udp.`, as CoreDNS spells it.
        let root = answer(".", "127.0.0.1:1000", false);
        assert_eq!(
            additional(&root),
            [". 0 A 127.0.0.1", "_udp. 0 SRV 0 0 1000 ."]
        );
    }
}
