//! The Corefile directives distributions' default Corefiles add to kubeadm's, through the real
//! binary: `bufsize` (OpenShift's dns-operator), `dns64` (kops on IPv6), `debug`, and `whoami`
//! (CoreDNS's own examples). Each server is fed by the fake Kubernetes API server
//! (`clusterdns_testkit::fakeapi`) and forwards to Knot DNS (`clusterdns_testkit::knot`); every
//! check is a real DNS answer over loopback, from 127.0.0.1 or from ::1 (dns64 and whoami tell
//! IPv4 clients from IPv6 ones). What the answers must be is CoreDNS 1.13's for the same
//! Corefile; the malformed lines each directive refuses are unit tests beside its parser
//! (`server/src/config/corefile/directives/`).

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use clusterdns_testkit::client::{read_framed, send_framed, tcp, udp, TIMEOUT};
use clusterdns_testkit::dns::{answer_count, truncated, Query, Reply};
use clusterdns_testkit::fakeapi::{self, FakeApi, Kind};
use clusterdns_testkit::http::{http_get, metric};
use clusterdns_testkit::knot::Knot;
use clusterdns_testkit::net::{free_port, loopback};
use clusterdns_testkit::process::{clusterdns_binary, Process};
use clusterdns_testkit::temp::TempDir;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// How long the binary may take to start answering and to sync with the fake API.
const STARTUP: Duration = Duration::from_secs(15);

const A: u16 = 1;
const AAAA: u16 = 28;
const WEB: &str = "web.default.svc.cluster.local";
/// A headless Service with [`BIG`] ready endpoints: an A answer of about 1.6 KB.
const BIG_SVC: &str = "big.default.svc.cluster.local";
const BIG: usize = 100;

/// The upstream's zone: `www` has one address, `big` as many as [`BIG`].
fn upstream_zone() -> String {
    let mut records = String::from("www A 192.0.2.1\nv4 A 192.0.2.44\n");
    for i in 0..BIG {
        records.push_str(&format!("big A 192.0.2.{}\n", i + 1));
    }
    records
}

/// One clusterdns with a Corefile, its fake API server and its Knot. Fields drop in order:
/// the server first.
struct Server {
    process: Process,
    /// The DNS port, bound on 127.0.0.1 and ::1.
    port: u16,
    _api: FakeApi,
    _knot: Knot,
    _dir: TempDir,
}

impl Server {
    /// Starts clusterdns with one server block on a free port bound to 127.0.0.1 and ::1
    /// holding `directives` (`@KUBERNETES@` and `@KNOT@` replaced by the `kubernetes` and
    /// `forward` lines for the fake API and Knot), and `extra` after it (`@PORT@` replaced).
    /// `env` is given to the process (a value of `None` removes the variable). Returns once
    /// the cluster zone answers.
    fn start(test: &str, directives: &str, extra: &str, env: &[(&str, Option<&str>)]) -> Server {
        let api = FakeApi::with_core_services();
        let http = [fakeapi::port("http", 80, "TCP")];
        api.upsert(
            Kind::Service,
            fakeapi::service("default", "dual", &["10.96.0.30", "fd00::30"], &http),
        );
        api.upsert(
            Kind::Service,
            fakeapi::headless_service("default", "big", &http),
        );
        let addresses: Vec<String> = (0..BIG)
            .map(|i| format!("10.1.{}.{}", i / 200, i % 200 + 1))
            .collect();
        let endpoints: Vec<serde_json::Value> = (addresses.iter())
            .map(|a| fakeapi::endpoint(&[a], None, Some(true)))
            .collect();
        api.upsert(
            Kind::EndpointSlice,
            fakeapi::endpoint_slice("default", "big-1", "big", "IPv4", &http, &endpoints),
        );
        let knot = Knot::with_records(test, &[("example.test", &upstream_zone())]);
        let dir = TempDir::new(test);
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        let port = free_port();
        let kubernetes = format!(
            "kubernetes cluster.local {{\n        kubeconfig {}\n    }}",
            kubeconfig.display()
        );
        let directives = directives
            .replace("@KUBERNETES@", &kubernetes)
            .replace("@KNOT@", &format!("forward . {}", knot.addr));
        let text = format!(
            ".:{port} {{\n    bind 127.0.0.1 ::1\n    {directives}\n}}\n{}",
            extra.replace("@PORT@", &port.to_string())
        );
        let corefile: PathBuf = dir.write("Corefile", &text);
        let mut command = Command::new(clusterdns_binary());
        command.args([
            "-conf".as_ref(),
            corefile.as_os_str(),
            "--threads".as_ref(),
            "1".as_ref(),
        ]);
        for (name, value) in env {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        let process = Process::spawn(&mut command);
        let server = Server {
            process,
            port,
            _api: api,
            _knot: knot,
            _dir: dir,
        };
        server.process.wait_answer(
            server.v4(),
            Instant::now(),
            STARTUP,
            WEB,
            RecordType::A,
            |reply| reply.is(&["A 10.96.0.20"]),
        );
        server
    }

    fn v4(&self) -> SocketAddr {
        loopback(self.port)
    }

    fn v6(&self) -> SocketAddr {
        SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], self.port))
    }

    /// Asks `name qtype` at `dns` over UDP, from 127.0.0.1 or ::1 as `dns` is.
    fn ask(&self, dns: SocketAddr, name: &str, qtype: RecordType) -> Reply {
        let query = Query::new(name, u16::from(qtype)).id(5).build();
        let response = udp(dns, &query).unwrap_or_else(|e| {
            panic!(
                "no answer to {name} {qtype} at {dns}: {e}\n{}",
                self.process.logs()
            )
        });
        Reply::parse(&response).unwrap_or_else(|e| panic!("{name} {qtype}: {e}"))
    }
}

