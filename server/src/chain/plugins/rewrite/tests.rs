//! Table tests of the `rewrite` rules, one table per rule kind, built from the examples of
//! CoreDNS's plugin/rewrite/README.md (and, where the README gives no answer to check, the cases
//! of its rewrite_test.go and cname_target_test.go). Rules are written as a Corefile says them
//! and read by the real directive parser; each query goes through [`rewrite_request`], a
//! response to the question as the rules left it is made with hickory, and that response is
//! put back with [`Applied::restore_response`], as the chain does.

use std::net::SocketAddr;
use std::path::Path;

use clusterdns_testkit::dns::{Query as TestQuery, Rr};
use clusterdns_zone::{parse_query, Query};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query as Question, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, PTR, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::*;
use crate::chain::plugins::message::append_answers;
use crate::config::corefile::{parse, plan};

/// The client of CoreDNS's `test.ResponseWriter`, which its README-derived tests use.
const CLIENT: &str = "10.240.0.1:40212";
/// The IPv6 client of its `test.ResponseWriter6`.
const CLIENT6: &str = "[fe80::42:ff:feca:4c65]:40212";
/// The server address of both.
const SERVER: &str = "127.0.0.1:53";

/// The rules of a server block holding `lines`, read as the Corefile parser reads them.
fn rules(lines: &str) -> Vec<Rule> {
    let text = format!(".:1053 {{\n{lines}\n}}\n");
    let corefile =
        parse(Path::new("Corefile"), &text, &|_| None).unwrap_or_else(|e| panic!("{lines}: {e}"));
    let plan = plan(&corefile).unwrap_or_else(|e| panic!("{lines}: {e}"));
    plan.ports[0].blocks[0].rewrite.clone()
}

/// A client's query: its packet, parsed, and the options of its OPT record.
struct Asked {
    packet: Vec<u8>,
    query: Query,
    options: Vec<u8>,
    client: SocketAddr,
}

/// `name` and `qtype` asked by [`CLIENT`] over UDP, with EDNS.
fn asked(name: &str, qtype: u16) -> Asked {
    asked_with(name, qtype, 1, &[], CLIENT)
}

/// A query of `class` carrying the EDNS0 `options` (code, data), from `client`.
fn asked_with(name: &str, qtype: u16, class: u16, options: &[(u16, &[u8])], client: &str) -> Asked {
    let mut packet = TestQuery::new(name, qtype)
        .id(0xBEEF)
        .class(class)
        .edns(Some(1232))
        .build();
    let mut rdata = Vec::new();
    for (code, data) in options {
        rdata.extend_from_slice(&code.to_be_bytes());
        rdata.extend_from_slice(&(data.len() as u16).to_be_bytes());
        rdata.extend_from_slice(data);
    }
    let rdlen = packet.len() - 2;
    packet[rdlen..].copy_from_slice(&(rdata.len() as u16).to_be_bytes());
    packet.extend_from_slice(&rdata);
    let query = parse_query(&packet).unwrap();
    Asked {
        packet,
        query,
        options: rdata,
        client: client.parse().unwrap(),
    }
}

/// What `rules` do to `asked`.
fn apply(rules: &[Rule], asked: &Asked) -> RequestRewrite {
    let name_end = asked.query.question_end() - 4;
    let request = Request {
        qname: asked.query.qname(),
        spelled: &asked.packet[12..name_end],
        qtype: asked.query.qtype,
        qclass: asked.query.qclass,
        options: &asked.options,
        client: asked.client,
        server: SERVER.parse().unwrap(),
        tcp: false,
    };
    rewrite_request(rules, &request)
}

/// The rules' outcome in short: the question sent on (`name type class`), `unchanged`, or
/// `invalid NAME`.
fn outcome(rules: &[Rule], asked: &Asked) -> String {
    match apply(rules, asked) {
        RequestRewrite::Unchanged => "unchanged".into(),
        RequestRewrite::Invalid(name) => format!("invalid {name}"),
        RequestRewrite::Rewritten(applied) => {
            let name = applied
                .qname()
                .map_or_else(|| asked.query.qname().to_vec(), |n| n.as_bytes().to_vec());
            format!(
                "{} {} {}",
                WireName::from_wire(&name).unwrap().to_dotted(),
                applied.qtype(),
                applied.qclass()
            )
        }
    }
}

fn name(dotted: &str) -> Name {
    Name::from_ascii(dotted).unwrap()
}

/// A record from `OWNER TTL TYPE DATA...` (A, AAAA, CNAME, NS, PTR, MX, SRV, SOA).
fn rr(text: &str) -> Record {
    let words: Vec<&str> = text.split_whitespace().collect();
    let [owner, ttl, rtype, data @ ..] = words.as_slice() else {
        panic!("{text}")
    };
    let data = match (*rtype, data) {
        ("A", [ip]) => RData::A(A(ip.parse().unwrap())),
        ("AAAA", [ip]) => RData::AAAA(AAAA(ip.parse().unwrap())),
        ("CNAME", [target]) => RData::CNAME(CNAME(name(target))),
        ("NS", [target]) => RData::NS(NS(name(target))),
        ("PTR", [target]) => RData::PTR(PTR(name(target))),
        ("MX", [pref, target]) => RData::MX(MX::new(pref.parse().unwrap(), name(target))),
        ("SRV", [p, w, port, target]) => RData::SRV(SRV::new(
            p.parse().unwrap(),
            w.parse().unwrap(),
            port.parse().unwrap(),
            name(target),
        )),
        ("SOA", [m, r, n @ ..]) => {
            let n: Vec<u32> = n.iter().map(|v| v.parse().unwrap()).collect();
            RData::SOA(SOA::new(
                name(m),
                name(r),
                n[0],
                n[1] as i32,
                n[2] as i32,
                n[3] as i32,
                n[4],
            ))
        }
        _ => panic!("{text}"),
    };
    Record::from_rdata(name(owner), ttl.parse().unwrap(), data)
}

