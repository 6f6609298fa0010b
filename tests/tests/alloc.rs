//! Proves the hot path allocates nothing: after warm-up, answering cluster queries (A, AAAA, SRV,
//! PTR, headless, pod, NXDOMAIN, NODATA) performs zero heap allocations, both in the answer
//! function and through a running server's UDP worker; so does answering from a `file` zone.
//! One test in this binary, so no other test's allocations are counted.

use std::net::IpAddr;
use std::time::Duration;

use clusterdns::chain::plugins::autopath::SearchPath;
use clusterdns::chain::plugins::file::{self, FilePlan, ZoneFile};
use clusterdns::config::ServeConfig;
use clusterdns_testkit::alloc::{allocations, Counting};
use clusterdns_testkit::client::connected_udp;
use clusterdns_testkit::dns::query;
use clusterdns_testkit::fixture::{snapshot, zone_config, TestServer};
use clusterdns_testkit::golden;
use clusterdns_zone::{answer, Answered, Change, PodsMode, Rcode, Transport, WireName, ZoneConfig};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The golden cases' directory, whose `cluster.yaml` is answered here.
const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden");

/// (what, query name, type, expected rcode)
const QUERIES: &[(&str, &str, u16, u8)] = &[
    ("A", "kubernetes.default.svc.cluster.local", 1, 0),
    ("AAAA", "dual.apps.svc.cluster.local", 28, 0),
    (
        "SRV",
        "_https._tcp.kubernetes.default.svc.cluster.local",
        33,
        0,
    ),
    ("PTR", "1.0.96.10.in-addr.arpa", 12, 0),
    ("headless A", "web.apps.svc.cluster.local", 1, 0),
    ("pod A", "10-244-1-1.apps.pod.cluster.local", 1, 0),
    ("NXDOMAIN", "nothere.default.svc.cluster.local", 1, 3),
    ("NODATA", "kubernetes.default.svc.cluster.local", 16, 0),
];