/// The raw response to `name qtype` with an OPT record advertising `payload`, over UDP or TCP.
fn exchange(dns: SocketAddr, name: &str, qtype: u16, payload: u16, over_tcp: bool) -> Vec<u8> {
    let query = Query::new(name, qtype).id(77).edns(Some(payload)).build();
    let response = if over_tcp {
        tcp(dns, &query)
    } else {
        udp(dns, &query)
    };
    response.unwrap_or_else(|e| panic!("{name}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// bufsize
// ---------------------------------------------------------------------------------------------

/// OpenShift's dns-operator writes `bufsize 1232`; 1100 here so that the ceiling is told apart
/// from our own advertised size. A client asking for 4096 bytes gets at most 1100 over UDP,
/// from the cluster zone and from the forwarder alike, TC set; a client asking for less gets
/// less; TCP carries the whole answer.
#[test]
fn bufsize_truncates_large_answers_at_its_size() {
    let server = Server::start(
        "bufsize",
        "bufsize 1100\n    @KUBERNETES@\n    @KNOT@",
        "",
        &[],
    );
    let logs = || server.process.logs();
    for name in [BIG_SVC, "big.example.test"] {
        let limited = exchange(server.v4(), name, A, 4096, false);
        assert!(
            limited.len() <= 1100,
            "{name}: {} bytes\n{}",
            limited.len(),
            logs()
        );
        assert!(truncated(&limited), "{name}: TC is set");
        // The records that fit are there (an A record is 16 bytes).
        assert!(limited.len() > 1100 - 16, "{name}: {} bytes", limited.len());
        assert!(answer_count(&limited) > 0, "{name}");

        let smaller = exchange(server.v4(), name, A, 700, false);
        assert!(
            smaller.len() <= 700 && truncated(&smaller),
            "{name}: {}",
            smaller.len()
        );

        let whole = exchange(server.v4(), name, A, 4096, true);
        assert!(!truncated(&whole), "{name} over TCP");
        assert_eq!(usize::from(answer_count(&whole)), BIG, "{name} over TCP");
    }
    // Small answers are not affected.
    let web = server.ask(server.v4(), WEB, RecordType::A);
    assert!(web.is(&["A 10.96.0.20"]), "{web:?}");
}

// ---------------------------------------------------------------------------------------------
// whoami
// ---------------------------------------------------------------------------------------------

/// `whoami` at the end of a chain, after `kubernetes`: cluster names are answered by the zone,
/// any other name by `whoami`, with the client's address in an A or AAAA record and its port
/// in an SRV record `_udp.`/`_tcp.` + the name, in the additional section (its README's
/// example, from our own socket).
#[test]
fn whoami_answers_with_the_clients_address_port_and_transport() {
    let server = Server::start("whoami", "@KUBERNETES@\n    whoami", "", &[]);

    // From 127.0.0.1 over UDP.
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    socket.set_read_timeout(Some(TIMEOUT)).expect("a timeout");
    let port = socket.local_addr().expect("its address").port();
    let query = Query::new("example.org", A).id(9).build();
    socket.send_to(&query, server.v4()).expect("sent");
    let mut buf = [0u8; 1500];
    let (len, _) = socket.recv_from(&mut buf).expect("an answer");
    let reply = Reply::parse(&buf[..len]).expect("decodes");
    assert_eq!(reply.rcode, ResponseCode::NoError);
    assert!(reply.answers.is_empty() && reply.aa, "{reply:?}");
    let additional: Vec<String> = (reply.additional.iter())
        .map(|rr| format!("{} {} {}", rr.name, rr.ttl, rr.data))
        .collect();
    assert_eq!(
        additional,
        [
            "example.org. 0 A 127.0.0.1".to_owned(),
            format!("_udp.example.org. 0 SRV 0 0 {port} ."),
        ],
        "{}",
        server.process.logs()
    );

    // From ::1 over TCP, for AAAA.
    let mut stream = TcpStream::connect(server.v6()).expect("connected over IPv6");
    stream.set_read_timeout(Some(TIMEOUT)).expect("a timeout");
    let port = stream.local_addr().expect("its address").port();
    send_framed(&mut stream, &Query::new("whoami.example", AAAA).build()).expect("sent");
    let reply = Reply::parse(&read_framed(&mut stream).expect("an answer")).expect("decodes");
    let additional: Vec<String> = (reply.additional.iter())
        .map(|rr| format!("{} {} {}", rr.name, rr.ttl, rr.data))
        .collect();
    assert_eq!(
        additional,
        [
            "whoami.example. 0 AAAA ::1".to_owned(),
            format!("_tcp.whoami.example. 0 SRV 0 0 {port} ."),
        ]
    );

    // The cluster zone comes first in the chain.
    let web = server.ask(server.v4(), WEB, RecordType::A);
    assert!(
        web.is(&["A 10.96.0.20"]) && web.additional.is_empty(),
        "{web:?}"
    );
    let missing = server.ask(server.v4(), "nope.default.svc.cluster.local", RecordType::A);
    assert_eq!(missing.rcode, ResponseCode::NXDomain, "{missing:?}");
}

// ---------------------------------------------------------------------------------------------
// debug
// ---------------------------------------------------------------------------------------------

/// `debug` is accepted and turns on clusterdns's debug-level messages on stderr, unless
/// RUST_LOG chooses the levels.
#[test]
fn debug_turns_on_debug_logging() {
    let on = Server::start(
        "debug-on",
        "debug\n    @KUBERNETES@",
        "",
        &[("RUST_LOG", None)],
    );
    on.process
        .wait_until(Instant::now(), STARTUP, "a DEBUG line on stderr", || {
            let stderr = on.process.stderr();
            match stderr
                .lines()
                .any(|l| l.contains("DEBUG") && l.contains("debug-level logging on"))
            {
                true => Ok(()),
                false => Err(stderr),
            }
        });
    drop(on);

    let chosen = Server::start(
        "debug-rust-log",
        "debug\n    @KUBERNETES@",
        "",
        &[("RUST_LOG", Some("info"))],
    );
    let stderr = chosen.process.stderr();
    assert!(!stderr.contains("DEBUG"), "RUST_LOG=info chooses: {stderr}");

    let off = Server::start("debug-off", "@KUBERNETES@", "", &[("RUST_LOG", None)]);
    let stderr = off.process.stderr();
    assert!(!stderr.contains("DEBUG"), "without debug: {stderr}");
}

// ---------------------------------------------------------------------------------------------
// dns64
// ---------------------------------------------------------------------------------------------

/// `dns64` as kops writes it for IPv6 clusters (the well-known prefix): an IPv6 client asking
/// an IPv4-only ClusterIP Service for AAAA gets its address under 64:ff9b::/96, with the
/// record TTL (the smaller of the A record's and the SOA's, both the zone's 5 s). A dual-stack
/// Service keeps its own AAAA; an IPv4 client, an A question and a missing name are answered
/// as without dns64. A second block (README's `prefix` and `allow_ipv4` options) synthesizes
/// from `hosts` for IPv4 clients too, under a /64 network-specific prefix (RFC 6052 §2.4's
/// example address).
#[test]
fn dns64_synthesizes_aaaa_from_a() {
    let metrics = loopback(free_port());
    let extra = "example.net:@PORT@ {\n    bind 127.0.0.1 ::1\n    dns64 {\n        \
                 prefix 2001:db8:122:344::/64\n        allow_ipv4\n    }\n    hosts {\n        \
                 192.0.2.33 h.example.net\n    }\n}\n";
    // The template answers AAAA for v4.example.test with nothing (NOERROR): its A question
    // then needs the upstream, which the synthesis waits on.
    let directives = format!(
        "prometheus {metrics}\n    dns64\n    template IN AAAA example.test {{\n        \
         match ^v4[.]example[.]test[.]$\n        rcode NOERROR\n    }}\n    \
         @KUBERNETES@\n    @KNOT@"
    );
    let server = Server::start("dns64", &directives, extra, &[]);
    let logs = || server.process.logs();

    let web = server.ask(server.v6(), WEB, RecordType::AAAA);
    assert!(web.is(&["AAAA 64:ff9b::a60:14"]), "{web:?}\n{}", logs());
    assert_eq!(web.ttls(), [5], "{web:?}");
    assert!(
        !web.aa,
        "a synthesized answer is not authoritative, as CoreDNS's"
    );
    assert_eq!(web.owners(), [format!("{WEB}.")]);

    let dual = server.ask(
        server.v6(),
        "dual.default.svc.cluster.local",
        RecordType::AAAA,
    );
    assert!(dual.is(&["AAAA fd00::30"]), "{dual:?}");
    let from_v4 = server.ask(server.v4(), WEB, RecordType::AAAA);
    assert!(
        from_v4.is(&[]) && !from_v4.authority.is_empty(),
        "NODATA: {from_v4:?}"
    );
    let a = server.ask(server.v6(), WEB, RecordType::A);
    assert!(a.is(&["A 10.96.0.20"]), "{a:?}");
    let missing = server.ask(
        server.v6(),
        "nope.default.svc.cluster.local",
        RecordType::AAAA,
    );
    assert_eq!(missing.rcode, ResponseCode::NXDomain, "{missing:?}");

    // A forwarded AAAA answer (NODATA from Knot), synthesized from the forwarded A answer,
    // first from the upstream, then from the cache.
    for _ in 0..2 {
        let forwarded = server.ask(server.v6(), "www.example.test", RecordType::AAAA);
        assert!(
            forwarded.is(&["AAAA 64:ff9b::c000:201"]),
            "{forwarded:?}\n{}",
            logs()
        );
    }
    // An AAAA answer made here (the template) whose A question needs the upstream.
    let waited = server.ask(server.v6(), "v4.example.test", RecordType::AAAA);
    assert!(
        waited.is(&["AAAA 64:ff9b::c000:22c"]),
        "{waited:?}\n{}",
        logs()
    );

    // The second block: hosts, allow_ipv4, a /64 prefix; no SOA in the AAAA answer, so the
    // TTL is the smaller of hosts' 3600 and 600.
    let v4_client = SocketAddr::from(([127, 0, 0, 1], server.port));
    let hosts = server.ask(v4_client, "h.example.net", RecordType::AAAA);
    assert!(
        hosts.is(&["AAAA 2001:db8:122:344:c0:2:2100:0"]),
        "{hosts:?}\n{}",
        logs()
    );
    assert_eq!(hosts.ttls(), [600]);

    let text = http_get(metrics, "/metrics")
        .map(|(_, body)| body)
        .unwrap_or_default();
    let translated = metric(&text, "coredns_dns64_requests_translated_total", &[]);
    assert_eq!(translated, Some(5.0), "{text}");
}