/// A response to `question` with `rcode` and the records of each section (texts for [`rr`]),
/// and an OPT record.
fn response(question: (&str, u16), rcode: u16, sections: [&[&str]; 3]) -> Vec<u8> {
    let mut message = Message::new(0x1234, MessageType::Response, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.metadata.recursion_available = true;
    message.metadata.response_code = ResponseCode::from(0, rcode as u8);
    message.add_query(Question::query(
        name(question.0),
        RecordType::from(question.1),
    ));
    let [answers, authority, additional] = sections;
    message.add_answers(answers.iter().map(|r| rr(r)));
    message.add_authorities(authority.iter().map(|r| rr(r)));
    message.add_additionals(additional.iter().map(|r| rr(r)));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    message.set_edns(edns);
    message.to_vec().unwrap()
}

/// The records of a section as `OWNER TTL TYPE DATA`.
fn texts(records: &[Record]) -> Vec<String> {
    (records.iter().map(Rr::of))
        .map(|r| format!("{} {} {}", r.name, r.ttl, r.data))
        .collect()
}

/// A response as the client gets it: question, rcode, and the three sections.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    question: String,
    rcode: u16,
    sections: [Vec<String>; 3],
}

fn seen(packet: &[u8]) -> Seen {
    let message = Message::from_vec(packet).unwrap();
    let q = &message.queries[0];
    let rcode = u16::from(message.metadata.response_code)
        | message
            .edns
            .as_ref()
            .map_or(0, |e| u16::from(e.rcode_high()) << 4);
    Seen {
        question: format!("{} {} {}", q.name(), q.query_type(), q.query_class()),
        rcode,
        sections: [
            texts(&message.answers),
            texts(&message.authorities),
            texts(&message.additionals),
        ],
    }
}

/// The rules applied to `asked`, answered by `respond` (given the question as the rules left
/// it: dotted name and type), and put back: what the client sees, and what is left to look up.
fn exchange(
    rules: &[Rule],
    asked: &Asked,
    respond: impl FnOnce(&str, u16) -> Vec<u8>,
) -> (Vec<u8>, Restored) {
    let RequestRewrite::Rewritten(applied) = apply(rules, asked) else {
        panic!("no rule applied");
    };
    let qname =
        (applied.qname()).map_or_else(|| asked.query.qname().to_vec(), |n| n.as_bytes().to_vec());
    let upstream = respond(
        &WireName::from_wire(&qname).unwrap().to_dotted(),
        applied.qtype(),
    );
    let mut out = Vec::new();
    let restored = applied
        .restore_response(rules, &upstream, &asked.query, &asked.packet, &mut out)
        .expect("the response is restored");
    (out, restored)
}

// ---- name ---------------------------------------------------------------------------------

#[test]
fn name_rules_rewrite_the_question_as_the_readme_shows() {
    let table: &[(&str, &str, &str)] = &[
        // "Name Field Rewrites": substring, regex with groups, suffix.
        (
            "rewrite name substring service.us-west-1.example.org service.us-west-1.consul",
            "ftp.service.us-west-1.example.org",
            "ftp.service.us-west-1.consul. 1 1",
        ),
        (
            r"rewrite name regex (.*)-(us-west-1)\.example\.org {1}.service.{2}.consul",
            "ftp-us-west-1.example.org",
            "ftp.service.us-west-1.consul. 1 1",
        ),
        (
            r"rewrite name regex (.*)-(us-west-1)\.example\.org {1}.service.{2}.consul",
            "ftp.example.org",
            "unchanged",
        ),
        (
            "rewrite name suffix .schmoogle.com. .google.com.",
            "www.schmoogle.com",
            "www.google.com. 1 1",
        ),
        // `exact` is the default, and names are matched lowercase.
        ("rewrite name exact RED BLUE", "Red", "blue. 1 1"),
        ("rewrite name RED BLUE", "red", "blue. 1 1"),
        ("rewrite name RED BLUE", "x.red", "unchanged"),
        // FROM and TO get a trailing dot: `prefix prefix to` matches the label `prefix.`.
        ("rewrite name prefix prefix to", "prefix.nl", "to.nl. 1 1"),
        ("rewrite name prefix prefix to", "prefixed.nl", "unchanged"),
        // A suffix is not label-aligned.
        (
            "rewrite name suffix .ingress.coredns.rocks nginx.coredns.rocks",
            "coredns.ingress.coredns.rocks",
            "corednsnginx.coredns.rocks. 1 1",
        ),
        (
            r"rewrite name regex (f.*m)\.regex\.(nl) to.{2}",
            "from.regex.nl",
            "to.nl. 1 1",
        ),
        // A rule that makes a name no domain name is a SERVFAIL.
        (
            "rewrite name substring example a..b",
            "x.example",
            "invalid x.a..b.",
        ),
        (
            r"rewrite name regex ^(?:www\.)?(.+)$ {1}",
            "www.example.org",
            "invalid example.org..",
        ),
    ];
    for (rule, name, want) in table {
        assert_eq!(
            outcome(&rules(rule), &asked(name, 1)),
            *want,
            "{rule} / {name}"
        );
    }
}

#[test]
fn rules_apply_in_order_and_stop_unless_told_to_continue() {
    // rewrite_test.go's TestRewrite rules, in its order.
    let rules = rules(
        r"rewrite name from.nl to.nl
          rewrite stop name regex (core)\.(dns)\.(rocks)\.(nl) {2}.{1}.{3}.{4} answer name (dns)\.(core)\.(rocks)\.(nl) {2}.{1}.{3}.{4}
          rewrite name exact from.exact.nl to.nl
          rewrite name prefix prefix to
          rewrite name suffix .suffix. .nl.
          rewrite name substring from.substring to
          rewrite name regex (f.*m)\.regex\.(nl) to.{2}
          rewrite continue name regex consul\.(rocks) core.dns.{1}
          rewrite stop name core.dns.rocks to.nl
          rewrite continue class HS CH
          rewrite stop class CH IN
          rewrite stop type ANY HINFO",
    );
    let table: &[(&str, u16, u16, &str)] = &[
        ("from.nl", 1, 1, "to.nl. 1 1"),
        ("a.nl", 1, 1, "unchanged"),
        ("a.nl", 1, 3, "a.nl. 1 1"),
        ("a.nl", 255, 1, "a.nl. 13 1"),
        // The name rule stops before the type rule.
        ("from.nl", 255, 1, "to.nl. 255 1"),
        ("from.exact.nl", 1, 1, "to.nl. 1 1"),
        ("prefix.nl", 1, 1, "to.nl. 1 1"),
        ("to.suffix", 1, 1, "to.nl. 1 1"),
        ("from.substring.nl", 1, 1, "to.nl. 1 1"),
        ("from.regex.nl", 1, 1, "to.nl. 1 1"),
        // `continue`, then the next rule that matches the rewritten name.
        ("consul.rocks", 1, 1, "to.nl. 1 1"),
        // The class rule comes first and stops: the type stays.
        ("a.nl", 255, 3, "a.nl. 255 1"),
        // HS to CH (continue), CH to IN (stop).
        ("a.nl", 255, 4, "a.nl. 255 1"),
        ("core.dns.rocks.nl", 1, 1, "dns.core.rocks.nl. 1 1"),
    ];
    for (name, qtype, class, want) in table {
        let asked = asked_with(name, *qtype, *class, &[], CLIENT);
        assert_eq!(outcome(&rules, &asked), *want, "{name} {qtype} {class}");
    }
}

