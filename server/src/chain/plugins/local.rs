//! CoreDNS's `local`: answers for the names that must never leave the host (RFC 6761 §6.3):
//! `localhost.` and every name below it, the reverse zones `0.in-addr.arpa.`,
//! `127.in-addr.arpa.` and `255.in-addr.arpa.`, and (unless `localhost_prefix off`) any name
//! whose first label is `localhost`, which older resolvers ask with a search domain appended.
//!
//! | name | answer |
//! | --- | --- |
//! | `localhost.`, below it, `localhost.<anything>` | A `127.0.0.1`, AAAA `::1`; NODATA for other types |
//! | the three reverse zones' apexes | SOA and NS (`localhost.`); NODATA for other types |
//! | `1.0.0.127.in-addr.arpa.` | PTR `localhost.` |
//! | anything else in the reverse zones | NXDOMAIN |
//!
//! Records have TTL 604800; the SOA is `localhost. root.localhost. 1 0 0 0 604800`, owned by
//! the question (the apexes and the names below `localhost.`) or by the reverse zone; the
//! response is not authoritative, as CoreDNS writes it. Names are spelled as the client spelled
//! them. As in CoreDNS, `ip6.arpa.` (`::1`'s reverse name) is not answered here.

use clusterdns_zone::name::is_subdomain;
use clusterdns_zone::wire::{TYPE_A, TYPE_AAAA, TYPE_NS, TYPE_PTR, TYPE_SOA};
use clusterdns_zone::Rcode;

use super::body::{soa_rdata, Body, Owner, Section};

/// The TTL of every record (CoreDNS's).
const TTL: u32 = 604800;
/// `localhost.` in wire format.
const LOCALHOST: &[u8] = b"\x09localhost\x00";
/// The zones answered, in wire format.
const ZONES: [&[u8]; 4] = [
    LOCALHOST,
    b"\x010\x07in-addr\x04arpa\x00",
    b"\x03127\x07in-addr\x04arpa\x00",
    b"\x03255\x07in-addr\x04arpa\x00",
];
/// The one reverse name with a PTR record.
const LOOPBACK_PTR: &[u8] = b"\x011\x010\x010\x03127\x07in-addr\x04arpa\x00";

/// The `local` plugin of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Local {
    /// Whether `localhost.<anything>` is answered as `localhost.` (`localhost_prefix on`, the
    /// default).
    pub localhost_prefix: bool,
}

impl Default for Local {
    fn default() -> Self {
        Local {
            localhost_prefix: true,
        }
    }
}

impl Local {
    /// The answer to `qname` (lowercase wire format) of type `qtype`: its rcode and records,
    /// or `None` when the name is not a local one.
    pub fn answer(&self, qname: &[u8], qtype: u16) -> Option<(Rcode, Body)> {
        let mut body = Body::default();
        if self.counts(qname) {
            loopback(&mut body, qtype, false);
            return Some((Rcode::NoError, body));
        }
        let zone = ZONES.into_iter().find(|z| is_subdomain(qname, z))?;
        let zone_at = qname.len() - zone.len();
        if qname == zone {
            match qtype {
                TYPE_A | TYPE_AAAA => loopback(&mut body, qtype, zone != LOCALHOST),
                TYPE_SOA => body.push(Section::Answer, Owner::Question(0), TYPE_SOA, TTL, &soa()),
                TYPE_NS => body.push(Section::Answer, Owner::Question(0), TYPE_NS, TTL, LOCALHOST),
                _ => nodata(&mut body, 0),
            }
        } else if qname == LOOPBACK_PTR {
            match qtype {
                TYPE_PTR => body.push(
                    Section::Answer,
                    Owner::Question(0),
                    TYPE_PTR,
                    TTL,
                    LOCALHOST,
                ),
                _ => nodata(&mut body, zone_at),
            }
        } else {
            nodata(&mut body, zone_at);
            return Some((Rcode::NxDomain, body));
        }
        Some((Rcode::NoError, body))
    }
}

