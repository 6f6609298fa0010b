//! Table tests of the `file` plugin's answers: the zone of CoreDNS's plugin/file README, and a
//! zone with every shape the plugin answers (CNAME chains, wildcards, empty non-terminals, a
//! delegation with glue, MX and SRV with their addresses). Each case is a query packet through
//! [`answer`], the response decoded with hickory and compared section by section.

use std::path::{Path, PathBuf};

use clusterdns_testkit::dns::{Query as TestQuery, Reply};
use clusterdns_zone::{parse_query, WireName};
use hickory_proto::op::ResponseCode;

use super::*;

/// The zone CoreDNS's README serves as `db.example.org`.
const README_ZONE: &str = "\
$ORIGIN example.org.
@\t3600 IN\tSOA sns.dns.icann.org. noc.dns.icann.org. 2017042745 7200 3600 1209600 3600
\t3600 IN NS a.iana-servers.net.
\t3600 IN NS b.iana-servers.net.

www     IN A     127.0.0.1
        IN AAAA  ::1
";

/// A zone with every shape of answer.
const ZONE: &str = "\
$ORIGIN example.org.
$TTL 3600
@        IN SOA  sns.dns.icann.org. noc.dns.icann.org. 2017042745 7200 3600 1209600 300
         IN NS   a.iana-servers.net.
         IN NS   b.iana-servers.net.
         IN NS   ns1
         IN MX   10 mail
ns1      IN A    192.0.2.53
www      IN A    127.0.0.1
         IN AAAA ::1
mail     IN A    192.0.2.25
         IN AAAA 2001:db8::25
alias    IN CNAME www
chain    IN CNAME alias
out      IN CNAME www.example.net.
dangling IN CNAME nowhere
deleg    IN CNAME host.sub
_sip._udp IN SRV 10 60 5060 www
txt      IN TXT  \"v=spf1 -all\" \"second\"
*.wild   IN A    192.0.2.99
*.cw     IN CNAME www
a.b.c    IN A    192.0.2.3
sub      IN NS   ns1.sub
         IN NS   ns.example.net.
ns1.sub  IN A    192.0.2.54
";

const APEX_NS: [&str; 3] = [
    "example.org. 3600 NS a.iana-servers.net.",
    "example.org. 3600 NS b.iana-servers.net.",
    "example.org. 3600 NS ns1.example.org.",
];
const SOA: &str =
    "example.org. 300 SOA sns.dns.icann.org. noc.dns.icann.org. 2017042745 7200 3600 1209600 300";

/// The zone `origin` read from `text`.
fn zone(origin: &str, text: &str) -> Zone {
    let origin = WireName::from_dotted(origin).unwrap();
    let mut files = |_: &Path| Ok(text.to_owned());
    read(&origin, &PathBuf::from("/zones/db"), &mut files)
        .unwrap_or_else(|e| panic!("{e}"))
        .zone
}

/// The zone's answer to `name qtype` over TCP (no size limit), decoded.
fn ask(zone: &Zone, name: &str, qtype: u16) -> Reply {
    ask_with(
        zone,
        &Fallthrough::default(),
        name,
        qtype,
        None,
        Transport::Tcp,
    )
    .expect("answered")
}

fn ask_with(
    zone: &Zone,
    fallthrough: &Fallthrough,
    name: &str,
    qtype: u16,
    edns: Option<u16>,
    transport: Transport,
) -> Option<Reply> {
    let packet = TestQuery::new(name, qtype).id(7).edns(edns).build();
    let query = parse_query(&packet).unwrap();
    let mut out = vec![0u8; 65535];
    match answer(zone, fallthrough, &query, &packet, &mut out, transport) {
        Step::Answered(Answered::Response { len, .. }) => {
            Some(Reply::parse(&out[..len]).unwrap_or_else(|e| panic!("{name}: {e}")))
        }
        Step::Answered(other) => panic!("{name}: {other:?}"),
        Step::Next => None,
    }
}

/// A section as `owner ttl TYPE RDATA` lines.
fn lines(records: &[clusterdns_testkit::dns::Rr]) -> Vec<String> {
    (records.iter())
        .map(|rr| format!("{} {} {}", rr.name, rr.ttl, rr.data))
        .collect()
}

/// One case: the question, then what the response holds.
struct Case<'a> {
    name: &'a str,
    qtype: u16,
    rcode: ResponseCode,
    aa: bool,
    answer: &'a [&'a str],
    authority: &'a [&'a str],
    additional: &'a [&'a str],
}

