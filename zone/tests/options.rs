//! The zone options the `kubernetes` directive sets beyond the domain, TTL and pods mode:
//! `ignore empty_service` ([`ZoneConfig::ignore_empty_service`]) and the namespace gate of
//! `namespace_labels` ([`ZoneConfig::namespace_objects_only`]), asked through the answer
//! function on bytes, as a query arrives.

use std::net::{IpAddr, Ipv4Addr};

use clusterdns_testkit::dns::{query, Reply};
use clusterdns_zone::{
    answer, Answered, Change, Endpoint, EndpointSlice, Pod, PodsMode, Port, Protocol, Service,
    ServiceKind, Snapshot, Transport, ZoneBuilder, ZoneConfig,
};

const A: u16 = 1;
const CNAME: u16 = 5;
const PTR: u16 = 12;
const TXT: u16 = 16;
const AAAA: u16 = 28;
const SRV: u16 = 33;
const NS: u16 = 2;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

fn http() -> Vec<Port> {
    vec![Port {
        name: "http".into(),
        protocol: Protocol::Tcp,
        port: 80,
    }]
}

fn cluster_ip(namespace: &str, name: &str, address: &str) -> Change {
    Change::ServiceUpsert(Service {
        namespace: namespace.into(),
        name: name.into(),
        kind: ServiceKind::ClusterIp(vec![ip(address)]),
        ports: http(),
        external: Vec::new(),
    })
}

fn headless(namespace: &str, name: &str) -> Change {
    Change::ServiceUpsert(Service {
        namespace: namespace.into(),
        name: name.into(),
        kind: ServiceKind::Headless,
        ports: http(),
        external: Vec::new(),
    })
}

fn alias(namespace: &str, name: &str, target: &str) -> Change {
    Change::ServiceUpsert(Service {
        namespace: namespace.into(),
        name: name.into(),
        kind: ServiceKind::ExternalName(target.into()),
        ports: Vec::new(),
        external: Vec::new(),
    })
}

/// A slice of `service` with one endpoint per `(address, ready)`.
fn slice(namespace: &str, service: &str, endpoints: &[(&str, bool)]) -> Change {
    Change::SliceUpsert(EndpointSlice {
        namespace: namespace.into(),
        name: format!("{service}-abcde").into(),
        service: service.into(),
        ports: http(),
        endpoints: endpoints
            .iter()
            .map(|&(address, ready)| Endpoint {
                addresses: vec![ip(address)],
                hostname: None,
                ready,
            })
            .collect(),
    })
}

fn builder(config: ZoneConfig, changes: impl IntoIterator<Item = Change>) -> ZoneBuilder {
    let mut builder = ZoneBuilder::new(config);
    for change in changes {
        builder.apply(change);
    }
    builder.set_synced();
    builder
}

/// The answer to `name` `qtype` (`None`: outside the zone, for the chain to pass on).
fn ask(snapshot: &Snapshot, name: &str, qtype: u16) -> Option<Reply> {
    let packet = query(7, name, qtype, Some(1232));
    let mut out = [0u8; 4096];
    match answer(
        snapshot,
        &packet,
        &mut out,
        Transport::Udp { max_payload: 1232 },
    ) {
        Answered::Response { len, .. } => Some(Reply::parse(&out[..len]).expect("a response")),
        Answered::Outside => None,
        Answered::Drop => panic!("{name}: dropped"),
    }
}

/// Asserts `name` `qtype` is NXDOMAIN with the zone's SOA.
fn assert_nxdomain(snapshot: &Snapshot, name: &str, qtype: u16) {
    let reply = ask(snapshot, name, qtype).unwrap_or_else(|| panic!("{name}: outside"));
    assert!(reply.nxdomain(), "{name} {qtype}: {reply:?}");
    assert_eq!(reply.authority.len(), 1, "{name}: {reply:?}");
    assert!(reply.authority[0].data.starts_with("SOA "), "{reply:?}");
}