impl Local {
    /// Whether `qname` is below `localhost.`, or `localhost.<domain>` with the prefix on: the
    /// queries `coredns_local_localhost_requests_total` counts (not `localhost.` itself).
    pub fn counts(&self, qname: &[u8]) -> bool {
        let longer = qname.len() > LOCALHOST.len();
        let below = longer && is_subdomain(qname, LOCALHOST);
        below || (longer && self.localhost_prefix && qname.starts_with(&LOCALHOST[..10]))
    }
}

/// `127.0.0.1` for A, `::1` for AAAA (unless `none`), NODATA for the rest.
fn loopback(body: &mut Body, qtype: u16, none: bool) {
    match qtype {
        TYPE_A if !none => body.push(
            Section::Answer,
            Owner::Question(0),
            TYPE_A,
            TTL,
            &[127, 0, 0, 1],
        ),
        TYPE_AAAA if !none => {
            let one = std::net::Ipv6Addr::LOCALHOST.octets();
            body.push(Section::Answer, Owner::Question(0), TYPE_AAAA, TTL, &one)
        }
        _ => nodata(body, 0),
    }
}

/// The SOA of a negative answer, owned by the question's name from `skip` bytes in.
fn nodata(body: &mut Body, skip: usize) {
    body.push(
        Section::Authority,
        Owner::Question(skip),
        TYPE_SOA,
        TTL,
        &soa(),
    );
}

fn soa() -> Vec<u8> {
    soa_rdata(LOCALHOST, b"\x04root\x09localhost\x00", [1, 0, 0, 0, TTL])
}

#[cfg(test)]
mod tests {
    use super::*;
    use clusterdns_zone::answer::{parse_query, respond_records, Transport};
    use clusterdns_zone::wire::TYPE_MX;
    use clusterdns_zone::Answered;
    use hickory_proto::op::Message;