#[test]
fn name_rules_put_the_answer_back_as_the_readme_shows() {
    // (rules, asked name and type, the upstream's answer records, what the client sees).
    type Case<'a> = (&'a str, (&'a str, u16), &'a [&'a str], &'a [&'a str]);
    let table: &[Case] = &[
        // "Response Rewrites": without an answer option the owners stay as resolved.
        (
            r"rewrite name regex (.*)-(us-west-1)\.coredns\.rocks {1}.service.{2}.consul",
            ("ftp-us-west-1.coredns.rocks", 1),
            &[
                "ftp.service.us-west-1.consul. 0 A 10.10.10.10",
                "ftp.service.us-west-1.consul. 0 A 10.20.20.20",
            ],
            &[
                "ftp.service.us-west-1.consul. 0 A 10.10.10.10",
                "ftp.service.us-west-1.consul. 0 A 10.20.20.20",
            ],
        ),
        // "Explicit Response Name Rewrite", in the block form.
        (
            r"rewrite stop {
                name regex (.*)-(us-west-1)\.coredns\.rocks {1}.service.{2}.consul
                answer name (.*)\.service\.(us-west-1)\.consul {1}-{2}.coredns.rocks
            }",
            ("ftp-us-west-1.coredns.rocks", 1),
            &[
                "ftp.service.us-west-1.consul. 0 A 10.10.10.10",
                "ftp.service.us-west-1.consul. 0 A 10.20.20.20",
                "ftp.service.us-west-1.consul. 0 A 10.30.30.30",
            ],
            &[
                "ftp-us-west-1.coredns.rocks. 0 A 10.10.10.10",
                "ftp-us-west-1.coredns.rocks. 0 A 10.20.20.20",
                "ftp-us-west-1.coredns.rocks. 0 A 10.30.30.30",
            ],
        ),
        // "Auto Response Name Rewrite": a suffix rule swaps the suffixes back, owners and
        // values.
        (
            "rewrite stop {
                name suffix .coredns.rocks .service.consul answer auto
            }",
            ("ftp.coredns.rocks", 1),
            &[
                "ftp.service.consul. 5 CNAME lb.service.consul.",
                "lb.service.consul. 5 A 10.1.1.1",
            ],
            &[
                "ftp.coredns.rocks. 5 CNAME lb.coredns.rocks.",
                "lb.coredns.rocks. 5 A 10.1.1.1",
            ],
        ),
        // "PTR Response Value Rewrite". (`answer name auto` reads, as in CoreDNS, as an
        // owner regex `auto` to `answer.`, which matches nothing here.)
        (
            r"rewrite stop {
                name suffix .arpa .arpa
                answer name auto
                answer value (.*)\.service\.consul\. {1}.coredns.rocks.
            }",
            ("30.30.30.10.in-addr.arpa", 12),
            &["30.30.30.10.in-addr.arpa. 60 PTR ftp-us-west-1.service.consul."],
            &["30.30.30.10.in-addr.arpa. 60 PTR ftp-us-west-1.coredns.rocks."],
        ),
        // An exact rule always puts its names back, and the names below it.
        (
            "rewrite name exact RED BLUE",
            ("red", 1),
            &["blue. 5 CNAME lb.blue.", "lb.blue. 5 A 192.0.2.1"],
            &["red. 5 CNAME lb.red.", "lb.red. 5 A 192.0.2.1"],
        ),
        // "Multiple Response Rewrites": `answer` may be left out after the first.
        (
            r"rewrite stop name regex (.*)\.old\.test {1}.new.test answer name (.*)\.new\.test {1}.old.test value (.*)\.new\.test\. {1}.old.test",
            ("www.old.test", 33),
            &["www.new.test. 5 SRV 0 100 80 web.new.test."],
            &["www.old.test. 5 SRV 0 100 80 web.old.test."],
        ),
        // The AKS / Gardener pattern: a name of another domain answered from a cluster name.
        (
            r"rewrite stop {
                name regex (.*)\.foo\.example\.com {1}.default.svc.cluster.local
                answer name (.*)\.default\.svc\.cluster\.local {1}.foo.example.com
                answer value (.*)\.default\.svc\.cluster\.local {1}.foo.example.com
            }",
            ("web.foo.example.com", 1),
            &[
                "web.default.svc.cluster.local. 30 CNAME app.default.svc.cluster.local.",
                "app.default.svc.cluster.local. 30 A 10.96.0.20",
            ],
            &[
                "web.foo.example.com. 30 CNAME app.foo.example.com.",
                "app.foo.example.com. 30 A 10.96.0.20",
            ],
        ),
        // `name suffix` with `answer auto`, as kubespray writes it.
        (
            "rewrite stop {
                name suffix .foo.example.com .default.svc.cluster.local
                answer auto
            }",
            ("web.foo.example.com", 1),
            &["web.default.svc.cluster.local. 30 A 10.96.0.20"],
            &["web.foo.example.com. 30 A 10.96.0.20"],
        ),
    ];
    for (rule, (qname, qtype), upstream, want) in table {
        let rules = rules(rule);
        let asked = asked(qname, *qtype);
        let (out, restored) = exchange(&rules, &asked, |name, qtype| {
            response((name, qtype), 0, [upstream, &[], &[]])
        });
        assert_eq!(restored, Restored::default());
        let seen = seen(&out);
        let expected_question = format!("{}. {} IN", qname, RecordType::from(*qtype));
        assert_eq!(seen.question, expected_question, "{rule}");
        assert_eq!(seen.sections[0], *want, "{rule}");
        assert_eq!(
            Message::from_vec(&out).unwrap().metadata.id,
            0xBEEF,
            "the client's ID"
        );
    }
}