const NOERROR: ResponseCode = ResponseCode::NoError;
const NXDOMAIN: ResponseCode = ResponseCode::NXDomain;

fn check(zone: &Zone, cases: &[Case<'_>]) {
    for case in cases {
        let reply = ask(zone, case.name, case.qtype);
        let what = format!("{} {}", case.name, case.qtype);
        assert_eq!(reply.rcode, case.rcode, "{what}: {reply:?}");
        assert_eq!(reply.aa, case.aa, "{what}: AA");
        assert_eq!(lines(&reply.answers), case.answer, "{what}: answer");
        assert_eq!(lines(&reply.authority), case.authority, "{what}: authority");
        assert_eq!(
            lines(&reply.additional),
            case.additional,
            "{what}: additional"
        );
    }
}

#[test]
fn answers_the_readme_zone() {
    let zone = zone("example.org.", README_ZONE);
    let ns = [
        "example.org. 3600 NS a.iana-servers.net.",
        "example.org. 3600 NS b.iana-servers.net.",
    ];
    let soa = "example.org. 3600 SOA sns.dns.icann.org. noc.dns.icann.org. 2017042745 7200 3600 1209600 3600";
    check(
        &zone,
        &[
            Case {
                name: "www.example.org.",
                qtype: 1,
                rcode: NOERROR,
                aa: true,
                answer: &["www.example.org. 3600 A 127.0.0.1"],
                authority: &ns,
                additional: &[],
            },
            Case {
                name: "www.example.org.",
                qtype: 28,
                rcode: NOERROR,
                aa: true,
                answer: &["www.example.org. 3600 AAAA ::1"],
                authority: &ns,
                additional: &[],
            },
            Case {
                name: "example.org.",
                qtype: 6,
                rcode: NOERROR,
                aa: true,
                answer: &[soa],
                authority: &ns,
                additional: &[],
            },
            Case {
                name: "example.org.",
                qtype: 2,
                rcode: NOERROR,
                aa: true,
                answer: &ns,
                authority: &[],
                additional: &[],
            },
            Case {
                name: "www.example.org.",
                qtype: 15,
                rcode: NOERROR,
                aa: true,
                answer: &[],
                authority: &[soa],
                additional: &[],
            },
            Case {
                name: "nothing.example.org.",
                qtype: 1,
                rcode: NXDOMAIN,
                aa: true,
                answer: &[],
                authority: &[soa],
                additional: &[],
            },
            // The apex has no A: NODATA.
            Case {
                name: "example.org.",
                qtype: 1,
                rcode: NOERROR,
                aa: true,
                answer: &[],
                authority: &[soa],
                additional: &[],
            },
        ],
    );
}

#[test]
fn answers_positive_questions_with_the_apex_ns_and_target_addresses() {
    let zone = zone("example.org.", ZONE);
    check(
        &zone,
        &[
            Case {
                name: "www.example.org.",
                qtype: 1,
                rcode: NOERROR,
                aa: true,
                answer: &["www.example.org. 3600 A 127.0.0.1"],
                authority: &APEX_NS,
                additional: &[],
            },
            Case {
                name: "example.org.",
                qtype: 2,
                rcode: NOERROR,
                aa: true,
                answer: &APEX_NS,
                authority: &[],
                additional: &["ns1.example.org. 3600 A 192.0.2.53"],
            },
            Case {
                name: "example.org.",
                qtype: 15,
                rcode: NOERROR,
                aa: true,
                answer: &["example.org. 3600 MX 10 mail.example.org."],
                authority: &APEX_NS,
                additional: &[
                    "mail.example.org. 3600 A 192.0.2.25",
                    "mail.example.org. 3600 AAAA 2001:db8::25",
                ],
            },
            Case {
                name: "_sip._udp.example.org.",
                qtype: 33,
                rcode: NOERROR,
                aa: true,
                answer: &["_sip._udp.example.org. 3600 SRV 10 60 5060 www.example.org."],
                authority: &APEX_NS,
                additional: &[
                    "www.example.org. 3600 A 127.0.0.1",
                    "www.example.org. 3600 AAAA ::1",
                ],
            },
            Case {
                name: "txt.example.org.",
                qtype: 16,
                rcode: NOERROR,
                aa: true,
                answer: &["txt.example.org. 3600 TXT \"v=spf1 -all\" \"second\""],
                authority: &APEX_NS,
                additional: &[],
            },
            // RFC 8482: ANY gets one RRset, the one of the lowest type.
            Case {
                name: "www.example.org.",
                qtype: 255,
                rcode: NOERROR,
                aa: true,
                answer: &["www.example.org. 3600 A 127.0.0.1"],
                authority: &APEX_NS,
                additional: &[],
            },
            Case {
                name: "example.org.",
                qtype: 255,
                rcode: NOERROR,
                aa: true,
                answer: &APEX_NS,
                authority: &[],
                additional: &["ns1.example.org. 3600 A 192.0.2.53"],
            },
        ],
    );
}

#[test]
fn follows_cnames_inside_the_zone() {
    let zone = zone("example.org.", ZONE);
    check(
        &zone,
        &[
            Case {
                name: "alias.example.org.",
                qtype: 1,
                rcode: NOERROR,
                aa: true,
                answer: &[
                    "alias.example.org. 3600 CNAME www.example.org.",
                    "www.example.org. 3600 A 127.0.0.1",
                ],
                authority: &APEX_NS,
                additional: &[],
            },
            Case {
                name: "chain.example.org.",
                qtype: 28,
                rcode: NOERROR,
                aa: true,
                answer: &[
                    "chain.example.org. 3600 CNAME alias.example.org.",
                    "alias.example.org. 3600 CNAME www.example.org.",
                    "www.example.org. 3600 AAAA ::1",
                ],
                authority: &APEX_NS,
                additional: &[],
            },
            Case {
                name: "alias.example.org.",
                qtype: 5,
                rcode: NOERROR,
                aa: true,
                answer: &["alias.example.org. 3600 CNAME www.example.org."],
                authority: &APEX_NS,
                additional: &[],
            },
            // The target exists without the type: NODATA after the CNAME (RFC 2308 §2.2).
            Case {
                name: "alias.example.org.",
                qtype: 15,
                rcode: NOERROR,
                aa: true,
                answer: &["alias.example.org. 3600 CNAME www.example.org."],
                authority: &[SOA],
                additional: &[],
            },
            // The target does not exist: NXDOMAIN after the CNAME (RFC 6604 §2).
            Case {
                name: "dangling.example.org.",
                qtype: 1,
                rcode: NXDOMAIN,
                aa: true,
                answer: &["dangling.example.org. 3600 CNAME nowhere.example.org."],
                authority: &[SOA],
                additional: &[],
            },
            Case {
                name: "out.example.org.",
                qtype: 1,
                rcode: NOERROR,
                aa: true,
                answer: &["out.example.org. 3600 CNAME www.example.net."],
                authority: &APEX_NS,
                additional: &[],
            },
            // A target below a cut: the CNAME, then the referral (still AA: the CNAME is ours).
            Case {
                name: "deleg.example.org.",
                qtype: 1,
                rcode: NOERROR,
                aa: true,
                answer: &["deleg.example.org. 3600 CNAME host.sub.example.org."],
                authority: &[
                    "sub.example.org. 3600 NS ns1.sub.example.org.",
                    "sub.example.org. 3600 NS ns.example.net.",
                ],
                additional: &["ns1.sub.example.org. 3600 A 192.0.2.54"],
            },
        ],
    );
}

#[test]
fn answers_wildcards_and_empty_non_terminals() {
    let zone = zone("example.org.", ZONE);
    check(
        &zone,
        &[
            Case {
                name: "anything.wild.example.org.",
                qtype: 1,
                rcode: NOERROR,
                aa: true,
                answer: &["anything.wild.example.org. 3600 A 192.0.2.99"],
                authority: &APEX_NS,
                additional: &[],
            },
            // Two labels below: the closest encloser is still `wild` (RFC 4592 §3.3.1).
            Case {
                name: "a.b.wild.example.org.",
                qtype: 1,
                rcode: NOERROR,
                aa: true,
                answer: &["a.b.wild.example.org. 3600 A 192.0.2.99"],
                authority: &APEX_NS,
                additional: &[],
            },
            Case {
                name: "anything.wild.example.org.",
                qtype: 28,
                rcode: NOERROR,
                aa: true,
                answer: &[],
                authority: &[SOA],
                additional: &[],
            },
            Case {
                name: "q.cw.example.org.",
                qtype: 1,
                rcode: NOERROR,
                aa: true,
                answer: &[
                    "q.cw.example.org. 3600 CNAME www.example.org.",
                    "www.example.org. 3600 A 127.0.0.1",
                ],
                authority: &APEX_NS,
                additional: &[],
            },
            // The wildcard's parent and the names above `a.b.c` exist, empty: NODATA.
            Case {
                name: "wild.example.org.",
                qtype: 1,
                rcode: NOERROR,
                aa: true,
                answer: &[],
                authority: &[SOA],
                additional: &[],
            },
            Case {
                name: "b.c.example.org.",
                qtype: 1,
                rcode: NOERROR,
                aa: true,
                answer: &[],
                authority: &[SOA],
                additional: &[],
            },
            Case {
                name: "z.c.example.org.",
                qtype: 1,
                rcode: NXDOMAIN,
                aa: true,
                answer: &[],
                authority: &[SOA],
                additional: &[],
            },
            Case {
                name: "a.b.c.example.org.",
                qtype: 1,
                rcode: NOERROR,
                aa: true,
                answer: &["a.b.c.example.org. 3600 A 192.0.2.3"],
                authority: &APEX_NS,
                additional: &[],
            },
        ],
    );
}

#[test]
fn refers_names_at_and_below_a_cut() {
    let zone = zone("example.org.", ZONE);
    let cut = [
        "sub.example.org. 3600 NS ns1.sub.example.org.",
        "sub.example.org. 3600 NS ns.example.net.",
    ];
    let glue = ["ns1.sub.example.org. 3600 A 192.0.2.54"];
    let referral = |name: &'static str, qtype: u16| Case {
        name,
        qtype,
        rcode: NOERROR,
        aa: false,
        answer: &[],
        authority: &cut,
        additional: &glue,
    };
    check(
        &zone,
        &[
            referral("sub.example.org.", 2),
            referral("sub.example.org.", 1),
            referral("www.sub.example.org.", 1),
            referral("ns1.sub.example.org.", 1),
            referral("deep.www.sub.example.org.", 16),
            // DS at the cut is the parent's: none here, so NODATA (RFC 4035 §3.1.4.1).
            Case {
                name: "sub.example.org.",
                qtype: 43,
                rcode: NOERROR,
                aa: true,
                answer: &[],
                authority: &[SOA],
                additional: &[],
            },
        ],
    );
}

