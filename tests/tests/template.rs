//! CoreDNS's `template` answering A or AAAA with a CNAME, through the real `clusterdns` binary:
//! the target is looked up as CoreDNS's template looks it up through its server, and its
//! records follow the CNAME. The Corefile is the README's "Fabricate a CNAME" example (its
//! target served by Knot DNS behind `forward` and `cache`), and a template pointing at a
//! cluster name (answered from the fake Kubernetes API server's Services). Every check is a
//! real DNS exchange over loopback, UDP and TCP.

use std::net::SocketAddr;
use std::time::Duration;

use clusterdns_testkit::client::ask_tcp;
use clusterdns_testkit::dns::{Reply, Rr};
use clusterdns_testkit::fakeapi::{self, FakeApi, Kind};
use clusterdns_testkit::knot::Knot;
use clusterdns_testkit::net::{free_port, loopback};
use clusterdns_testkit::process::Process;
use clusterdns_testkit::temp::TempDir;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// How long the binary may take to start answering and to sync with the fake API.
const STARTUP: Duration = Duration::from_secs(15);

/// The upstream's zone.
const RECORDS: &str = "www A 192.0.2.1\nwww AAAA 2001:db8::1\nedge CNAME www\n";

/// The Corefile: `@NAME@` is filled in by [`Deployment::start`].
const COREFILE: &str = r#"
.:@PORT@ {
    bind 127.0.0.1
    ready 127.0.0.1:@READY@
    template IN ANY foogle.test {
        match "^foogle\.test\.$"
        answer "foogle.test 60 IN CNAME www.example.test"
    }
    template IN A alias.test {
        match "^web\.alias\.test\.$"
        answer "{{ .Name }} 60 IN CNAME web.default.svc.cluster.local."
        fallthrough
    }
    template IN A alias.test {
        match "^edge\.alias\.test\.$"
        answer "{{ .Name }} 60 IN CNAME edge.example.test."
    }
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig @KUBECONFIG@
    }
    forward . @KNOT@
    cache 30
}
"#;

/// The binary serving [`COREFILE`] against a seeded fake API and Knot. Fields drop in order:
/// the server first.
struct Deployment {
    server: Process,
    dns: SocketAddr,
    _api: FakeApi,
    _knot: Knot,
    _dir: TempDir,
}

impl Deployment {
    fn start(test: &str) -> Deployment {
        let api = FakeApi::with_core_services();
        let http = [fakeapi::port("http", 80, "TCP")];
        api.upsert(
            Kind::Service,
            fakeapi::service("default", "web", &["10.96.0.20"], &http),
        );
        let knot = Knot::with_records(test, &[("example.test", RECORDS)]);
        let dir = TempDir::new(test);
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        let (port, ready) = (free_port(), loopback(free_port()));
        let corefile = COREFILE
            .replace("@PORT@", &port.to_string())
            .replace("@READY@", &ready.port().to_string())
            .replace("@KUBECONFIG@", &kubeconfig.display().to_string())
            .replace("@KNOT@", &knot.addr.to_string());
        let path = dir.write("Corefile", &corefile);
        let server = Process::clusterdns(&[
            "--corefile",
            path.to_str().expect("a UTF-8 path"),
            "--threads",
            "1",
        ]);
        server.wait_status(ready, "/ready", 200, STARTUP);
        Deployment {
            server,
            dns: loopback(port),
            _api: api,
            _knot: knot,
            _dir: dir,
        }
    }
}

/// The answer section as `OWNER TYPE DATA`.
fn answers(reply: &Reply) -> Vec<String> {
    (reply.answers.iter())
        .map(|Rr { name, data, .. }| format!("{name} {data}"))
        .collect()
}

#[test]
fn a_template_cname_is_followed_to_its_target() {
    let d = Deployment::start("template-cname");
    // (name, type, the answer section)
    let table: [(&str, RecordType, &[&str]); 6] = [
        // The README's example: the target is outside, so the forwarder (Knot) answers it.
        (
            "foogle.test",
            RecordType::A,
            &[
                "foogle.test. CNAME www.example.test.",
                "www.example.test. A 192.0.2.1",
            ],
        ),
        (
            "foogle.test",
            RecordType::AAAA,
            &[
                "foogle.test. CNAME www.example.test.",
                "www.example.test. AAAA 2001:db8::1",
            ],
        ),
        // Other types get the CNAME alone, as CoreDNS chases only A and AAAA.
        (
            "foogle.test",
            RecordType::TXT,
            &["foogle.test. CNAME www.example.test."],
        ),
        // A target in the cluster zone: the Service's address, from the zone.
        (
            "web.alias.test",
            RecordType::A,
            &[
                "web.alias.test. CNAME web.default.svc.cluster.local.",
                "web.default.svc.cluster.local. A 10.96.0.20",
            ],
        ),
        // A target that is itself a CNAME upstream: the upstream's whole chain follows.
        (
            "edge.alias.test",
            RecordType::A,
            &[
                "edge.alias.test. CNAME edge.example.test.",
                "edge.example.test. CNAME www.example.test.",
                "www.example.test. A 192.0.2.1",
            ],
        ),
        // A name the template's regex does not match: SERVFAIL, no lookup.
        ("other.alias.test", RecordType::A, &[]),
    ];
    // Twice: first the targets miss the cache (the query waits on the forwarder off the
    // worker's batch), then they hit it (answered on the worker).
    for round in ["cache miss", "cache hit"] {
        for (name, qtype, want) in table {
            let reply = d.server.ask(d.dns, name, qtype);
            let rcode = if want.is_empty() {
                ResponseCode::ServFail
            } else {
                ResponseCode::NoError
            };
            assert_eq!(reply.rcode, rcode, "{round}: {name} {qtype}");
            assert_eq!(answers(&reply), want, "{round}: {name} {qtype}");
        }
    }
    // Over TCP, the same.
    let reply = ask_tcp(d.dns, "foogle.test", RecordType::A).expect("a TCP answer");
    assert_eq!(
        answers(&reply),
        [
            "foogle.test. CNAME www.example.test.",
            "www.example.test. A 192.0.2.1"
        ]
    );
    d.server.assert_alive();
}
