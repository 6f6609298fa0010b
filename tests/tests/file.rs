//! The `file` directive through the real binary: a zone read from a master file, answered side
//! by side with Knot DNS serving the same file (`clusterdns_testkit::knot`), and the zone
//! reloaded while serving.
//!
//! Every question of [`QUESTIONS`] goes to both servers, over UDP and over TCP, and the whole
//! responses are compared: rcode, AA, and the answer, authority and additional sections (each
//! as a set of `owner TTL TYPE RDATA` lines: the order of records inside an RRset carries no
//! meaning, and Knot keeps its RRsets sorted). Names in RDATA are compared as spelled: both
//! servers spell a name's zone part as the question spelled it (compression points into the
//! question). The intended differences, applied by [`without_intended`] and checked there to
//! be exactly these:
//!
//! - a positive answer carries the apex NS RRset in the authority section in clusterdns, as in
//!   CoreDNS's `file` plugin (its lookup returns the apex NS with every answer); Knot leaves
//!   the authority section of positive answers empty;
//! - AXFR is REFUSED, as CoreDNS's `file` refuses every transfer without its `transfer`
//!   plugin; Knot answers NOTIMP over UDP (RFC 5936 §4.2 defines AXFR over TCP only) and
//!   NOTAUTH over TCP (no ACL allows the transfer). Neither sends a record.
//!
//! Everything else (NXDOMAIN and NODATA with the SOA at RFC 2308's TTL, CNAME chains inside
//! the zone and out of it, wildcards, empty non-terminals, the delegation's referral with AA
//! clear and its glue, DS at the cut, MX/SRV/NS addresses in the additional section, ANY's one
//! RRset, AXFR refused) is answered exactly as Knot answers it.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use clusterdns_testkit::client::{ask, ask_tcp};
use clusterdns_testkit::dns::{Reply, Rr};
use clusterdns_testkit::http::{http_get, metric};
use clusterdns_testkit::knot::Knot;
use clusterdns_testkit::net::{free_port, loopback};
use clusterdns_testkit::process::Process;
use clusterdns_testkit::temp::TempDir;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// How long the binary may take to start answering.
const STARTUP: Duration = Duration::from_secs(15);

/// The zone both servers serve: SOA, NS, A, AAAA, CNAME (a chain, one out of the zone, one to a
/// missing name, one into the delegation), MX, TXT, SRV, a wildcard, an empty non-terminal and
/// a delegation with glue. Knot reads it after `$ORIGIN example.org.` and `$TTL 300`
/// ([`Knot::start`]); clusterdns reads the same text from a file ([`zone_file`]).
const RECORDS: &str = "\
@         3600 IN SOA ns1 hostmaster 2024010101 7200 3600 1209600 60
          IN NS    ns1
          IN NS    ns2.example.net.
          IN MX    10 mail
          IN MX    20 mail2.example.net.
          IN TXT   \"v=spf1 mx -all\"
ns1       IN A     192.0.2.53
          IN AAAA  2001:db8::53
www       IN A     192.0.2.1
          IN A     192.0.2.2
          IN AAAA  2001:db8::1
mail      IN A     192.0.2.25
alias     IN CNAME www
chain     IN CNAME alias
external  IN CNAME www.example.net.
dangling  IN CNAME missing
deleg     IN CNAME host.sub
_sip._tcp IN SRV   10 60 5060 www
          IN SRV   20 40 5061 sip.example.net.
txt       IN TXT   \"hello world\" \"second string\"
*.wild    IN A     192.0.2.99
          IN TXT   \"wildcard\"
a.b.ent   IN A     192.0.2.3
sub       IN NS    ns1.sub
          IN NS    ns.example.net.
ns1.sub   IN A     192.0.2.54
          IN AAAA  2001:db8::54
";

use RecordType::{A, AAAA, ANY, AXFR, CNAME, DS, MX, NS, SOA, SRV, TXT};