#[test]
fn refuses_transfers_and_echoes_the_clients_case() {
    let zone = zone("example.org.", ZONE);
    for qtype in [251, 252] {
        let reply = ask(&zone, "example.org.", qtype);
        assert_eq!(reply.rcode, ResponseCode::Refused);
        assert!(!reply.aa && reply.answers.is_empty());
    }
    let packet = TestQuery::new("WWW.Example.ORG", 1).build();
    let query = parse_query(&packet).unwrap();
    let mut out = vec![0u8; 512];
    let Step::Answered(Answered::Response { len, .. }) = answer(
        &zone,
        &Fallthrough::default(),
        &query,
        &packet,
        &mut out,
        Transport::Tcp,
    ) else {
        panic!("no answer");
    };
    let message = hickory_proto::op::Message::from_vec(&out[..len]).unwrap();
    assert_eq!(message.answers[0].name.to_ascii(), "WWW.Example.ORG.");
    // The apex NS owner points at the question's zone part.
    assert_eq!(message.authorities[0].name.to_ascii(), "Example.ORG.");
}

#[test]
fn passes_misses_on_when_falling_through() {
    let zone = zone("example.org.", ZONE);
    let all = Fallthrough::all();
    let tcp = Transport::Tcp;
    // NXDOMAIN and empty non-terminals go on; NODATA and answers do not.
    assert!(ask_with(&zone, &all, "nothing.example.org.", 1, None, tcp).is_none());
    assert!(ask_with(&zone, &all, "c.example.org.", 1, None, tcp).is_none());
    let nodata = ask_with(&zone, &all, "www.example.org.", 15, None, tcp).unwrap();
    assert_eq!(nodata.rcode, NOERROR);
    assert!(ask_with(&zone, &all, "www.example.org.", 1, None, tcp).is_some());
    // A CNAME to a missing name is an answer (it has the CNAME).
    assert!(ask_with(&zone, &all, "dangling.example.org.", 1, None, tcp).is_some());
    let only = Fallthrough {
        zones: vec![WireName::from_dotted("other.example.org.").unwrap()],
    };
    let reply = ask_with(&zone, &only, "nothing.example.org.", 1, None, tcp).unwrap();
    assert_eq!(reply.rcode, NXDOMAIN);
}

