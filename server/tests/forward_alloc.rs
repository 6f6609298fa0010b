//! Proves a cache hit allocates nothing, in the forwarder's synchronous cache path and through a
//! running server's UDP worker, and reports what a hit costs. One test in this binary, so no
//! other test's allocations are counted. The upstream is a stub on loopback that answers every
//! query with one A record.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clusterdns::config::ServeConfig;
use clusterdns::forward::clock::Clock;
use clusterdns::forward::config::ForwardConfig;
use clusterdns::forward::Forwarder;
use clusterdns::ops::metrics::Metrics;
use clusterdns::serving::Server;
use clusterdns::sources::Publisher;
use clusterdns_zone::{answer, parse_query, Answered, Cluster, Transport, ZoneConfig};

/// Counts every allocation in the process.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A query for `name` A with RD and an EDNS OPT of 1232 bytes.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut out = vec![(id >> 8) as u8, id as u8, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1];
    for label in name.split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.extend_from_slice(&[0, 0, 1, 0, 1]);
    out.extend_from_slice(&[0, 0, 41, 4, 0xD0, 0, 0, 0, 0, 0, 0]);
    out
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
    let packet = query(7, "www.example.com");
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
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let started = Instant::now();
    for _ in 0..HITS {
        let hit = forwarder.answer_cached(&parsed, &packet, &mut out, udp);
        assert_eq!(hit, Some(len));
    }
    let per_hit = started.elapsed() / HITS;
    let during = ALLOCATIONS.load(Ordering::SeqCst) - before;
    assert_eq!(during, 0, "cache: {during} allocations for {HITS} hits");

    // For comparison, the zone's answer function on a cluster name.
    let mut publisher = Publisher::new(ZoneConfig::default());
    publisher.replace_all(Cluster::default());
    publisher.set_synced();
    publisher.publish();
    let snapshot = publisher.store().load_full();
    let cluster = query(7, "nothere.default.svc.cluster.local");
    let started = Instant::now();
    for _ in 0..HITS {
        let answered = answer(&snapshot, &cluster, &mut out, udp);
        assert!(matches!(answered, Answered::Response { .. }));
    }
    let per_zone_answer = started.elapsed() / HITS;
    println!("cache hit: {per_hit:?} per query; zone NXDOMAIN answer: {per_zone_answer:?}");

    // Through a running server's UDP worker: the first query is forwarded, the rest are hits.
    let metrics = Arc::new(Metrics::new("dns://:53".into()));
    let serve = ServeConfig::loopback().with_forward(ForwardConfig::new(vec![upstream]));
    let server = Server::start(&serve, publisher.store(), &metrics).expect("server");
    let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    client.connect(server.local_addrs()[0]).expect("connect");
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
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..2000 {
        assert_eq!(exchange(), (len, 1));
    }
    let during = ALLOCATIONS.load(Ordering::SeqCst) - before;
    assert_eq!(
        during, 0,
        "server: {during} allocations for 2000 cache hits over UDP"
    );
    server.shutdown();
    stop.store(true, Ordering::Relaxed);
}