fn assert_answers(snapshot: &Snapshot, name: &str, qtype: u16, records: &[&str]) {
    let reply = ask(snapshot, name, qtype).unwrap_or_else(|| panic!("{name}: outside"));
    assert!(reply.is(records), "{name} {qtype}: {reply:?}");
}

// ---------------------------------------------------------------------------------------------
// ignore empty_service
// ---------------------------------------------------------------------------------------------

/// `apps/empty` (ClusterIP, its one endpoint not ready), `apps/full` (ClusterIP, one ready),
/// `apps/bare` (ClusterIP, no slice at all), `apps/hl` (headless, ready), and ExternalName
/// Services to `empty` and outside the zone.
fn services() -> Vec<Change> {
    vec![
        Change::NamespaceUpsert("apps".into()),
        cluster_ip("apps", "empty", "10.96.0.5"),
        slice("apps", "empty", &[("10.1.0.5", false)]),
        cluster_ip("apps", "full", "10.96.0.6"),
        slice("apps", "full", &[("10.1.0.6", true)]),
        cluster_ip("apps", "bare", "10.96.0.7"),
        headless("apps", "hl"),
        slice("apps", "hl", &[("10.1.0.8", true)]),
        alias("apps", "to-empty", "empty.apps.svc.cluster.local"),
        alias("apps", "outside", "www.example.com"),
    ]
}

fn ignoring(ignore_empty_service: bool) -> ZoneConfig {
    ZoneConfig {
        ignore_empty_service,
        ..ZoneConfig::default()
    }
}

#[test]
fn without_the_option_an_empty_cluster_ip_service_answers() {
    let snapshot = builder(ignoring(false), services()).publish();
    assert_answers(
        &snapshot,
        "empty.apps.svc.cluster.local",
        A,
        &["A 10.96.0.5"],
    );
    assert_answers(
        &snapshot,
        "bare.apps.svc.cluster.local",
        A,
        &["A 10.96.0.7"],
    );
    assert_answers(
        &snapshot,
        "to-empty.apps.svc.cluster.local",
        A,
        &["A 10.96.0.5", "CNAME empty.apps.svc.cluster.local."],
    );
}

#[test]
fn ignore_empty_service_makes_every_name_of_an_empty_cluster_ip_service_nxdomain() {
    let snapshot = builder(ignoring(true), services()).publish();
    // Every type at the Service name, and every name below it (CoreDNS skips the Service
    // for all of them: A, AAAA, SRV and the fake A lookup behind other types).
    for qtype in [A, AAAA, SRV, TXT, CNAME] {
        assert_nxdomain(&snapshot, "empty.apps.svc.cluster.local", qtype);
        assert_nxdomain(&snapshot, "bare.apps.svc.cluster.local", qtype);
    }
    assert_nxdomain(&snapshot, "_http._tcp.empty.apps.svc.cluster.local", SRV);
    assert_nxdomain(&snapshot, "_tcp.empty.apps.svc.cluster.local", SRV);
    assert_nxdomain(&snapshot, "10-1-0-5.empty.apps.svc.cluster.local", A);
    // Case does not matter.
    assert_nxdomain(&snapshot, "EMPTY.Apps.svc.cluster.local", A);

    // A Service with a ready endpoint, a headless one and the namespace are untouched.
    assert_answers(
        &snapshot,
        "full.apps.svc.cluster.local",
        A,
        &["A 10.96.0.6"],
    );
    assert_answers(
        &snapshot,
        "_http._tcp.full.apps.svc.cluster.local",
        SRV,
        &["SRV 0 100 80 full.apps.svc.cluster.local."],
    );
    assert_answers(&snapshot, "hl.apps.svc.cluster.local", A, &["A 10.1.0.8"]);
    assert_answers(&snapshot, "apps.svc.cluster.local", A, &[]);

    // PTR is not filtered (CoreDNS's reverse lookup does not look at endpoints).
    assert_answers(
        &snapshot,
        "5.0.96.10.in-addr.arpa",
        PTR,
        &["PTR empty.apps.svc.cluster.local."],
    );
    // An ExternalName Service still answers its CNAME; an in-zone target that does not exist
    // adds no address.
    assert_answers(
        &snapshot,
        "to-empty.apps.svc.cluster.local",
        A,
        &["CNAME empty.apps.svc.cluster.local."],
    );
    assert_answers(
        &snapshot,
        "outside.apps.svc.cluster.local",
        A,
        &["CNAME www.example.com."],
    );
    // Names the zone lists leave the ignored Services out.
    let names: Vec<String> = snapshot.names().iter().map(|n| n.to_dotted()).collect();
    for ignored in [
        "empty.apps.svc.cluster.local.",
        "bare.apps.svc.cluster.local.",
    ] {
        let below = format!(".{ignored}");
        assert!(
            !names.iter().any(|n| n == ignored || n.ends_with(&below)),
            "{names:?}"
        );
    }
    assert!(names.contains(&"full.apps.svc.cluster.local.".to_owned()));
}