#[test]
fn truncates_at_whole_records_and_drops_extras_first() {
    let mut text = String::from(ZONE);
    for i in 0..40 {
        text.push_str(&format!("big IN TXT \"{i:03} {}\"\n", "x".repeat(40)));
    }
    let zone = zone("example.org.", &text);
    let udp = Transport::Udp { max_payload: 1232 };
    let none = Fallthrough::default();
    let packet = TestQuery::new("big.example.org.", 16).build();
    let query = parse_query(&packet).unwrap();
    let mut out = vec![0u8; 65535];
    let Step::Answered(Answered::Response { len, .. }) =
        answer(&zone, &none, &query, &packet, &mut out, udp)
    else {
        panic!("no answer");
    };
    assert!(len <= 512);
    assert!(clusterdns_testkit::dns::truncated(&out[..len]));
    let reply = Reply::parse(&out[..len]).unwrap();
    assert!(!reply.answers.is_empty() && reply.answers.len() < 40);
    assert!(reply.authority.is_empty());
    // Over TCP it all goes.
    let reply = ask(&zone, "big.example.org.", 16);
    assert_eq!(reply.answers.len(), 40);
    // An MX answer whose addresses do not fit loses them without TC.
    let reply = ask_with(&zone, &none, "example.org.", 15, Some(512), udp).unwrap();
    assert_eq!(reply.answers.len(), 1);
}

