//! ExternalName Services whose target is outside the cluster zone, answered as CoreDNS's
//! `kubernetes` plugin answers them: the CNAME, then what the target resolves to through the
//! block's forwarder (here Knot DNS on loopback), so a Pod's resolver, which does not chase a
//! CNAME itself, gets an address. Checked on the wire over UDP and TCP, from the cache and
//! from the upstream, through an in-zone chain that leaves the zone, for a target that does not
//! exist, and with glibc's real resolver (`getent ahostsv4`, which calls getaddrinfo) in a
//! mount namespace whose /etc/resolv.conf is a Pod's.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use clusterdns::config::ServeConfig;
use clusterdns::forward::config::ForwardConfig;
use clusterdns_testkit::client::{self, ask};
use clusterdns_testkit::dns::{query, truncated, Reply};
use clusterdns_testkit::fixture::{zone_config, TestServer};
use clusterdns_testkit::knot::Knot;
use clusterdns_testkit::temp::TempDir;
use clusterdns_zone::{Cluster, PodsMode, Service, ServiceKind};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const A: RecordType = RecordType::A;
const AAAA: RecordType = RecordType::AAAA;

/// The upstream's zone: an address, an upstream CNAME to it, and nothing else.
const UPSTREAM: &[(&str, &str)] = &[(
    "example.test",
    "db 60 A 192.0.2.10\ndb 60 AAAA 2001:db8::10\nalias 60 CNAME db\n",
)];

fn external(name: &str, target: &str) -> Service {
    Service {
        namespace: "testns".into(),
        name: name.into(),
        kind: ServiceKind::ExternalName(target.into()),
        ports: vec![],
        external: Vec::new(),
    }
}

/// `external` → db.example.test; `aliased` → alias.example.test (a CNAME upstream); `chained`
/// → `external` (in the zone, then out of it); `missing` → a name the upstream does not have.
fn cluster() -> Cluster {
    Cluster {
        namespaces: vec!["testns".into()],
        services: vec![
            external("external", "db.example.test"),
            external("aliased", "alias.example.test"),
            external("chained", "external.testns.svc.cluster.local"),
            external("missing", "nothing.example.test"),
            Service {
                namespace: "testns".into(),
                name: "web".into(),
                kind: ServiceKind::ClusterIp(vec![IpAddr::V4(Ipv4Addr::new(10, 96, 0, 20))]),
                ports: vec![],
                external: Vec::new(),
            },
        ],
        slices: vec![],
        pods: vec![],
    }
}

/// The cluster served on `listen` (a loopback port), forwarding to `knot`.
fn serve(knot: &Knot, listen: SocketAddr) -> TestServer {
    let mut serve = ServeConfig::loopback().with_forward(ForwardConfig::new(vec![knot.addr]));
    serve.ports[0].listen = vec![listen];
    TestServer::start_with(cluster(), zone_config(PodsMode::Insecure), &serve)
}

fn ask_udp(server: SocketAddr, name: &str, qtype: RecordType) -> Reply {
    ask(server, name, qtype, Duration::from_secs(5)).expect("an answer")
}