#[test]
fn names_in_every_section_are_put_back_and_compressed_again() {
    let rules = rules(
        r"rewrite name regex (.*)-(us-west-1)\.example\.org {1}.service.{2}.consul answer auto",
    );
    let asked = asked("FTP-us-west-1.Example.org", 1);
    let (out, _) = exchange(&rules, &asked, |name, qtype| {
        response(
            (name, qtype),
            0,
            [
                &[
                    "ftp.service.us-west-1.consul. 60 CNAME lb.ftp.service.us-west-1.consul.",
                    "lb.ftp.service.us-west-1.consul. 60 A 10.0.0.1",
                ],
                &["consul. 60 SOA ns.consul. hostmaster.consul. 1 2 3 4 5"],
                &["lb.ftp.service.us-west-1.consul. 60 AAAA 2001:db8::1"],
            ],
        )
    });
    let seen = seen(&out);
    // The question as the client spelled it.
    assert_eq!(seen.question, "FTP-us-west-1.Example.org. A IN");
    assert_eq!(
        seen.sections,
        [
            vec![
                "ftp-us-west-1.example.org. 60 CNAME lb.ftp-us-west-1.example.org.".to_owned(),
                "lb.ftp-us-west-1.example.org. 60 A 10.0.0.1".to_owned(),
            ],
            vec!["consul. 60 SOA ns.consul. hostmaster.consul. 1 2 3 4 5".to_owned()],
            vec!["lb.ftp-us-west-1.example.org. 60 AAAA 2001:db8::1".to_owned()],
        ]
    );
    let edns = Message::from_vec(&out)
        .unwrap()
        .edns
        .expect("the OPT record is kept");
    assert_eq!(edns.max_payload(), 1232);
    // (The owners are lowercase, so they do not point at the question as the client spelled it.)
    assert!(out.len() < 200, "names are compressed: {} bytes", out.len());
}

#[test]
fn a_malformed_response_is_refused_not_followed() {
    let rules = rules("rewrite name suffix .a.test .b.test answer auto");
    let asked = asked("www.a.test", 1);
    let RequestRewrite::Rewritten(applied) = apply(&rules, &asked) else {
        panic!("the rule applies");
    };
    let good = response(
        ("www.b.test", 1),
        0,
        [
            &["www.b.test. 5 CNAME lb.b.test.", "lb.b.test. 5 A 10.0.0.1"],
            &[],
            &[],
        ],
    );
    let mut out = Vec::new();
    let restore = |packet: &[u8], out: &mut Vec<u8>| {
        applied.restore_response(&rules, packet, &asked.query, &asked.packet, out)
    };
    assert!(restore(&good, &mut out).is_some());
    assert!(restore(&good[..good.len() - 3], &mut out).is_none());
    // A corrupted byte anywhere is not a panic.
    for at in 0..good.len() {
        for value in [0x00, 0x01, 0x3F, 0x40, 0xC0, 0xFF] {
            let mut corrupt = good.clone();
            corrupt[at] = value;
            let _ = restore(&corrupt, &mut out);
        }
    }
}

// ---- type and class -----------------------------------------------------------------------

#[test]
fn type_and_class_rules_rewrite_the_question_and_the_response_gets_it_back() {
    // README: "to rewrite ANY queries to HINFO, use `rewrite type ANY HINFO`", "to rewrite CH
    // queries to IN use `rewrite class CH IN`".
    let table: &[(&str, u16, u16, &str)] = &[
        ("rewrite type ANY HINFO", 255, 1, "example.org. 13 1"),
        ("rewrite type any hinfo", 255, 1, "example.org. 13 1"),
        ("rewrite type ANY HINFO", 1, 1, "unchanged"),
        ("rewrite type AAAA A", 28, 1, "example.org. 1 1"),
        ("rewrite class CH IN", 1, 3, "example.org. 1 1"),
        ("rewrite class CH IN", 1, 1, "unchanged"),
    ];
    for (rule, qtype, class, want) in table {
        let asked = asked_with("example.org", *qtype, *class, &[], CLIENT);
        assert_eq!(outcome(&rules(rule), &asked), *want, "{rule}");
    }
    // The HINFO answer goes back to the client under its ANY question.
    let rules = rules("rewrite type ANY HINFO");
    let (out, _) = exchange(&rules, &asked("example.org", 255), |name, qtype| {
        assert_eq!((name, qtype), ("example.org.", 13));
        response((name, qtype), 0, [&[], &[], &[]])
    });
    assert_eq!(seen(&out).question, "example.org. ANY IN");
}

// ---- ttl ----------------------------------------------------------------------------------

#[test]
fn ttl_rules_set_or_bound_every_ttl_as_the_readme_shows() {
    // (rule, asked name, the upstream's TTLs (answer, authority, additional), what the client
    // sees).
    let table: &[(&str, &str, [u32; 3], [u32; 3])] = &[
        // "TTL Field Rewrites": names under coredns.rocks get 15.
        (
            r"rewrite continue {
                ttl regex (.*)\.coredns\.rocks 15
            }",
            "www.coredns.rocks",
            [0, 3600, 300],
            [15, 15, 15],
        ),
        // "rewrite TTL to be between 30s and 300s"
        (
            "rewrite ttl example.com. 30-300",
            "example.com",
            [10, 100, 3600],
            [30, 100, 300],
        ),
        // "cap TTL at 30s"
        (
            "rewrite ttl example.com. -30",
            "example.com",
            [10, 100, 0],
            [10, 30, 0],
        ),
        (
            "rewrite ttl example.com. 0-30",
            "example.com",
            [10, 100, 0],
            [10, 30, 0],
        ),
        // "increase TTL to a minimum of 30s"
        (
            "rewrite ttl example.com. 30-",
            "example.com",
            [10, 100_000, 0],
            [30, 100_000, 30],
        ),
        // "set TTL to 30s"
        (
            "rewrite ttl example.com. 30",
            "example.com",
            [10, 100, 0],
            [30, 30, 30],
        ),
        (
            "rewrite ttl example.com. 30-30",
            "example.com",
            [10, 100, 0],
            [30, 30, 30],
        ),
        // The other match kinds, against the question name.
        (
            "rewrite ttl prefix www 7",
            "www.example.com",
            [10, 10, 10],
            [7, 7, 7],
        ),
        (
            "rewrite ttl suffix example.com 7",
            "www.example.com",
            [10, 10, 10],
            [7, 7, 7],
        ),
        (
            "rewrite ttl substring ample 7",
            "www.example.com",
            [10, 10, 10],
            [7, 7, 7],
        ),
    ];
    for (rule, qname, upstream, want) in table {
        let rules = rules(rule);
        let asked = asked(qname, 1);
        let answer = format!("{qname}. {} A 192.0.2.1", upstream[0]);
        let authority = format!("{qname}. {} NS ns.{qname}.", upstream[1]);
        let additional = format!("ns.{qname}. {} A 192.0.2.53", upstream[2]);
        let (out, _) = exchange(&rules, &asked, |name, qtype| {
            response(
                (name, qtype),
                0,
                [&[&answer], &[&authority], &[&additional]],
            )
        });
        let message = Message::from_vec(&out).unwrap();
        let ttls = [&message.answers, &message.authorities, &message.additionals]
            .map(|section| section[0].ttl);
        assert_eq!(ttls, *want, "{rule}");
        // The OPT record keeps its flags (its TTL field is not a TTL).
        assert_eq!(message.edns.map(|e| e.max_payload()), Some(1232), "{rule}");
    }
    // A name the rule does not match keeps its TTLs, and the rule does not apply.
    let rules = rules(r"rewrite ttl regex (.*)\.coredns\.rocks 15");
    assert_eq!(outcome(&rules, &asked("www.example.org", 1)), "unchanged");
}