#[test]
fn refuses_broken_zones_naming_the_line() {
    let origin = WireName::from_dotted("example.org.").unwrap();
    let cases: &[(&str, u32, &str)] = &[
        ("www A 192.0.2.1\n", 0, "no SOA"),
        (
            "@ SOA ns h 1 2 3 4 5\n@ SOA ns h 2 2 3 4 5\n",
            2,
            "second SOA",
        ),
        (
            "@ SOA ns h 1 2 3 4 5\nsub SOA ns h 1 2 3 4 5\n",
            2,
            "not at the apex",
        ),
        ("@ SOA ns h 1 2 3 4 5\nwww A 10.0.0.1.1\n", 2, "A record"),
    ];
    for (text, line, says) in cases {
        let mut files = |_: &Path| Ok(text.to_string());
        let error = read(&origin, Path::new("/zones/db"), &mut files).expect_err(text);
        assert_eq!(error.line, *line, "{error}");
        assert!(error.message.contains(says), "{error}");
        assert!(error
            .to_string()
            .starts_with(&format!("/zones/db:{line}: ")));
    }
    // Records outside the zone are left out with a warning naming their line.
    let text = "@ SOA ns h 1 2 3 4 5\nwww.example.net. A 192.0.2.1\n";
    let mut files = |_: &Path| Ok(text.to_string());
    let loaded = read(&origin, Path::new("/zones/db"), &mut files).unwrap();
    assert_eq!(loaded.warnings.len(), 1);
    assert_eq!(loaded.warnings[0].at.line, 2);
    assert_eq!(loaded.zone.serial(), 1);
    // A CNAME beside other data is served (the CNAME wins, as in CoreDNS) with a warning.
    let text = "@ SOA ns h 1 2 3 4 5\nwww A 192.0.2.1\nx A 192.0.2.2\nx CNAME www\n";
    let mut files = |_: &Path| Ok(text.to_string());
    let loaded = read(&origin, Path::new("/zones/db"), &mut files).unwrap();
    assert_eq!(loaded.warnings.len(), 1);
    assert_eq!(loaded.warnings[0].at.line, 4);
    assert!(loaded.warnings[0]
        .at
        .message
        .contains("CNAME and other records"));
    let reply = ask(&loaded.zone, "x.example.org.", 1);
    assert_eq!(reply.data(), ["A 192.0.2.1", "CNAME www.example.org."]);
}

#[test]
fn serves_one_file_for_several_origins() {
    // A file without $ORIGIN reads relative to each zone it is given for (README: "a single
    // zone file for multiple zones").
    let text = "@ 3600 IN SOA ns hostmaster 5 7200 3600 1209600 3600\n@ NS ns\nns A 192.0.2.1\n";
    for origin in ["example.org.", "example.net."] {
        let zone = zone(origin, text);
        let reply = ask(&zone, &format!("ns.{origin}"), 1);
        assert_eq!(
            lines(&reply.answers),
            [format!("ns.{origin} 3600 A 192.0.2.1")]
        );
    }
}

#[test]
fn builds_a_large_zone_quickly() {
    let mut text = String::from("@ 3600 IN SOA ns hostmaster 1 7200 3600 1209600 3600\n@ NS ns\n");
    for i in 0..20_000 {
        text.push_str(&format!(
            "host-{i} A 10.{}.{}.{}\n",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        ));
    }
    let start = std::time::Instant::now();
    let zone = zone("example.org.", &text);
    let reply = ask(&zone, "host-19999.example.org.", 1);
    assert_eq!(reply.data(), ["A 10.0.78.31"]);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}
