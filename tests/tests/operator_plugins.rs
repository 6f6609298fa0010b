//! The plugins operators add to their Corefile (issue 19), through the real binary:
//! `k8s_external` (fed by the fake Kubernetes API server, the same watch as `kubernetes`),
//! `acl`, `local`, `nsid`, `minimal` and `header`. Each server forwards to Knot DNS; every check
//! is a real DNS answer over loopback, from 127.0.0.1, 127.0.0.2 or ::1 (`acl` tells them
//! apart). What the answers must be is CoreDNS 1.13's for the same Corefile; the malformed
//! lines each directive refuses are unit tests beside its parser
//! (`server/src/config/corefile/directives/`), and each plugin's cases from CoreDNS's README
//! and tests are unit tests beside its logic (`server/src/chain/plugins/`).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use clusterdns_testkit::client::{tcp, udp, TIMEOUT};
use clusterdns_testkit::dns::{Query, Reply};
use clusterdns_testkit::fakeapi::{self, FakeApi, Kind};
use clusterdns_testkit::http::{http_get, metric};
use clusterdns_testkit::knot::Knot;
use clusterdns_testkit::net::{free_port, loopback};
use clusterdns_testkit::process::{clusterdns_binary, Process};
use clusterdns_testkit::temp::TempDir;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::RecordType;
use serde_json::json;

/// How long the binary may take to start answering and to sync with the fake API.
const STARTUP: Duration = Duration::from_secs(15);
/// How long a change in the API may take to be answered.
const PROPAGATION: Duration = Duration::from_secs(5);

const A: RecordType = RecordType::A;
const AAAA: RecordType = RecordType::AAAA;
const SRV: RecordType = RecordType::SRV;
const PTR: RecordType = RecordType::PTR;
const WEB: &str = "web.default.svc.cluster.local";

/// The upstream's zone: a name to forward, and a load balancer's host name.
const UPSTREAM: &str = "www A 192.0.2.1\nwww AAAA 2001:db8::1\nlb A 192.0.2.77\n";

/// One clusterdns with a Corefile, its fake API server and its Knot; fields drop in order,
/// the server first.
struct Server {
    process: Process,
    port: u16,
    /// Where `prometheus` serves, for a Corefile that names `@METRICS@`.
    metrics: SocketAddr,
    api: FakeApi,
    _knot: Knot,
    _dir: TempDir,
}

impl Server {
    /// Starts clusterdns with one server block on a free port bound to 127.0.0.1 and ::1
    /// holding `directives`, `@KUBECONFIG@` and `@KNOT@` replaced by the fake API's
    /// kubeconfig and Knot's address; `seed` fills the API first. Returns once the cluster zone
    /// answers.
    fn start(test: &str, directives: &str, seed: impl FnOnce(&FakeApi)) -> Server {
        let api = FakeApi::with_core_services();
        seed(&api);
        let knot = Knot::with_records(test, &[("example.test", UPSTREAM)]);
        let dir = TempDir::new(test);
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        let port = free_port();
        let metrics = loopback(free_port());
        let directives = directives
            .replace("@METRICS@", &metrics.to_string())
            .replace("@KUBECONFIG@", &kubeconfig.display().to_string())
            .replace("@KNOT@", &knot.addr.to_string());
        let text = format!(".:{port} {{\n    bind 127.0.0.1 ::1\n{directives}\n}}\n");
        let corefile = dir.write("Corefile", &text);
        let check = Command::new(clusterdns_binary())
            .arg("--check-corefile")
            .arg(&corefile)
            .output()
            .expect("run --check-corefile");
        assert!(
            check.status.success(),
            "{test}: --check-corefile refused:\n{text}\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let process = Process::spawn(Command::new(clusterdns_binary()).args([
            "-conf".as_ref(),
            corefile.as_os_str(),
            "--threads".as_ref(),
            "1".as_ref(),
        ]));
        let server = Server {
            process,
            port,
            metrics,
            api,
            _knot: knot,
            _dir: dir,
        };
        server
            .process
            .wait_answer(server.v4(), Instant::now(), STARTUP, WEB, A, |r| {
                r.is(&["A 10.96.0.20"])
            });
        server
    }

    fn v4(&self) -> SocketAddr {
        loopback(self.port)
    }

    fn v6(&self) -> SocketAddr {
        SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], self.port))
    }

    /// The sum of the samples of metric `name` with `labels`.
    fn metric(&self, name: &str, labels: &[&str]) -> Option<f64> {
        let text = http_get(self.metrics, "/metrics").map(|(_, body)| body)?;
        metric(&text, name, labels)
    }

    /// Asks `name qtype` over UDP from 127.0.0.1.
    fn ask(&self, name: &str, qtype: RecordType) -> Reply {
        self.process.ask(self.v4(), name, qtype)
    }

    /// The raw response to `query` sent over UDP from `source` (`None` when none came).
    fn exchange_from(&self, source: IpAddr, query: &[u8]) -> Option<Vec<u8>> {
        let server = match source {
            IpAddr::V4(_) => self.v4(),
            IpAddr::V6(_) => self.v6(),
        };
        let socket = UdpSocket::bind((source, 0)).expect("bind the client");
        socket.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        socket.send_to(query, server).expect("send");
        let mut buf = vec![0u8; 65535];
        let (len, _) = socket.recv_from(&mut buf).ok()?;
        buf.truncate(len);
        Some(buf)
    }
}