#[test]
fn an_empty_service_appears_when_an_endpoint_becomes_ready_and_goes_when_none_is() {
    let mut builder = builder(ignoring(true), services());
    let snapshot = builder.publish();
    assert_nxdomain(&snapshot, "empty.apps.svc.cluster.local", A);
    builder.apply(slice("apps", "empty", &[("10.1.0.5", true)]));
    let snapshot = builder.publish();
    assert_answers(
        &snapshot,
        "empty.apps.svc.cluster.local",
        A,
        &["A 10.96.0.5"],
    );
    // The ExternalName chain into it follows at the same publish.
    assert_answers(
        &snapshot,
        "to-empty.apps.svc.cluster.local",
        A,
        &["A 10.96.0.5", "CNAME empty.apps.svc.cluster.local."],
    );
    builder.apply(Change::SliceDelete("apps".into(), "empty-abcde".into()));
    let snapshot = builder.publish();
    assert_nxdomain(&snapshot, "empty.apps.svc.cluster.local", A);
}

// ---------------------------------------------------------------------------------------------
// The namespace gate (namespace_labels)
// ---------------------------------------------------------------------------------------------

fn gated(pods: PodsMode) -> ZoneConfig {
    ZoneConfig {
        pods,
        namespace_objects_only: true,
        ..ZoneConfig::default()
    }
}

/// `team` (no Namespace object yet): a ClusterIP Service, a headless one with a ready endpoint,
/// an ExternalName one and a Pod; `kube-system/kube-dns`, whose namespace is not served either.
fn team() -> Vec<Change> {
    vec![
        cluster_ip("team", "web", "10.96.1.1"),
        headless("team", "db"),
        slice("team", "db", &[("10.1.1.2", true)]),
        alias("team", "ext", "www.example.com"),
        Change::PodUpsert(Pod {
            namespace: "team".into(),
            name: "p".into(),
            ips: vec![IpAddr::V4(Ipv4Addr::new(10, 1, 1, 9))],
        }),
        cluster_ip("kube-system", "kube-dns", "10.96.0.10"),
        Change::NamespaceUpsert("default".into()),
        cluster_ip("default", "shown", "10.96.2.2"),
    ]
}

/// Every name of `team` is absent: NXDOMAIN in the zone, nothing for its addresses' PTR.
fn assert_team_hidden(snapshot: &Snapshot) {
    assert_nxdomain(snapshot, "web.team.svc.cluster.local", A);
    assert_nxdomain(snapshot, "_http._tcp.web.team.svc.cluster.local", SRV);
    assert_nxdomain(snapshot, "db.team.svc.cluster.local", A);
    assert_nxdomain(snapshot, "10-1-1-2.db.team.svc.cluster.local", A);
    assert_nxdomain(snapshot, "ext.team.svc.cluster.local", A);
    assert_nxdomain(snapshot, "team.svc.cluster.local", A);
    assert_nxdomain(snapshot, "10-1-1-9.team.pod.cluster.local", A);
    assert!(ask(snapshot, "1.1.96.10.in-addr.arpa", PTR).is_none());
    assert!(ask(snapshot, "2.1.1.10.in-addr.arpa", PTR).is_none());
}

