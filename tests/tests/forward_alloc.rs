//! Proves a cache hit allocates nothing, in the forwarder's synchronous cache path and through a
//! running server's UDP worker, reports what a hit costs, and bounds what a cached answer takes
//! on the heap (which sizes the default cache). One test in this binary, so no
//! other test's allocations are counted. The upstream is a stub on loopback that answers every
//! query with one A record.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clusterdns::config::ServeConfig;
use clusterdns::forward::clock::Clock;
use clusterdns::forward::config::{ForwardConfig, StaleRefresh, CACHE_ENTRY_BYTES};
use clusterdns::forward::Forwarder;
use clusterdns_testkit::alloc::{allocations, live_bytes, Counting};
use clusterdns_testkit::client::connected_udp;
use clusterdns_testkit::dns::query;
use clusterdns_testkit::fixture::TestServer;
use clusterdns_zone::{answer, parse_query, Answered, Cluster, Transport, ZoneConfig};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A query for `name` A with RD and an EDNS OPT of 1232 bytes.
fn query_a(id: u16, name: &str) -> Vec<u8> {
    query(id, name, 1, Some(1232))
}

/// An upstream stub: answers each query with its question and one A record (TTL 300).
fn stub_upstream(stop: Arc<AtomicBool>) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let addr = socket.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::Relaxed) {
            let Ok((len, client)) = socket.recv_from(&mut buf) else {
                continue;
            };
            let Ok(parsed) = parse_query(&buf[..len]) else {
                continue;
            };
            let mut answer = buf[..parsed.question_end()].to_vec();
            answer[2..4].copy_from_slice(&[0x81, 0x80]);
            answer[6..12].copy_from_slice(&[0, 1, 0, 0, 0, 0]);
            answer.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 1, 0x2C, 0, 4, 192, 0, 2, 1]);
            let _ = socket.send_to(&answer, client);
        }
    });
    addr
}

#[test]
fn cache_hits_allocate_nothing() {
    let stop = Arc::new(AtomicBool::new(false));
    let upstream = stub_upstream(stop.clone());
    let packet = query_a(7, "www.example.com");
    let parsed = parse_query(&packet).expect("valid");
    let udp = Transport::Udp { max_payload: 4096 };
    let mut out = vec![0u8; 65535];

    // The forwarder's synchronous cache path, as the UDP worker calls it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let forwarder = Forwarder::new(
        ForwardConfig::new(vec![upstream]),
        Clock::system(),
        "dns://:53",
        runtime.handle().clone(),
    );
    let len = runtime
        .block_on(forwarder.answer(&parsed, &packet, &mut out, udp))
        .expect("forwarded");
    assert_eq!(&out[6..8], &[0, 1], "one answer: {:?}", &out[..len]);
    assert!(forwarder
        .answer_cached(&parsed, &packet, &mut out, udp)
        .is_some());
    const HITS: u32 = 100_000;
    let before = allocations();
    let started = Instant::now();
    for _ in 0..HITS {
        let hit = forwarder.answer_cached(&parsed, &packet, &mut out, udp);
        assert_eq!(hit, Some(len));
    }
    let per_hit = started.elapsed() / HITS;
    let during = allocations() - before;
    assert_eq!(during, 0, "cache: {during} allocations for {HITS} hits");

    // With prefetch counting every hit (and `serve_stale ... immediate` on), the same: the TTL
    // (300 s, capped at 30) is far from its last 10%, so no hit asks for a refresh.
    let mut counting = ForwardConfig::new(vec![upstream]);
    counting.cache.prefetch_hits = 1;
    counting.cache.serve_stale = Duration::from_secs(3600);
    counting.cache.stale_refresh = StaleRefresh::Immediate;
    let forwarder = Forwarder::new(
        counting,
        Clock::system(),
        "dns://:53",
        runtime.handle().clone(),
    );
    runtime
        .block_on(forwarder.answer(&parsed, &packet, &mut out, udp))
        .expect("forwarded");
    let before = allocations();
    for _ in 0..HITS {
        let hit = forwarder.answer_cached(&parsed, &packet, &mut out, udp);
        assert_eq!(hit, Some(len));
    }
    let during = allocations() - before;
    assert_eq!(
        during, 0,
        "cache with prefetch: {during} allocations for {HITS} hits"
    );

    // The server, answering an empty zone and forwarding the rest: idle until its UDP worker is
    // asked below.
    let serve = ServeConfig::loopback().with_forward(ForwardConfig::new(vec![upstream]));
    let server = TestServer::start_with(Cluster::default(), ZoneConfig::default(), &serve);

    // For comparison, the zone's answer function on a cluster name.
    let snapshot = server.store().load_full();
    let cluster = query_a(7, "nothere.default.svc.cluster.local");
    let started = Instant::now();
    for _ in 0..HITS {
        let answered = answer(&snapshot, &cluster, &mut out, udp);
        assert!(matches!(answered, Answered::Response { .. }));
    }
    let per_zone_answer = started.elapsed() / HITS;
    println!("cache hit: {per_hit:?} per query; zone NXDOMAIN answer: {per_zone_answer:?}");

    // Through a running server's UDP worker: the first query is forwarded, the rest are hits.
    let client = connected_udp(server.addr());
    let mut buf = vec![0u8; 4096];
    let mut exchange = || -> (usize, u16) {
        client.send(&packet).expect("send");
        let len = client.recv(&mut buf).expect("answer");
        (len, u16::from_be_bytes([buf[6], buf[7]]))
    };
    for _ in 0..50 {
        assert_eq!(exchange().1, 1);
    }
    // Let the runtime's threads (forwarding, the startup loop check) settle before counting.
    std::thread::sleep(Duration::from_millis(300));
    let before = allocations();
    for _ in 0..2000 {
        assert_eq!(exchange(), (len, 1));
    }
    let during = allocations() - before;
    assert_eq!(
        during, 0,
        "server: {during} allocations for 2000 cache hits over UDP"
    );
    server.server.shutdown();

    // What one cached answer costs on the heap, which sizes the default cache from the memory
    // limit (`CACHE_ENTRY_BYTES`): one-record answers for distinct names, after a warm-up that
    // grows the shards' tables once.
    let forwarder = Forwarder::new(
        ForwardConfig::new(vec![upstream]),
        Clock::system(),
        "dns://:53",
        runtime.handle().clone(),
    );
    let mut fill = |from: usize, to: usize| {
        for i in from..to {
            let packet = query_a(7, &format!("host-{i:06}.apps.example.com"));
            let parsed = parse_query(&packet).expect("valid");
            let answered = runtime.block_on(forwarder.answer(&parsed, &packet, &mut out, udp));
            answered.expect("forwarded");
        }
    };
    fill(0, 1000);
    let before = live_bytes();
    const NAMES: usize = 8000;
    fill(1000, 1000 + NAMES);
    let per_entry = live_bytes().saturating_sub(before) / NAMES;
    println!("cache: {per_entry} heap bytes per cached one-record answer");
    assert!(
        per_entry <= CACHE_ENTRY_BYTES,
        "{per_entry} bytes per cached answer; CACHE_ENTRY_BYTES is {CACHE_ENTRY_BYTES}"
    );
    stop.store(true, Ordering::Relaxed);
}