/// `service` (a fake API object) with `spec.externalIPs` and load balancer ingress entries
/// (`{"ip": ...}` or `{"hostname": ...}`).
fn with_external(
    mut service: serde_json::Value,
    ips: &[&str],
    ingress: &[serde_json::Value],
) -> serde_json::Value {
    if !ips.is_empty() {
        service["spec"]["externalIPs"] = json!(ips);
    }
    if !ingress.is_empty() {
        service["spec"]["type"] = json!("LoadBalancer");
        service["status"]["loadBalancer"]["ingress"] = json!(ingress);
    }
    service
}

/// A query for `name qtype` with an OPT record (1232 bytes) holding an empty NSID option
/// (RFC 5001 §2.1) when `nsid`, RD set.
fn query_with(name: &str, qtype: RecordType, nsid: bool) -> Vec<u8> {
    let query = Query::new(name, u16::from(qtype))
        .id(9)
        .edns(Some(1232))
        .build();
    match nsid {
        true => with_nsid(query),
        false => query,
    }
}

/// `query` (built with an OPT record and no option) with an empty NSID option.
fn with_nsid(mut query: Vec<u8>) -> Vec<u8> {
    // The OPT record is last and has no options: its RDLENGTH is the last two bytes.
    let at = query.len() - 2;
    query[at..].copy_from_slice(&4u16.to_be_bytes());
    query.extend_from_slice(&[0, 3, 0, 0]);
    query
}

/// The EDNS option `code` of a response, when it has one.
fn option(response: &[u8], code: EdnsCode) -> Option<EdnsOption> {
    let message = Message::from_vec(response).expect("decodes");
    message.edns?.option(code).cloned()
}

/// The flags of a response: (AA, RD, RA).
fn flags(response: &[u8]) -> (bool, bool, bool) {
    (
        response[2] & 0x04 != 0,
        response[2] & 0x01 != 0,
        response[3] & 0x80 != 0,
    )
}

// ---------------------------------------------------------------------------------------------
// k8s_external
// ---------------------------------------------------------------------------------------------