/// The questions asked of both servers.
const QUESTIONS: &[(&str, RecordType)] = &[
    // The apex.
    ("example.org", SOA),
    ("example.org", NS),
    ("example.org", MX),
    ("example.org", TXT),
    ("example.org", A),
    ("example.org", ANY),
    ("Example.ORG", SOA),
    // Names with data, and NODATA.
    ("www.example.org", A),
    ("www.example.org", AAAA),
    ("www.example.org", MX),
    ("www.example.org", ANY),
    ("WWW.example.org", A),
    ("ns1.example.org", A),
    ("mail.example.org", A),
    ("mail.example.org", AAAA),
    ("txt.example.org", TXT),
    ("_sip._tcp.example.org", SRV),
    ("_sip._tcp.example.org", A),
    // NXDOMAIN.
    ("nothing.example.org", A),
    ("deep.nothing.example.org", TXT),
    // CNAMEs.
    ("alias.example.org", A),
    ("alias.example.org", AAAA),
    ("alias.example.org", CNAME),
    ("alias.example.org", MX),
    ("alias.example.org", ANY),
    ("chain.example.org", A),
    ("external.example.org", A),
    ("dangling.example.org", A),
    ("deleg.example.org", A),
    // The wildcard, and the empty non-terminals.
    ("anything.wild.example.org", A),
    ("anything.wild.example.org", TXT),
    ("anything.wild.example.org", AAAA),
    ("two.labels.wild.example.org", A),
    ("wild.example.org", A),
    ("ent.example.org", A),
    ("b.ent.example.org", A),
    ("z.ent.example.org", A),
    // The delegation.
    ("sub.example.org", NS),
    ("sub.example.org", A),
    ("sub.example.org", DS),
    ("www.sub.example.org", A),
    ("ns1.sub.example.org", A),
    ("ns1.sub.example.org", AAAA),
    // Transfers are refused.
    ("example.org", AXFR),
];

/// The apex NS RRset, as the sections below write it.
const APEX_NS: [&str; 2] = [
    "example.org. 300 NS ns1.example.org.",
    "example.org. 300 NS ns2.example.net.",
];

/// The zone file clusterdns serves: the text Knot serves, with the lines Knot puts first.
fn zone_file(records: &str) -> String {
    format!("$ORIGIN example.org.\n$TTL 300\n{records}")
}

/// A response reduced to what is compared: sections as sorted `owner TTL TYPE RDATA` lines.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    rcode: ResponseCode,
    aa: bool,
    answer: Vec<String>,
    authority: Vec<String>,
    additional: Vec<String>,
}

impl Seen {
    fn of(reply: &Reply) -> Seen {
        let lines = |records: &[Rr]| {
            let mut lines: Vec<String> = (records.iter())
                .map(|rr| format!("{} {} {}", rr.name, rr.ttl, rr.data))
                .collect();
            lines.sort();
            lines
        };
        Seen {
            rcode: reply.rcode,
            aa: reply.aa,
            answer: lines(&reply.answers),
            authority: lines(&reply.authority),
            additional: lines(&reply.additional),
        }
    }
}

/// clusterdns's response with the intended difference from Knot's taken out (see the module
/// docs), after checking it is exactly that.
fn without_intended(ours: Seen, knot: &Seen, axfr: bool, what: &str) -> Seen {
    if axfr && matches!(knot.rcode, ResponseCode::NotImp | ResponseCode::NotAuth) {
        assert_eq!(
            ours.rcode,
            ResponseCode::Refused,
            "{what}: AXFR is refused, as CoreDNS's"
        );
        return Seen {
            rcode: knot.rcode,
            ..ours
        };
    }
    let positive = ours.rcode == ResponseCode::NoError && !ours.answer.is_empty();
    let apex_ns_answer = ours
        .answer
        .iter()
        .any(|l| l.starts_with("example.org. 300 NS "));
    if positive && !apex_ns_answer && knot.authority.is_empty() && !ours.authority.is_empty() {
        // Names in RDATA are spelled as the question spelled the zone, by both servers.
        let lower = |lines: &[String]| lines.iter().map(|l| l.to_lowercase()).collect::<Vec<_>>();
        assert_eq!(
            lower(&ours.authority),
            lower(&APEX_NS.map(String::from)),
            "{what}: the authority section of a positive answer holds the apex NS, as CoreDNS's"
        );
        return Seen {
            authority: Vec::new(),
            ..ours
        };
    }
    ours
}