#[test]
fn ttl_ranges_read_as_coredns_reads_them() {
    use super::ttl::parse_range;
    for (text, want) in [
        ("30", Some((30, 30))),
        ("30-300", Some((30, 300))),
        ("-30", Some((0, 30))),
        ("30-", Some((30, 2_147_483_647))),
        ("0", Some((0, 0))),
        ("4294967295", Some((u32::MAX, u32::MAX))),
        ("-", None),
        ("300-30", None),
        ("1-2-3", None),
        ("+5", None),
        ("x", None),
        ("4294967296", None),
        ("", None),
    ] {
        assert_eq!(parse_range(text), want, "{text}");
    }
}

// ---- rcode --------------------------------------------------------------------------------

#[test]
fn rcode_rules_change_the_response_code_as_the_readme_shows() {
    // (rule, asked name, the upstream's rcode and answer count, the client's rcode).
    let table: &[(&str, &str, (u16, usize), u16)] = &[
        // "RCODE Field Rewrites", by name and by number.
        (
            r"rewrite continue {
                rcode regex (.*)\.coredns\.rocks SERVFAIL NOERROR
            }",
            "www.coredns.rocks",
            (2, 0),
            0,
        ),
        (
            r"rewrite continue {
                rcode regex (.*)\.coredns\.rocks 2 0
            }",
            "www.coredns.rocks",
            (2, 0),
            0,
        ),
        // With records too (CoreDNS applies the rule per record, and once without any).
        (
            r"rewrite rcode regex (.*)\.coredns\.rocks 2 0",
            "www.coredns.rocks",
            (2, 1),
            0,
        ),
        // Another rcode is left alone.
        (
            r"rewrite rcode regex (.*)\.coredns\.rocks 2 0",
            "www.coredns.rocks",
            (3, 0),
            3,
        ),
        (
            "rewrite rcode exact www.example.org NXDOMAIN refused",
            "www.example.org",
            (3, 0),
            5,
        ),
        // An extended rcode goes into the OPT record.
        (
            "rewrite rcode www.example.org 3 BADCOOKIE",
            "www.example.org",
            (3, 0),
            23,
        ),
    ];
    for (rule, qname, (upstream_rcode, records), want) in table {
        let rules = rules(rule);
        let asked = asked(qname, 1);
        let answer = format!("{qname}. 5 A 192.0.2.1");
        let answers: &[&str] = match records {
            0 => &[],
            _ => &[&answer],
        };
        let (out, _) = exchange(&rules, &asked, |name, qtype| {
            response((name, qtype), *upstream_rcode, [answers, &[], &[]])
        });
        assert_eq!(seen(&out).rcode, *want, "{rule}");
    }
    let rules = rules(r"rewrite rcode regex (.*)\.coredns\.rocks 2 0");
    assert_eq!(outcome(&rules, &asked("www.example.org", 1)), "unchanged");
}

#[test]
fn an_extended_rcode_without_opt_cannot_be_written() {
    use super::rcode::{parse_rcode, rewrite_rcode};
    let mut plain = vec![0, 1, 0x81, 0x83, 0, 0, 0, 0, 0, 0, 0, 0];
    assert!(rewrite_rcode(&mut plain, &[(3, 23)]).is_none());
    assert!(rewrite_rcode(&mut plain, &[(3, 5)]).is_some());
    assert_eq!(plain[3] & 0x0F, 5);
    for (text, want) in [
        ("0", Some(0)),
        ("23", Some(23)),
        ("24", None),
        ("NOERROR", Some(0)),
        ("servfail", Some(2)),
        ("NOTIMP", Some(4)),
        ("NOTIMPL", Some(4)),
        ("BADCOOKIE", Some(23)),
        ("BADVERS", None),
        ("-1", None),
    ] {
        assert_eq!(parse_rcode(text), want, "{text}");
    }
}

// ---- edns0 --------------------------------------------------------------------------------

/// The options in OPT RDATA, as (code, data).
fn options(rdata: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= rdata.len() {
        let code = u16::from_be_bytes([rdata[at], rdata[at + 1]]);
        let len = usize::from(u16::from_be_bytes([rdata[at + 2], rdata[at + 3]]));
        out.push((code, rdata[at + 4..at + 4 + len].to_vec()));
        at += 4 + len;
    }
    assert_eq!(at, rdata.len());
    out
}

/// The EDNS0 options `rules` send upstream for a query from `client` with `client_options`;
/// `None` when no rule applied.
fn upstream_options(
    rules: &[Rule],
    client_options: &[(u16, &[u8])],
    client: &str,
) -> Option<Vec<(u16, Vec<u8>)>> {
    let asked = asked_with("example.com", 1, 1, client_options, client);
    match apply(rules, &asked) {
        RequestRewrite::Rewritten(applied) => {
            assert!(
                !applied.rewrites_response(),
                "edns0 rules leave the response alone"
            );
            Some(options(applied.upstream_options()))
        }
        RequestRewrite::Unchanged => None,
        RequestRewrite::Invalid(name) => panic!("invalid {name}"),
    }
}