/// The README's example and the answers of CoreDNS's tests, from the objects the `kubernetes`
/// directive watches: external IPs and load balancer addresses (A, AAAA, SRV with glue),
/// a load balancer's host name as a CNAME completed through the forwarder, a headless
/// Service's endpoints with `headless`, the apex's SOA and NS, PTR through a reverse zone
/// that falls through to the cluster's, and a change in the API answered at once.
#[test]
fn k8s_external_answers_external_addresses_from_the_cluster_watch() {
    let http = [fakeapi::port("http", 80, "TCP")];
    let server = Server::start(
        "k8s-external",
        "    kubernetes cluster.local in-addr.arpa {
        kubeconfig @KUBECONFIG@
    }
    k8s_external example.org in-addr.arpa {
        headless
        fallthrough in-addr.arpa
    }
    forward . @KNOT@",
        |api| {
            let dns_ports = [fakeapi::port("dns", 53, "UDP")];
            let kube_dns = fakeapi::service("kube-system", "kube-dns", &["10.96.0.10"], &dns_ports);
            api.upsert(Kind::Service, with_external(kube_dns, &["192.0.2.53"], &[]));
            // The README's example: a headless Service with an external IP.
            let test = fakeapi::headless_service("default", "test", &[]);
            api.upsert(
                Kind::Service,
                with_external(test, &["192.168.200.123"], &[]),
            );
            let ext = fakeapi::service("default", "ext", &["10.96.0.40"], &http);
            api.upsert(Kind::Service, with_external(ext, &["192.0.2.10"], &[]));
            let lb = fakeapi::service("default", "lb", &["10.96.0.41"], &http);
            let ingress = [json!({"ip": "198.51.100.7"}), json!({"ip": "2001:db8::7"})];
            api.upsert(Kind::Service, with_external(lb, &[], &ingress));
            let named = fakeapi::service("default", "named", &["10.96.0.42"], &http);
            let ingress = [json!({"hostname": "lb.example.test"})];
            api.upsert(Kind::Service, with_external(named, &[], &ingress));
            api.upsert(
                Kind::Service,
                fakeapi::headless_service("default", "db", &http),
            );
            let endpoints = [fakeapi::endpoint(&["10.1.0.5"], Some("db-0"), Some(true))];
            let slice = fakeapi::endpoint_slice("default", "db-1", "db", "IPv4", &http, &endpoints);
            api.upsert(Kind::EndpointSlice, slice);
        },
    );
    let logs = || server.process.logs();
    let ask = |name: &str, qtype| server.ask(name, qtype);

    let test = ask("test.default.example.org", A);
    assert!(test.is(&["A 192.168.200.123"]), "{test:?}\n{}", logs());
    assert!(test.aa, "authoritative: {test:?}");
    let ext = ask("ext.default.example.org", A);
    assert!(ext.is(&["A 192.0.2.10"]), "{ext:?}");
    assert_eq!(ext.ttls(), [5], "the default ttl: {ext:?}");
    let srv = ask("_http._tcp.ext.default.example.org", SRV);
    assert!(
        srv.is(&["SRV 0 100 80 ext.default.example.org."]),
        "{srv:?}"
    );
    assert_eq!(srv.additional.len(), 1, "{srv:?}");
    assert_eq!(srv.additional[0].data, "A 192.0.2.10", "{srv:?}");
    let lb4 = ask("lb.default.example.org", A);
    assert!(lb4.is(&["A 198.51.100.7"]), "{lb4:?}");
    let lb6 = ask("lb.default.example.org", AAAA);
    assert!(lb6.is(&["AAAA 2001:db8::7"]), "{lb6:?}");
    // A load balancer's host name: its CNAME, then its address through the forwarder.
    let named = ask("named.default.example.org", A);
    assert!(
        named.is(&["A 192.0.2.77", "CNAME lb.example.test."]),
        "{named:?}\n{}",
        logs()
    );
    // `headless`: the endpoints of a headless Service without external addresses.
    let db = ask("db.default.example.org", A);
    assert!(db.is(&["A 10.1.0.5"]), "{db:?}");
    let db0 = ask("db-0.db.default.example.org", A);
    assert!(db0.is(&["A 10.1.0.5"]), "{db0:?}");
    // Services without external addresses, and names that do not exist.
    for missing in [
        "web.default.example.org",
        "nothing.default.example.org",
        "x.nons.example.org",
    ] {
        let reply = ask(missing, A);
        assert!(reply.nxdomain(), "{missing}: {reply:?}");
        assert_eq!(reply.authority.len(), 1, "the zone's SOA: {reply:?}");
        assert!(
            reply.authority[0]
                .data
                .starts_with("SOA ns1.dns.example.org. hostmaster.dns.example.org."),
            "{reply:?}"
        );
    }
    // The apex.
    let soa = ask("example.org", RecordType::SOA);
    assert_eq!(soa.answers.len(), 1, "{soa:?}");
    let ns = ask("example.org", RecordType::NS);
    assert!(ns.is(&["NS ns1.dns.example.org."]), "{ns:?}");
    assert_eq!(ns.additional.len(), 1, "{ns:?}");
    assert_eq!(
        (
            ns.additional[0].name.as_str(),
            ns.additional[0].data.as_str()
        ),
        ("ns1.dns.example.org.", "A 192.0.2.53")
    );
    let ns1 = ask("ns1.dns.example.org", A);
    assert!(ns1.is(&["A 192.0.2.53"]), "{ns1:?}");
    // PTR: an external IP through k8s_external; a cluster IP falls through to kubernetes.
    let ptr = ask("10.2.0.192.in-addr.arpa", PTR);
    assert!(ptr.is(&["PTR ext.default.example.org."]), "{ptr:?}");
    let cluster_ptr = ask("20.0.96.10.in-addr.arpa", PTR);
    assert!(
        cluster_ptr.is(&["PTR web.default.svc.cluster.local."]),
        "{cluster_ptr:?}"
    );
    // The cluster zone is answered as before.
    let web = ask(WEB, A);
    assert!(web.is(&["A 10.96.0.20"]), "{web:?}");

    // A change in the API: the same watch feeds both zones.
    let since = Instant::now();
    let ext = fakeapi::service(
        "default",
        "ext",
        &["10.96.0.40"],
        &[fakeapi::port("http", 80, "TCP")],
    );
    server
        .api
        .upsert(Kind::Service, with_external(ext, &["192.0.2.11"], &[]));
    let took = server.process.wait_answer(
        server.v4(),
        since,
        PROPAGATION,
        "ext.default.example.org",
        A,
        |r| r.is(&["A 192.0.2.11"]),
    );
    eprintln!("k8s_external: a new external IP answered after {took:?}");
}