/// Starts clusterdns with `corefile` (written into `dir`), and waits until `example.org SOA`
/// answers.
fn serve(dir: &TempDir, corefile: &str, dns: SocketAddr) -> Process {
    let path = dir.write("Corefile", corefile);
    let server = Process::clusterdns(&[
        OsStr::new("-conf"),
        path.as_os_str(),
        OsStr::new("--threads"),
        OsStr::new("1"),
    ]);
    server.wait_answer(dns, Instant::now(), STARTUP, "example.org", SOA, |r| {
        r.rcode == ResponseCode::NoError && r.aa
    });
    server
}

#[test]
fn file_answers_every_question_as_knot_serving_the_same_file() {
    let knot = Knot::start("file", &[("example.org", RECORDS)]);
    let dir = TempDir::new("file-vs-knot");
    let zone = dir.write("db.example.org", &zone_file(RECORDS));
    let port = free_port();
    let dns = loopback(port);
    let server = serve(
        &dir,
        &format!(
            "example.org:{port} {{\n  bind 127.0.0.1\n  file {}\n}}\n",
            zone.display()
        ),
        dns,
    );
    for &(name, qtype) in QUESTIONS {
        for transport in ["udp", "tcp"] {
            let what = format!("{name} {qtype} over {transport}");
            let asked = |at: SocketAddr| match transport {
                "udp" => ask(at, name, qtype, Duration::from_secs(2)),
                _ => ask_tcp(at, name, qtype),
            };
            let theirs = asked(knot.addr).unwrap_or_else(|| panic!("{what}: Knot did not answer"));
            let ours = asked(dns).unwrap_or_else(|| panic!("{what}: no answer\n{}", server.logs()));
            let theirs = Seen::of(&theirs);
            let ours = without_intended(Seen::of(&ours), &theirs, qtype == AXFR, &what);
            assert_eq!(
                ours, theirs,
                "{what}: clusterdns (left) and Knot (right) differ"
            );
        }
    }
    server.assert_alive();
}

/// A CNAME out of the zone is looked up through the block's chain, as CoreDNS's `file` looks it
/// up through the server: here its `forward` to Knot, authoritative for the target. (Knot
/// alone, being authoritative only, answers the CNAME alone: the comparison above.)
#[test]
fn file_completes_a_cname_out_of_the_zone_through_the_forwarder() {
    let knot = Knot::with_records("file-upstream", &[("example.net", "www A 198.51.100.80\n")]);
    let dir = TempDir::new("file-chase");
    let zone = dir.write("db.example.org", &zone_file(RECORDS));
    let port = free_port();
    let dns = loopback(port);
    let server = serve(
        &dir,
        &format!(
            ".:{port} {{\n  bind 127.0.0.1\n  file {} example.org\n  forward . {}\n}}\n",
            zone.display(),
            knot.addr
        ),
        dns,
    );
    let reply = server.ask(dns, "external.example.org", A);
    assert_eq!(reply.rcode, ResponseCode::NoError);
    assert!(reply.aa);
    assert_eq!(
        reply.data(),
        ["A 198.51.100.80", "CNAME www.example.net."],
        "{reply:?}"
    );
    // Names outside the zone go on to the forwarder.
    let reply = server.ask(dns, "www.example.net", A);
    assert!(reply.is(&["A 198.51.100.80"]), "{reply:?}");
}