    /// The response to `name` of `qtype` as `rcode` and `section: owner TTL TYPE data` lines.
    fn asked(local: Local, name: &str, qtype: u16) -> Option<(String, Vec<String>)> {
        let mut packet = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.').filter(|l| !l.is_empty()) {
            packet.push(label.len() as u8);
            packet.extend_from_slice(label.as_bytes());
        }
        packet.push(0);
        packet.extend_from_slice(&qtype.to_be_bytes());
        packet.extend_from_slice(&[0, 1]);
        let query = parse_query(&packet).expect("a query");
        let (rcode, body) = local.answer(query.qname(), qtype)?;
        let mut out = [0u8; 512];
        let udp = Transport::Udp { max_payload: 512 };
        let written = respond_records(
            &query,
            &packet,
            &mut out,
            udp,
            (rcode, false),
            &body.bytes,
            body.counts,
        );
        let Answered::Response { len, .. } = written else {
            panic!("{written:?}");
        };
        let message = Message::from_vec(&out[..len]).expect("decodes");
        assert!(
            !message.metadata.authoritative,
            "CoreDNS's local does not set AA"
        );
        let mut lines = Vec::new();
        for (section, records) in [
            ("answer", &message.answers),
            ("authority", &message.authorities),
        ] {
            for r in records.iter() {
                lines.push(format!(
                    "{section}: {} {} {} {}",
                    r.name,
                    r.ttl,
                    r.record_type(),
                    r.data
                ));
            }
        }
        Some((message.metadata.response_code.to_string(), lines))
    }

    const SOA: &str = "localhost. root.localhost. 1 0 0 0 604800";

    /// The cases of CoreDNS's local_test.go.
    #[test]
    fn coredns_cases() {
        let local = Local::default();
        let cases: &[(&str, u16, &str, &[&str])] = &[
            (
                "localhost.",
                TYPE_A,
                "No Error",
                &["answer: localhost. 604800 A 127.0.0.1"],
            ),
            (
                "localhost.",
                TYPE_AAAA,
                "No Error",
                &["answer: localhost. 604800 AAAA ::1"],
            ),
            (
                "localhost.",
                TYPE_NS,
                "No Error",
                &["answer: localhost. 604800 NS localhost."],
            ),
            ("localhost.", TYPE_SOA, "No Error", &[]),
            ("localhost.", TYPE_MX, "No Error", &[]),
            ("127.in-addr.arpa.", TYPE_A, "No Error", &[]),
            (
                "1.0.0.127.in-addr.arpa.",
                TYPE_PTR,
                "No Error",
                &["answer: 1.0.0.127.in-addr.arpa. 604800 PTR localhost."],
            ),
            ("1.0.0.127.in-addr.arpa.", TYPE_A, "No Error", &[]),
            (
                "2.0.0.127.in-addr.arpa.",
                TYPE_PTR,
                "Non-Existent Domain",
                &[],
            ),
            (
                "a.b.localhost.",
                TYPE_A,
                "No Error",
                &["answer: a.b.localhost. 604800 A 127.0.0.1"],
            ),
            (
                "localhost.example.net.",
                TYPE_A,
                "No Error",
                &["answer: localhost.example.net. 604800 A 127.0.0.1"],
            ),
            (
                "localhost.example.net.",
                TYPE_AAAA,
                "No Error",
                &["answer: localhost.example.net. 604800 AAAA ::1"],
            ),
            (
                "1.0.0.0.in-addr.arpa.",
                TYPE_PTR,
                "Non-Existent Domain",
                &[],
            ),
        ];
        for (name, qtype, rcode, answer) in cases {
            let (got_rcode, lines) = asked(local, name, *qtype).expect(name);
            assert_eq!(&got_rcode, rcode, "{name} {qtype}");
            let answers: Vec<&String> = lines.iter().filter(|l| l.starts_with("answer")).collect();
            let soa = format!("SOA {SOA}");
            match (*qtype, answer.is_empty()) {
                (TYPE_SOA, _) => assert!(
                    answers.len() == 1 && answers[0].ends_with(&soa),
                    "{lines:?}"
                ),
                (_, false) => assert_eq!(answers, answer.iter().collect::<Vec<_>>(), "{name}"),
                (_, true) => assert!(
                    lines.len() == 1
                        && lines[0].starts_with("authority")
                        && lines[0].ends_with(&soa),
                    "{name}: {lines:?}"
                ),
            }
        }
        for outside in [
            "example.org.",
            "localhostx.",
            "ip6.arpa.",
            "1.0.0.127.in-addr.arpa.x.",
        ] {
            assert!(asked(local, outside, TYPE_A).is_none(), "{outside}");
        }
    }

    #[test]
    fn owners_and_the_prefix_option() {
        let local = Local::default();
        // The SOA of an NXDOMAIN is the reverse zone's, as the client spelled it.
        let (_, lines) = asked(local, "9.0.0.127.IN-ADDR.arpa.", TYPE_PTR).expect("answered");
        assert_eq!(
            lines,
            [format!("authority: 127.IN-ADDR.arpa. 604800 SOA {SOA}")]
        );
        // Below localhost., a NODATA's SOA is owned by the question.
        let (_, lines) = asked(local, "x.LocalHost.", TYPE_MX).expect("answered");
        assert_eq!(lines, [format!("authority: x.LocalHost. 604800 SOA {SOA}")]);
        let (_, lines) = asked(local, "Localhost.", TYPE_A).expect("answered");
        assert_eq!(lines, ["answer: Localhost. 604800 A 127.0.0.1"]);
        // `localhost_prefix off`: only names below localhost. are special (RFC 6761).
        let strict = Local {
            localhost_prefix: false,
        };
        assert!(asked(strict, "localhost.example.net.", TYPE_A).is_none());
        assert!(asked(strict, "a.localhost.", TYPE_A).is_some());
    }
}