#[test]
fn edns0_rules_set_the_options_sent_upstream_as_the_readme_shows() {
    let ffee = |data: &[u8]| Some(vec![(0xffee, data.to_vec())]);
    // (rules, the client's options, from CLIENT or CLIENT6, the options sent upstream).
    type Case<'a> = (
        &'a str,
        &'a [(u16, &'a [u8])],
        &'a str,
        Option<Vec<(u16, Vec<u8>)>>,
    );
    let table: Vec<Case> = vec![
        // "EDNS0_LOCAL": hex data, and the same as text.
        (
            "rewrite edns0 local set 0xffee 0x61626364",
            &[],
            CLIENT,
            ffee(b"abcd"),
        ),
        (
            "rewrite edns0 local set 0xffee abcd",
            &[],
            CLIENT,
            ffee(b"abcd"),
        ),
        (
            "rewrite edns0 local set 65518 abcd",
            &[],
            CLIENT,
            ffee(b"abcd"),
        ),
        (
            "rewrite edns0 local set 0xffee 0xabcdef",
            &[],
            CLIENT,
            ffee(&[0xab, 0xcd, 0xef]),
        ),
        (
            "rewrite edns0 local append 0xffee abcdefghijklmnop",
            &[],
            CLIENT,
            ffee(b"abcdefghijklmnop"),
        ),
        // `replace` needs an option to replace; `append` does not add a second one.
        (
            "rewrite edns0 local replace 0xffee abcdefghijklmnop",
            &[],
            CLIENT,
            None,
        ),
        (
            "rewrite edns0 local replace 0xffee abcdef",
            &[(0xffee, b"foobar")],
            CLIENT,
            ffee(b"abcdef"),
        ),
        (
            "rewrite edns0 local append 0xffee abcdef",
            &[(0xffee, b"foobar")],
            CLIENT,
            None,
        ),
        (
            "rewrite edns0 local set 0xffee abcdef revert",
            &[(0xffee, b"foobar")],
            CLIENT,
            ffee(b"abcdef"),
        ),
        // The variables, for CoreDNS's test client 10.240.0.1:40212 and server 127.0.0.1:53.
        (
            "rewrite edns0 local set 0xffee {client_ip}",
            &[],
            CLIENT,
            ffee(&[10, 240, 0, 1]),
        ),
        (
            "rewrite edns0 local set 0xffee {qname}",
            &[],
            CLIENT,
            ffee(b"example.com."),
        ),
        (
            "rewrite edns0 local set 0xffee {qtype}",
            &[],
            CLIENT,
            ffee(&[0, 1]),
        ),
        (
            "rewrite edns0 local set 0xffee {client_port}",
            &[],
            CLIENT,
            ffee(&[0x9D, 0x14]),
        ),
        (
            "rewrite edns0 local set 0xffee {protocol}",
            &[],
            CLIENT,
            ffee(b"udp"),
        ),
        (
            "rewrite edns0 local set 0xffee {server_port}",
            &[],
            CLIENT,
            ffee(&[0, 0x35]),
        ),
        (
            "rewrite edns0 local set 0xffee {server_ip}",
            &[],
            CLIENT,
            ffee(&[127, 0, 0, 1]),
        ),
        // An IPv6 client gets the server's IPv4 address in 16 bytes, IPv4-mapped (Go's To16).
        (
            "rewrite edns0 local set 0xffee {server_ip}",
            &[],
            CLIENT6,
            ffee(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]),
        ),
        // "EDNS0_NSID".
        (
            "rewrite edns0 nsid set",
            &[],
            CLIENT,
            Some(vec![(3, vec![])]),
        ),
        (
            "rewrite edns0 nsid append",
            &[],
            CLIENT,
            Some(vec![(3, vec![])]),
        ),
        ("rewrite edns0 nsid replace", &[], CLIENT, None),
        (
            "rewrite edns0 nsid replace",
            &[(3, b"x")],
            CLIENT,
            Some(vec![(3, vec![])]),
        ),
        // "EDNS0_SUBNET": the client's address cut to the prefix (RFC 7871 §6: as many address
        // bytes as the prefix covers).
        (
            "rewrite edns0 subnet set 24 56",
            &[],
            CLIENT,
            Some(vec![(8, vec![0, 1, 24, 0, 10, 240, 0])]),
        ),
        (
            "rewrite edns0 subnet set 32 56",
            &[],
            CLIENT,
            Some(vec![(8, vec![0, 1, 32, 0, 10, 240, 0, 1])]),
        ),
        (
            "rewrite edns0 subnet set 20 56",
            &[],
            CLIENT,
            Some(vec![(8, vec![0, 1, 20, 0, 10, 240, 0])]),
        ),
        (
            "rewrite edns0 subnet set 0 56",
            &[],
            CLIENT,
            Some(vec![(8, vec![0, 1, 0, 0])]),
        ),
        (
            "rewrite edns0 subnet set 24 56",
            &[],
            CLIENT6,
            Some(vec![(8, vec![0, 2, 56, 0, 0xfe, 0x80, 0, 0, 0, 0, 0])]),
        ),
        (
            "rewrite edns0 subnet set 24 128",
            &[],
            CLIENT6,
            Some(vec![(
                8,
                vec![
                    0, 2, 128, 0, 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x42, 0, 0xff, 0xfe, 0xca, 0x4c,
                    0x65,
                ],
            )]),
        ),
        (
            "rewrite edns0 subnet set 24 0",
            &[],
            CLIENT6,
            Some(vec![(8, vec![0, 2, 0, 0])]),
        ),
        // "EDNS0 Revert" (two rules: replace, then set, both stop): the first applies only
        // when the client sent the option.
        (
            "rewrite edns0 local replace 0xffee abcdef revert
             rewrite edns0 local set 0xffee fedcba revert",
            &[],
            CLIENT,
            ffee(b"fedcba"),
        ),
        (
            "rewrite edns0 local replace 0xffee abcdef
             rewrite edns0 local set 0xffee fedcba",
            &[(0xffee, b"foobar")],
            CLIENT,
            ffee(b"abcdef"),
        ),
        (
            "rewrite edns0 local replace 0xffee {qname}
             rewrite edns0 local set 0xffee {qtype}",
            &[],
            CLIENT,
            ffee(&[0, 1]),
        ),
        (
            "rewrite edns0 subnet replace 32 56
             rewrite edns0 subnet set 0 56",
            &[(8, &[0, 1, 0, 0])],
            CLIENT,
            Some(vec![(8, vec![0, 1, 32, 0, 10, 240, 0, 1])]),
        ),
        // `unset` always applies; it removes the option, so nothing is sent.
        (
            "rewrite edns0 local unset 0xffee",
            &[],
            CLIENT,
            Some(vec![]),
        ),
        (
            "rewrite edns0 local unset 0xffee",
            &[(0xffee, &[1])],
            CLIENT,
            Some(vec![]),
        ),
        (
            "rewrite edns0 nsid unset",
            &[(3, b"")],
            CLIENT,
            Some(vec![]),
        ),
        ("rewrite edns0 subnet unset", &[], CLIENT, Some(vec![])),
        (
            "rewrite continue edns0 local set 0xffee abc
             rewrite edns0 local unset 0xffee",
            &[],
            CLIENT,
            Some(vec![]),
        ),
        // Only the options the rules set go upstream, never the client's own (a cookie).
        (
            "rewrite continue edns0 local set 0xffee abc
             rewrite edns0 nsid set",
            &[(10, b"cookie-8")],
            CLIENT,
            Some(vec![(0xffee, b"abc".to_vec()), (3, vec![])]),
        ),
    ];
    for (rule, client_options, client, want) in table {
        let rules = rules(rule);
        assert_eq!(
            upstream_options(&rules, client_options, client),
            want,
            "{rule} / {client_options:?} / {client}"
        );
    }
}

