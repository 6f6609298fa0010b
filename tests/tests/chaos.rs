//! The `chaos` directive through the real binary: CH TXT answers about the server, as
//! CoreDNS's `chaos` README shows them, in the block whose zones route them (OpenShift's
//! `hostname.bind:5353 { chaos }` is one of these), and the rest of CH refused as before.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clusterdns_testkit::client;
use clusterdns_testkit::dns::{Query, Reply};
use clusterdns_testkit::net::{free_port, loopback};
use clusterdns_testkit::process::Process;
use clusterdns_testkit::temp::TempDir;
use hickory_proto::op::ResponseCode;

/// A CH query for `name` of `qtype`.
fn ask_ch(dns: SocketAddr, name: &str, qtype: u16) -> Option<Reply> {
    let packet = Query::new(name, qtype).class(3).build();
    let response = client::udp(dns, &packet).ok()?;
    Reply::parse(&response).ok()
}

#[test]
fn chaos_answers_ch_txt_about_the_server() {
    let dir = TempDir::new("chaos");
    let port = free_port();
    let corefile = dir.write(
        "Corefile",
        &format!(
            "version.bind:{port} authors.bind:{port} hostname.bind:{port} id.server:{port} {{\n  \
             bind 127.0.0.1\n  chaos CoreDNS-001 info@coredns.io\n}}\n\
             .:{port} {{\n  bind 127.0.0.1\n  errors\n}}\n"
        ),
    );
    let server = Process::clusterdns(&["-conf".as_ref(), corefile.as_os_str()]);
    let dns = loopback(port);
    server.wait_until(
        Instant::now(),
        Duration::from_secs(10),
        "version.bind",
        || {
            ask_ch(dns, "version.bind", 16)
                .map(|_| ())
                .ok_or("no answer")
        },
    );
    let version = ask_ch(dns, "version.bind", 16).expect("answer");
    assert_eq!(version.rcode, ResponseCode::NoError);
    assert_eq!(version.answers.len(), 1);
    assert_eq!(version.answers[0].data, "TXT \"CoreDNS-001\"");
    assert_eq!(version.answers[0].ttl, 0);
    assert!(!version.aa, "CoreDNS's chaos answer is not authoritative");
    let authors = ask_ch(dns, "authors.bind", 16).expect("answer");
    assert_eq!(authors.answers[0].data, "TXT \"info@coredns.io\"");
    let hostname = ask_ch(dns, "hostname.bind", 16).expect("answer");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    assert_eq!(hostname.answers[0].data, format!("TXT \"{}\"", host.trim()));
    // Another type, a name the plugin does not answer, a block without chaos: refused.
    for (name, qtype) in [
        ("version.bind", 1),
        ("id.server.example", 16),
        ("example.org", 16),
    ] {
        let reply = ask_ch(dns, name, qtype).expect("answer");
        assert_eq!(reply.rcode, ResponseCode::Refused, "CH {name} {qtype}");
    }
    server.assert_alive();
}