/// A zone file with `serial` and `www`'s address, and the line `extra` after `www`.
fn versioned(serial: u32, www: &str, extra: &str) -> String {
    zone_file(&format!(
        "@ 3600 IN SOA ns1 hostmaster {serial} 7200 3600 1209600 60\n@ NS ns1\n\
         ns1 A 192.0.2.53\nwww A {www}\n{extra}"
    ))
}

/// Replaces `path` with `text` at once (written beside it, then renamed over it), so a reload
/// never reads half a file.
fn replace(dir: &TempDir, path: &Path, text: &str) {
    let next = dir.write("zone.next", text);
    std::fs::rename(next, path).expect("rename the new zone file over the old");
}

#[test]
fn file_reloads_a_changed_zone_and_keeps_the_last_good_one() {
    let dir = TempDir::new("file-reload");
    let zone = dir.write("db.example.org", &versioned(1, "192.0.2.1", ""));
    let (port, metrics_port) = (free_port(), free_port());
    let dns = loopback(port);
    let metrics = loopback(metrics_port);
    let server = serve(
        &dir,
        &format!(
            "example.org:{port} {{\n  bind 127.0.0.1\n  prometheus 127.0.0.1:{metrics_port}\n  \
             file {} {{\n    reload 1s\n  }}\n}}\n",
            zone.display()
        ),
        dns,
    );
    let www = |address: &'static str| move |r: &Reply| r.is(&[address]);
    assert!(www("A 192.0.2.1")(&server.ask(dns, "www.example.org", A)));
    let failures = || {
        let (code, text) = http_get(metrics, "/metrics").expect("/metrics answers");
        assert_eq!(code, 200);
        metric(
            &text,
            "clusterdns_file_reload_failed_total",
            &["zone=\"example.org.\""],
        )
    };
    assert_eq!(failures(), None, "no failed reload yet");

    // A new serial: the new zone is served within the reload interval.
    replace(&dir, &zone, &versioned(2, "192.0.2.2", ""));
    let within = Duration::from_secs(5);
    server.wait_answer(
        dns,
        Instant::now(),
        within,
        "www.example.org",
        A,
        www("A 192.0.2.2"),
    );

    // A change without a new serial is not loaded, as CoreDNS does (and it is logged).
    replace(
        &dir,
        &zone,
        &versioned(2, "192.0.2.3", "mail A 192.0.2.25\n"),
    );
    server.wait_until(
        Instant::now(),
        within,
        "the unchanged serial logged",
        || match server.logs().contains("SOA serial did not") {
            true => Ok(()),
            false => Err("not yet"),
        },
    );
    assert!(www("A 192.0.2.2")(&server.ask(dns, "www.example.org", A)));

    // A broken file: logged with its file and line, counted, and the last good zone stays.
    let broken = versioned(3, "192.0.2.3", "bad A 192.0.2.999\n");
    replace(&dir, &zone, &broken);
    let line = broken.lines().position(|l| l.starts_with("bad")).unwrap() + 1;
    let named = format!("{}:{line}", zone.display());
    server.wait_until(
        Instant::now(),
        within,
        "the broken zone file logged",
        || match server.logs().contains(&named) {
            true => Ok(()),
            false => Err(server.logs()),
        },
    );
    assert_eq!(failures(), Some(1.0));
    assert!(www("A 192.0.2.2")(&server.ask(dns, "www.example.org", A)));
    assert!(server.ask(dns, "bad.example.org", A).nxdomain());

    // Fixed, with a new serial: served again; the failure was counted once.
    replace(&dir, &zone, &versioned(4, "192.0.2.4", ""));
    server.wait_answer(
        dns,
        Instant::now(),
        within,
        "www.example.org",
        A,
        www("A 192.0.2.4"),
    );
    assert_eq!(failures(), Some(1.0));
    server.assert_alive();
}