/// Without a `kubernetes` directive in the block, `k8s_external` stops startup, as in CoreDNS.
#[test]
fn k8s_external_needs_kubernetes_in_its_block() {
    let dir = TempDir::new("k8s-external-alone");
    let corefile = dir.write("Corefile", ".:1053 {\n    k8s_external example.org\n}\n");
    let output = Command::new(clusterdns_binary())
        .arg("--check-corefile")
        .arg(&corefile)
        .output()
        .expect("run --check-corefile");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "accepted: {stderr}");
    assert!(stderr.contains("Corefile:2: k8s_external"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// acl
// ---------------------------------------------------------------------------------------------

/// Rules on the source and the type, first match wins, over cluster and forwarded names:
/// `block` is REFUSED with the Extended DNS Error "Blocked", `filter` an empty NOERROR with
/// "Filtered", `drop` no response, `allow` lets the query on.
#[test]
fn acl_blocks_filters_drops_and_allows() {
    let server = Server::start(
        "acl",
        "    prometheus @METRICS@
    acl blocked.test {
        block net 127.0.0.1
    }
    acl dropped.test {
        drop
    }
    acl {
        filter type AAAA net 127.0.0.0/8
        allow net 127.0.0.1 ::1
        block net 127.0.0.0/8
    }
    kubernetes cluster.local {
        kubeconfig @KUBECONFIG@
    }
    forward . @KNOT@",
        |_| {},
    );
    let logs = || server.process.logs();
    let one: IpAddr = [127, 0, 0, 1].into();
    let two: IpAddr = [127, 0, 0, 2].into();
    let six: IpAddr = std::net::Ipv6Addr::LOCALHOST.into();
    let exchange = |source: IpAddr, name: &str, qtype: RecordType| {
        server.exchange_from(source, &query_with(name, qtype, false))
    };
    let reply = |bytes: &[u8]| Reply::parse(bytes).expect("decodes");
    let ede = |bytes: &[u8]| match option(bytes, EdnsCode::Unknown(15)) {
        Some(EdnsOption::Unknown(15, data)) => Some(data),
        None => None,
        other => panic!("{other:?}"),
    };

    // Allowed: forwarded and cluster names.
    let www = exchange(one, "www.example.test", A).expect("answered");
    assert!(
        reply(&www).is(&["A 192.0.2.1"]),
        "{:?}\n{}",
        reply(&www),
        logs()
    );
    let web = exchange(six, WEB, A).expect("answered");
    assert!(reply(&web).is(&["A 10.96.0.20"]), "{:?}", reply(&web));
    // filter: AAAA from 127.0.0.0/8 (and not from ::1).
    let filtered = exchange(one, "www.example.test", AAAA).expect("answered");
    let r = reply(&filtered);
    assert!(
        r.rcode == ResponseCode::NoError && r.answers.is_empty(),
        "{r:?}"
    );
    assert_eq!(ede(&filtered), Some(vec![0, 17]), "Filtered");
    let v6 = exchange(six, "www.example.test", AAAA).expect("answered");
    assert!(reply(&v6).is(&["AAAA 2001:db8::1"]), "{:?}", reply(&v6));
    // block: a source the allow does not cover, and a zone's own rule.
    let blocked = exchange(two, WEB, A).expect("answered");
    assert_eq!(
        reply(&blocked).rcode,
        ResponseCode::Refused,
        "{:?}",
        reply(&blocked)
    );
    assert_eq!(ede(&blocked), Some(vec![0, 15]), "Blocked");
    let zone = exchange(one, "x.blocked.test", A).expect("answered");
    assert_eq!(reply(&zone).rcode, ResponseCode::Refused);
    // Without EDNS, the refusal carries no OPT record (RFC 6891 §7).
    let plain = server
        .exchange_from(two, &Query::new(WEB, 1).id(3).build())
        .expect("answered");
    let message = Message::from_vec(&plain).expect("decodes");
    assert!(message.edns.is_none() && message.metadata.response_code == ResponseCode::Refused);
    // drop: nothing comes back.
    assert!(exchange(one, "x.dropped.test", A).is_none(), "dropped");
    assert!(exchange(six, "x.dropped.test", A).is_none(), "dropped");
    // The server still answers.
    let again = exchange(one, WEB, A).expect("answered");
    assert!(reply(&again).is(&["A 10.96.0.20"]));

    // CoreDNS's counters, by the zone of the rule that decided.
    let server_label = format!("server=\"dns://127.0.0.1:{}\"", server.port);
    let count = |name: &str, zone: &str| {
        let zone = format!("zone=\"{zone}\"");
        server.metric(name, &[&server_label, &zone])
    };
    assert_eq!(count("coredns_acl_blocked_requests_total", "."), Some(2.0));
    assert_eq!(
        count("coredns_acl_blocked_requests_total", "blocked.test."),
        Some(1.0)
    );
    assert_eq!(count("coredns_acl_filtered_requests_total", "."), Some(1.0));
    assert_eq!(
        count("coredns_acl_dropped_requests_total", "dropped.test."),
        Some(2.0)
    );
    let allowed = server.metric("coredns_acl_allowed_requests_total", &[&server_label]);
    // Cluster names asked while the server started count too.
    assert!(allowed.is_some_and(|n| n >= 4.0), "{allowed:?}");
}

// ---------------------------------------------------------------------------------------------
// local, nsid, minimal, header
// ---------------------------------------------------------------------------------------------

/// One block with `local`, `nsid`, `header` and `minimal`: local names answered before the
/// rest of the chain (and untouched by `header`), the identifier in every answer whose query
/// asks for it (local, cluster, forwarded, `chaos`), flags set and cleared on the answers of the
/// plugins after `header`, and positive answers without their glue.
#[test]
fn local_nsid_header_and_minimal() {
    let server = Server::start(
        "local-nsid",
        "    nsid clusterdns test
    prometheus @METRICS@
    chaos v1
    local
    header {
        response set ra
        response clear rd
    }
    minimal
    kubernetes cluster.local {
        kubeconfig @KUBECONFIG@
    }
    forward . @KNOT@",
        |_| {},
    );
    let logs = || server.process.logs();
    let exchange = |name: &str, qtype: RecordType, nsid: bool| {
        let query = query_with(name, qtype, nsid);
        udp(server.v4(), &query).unwrap_or_else(|e| panic!("{name}: {e}\n{}", logs()))
    };
    let reply = |bytes: &[u8]| Reply::parse(bytes).expect("decodes");

    // local.
    let localhost = exchange("localhost", A, false);
    let r = reply(&localhost);
    assert!(r.is(&["A 127.0.0.1"]), "{r:?}\n{}", logs());
    assert_eq!(r.ttls(), [604800]);
    // Not authoritative, RD echoed and RA clear: `header` comes after `local`.
    assert_eq!(flags(&localhost), (false, true, false));
    let prefixed = reply(&exchange("localhost.example.test", AAAA, false));
    assert!(prefixed.is(&["AAAA ::1"]), "{prefixed:?}");
    let ptr = reply(&exchange("1.0.0.127.in-addr.arpa", PTR, false));
    assert!(ptr.is(&["PTR localhost."]), "{ptr:?}");
    let missing = reply(&exchange("5.0.0.127.in-addr.arpa", PTR, false));
    assert!(missing.nxdomain(), "{missing:?}");
    // Names below localhost. and localhost.<domain> are counted; localhost. itself is not.
    let below = reply(&exchange("a.localhost", A, false));
    assert!(below.is(&["A 127.0.0.1"]), "{below:?}");
    let counted = server.metric("coredns_local_localhost_requests_total", &[]);
    assert_eq!(counted, Some(2.0));

    // nsid: asked for, on a local, a cluster and a forwarded answer (over UDP and TCP).
    let nsid = |bytes: &[u8]| match option(bytes, EdnsCode::NSID) {
        Some(EdnsOption::NSID(data)) => Some(data.as_ref().to_vec()),
        None => None,
        other => panic!("{other:?}"),
    };
    for name in ["localhost", WEB, "www.example.test"] {
        let asked = exchange(name, A, true);
        assert_eq!(
            nsid(&asked),
            Some(b"clusterdns test".to_vec()),
            "{name}\n{}",
            logs()
        );
        let over_tcp = tcp(server.v4(), &query_with(name, A, true)).expect("TCP answer");
        assert_eq!(
            nsid(&over_tcp),
            Some(b"clusterdns test".to_vec()),
            "{name} over TCP"
        );
        assert_eq!(nsid(&exchange(name, A, false)), None, "{name}: not asked");
    }
    // A `chaos` answer too.
    let version = Query::new("version.bind", 16)
        .class(3)
        .id(4)
        .edns(Some(1232))
        .build();
    let version = udp(server.v4(), &with_nsid(version)).expect("a CH answer");
    assert_eq!(Reply::parse(&version).expect("decodes").answers.len(), 1);
    assert_eq!(nsid(&version), Some(b"clusterdns test".to_vec()), "chaos");

    // header: RA set, RD cleared on cluster and forwarded answers; AA as each plugin wrote it.
    assert_eq!(flags(&exchange(WEB, A, false)), (true, false, true));
    assert_eq!(
        flags(&exchange("www.example.test", A, false)),
        (false, false, true)
    );

    // minimal: an SRV answer without its glue; a negative answer keeps its SOA.
    let srv = reply(&exchange(
        "_http._tcp.web.default.svc.cluster.local",
        SRV,
        false,
    ));
    assert!(
        srv.is(&["SRV 0 100 80 web.default.svc.cluster.local."]),
        "{srv:?}"
    );
    assert!(
        srv.additional.is_empty() && srv.authority.is_empty(),
        "{srv:?}"
    );
    let srv_bytes = exchange("_http._tcp.web.default.svc.cluster.local", SRV, false);
    assert!(
        Message::from_vec(&srv_bytes)
            .expect("decodes")
            .edns
            .is_some(),
        "OPT kept"
    );
    let nx = reply(&exchange("nothing.default.svc.cluster.local", A, false));
    assert!(nx.nxdomain() && nx.authority.len() == 1, "{nx:?}");
}