#[test]
fn answering_cluster_queries_allocates_nothing() {
    let packets: Vec<(&str, Vec<u8>, u8)> = QUERIES
        .iter()
        .enumerate()
        .map(|(i, (what, name, qtype, rcode))| {
            (*what, query(i as u16, name, *qtype, Some(1232)), *rcode)
        })
        .collect();

    // The answer function.
    let snapshot = snapshot(golden::cluster(GOLDEN), zone_config(PodsMode::Insecure));
    let mut out = vec![0u8; 65535];
    let transport = Transport::Udp { max_payload: 4096 };
    for (what, packet, rcode) in &packets {
        match answer(&snapshot, packet, &mut out, transport) {
            Answered::Response { len, .. } => {
                assert_eq!(out[3] & 0x0F, *rcode, "{what}: rcode");
                assert!(len > packet.len() - 11, "{what}: an answer");
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    let before = allocations();
    for _ in 0..1000 {
        for (_, packet, _) in &packets {
            let answered = answer(&snapshot, packet, &mut out, transport);
            assert!(matches!(answered, Answered::Response { .. }));
        }
    }
    let during = allocations() - before;
    assert_eq!(
        during, 0,
        "answer function: {during} allocations for 8000 answers"
    );

    // The same with the zone options of `kubernetes { ignore empty_service }` and
    // `namespace_labels` on (some answers change; none allocates).
    let options = ZoneConfig {
        ignore_empty_service: true,
        namespace_objects_only: true,
        ..zone_config(PodsMode::Insecure)
    };
    let gated = clusterdns_testkit::fixture::snapshot(golden::cluster(GOLDEN), options);
    for (_, packet, _) in &packets {
        answer(&gated, packet, &mut out, transport);
    }
    let before = allocations();
    for _ in 0..1000 {
        for (_, packet, _) in &packets {
            let answered = answer(&gated, packet, &mut out, transport);
            assert!(matches!(answered, Answered::Response { .. }));
        }
    }
    let during = allocations() - before;
    assert_eq!(
        during, 0,
        "answer function with the zone options: {during} allocations for 8000 answers"
    );

    // A running server's UDP worker, with the flags' server block and with kubeadm's Corefile
    // chain (errors, loadbalance rotating the addresses, SERVFAIL at the end of the chain).
    let flags = ServeConfig::loopback();
    let mut kubeadm = ServeConfig::loopback();
    for block in kubeadm.ports.iter_mut().flat_map(|p| p.blocks.iter_mut()) {
        block.errors = true;
        block.loadbalance = true;
        block.fallback = Rcode::ServFail;
    }
    for (chain, serve) in [("flags", flags), ("kubeadm Corefile", kubeadm)] {
        let server = TestServer::start_with(
            golden::cluster(GOLDEN),
            zone_config(PodsMode::Insecure),
            &serve,
        );
        let during = server_allocations(&server, &packets);
        assert_eq!(
            during, 0,
            "server ({chain}): {during} allocations for 2000 queries over UDP"
        );
        server.server.shutdown();
    }

    // With autopath, from a Pod of namespace `default` (the test client's 127.0.0.1): a name
    // that exists, whether its first search expansion or not, costs no allocation either. Only
    // a walk past an NXDOMAIN allocates (the expansions, rebuilding the answer).
    let mut autopath = ServeConfig::loopback();
    for block in autopath.ports.iter_mut().flat_map(|p| p.blocks.iter_mut()) {
        block.autopath = Some(SearchPath {
            cluster_zone: WireName::from_dotted("cluster.local"),
            domains: Vec::new(),
        });
    }
    let mut server = TestServer::start_with(
        golden::cluster(GOLDEN),
        zone_config(PodsMode::Insecure),
        &autopath,
    );
    let pod = IpAddr::from([127, 0, 0, 1]);
    (server.publisher).apply(Change::PodAddressUpsert("default".into(), pod));
    server.publisher.publish();
    let existing: Vec<_> = (packets.iter())
        .filter(|&(_, _, rcode)| *rcode != 3)
        .cloned()
        .collect();
    let during = server_allocations(&server, &existing);
    assert_eq!(
        during,
        0,
        "server (autopath, Pod client): {during} allocations for {} queries over UDP",
        existing.len() * 250
    );
    server.server.shutdown();

    // A `file` zone beside the cluster zone: every shape of its answers (a CNAME chain inside
    // the zone, a wildcard, a referral, MX with its addresses, negative answers).
    let mut with_file = ServeConfig::loopback();
    with_file.ports[0].blocks[0].file = Some(file_zone());
    let server = TestServer::start_with(
        golden::cluster(GOLDEN),
        zone_config(PodsMode::Insecure),
        &with_file,
    );
    let file_packets: Vec<(&str, Vec<u8>, u8)> = FILE_QUERIES
        .iter()
        .enumerate()
        .map(|(i, (what, name, qtype, rcode))| {
            (*what, query(i as u16, name, *qtype, Some(1232)), *rcode)
        })
        .collect();
    let during = server_allocations(&server, &file_packets);
    assert_eq!(
        during,
        0,
        "server (file zone): {during} allocations for {} queries over UDP",
        file_packets.len() * 250
    );
    server.server.shutdown();
}

/// (what, query name, type, expected rcode) of the `file` zone.
const FILE_QUERIES: &[(&str, &str, u16, u8)] = &[
    ("A", "www.example.org", 1, 0),
    ("CNAME chain", "alias.example.org", 1, 0),
    ("MX", "example.org", 15, 0),
    ("wildcard", "any.wild.example.org", 1, 0),
    ("referral", "www.sub.example.org", 1, 0),
    ("NXDOMAIN", "nothing.example.org", 1, 3),
    ("NODATA", "www.example.org", 16, 0),
];

/// The `file` plugin with one zone, `example.org`.
fn file_zone() -> FilePlan {
    let text = "$ORIGIN example.org.\n$TTL 300\n\
        @ IN SOA ns1 hostmaster 1 7200 3600 1209600 60\n@ NS ns1\n@ MX 10 mail\n\
        ns1 A 192.0.2.53\nmail A 192.0.2.25\nwww A 192.0.2.1\nalias CNAME www\n\
        *.wild A 192.0.2.99\nsub NS ns1.sub\nns1.sub A 192.0.2.54\n";
    let origin = WireName::from_dotted("example.org").expect("a name");
    let mut read = |_: &std::path::Path| Ok(text.to_owned());
    let loaded = file::read(&origin, std::path::Path::new("db.example.org"), &mut read)
        .expect("the zone reads");
    FilePlan {
        zones: vec![ZoneFile {
            origin,
            path: "db.example.org".into(),
            reload: Duration::ZERO,
            reload_by_mtime: false,
            zone: Some(std::sync::Arc::new(loaded.zone)),
            files: loaded.files,
        }],
        fallthrough: Default::default(),
    }
}

/// Allocations while a running server's UDP worker answers `packets` 250 times (the client
/// reuses its buffers and allocates nothing).
fn server_allocations(server: &TestServer, packets: &[(&str, Vec<u8>, u8)]) -> usize {
    let client = connected_udp(server.addr());
    let mut buf = vec![0u8; 4096];
    let mut exchange = |packet: &[u8]| -> u8 {
        client.send(packet).expect("send");
        let len = client.recv(&mut buf).expect("answer");
        assert!(len >= 12);
        buf[3] & 0x0F
    };
    for _ in 0..50 {
        for (_, packet, _) in packets {
            exchange(packet);
        }
    }
    // Let the runtime's idle threads settle before counting.
    std::thread::sleep(Duration::from_millis(200));
    let before = allocations();
    for _ in 0..250 {
        for (what, packet, rcode) in packets {
            assert_eq!(exchange(packet), *rcode, "{what}");
        }
    }
    allocations() - before
}
