//! The fixed cluster the zone-facing targets answer from: small, but with every kind of Service
//! (ClusterIP single- and dual-stack, headless with and without hostnames, ready and unready
//! endpoints, IPv4 and IPv6 slices, ExternalName to outside and inside the zone), named and
//! unnamed ports of each protocol, and Pods for `pods verified`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use clusterdns_zone::{
    Cluster, Endpoint, EndpointSlice, Pod, PodsMode, Port, Protocol, Service, ServiceKind,
    Snapshot, ZoneBuilder, ZoneConfig,
};

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn v6(last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 1, last))
}

fn port(name: &str, protocol: Protocol, port: u16) -> Port {
    Port {
        name: name.into(),
        protocol,
        port,
    }
}

fn service(namespace: &str, name: &str, kind: ServiceKind, ports: Vec<Port>) -> Service {
    Service {
        namespace: namespace.into(),
        name: name.into(),
        kind,
        ports,
        external: Vec::new(),
    }
}

fn endpoint(ip: IpAddr, hostname: Option<&str>, ready: bool) -> Endpoint {
    Endpoint {
        addresses: vec![ip],
        hostname: hostname.map(Into::into),
        ready,
    }
}

fn slice(
    namespace: &str,
    name: &str,
    service: &str,
    ports: Vec<Port>,
    endpoints: Vec<Endpoint>,
) -> EndpointSlice {
    EndpointSlice {
        namespace: namespace.into(),
        name: name.into(),
        service: service.into(),
        ports,
        endpoints,
    }
}

/// The fixture cluster (see the module docs).
pub fn cluster() -> Cluster {
    let db_ports = vec![port("postgres", Protocol::Tcp, 5432)];
    let dns_ports = vec![
        port("dns", Protocol::Udp, 53),
        port("dns-tcp", Protocol::Tcp, 53),
        port("metrics", Protocol::Tcp, 9153),
    ];
    // Enough endpoints that A, AAAA, SRV and ANY answers overflow 512 bytes and truncate.
    let many: Vec<Endpoint> = (1..=40)
        .map(|i| endpoint(v4(10, 0, 3, i), None, true))
        .collect();
    let many6: Vec<Endpoint> = (1..=20u16)
        .map(|i| endpoint(v6(0x300 + i), None, i % 5 != 0))
        .collect();
    Cluster {
        namespaces: vec![
            "default".into(),
            "apps".into(),
            "kube-system".into(),
            "empty".into(),
        ],
        services: vec![
            service(
                "default",
                "kubernetes",
                ServiceKind::ClusterIp(vec![v4(10, 96, 0, 1)]),
                vec![port("https", Protocol::Tcp, 443)],
            ),
            service(
                "kube-system",
                "kube-dns",
                ServiceKind::ClusterIp(vec![v4(10, 96, 0, 10)]),
                dns_ports.clone(),
            ),
            service(
                "apps",
                "web",
                ServiceKind::ClusterIp(vec![v4(10, 96, 1, 5), v6(0x105)]),
                vec![
                    port("http", Protocol::Tcp, 80),
                    port("grpc", Protocol::Tcp, 9090),
                    port("", Protocol::Tcp, 8080),
                    port("stream", Protocol::Sctp, 7000),
                ],
            ),
            service("apps", "db", ServiceKind::Headless, db_ports.clone()),
            service(
                "apps",
                "many",
                ServiceKind::Headless,
                vec![
                    port("http", Protocol::Tcp, 80),
                    port("q", Protocol::Udp, 81),
                ],
            ),
            service("apps", "nobody", ServiceKind::Headless, db_ports.clone()),
            service(
                "apps",
                "alias",
                ServiceKind::ExternalName("www.example.com".into()),
                Vec::new(),
            ),
            service(
                "apps",
                "inside",
                ServiceKind::ExternalName("web.apps.svc.cluster.local".into()),
                vec![port("http", Protocol::Tcp, 80)],
            ),
            service(
                "default",
                "dual",
                ServiceKind::ClusterIp(vec![v6(0x200)]),
                vec![port("dns", Protocol::Udp, 53)],
            ),
        ],
        slices: vec![
            slice(
                "kube-system",
                "kube-dns-1",
                "kube-dns",
                dns_ports,
                vec![
                    endpoint(v4(10, 0, 0, 2), None, true),
                    endpoint(v4(10, 0, 0, 3), None, true),
                ],
            ),
            slice(
                "apps",
                "db-v4",
                "db",
                db_ports.clone(),
                vec![
                    endpoint(v4(10, 0, 1, 1), Some("db-0"), true),
                    endpoint(v4(10, 0, 1, 2), Some("db-1"), true),
                    endpoint(v4(10, 0, 1, 3), Some("db-2"), false),
                    endpoint(v4(10, 0, 1, 4), None, true),
                ],
            ),
            slice(
                "apps",
                "db-v6",
                "db",
                db_ports,
                vec![
                    endpoint(v6(0x101), Some("db-0"), true),
                    endpoint(v6(0x104), None, true),
                ],
            ),
            slice(
                "apps",
                "many-v4",
                "many",
                vec![
                    port("http", Protocol::Tcp, 80),
                    port("q", Protocol::Udp, 81),
                ],
                many,
            ),
            slice(
                "apps",
                "many-v6",
                "many",
                vec![port("http", Protocol::Tcp, 80)],
                many6,
            ),
        ],
        pods: vec![
            Pod {
                namespace: "apps".into(),
                name: "web-1".into(),
                ips: vec![v4(10, 0, 2, 1), v6(0x201)],
            },
            Pod {
                namespace: "default".into(),
                name: "tool".into(),
                ips: vec![v4(10, 0, 2, 9)],
            },
        ],
    }
}

/// A synced snapshot of [`cluster`] on `cluster.local` with `pods`.
pub fn snapshot(pods: PodsMode) -> Snapshot {
    let mut builder = ZoneBuilder::new(ZoneConfig {
        pods,
        ..ZoneConfig::default()
    });
    builder.replace_all(cluster());
    builder.set_synced();
    builder.publish()
}

/// A snapshot not yet synced (every in-zone question is SERVFAIL).
pub fn unsynced() -> Snapshot {
    Snapshot::unsynced(ZoneConfig::default())
}