#[test]
fn edns0_qname_is_the_question_as_the_query_has_it() {
    // As the client spelled it; after a name rule, the rewritten name.
    let rule = rules("rewrite edns0 local set 0xffee {qname}");
    let asked = asked_with("WWW.Example.com", 1, 1, &[], CLIENT);
    let RequestRewrite::Rewritten(applied) = apply(&rule, &asked) else {
        panic!("applies");
    };
    assert_eq!(
        options(applied.upstream_options()),
        [(0xffee, b"WWW.Example.com.".to_vec())]
    );
    let rules = rules(
        "rewrite continue name exact www.example.com web.example.net
         rewrite edns0 local set 0xffee {qname}",
    );
    let RequestRewrite::Rewritten(applied) = apply(&rules, &asked) else {
        panic!("applies");
    };
    assert_eq!(
        options(applied.upstream_options()),
        [(0xffee, b"web.example.net.".to_vec())]
    );
}

// ---- cname --------------------------------------------------------------------------------

/// The answers CoreDNS's cname_target_test.go looks its new targets up to (its
/// `MockedUpstream`), as responses.
fn looked_up(name: &str, qtype: u16) -> Vec<u8> {
    let answers: &[&str] = match (name, qtype) {
        ("xyz.example.com.", 1) => &["xyz.example.com. 3600 A 3.4.5.6"],
        ("xyz.example.com.", 28) => &["xyz.example.com. 3600 AAAA 3a01:7e00::f03c:91ff:fe79:234c"],
        ("bard.google.com.cdn.cloudflare.net.", _) => {
            &["bard.google.com.cdn.cloudflare.net. 1800 A 9.7.2.1"]
        }
        ("www.hosting.xyz.", _) => &["www.hosting.xyz. 500 A 20.30.40.50"],
        ("abcd.zzzz.www.pqrst.", _) => &[
            "abcd.zzzz.www.pqrst. 120 A 101.20.5.1",
            "abcd.zzzz.www.pqrst. 120 A 101.20.5.2",
        ],
        ("orders.webapp.eu.org.", _) => &["orders.webapp.eu.org. 120 A 20.0.0.9"],
        ("music.truncated.spotify.com.", _) => &["music.truncated.spotify.com. 120 A 10.1.0.9"],
        ("intermediate-2.staging.", _) => &[
            "intermediate-2.staging. 200 CNAME final.staging.net.",
            "final.staging.net. 120 A 5.6.7.8",
        ],
        ("my-app.com.other.cdn.com.", _) => &["my-app.com.other.cdn.com. 100 A 30.3.1.2"],
        _ => &[],
    };
    let mut packet = response((name, qtype), 0, [answers, &[], &[]]);
    if name == "music.truncated.spotify.com." {
        packet[2] |= 0x02;
    }
    packet
}