#[test]
fn an_external_target_is_resolved_under_the_cname() {
    let knot = Knot::with_records("externalname", UPSTREAM);
    let server = serve(&knot, SocketAddr::from(([127, 0, 0, 1], 0)));
    let addr = server.addr();
    let name = "external.testns.svc.cluster.local";

    // The first answer waits on the upstream, the second comes from the cache: the same.
    for _ in 0..2 {
        let reply = ask_udp(addr, name, A);
        assert!(reply.aa, "the zone answers it");
        assert_eq!(
            reply
                .answers
                .iter()
                .map(|r| (r.name.as_str(), r.data.as_str()))
                .collect::<Vec<_>>(),
            [
                (
                    "external.testns.svc.cluster.local.",
                    "CNAME db.example.test."
                ),
                ("db.example.test.", "A 192.0.2.10"),
            ]
        );
        assert_eq!(reply.answers[0].ttl, 5, "the CNAME has the cluster TTL");
        assert!(
            reply.answers[1].ttl <= 60,
            "the address has the upstream's TTL"
        );
    }
    let reply = ask_udp(addr, name, AAAA);
    assert!(reply.is(&["AAAA 2001:db8::10", "CNAME db.example.test."]));

    // Over TCP too.
    let tcp = client::tcp(addr, &query(7, name, 1, None)).expect("tcp answer");
    let reply = Reply::parse(&tcp).expect("decodes");
    assert!(reply.is(&["A 192.0.2.10", "CNAME db.example.test."]));

    // An upstream CNAME chain comes whole.
    let reply = ask_udp(addr, "aliased.testns.svc.cluster.local", A);
    assert!(reply.is(&[
        "A 192.0.2.10",
        "CNAME alias.example.test.",
        "CNAME db.example.test."
    ]));

    // An in-zone link first, then out of the zone.
    let reply = ask_udp(addr, "chained.testns.svc.cluster.local", A);
    assert_eq!(
        reply.owners(),
        [
            "chained.testns.svc.cluster.local.",
            "external.testns.svc.cluster.local.",
            "db.example.test."
        ]
    );
    assert!(reply.is(&[
        "A 192.0.2.10",
        "CNAME db.example.test.",
        "CNAME external.testns.svc.cluster.local."
    ]));

    // A target that does not exist: the CNAME alone, NOERROR (as CoreDNS).
    let reply = ask_udp(addr, "missing.testns.svc.cluster.local", A);
    assert_eq!(reply.rcode, ResponseCode::NoError);
    assert!(reply.is(&["CNAME nothing.example.test."]));

    // The CNAME type itself is not chased; nor are names of other Services.
    let reply = ask_udp(addr, name, RecordType::CNAME);
    assert!(reply.is(&["CNAME db.example.test."]));
    let reply = ask_udp(addr, "web.testns.svc.cluster.local", A);
    assert!(reply.is(&["A 10.96.0.20"]));

    // Without EDNS the whole fits in 512 bytes: no TC.
    let udp = client::udp(addr, &query(9, name, 1, None)).expect("udp answer");
    assert!(!truncated(&udp));
    server.server.shutdown();
}

/// Runs `getent ahostsv4 NAME` in a new mount namespace whose /etc/resolv.conf is `resolv`;
/// `None` when namespaces cannot be made here (not root, no `unshare`).
fn getent_in_pod(resolv: &std::path::Path, name: &str) -> Option<std::process::Output> {
    let script = format!(
        "mount --bind {} /etc/resolv.conf && exec getent ahostsv4 {name}",
        resolv.display()
    );
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .ok()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("unshare failed") || stderr.contains("mount:") {
        eprintln!("skipped: cannot make a mount namespace here: {stderr}");
        return None;
    }
    Some(output)
}

#[test]
fn glibc_resolves_an_external_name_service() {
    if !nix_root() {
        eprintln!("skipped: glibc's resolver only asks port 53, which needs root to bind");
        return;
    }
    let knot = Knot::with_records("externalname-glibc", UPSTREAM);
    // glibc asks port 53 only: a loopback address of its own, so nothing else there matters.
    let pid = std::process::id();
    let ip = Ipv4Addr::new(127, 53, (pid >> 8) as u8, (pid as u8).max(1));
    let server = serve(&knot, SocketAddr::from((ip, 53)));
    let dir = TempDir::new("externalname-resolv");
    // A Pod's resolv.conf in namespace testns, as kubelet writes it.
    let resolv = dir.write(
        "resolv.conf",
        &format!(
            "search testns.svc.cluster.local svc.cluster.local cluster.local\n\
             nameserver {ip}\noptions ndots:5\n"
        ),
    );
    for name in [
        "external.testns.svc.cluster.local",
        "external",
        "external.testns",
    ] {
        let Some(output) = getent_in_pod(&resolv, name) else {
            return;
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("192.0.2.10"),
            "getent ahostsv4 {name}: {:?}\n{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    server.server.shutdown();
}

/// Whether this process runs as root.
fn nix_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