fn assert_team_shown(snapshot: &Snapshot) {
    assert_answers(snapshot, "web.team.svc.cluster.local", A, &["A 10.96.1.1"]);
    assert_answers(snapshot, "db.team.svc.cluster.local", A, &["A 10.1.1.2"]);
    assert_answers(
        snapshot,
        "ext.team.svc.cluster.local",
        A,
        &["CNAME www.example.com."],
    );
    assert_answers(snapshot, "team.svc.cluster.local", A, &[]);
    assert_answers(
        snapshot,
        "1.1.96.10.in-addr.arpa",
        PTR,
        &["PTR web.team.svc.cluster.local."],
    );
    assert_answers(
        snapshot,
        "2.1.1.10.in-addr.arpa",
        PTR,
        &["PTR 10-1-1-2.db.team.svc.cluster.local."],
    );
}

#[test]
fn a_namespace_without_its_namespace_object_is_not_served() {
    for pods in [PodsMode::Verified, PodsMode::Insecure] {
        let snapshot = builder(gated(pods), team()).publish();
        assert_team_hidden(&snapshot);
        // A namespace with its object is served as ever.
        assert_answers(
            &snapshot,
            "shown.default.svc.cluster.local",
            A,
            &["A 10.96.2.2"],
        );
        // Hidden Services are not counted; the name server glue still comes from kube-dns,
        // as CoreDNS finds its own Service whatever the selector says.
        assert_eq!(snapshot.stats().services, 1);
        let ns = ask(&snapshot, "cluster.local", NS).expect("the apex");
        assert_eq!(ns.additional.len(), 1, "{ns:?}");
        assert_eq!(ns.additional[0].data, "A 10.96.0.10");
    }
}

#[test]
fn a_namespace_comes_and_goes_with_its_namespace_object() {
    let mut builder = builder(gated(PodsMode::Verified), team());
    assert_team_hidden(&builder.publish());

    builder.apply(Change::NamespaceUpsert("team".into()));
    let snapshot = builder.publish();
    assert_team_shown(&snapshot);
    assert_answers(
        &snapshot,
        "10-1-1-9.team.pod.cluster.local",
        A,
        &["A 10.1.1.9"],
    );
    assert_eq!(snapshot.stats().services, 4);

    // A change to a shown Service while shown, then the namespace goes: all of it goes.
    builder.apply(slice(
        "team",
        "db",
        &[("10.1.1.2", true), ("10.1.1.3", true)],
    ));
    builder.apply(Change::NamespaceDelete("team".into()));
    let snapshot = builder.publish();
    assert_team_hidden(&snapshot);
    assert!(ask(&snapshot, "3.1.1.10.in-addr.arpa", PTR).is_none());
    assert_eq!(snapshot.stats().services, 1);

    // Changes while hidden are kept and show with the namespace.
    builder.apply(cluster_ip("team", "web", "10.96.1.5"));
    let snapshot = builder.publish();
    assert_nxdomain(&snapshot, "web.team.svc.cluster.local", A);
    builder.apply(Change::NamespaceUpsert("team".into()));
    let snapshot = builder.publish();
    assert_answers(&snapshot, "web.team.svc.cluster.local", A, &["A 10.96.1.5"]);
    assert_answers(
        &snapshot,
        "db.team.svc.cluster.local",
        A,
        &["A 10.1.1.2", "A 10.1.1.3"],
    );
    assert!(ask(&snapshot, "1.1.96.10.in-addr.arpa", PTR).is_none());
}

#[test]
fn without_the_gate_a_service_makes_its_namespace_exist() {
    let snapshot = builder(ZoneConfig::default(), team()).publish();
    assert_team_shown(&snapshot);
}