#[test]
fn cname_rules_rewrite_the_target_and_cut_what_followed() {
    // cname_target_test.go's rules (all `continue`) and cases, then the README's example.
    let rules = rules(
        r"rewrite continue cname exact def.example.com xyz.example.com
          rewrite continue cname prefix chat.openai.com bard.google.com
          rewrite continue cname suffix uvw. xyz.
          rewrite continue cname substring efgh zzzz.www
          rewrite continue cname regex (.*)\.web\.(.*)\.site\. {1}.webapp.{2}.org.
          rewrite continue cname exact music.truncated.spotify.com. music.truncated.spotify.com.
          rewrite continue cname suffix prod. staging.
          rewrite continue cname regex (.*).cdn.example.net. {1}.other.cdn.com.",
    );
    // (asked, type, the upstream's answer, the answer cut at the rewritten CNAME, after the
    // lookup of the new target is appended, TC after it).
    type Case<'a> = (
        &'a str,
        u16,
        &'a [&'a str],
        &'a [&'a str],
        &'a [&'a str],
        bool,
    );
    let table: &[Case] = &[
        (
            "abc.example.com",
            1,
            &[
                "abc.example.com. 5 CNAME def.example.com.",
                "def.example.com. 5 A 1.2.3.4",
            ],
            &["abc.example.com. 5 CNAME xyz.example.com."],
            &[
                "abc.example.com. 5 CNAME xyz.example.com.",
                "xyz.example.com. 3600 A 3.4.5.6",
            ],
            false,
        ),
        (
            "abc.example.com",
            28,
            &[
                "abc.example.com. 5 CNAME def.example.com.",
                "def.example.com. 5 AAAA 2a01:7e00::f03c:91ff:fe79:234c",
            ],
            &["abc.example.com. 5 CNAME xyz.example.com."],
            &[
                "abc.example.com. 5 CNAME xyz.example.com.",
                "xyz.example.com. 3600 AAAA 3a01:7e00::f03c:91ff:fe79:234c",
            ],
            false,
        ),
        (
            "chat.openai.com",
            1,
            &[
                "chat.openai.com. 20 CNAME chat.openai.com.cdn.cloudflare.net.",
                "chat.openai.com.cdn.cloudflare.net. 30 A 23.2.1.2",
                "chat.openai.com.cdn.cloudflare.net. 30 A 24.6.0.8",
            ],
            &["chat.openai.com. 20 CNAME bard.google.com.cdn.cloudflare.net."],
            &[
                "chat.openai.com. 20 CNAME bard.google.com.cdn.cloudflare.net.",
                "bard.google.com.cdn.cloudflare.net. 1800 A 9.7.2.1",
            ],
            false,
        ),
        (
            "coredns.io",
            1,
            &[
                "coredns.io. 100 CNAME www.hosting.uvw.",
                "www.hosting.uvw. 200 A 7.2.3.4",
            ],
            &["coredns.io. 100 CNAME www.hosting.xyz."],
            &[
                "coredns.io. 100 CNAME www.hosting.xyz.",
                "www.hosting.xyz. 500 A 20.30.40.50",
            ],
            false,
        ),
        (
            "core.dns.rocks",
            1,
            &[
                "core.dns.rocks. 200 CNAME abcd.efgh.pqrst.",
                "abcd.efgh.pqrst. 100 A 200.30.45.67",
            ],
            &["core.dns.rocks. 200 CNAME abcd.zzzz.www.pqrst."],
            &[
                "core.dns.rocks. 200 CNAME abcd.zzzz.www.pqrst.",
                "abcd.zzzz.www.pqrst. 120 A 101.20.5.1",
                "abcd.zzzz.www.pqrst. 120 A 101.20.5.2",
            ],
            false,
        ),
        (
            "order.service.eu",
            1,
            &[
                "order.service.eu. 200 CNAME orders.web.eu.site.",
                "orders.web.eu.site. 50 A 10.10.15.1",
            ],
            &["order.service.eu. 200 CNAME orders.webapp.eu.org."],
            &[
                "order.service.eu. 200 CNAME orders.webapp.eu.org.",
                "orders.webapp.eu.org. 120 A 20.0.0.9",
            ],
            false,
        ),
        (
            "music.spotify.com",
            1,
            &["music.spotify.com. 200 CNAME music.truncated.spotify.com."],
            &["music.spotify.com. 200 CNAME music.truncated.spotify.com."],
            &[
                "music.spotify.com. 200 CNAME music.truncated.spotify.com.",
                "music.truncated.spotify.com. 120 A 10.1.0.9",
            ],
            true,
        ),
        (
            "cname-chain.org",
            1,
            &[
                "cname-chain.org. 200 CNAME intermediate-1.com.",
                "intermediate-1.com. 200 CNAME intermediate-2.prod.",
                "intermediate-2.prod. 200 CNAME final.prod.net.",
                "final.prod.net. 120 A 1.2.3.4",
            ],
            &[
                "cname-chain.org. 200 CNAME intermediate-1.com.",
                "intermediate-1.com. 200 CNAME intermediate-2.staging.",
            ],
            &[
                "cname-chain.org. 200 CNAME intermediate-1.com.",
                "intermediate-1.com. 200 CNAME intermediate-2.staging.",
                "intermediate-2.staging. 200 CNAME final.staging.net.",
                "final.staging.net. 120 A 5.6.7.8",
            ],
            false,
        ),
        // README, "CNAME Field Rewrites".
        (
            "my-app.com",
            1,
            &[
                "my-app.com. 200 CNAME my-app.example.",
                "my-app.example. 200 CNAME my-app.com.cdn.example.net.",
                "my-app.com.cdn.example.net. 300 A 20.2.0.1",
                "my-app.com.cdn.example.net. 300 A 20.2.0.2",
            ],
            &[
                "my-app.com. 200 CNAME my-app.example.",
                "my-app.example. 200 CNAME my-app.com.other.cdn.com.",
            ],
            &[
                "my-app.com. 200 CNAME my-app.example.",
                "my-app.example. 200 CNAME my-app.com.other.cdn.com.",
                "my-app.com.other.cdn.com. 100 A 30.3.1.2",
            ],
            false,
        ),
    ];
    for (qname, qtype, upstream, cut, completed, truncated) in table {
        let asked = asked(qname, *qtype);
        let upstream_response = response((&format!("{qname}."), *qtype), 0, [upstream, &[], &[]]);
        let (out, restored) = exchange(&rules, &asked, |_, _| upstream_response.clone());
        assert_eq!(seen(&out).sections[0], *cut, "{qname}");
        let lookup = restored.lookup.expect("a target to look up");
        assert_eq!(lookup.qtype, *qtype, "{qname}");
        let target = lookup.name.to_dotted();
        let mut full = Vec::new();
        append_answers(&out, &looked_up(&target, lookup.qtype), &mut full).unwrap();
        let message = Message::from_vec(&full).unwrap();
        assert_eq!(texts(&message.answers), *completed, "{qname}");
        assert_eq!(message.metadata.truncation, *truncated, "{qname}");
        assert_eq!(message.queries[0].name().to_string(), format!("{qname}."));

        // The same cut by the stand-alone function, on the upstream's response alone.
        let cname_rules: Vec<&CnameRule> = (rules.iter())
            .filter_map(|r| match r.action() {
                Action::Cname(rule) => Some(rule),
                _ => None,
            })
            .collect();
        let mut alone = Vec::new();
        let found = cname::rewrite_target(&cname_rules, &upstream_response, &mut alone).unwrap();
        assert_eq!(found, Some(lookup), "{qname}");
        assert_eq!(texts(&Message::from_vec(&alone).unwrap().answers), *cut);
    }
    // No CNAME that matches: nothing to look up, the answer as it was.
    let asked = asked("plain.example", 1);
    let (out, restored) = exchange(&rules, &asked, |name, qtype| {
        response(
            (name, qtype),
            0,
            [
                &[
                    "plain.example. 5 CNAME other.example.",
                    "other.example. 5 A 192.0.2.1",
                ],
                &[],
                &[],
            ],
        )
    });
    assert_eq!(restored.lookup, None);
    assert_eq!(seen(&out).sections[0].len(), 2);
}

#[test]
fn a_cname_rule_always_applies_and_a_stop_one_ends_the_list() {
    let rules = rules(
        "rewrite cname exact a.example. b.example.
         rewrite name exact www.example.org web.example.org",
    );
    let RequestRewrite::Rewritten(applied) = apply(&rules, &asked("www.example.org", 1)) else {
        panic!("the cname rule applies to every query");
    };
    assert!(
        applied.qname().is_none(),
        "the name rule after it is not reached"
    );
    assert!(applied.rewrites_response());
}
