//! The forwarder and its cache against a real upstream: Knot DNS (`knotd`) on a loopback port
//! serving a small test zone, usually behind a counting UDP proxy that can delay or drop
//! queries, so a test sees how many queries reached the upstream and can make it stop
//! answering. Requires `knotd` (Debian package `knot`); CI installs it.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clusterdns::config::ServeConfig;
use clusterdns::forward::clock::{Clock, ManualClock};
use clusterdns::forward::config::{ForwardConfig, Policy};
use clusterdns::forward::Forwarder;
use clusterdns::ops::metrics::{Exposition, Metrics};
use clusterdns_testkit::client::{tcp, udp_within};
use clusterdns_testkit::dns::{self, Rr};
use clusterdns_testkit::fixture::TestServer;
use clusterdns_testkit::knot::Knot;
use clusterdns_zone::{parse_query, Cluster, Transport, ZoneConfig};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::runtime::Handle;

const ZONE: &str = "example.test";
/// Records in the RRset of `big.example.test`: 100 A records, 1,600 bytes of RDATA and owners,
/// more than the 1,232 bytes we advertise upstream, so knotd truncates it over UDP.
const BIG: usize = 100;
const UDP: Transport = Transport::Udp { max_payload: 4096 };

fn zone_file() -> String {
    let mut zone = format!(
        "@ 3600 IN SOA ns.{ZONE}. hostmaster.{ZONE}. 1 7200 3600 1209600 60\n\
         @ NS ns\n@ MX 10 mail\n\
         ns A 192.0.2.53\nmail A 192.0.2.25\n\
         www A 192.0.2.1\nwww AAAA 2001:db8::1\n\
         txt TXT \"hello\" \"world\"\n\
         alias CNAME www\n"
    );
    for i in 1..=BIG {
        zone.push_str(&format!("big A 10.0.{}.{}\n", i / 256, i % 256));
    }
    for i in 0..10 {
        zone.push_str(&format!("n{i} A 198.51.100.{i}\n"));
    }
    zone
}

/// A query as a stub resolver sends it: RD set, optionally EDNS with `payload`.
fn query(id: u16, name: &str, qtype: RecordType, payload: Option<u16>) -> Vec<u8> {
    dns::query(id, name, u16::from(qtype), payload)
}

/// knotd serving the test zone.
fn knot(name: &str) -> Knot {
    Knot::start(name, &[(ZONE, &zone_file())])
}

/// A UDP proxy in front of an upstream that counts the queries it receives and can delay them
/// or drop them all (an upstream that stopped answering).
struct Proxy {
    addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    dropping: Arc<AtomicBool>,
    delay_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind proxy");
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let addr = socket.local_addr().expect("addr");
        let queries = Arc::new(AtomicUsize::new(0));
        let dropping = Arc::new(AtomicBool::new(false));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (queries, dropping, delay_ms, stop) = (
                queries.clone(),
                dropping.clone(),
                delay_ms.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65535];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((len, client)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    queries.fetch_add(1, Ordering::SeqCst);
                    if dropping.load(Ordering::SeqCst) {
                        continue;
                    }
                    let packet = buf[..len].to_vec();
                    let reply_socket = socket.try_clone().expect("clone");
                    let delay = Duration::from_millis(delay_ms.load(Ordering::SeqCst));
                    std::thread::spawn(move || {
                        std::thread::sleep(delay);
                        if let Ok(answer) = udp_within(upstream, &packet, Duration::from_secs(2)) {
                            let _ = reply_socket.send_to(&answer, client);
                        }
                    });
                }
            })
        };
        Proxy {
            addr,
            queries,
            dropping,
            delay_ms,
            stop,
            thread: Some(thread),
        }
    }

    fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A UDP socket that receives and never answers: an upstream that has gone silent.
fn silent_upstream() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = socket.local_addr().expect("addr");
    (socket, addr)
}

fn config(upstreams: Vec<SocketAddr>) -> ForwardConfig {
    let mut config = ForwardConfig::new(upstreams);
    config.timeout = Duration::from_millis(300);
    config.health_check = Duration::from_millis(100);
    config
}

fn forwarder(config: ForwardConfig) -> (Forwarder, ManualClock) {
    let (clock, hand) = Clock::manual();
    (
        Forwarder::new(config, clock, "dns://:53", Handle::current()),
        hand,
    )
}

/// Sends `packet` through the forwarder (cache, then upstreams) and parses the response.
async fn ask_packet(
    forwarder: &Forwarder,
    packet: &[u8],
    transport: Transport,
) -> (Message, Vec<u8>) {
    let parsed = parse_query(packet).expect("a valid query");
    let mut out = vec![0u8; 65535];
    let len = forwarder
        .answer(&parsed, packet, &mut out, transport)
        .await
        .expect("a response");
    out.truncate(len);
    let message = Message::from_vec(&out).expect("a well-formed response");
    (message, out)
}

async fn ask(forwarder: &Forwarder, name: &str, qtype: RecordType) -> Message {
    ask_packet(forwarder, &query(0x1234, name, qtype, Some(1232)), UDP)
        .await
        .0
}

/// The answer section as `TYPE RDATA`, in order.
fn answers(message: &Message) -> Vec<String> {
    message.answers.iter().map(|r| Rr::of(r).data).collect()
}

fn metrics(forwarder: &Forwarder) -> String {
    let mut out = Exposition::default();
    forwarder.describe(&mut out);
    out.render()
}

fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_common_types() {
    let knot = knot("types");
    let (forwarder, _) = forwarder(config(vec![knot.addr]));
    let a = ask(&forwarder, "www.example.test", RecordType::A).await;
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answers(&a), vec!["A 192.0.2.1"]);
    assert_eq!(a.metadata.id, 0x1234);
    assert!(!a.metadata.authoritative, "a forwarded answer is not ours");
    assert!(a.metadata.recursion_available);
    assert_eq!(
        answers(&ask(&forwarder, "www.example.test", RecordType::AAAA).await),
        vec!["AAAA 2001:db8::1"]
    );
    assert_eq!(
        answers(&ask(&forwarder, "example.test", RecordType::MX).await),
        vec!["MX 10 mail.example.test."]
    );
    let txt = answers(&ask(&forwarder, "txt.example.test", RecordType::TXT).await);
    assert_eq!(txt.len(), 1);
    assert!(
        txt[0].contains("hello") && txt[0].contains("world"),
        "{txt:?}"
    );
    let cname = ask(&forwarder, "alias.example.test", RecordType::A).await;
    assert_eq!(
        answers(&cname),
        vec!["CNAME www.example.test.", "A 192.0.2.1"]
    );
    // Asked again: from the cache, with the client's ID and spelling.
    let packet = query(0x7777, "WWW.Example.TEST", RecordType::A, None);
    let (again, bytes) = ask_packet(&forwarder, &packet, UDP).await;
    assert_eq!(again.metadata.id, 0x7777);
    assert_eq!(&bytes[12..packet.len()], &packet[12..]);
    assert_eq!(answers(&again), vec!["A 192.0.2.1"]);
    let text = metrics(&forwarder);
    assert!(
        has_line(
            &text,
            "coredns_cache_hits_total{server=\"dns://:53\",zones=\".\",view=\"\",type=\"success\"} 1"
        ),
        "{text}"
    );
    assert!(
        has_line(
            &text,
            "coredns_cache_misses_total{server=\"dns://:53\",zones=\".\",view=\"\"} 5"
        ),
        "{text}"
    );
    let to = format!("to=\"{}\"", knot.addr);
    assert!(
        text.contains(&format!("coredns_proxy_request_duration_seconds_count{{proxy_name=\"forward\",{to},rcode=\"NOERROR\"}} 5")),
        "{text}"
    );
    // Dropped, as a reload drops the forwarder it replaced: its counters stay in the server's
    // metrics (to carry on in its successor's series), its gauges go.
    let server = Metrics::new("dns://:53".into());
    server.add_describer(forwarder.describer(server.retired()));
    drop(forwarder);
    let hits =
        "coredns_cache_hits_total{server=\"dns://:53\",zones=\".\",view=\"\",type=\"success\"} 1";
    // A fetch task may hold the forwarder a moment after its answer went out; until it lets go
    // the forwarder is described live, gauges included.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = server.render();
        assert!(has_line(&text, hits), "{text}");
        if !text.contains("coredns_cache_entries{") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never dropped: {text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let text = server.render();
    assert!(has_line(&text, hits), "still there a scrape later: {text}");
    assert!(!text.contains("coredns_cache_entries{"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_udp_answer_is_retried_over_tcp() {
    let knot = knot("tcp");
    // knotd itself truncates the RRset over UDP at our advertised 1,232 bytes.
    let direct = udp_within(
        knot.addr,
        &query(1, "big.example.test", RecordType::A, Some(1232)),
        Duration::from_secs(2),
    )
    .expect("knotd answers");
    assert!(
        Message::from_vec(&direct)
            .expect("parses")
            .metadata
            .truncation
    );

    let (forwarder, _) = forwarder(config(vec![knot.addr]));
    // A client over TCP gets every record.
    let packet = query(5, "big.example.test", RecordType::A, None);
    let (tcp, _) = ask_packet(&forwarder, &packet, Transport::Tcp).await;
    assert_eq!(tcp.answers.len(), BIG);
    assert!(!tcp.metadata.truncation);
    // A UDP client that takes 4,096 bytes gets them all too: they came upstream over TCP.
    let (large, _) = ask_packet(
        &forwarder,
        &query(6, "big.example.test", RecordType::A, Some(4096)),
        UDP,
    )
    .await;
    assert_eq!(large.answers.len(), BIG);
    assert!(!large.metadata.truncation);
    // A UDP client without EDNS gets what fits in 512 bytes, with TC.
    let (small, bytes) = ask_packet(&forwarder, &packet, UDP).await;
    assert!(small.metadata.truncation);
    assert!(bytes.len() <= 512 && !small.answers.is_empty() && small.answers.len() < BIG);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_upstream_is_marked_down_and_the_other_used() {
    let knot = knot("down");
    let (_silent, silent) = silent_upstream();
    let mut config = config(vec![silent, knot.addr]);
    config.policy = Policy::Sequential;
    config.max_fails = 2;
    let (forwarder, _) = forwarder(config);
    // Two queries each wait for the silent upstream's timeout, then get knotd's answer.
    for name in ["n1.example.test", "n2.example.test"] {
        let started = Instant::now();
        let answer = ask(&forwarder, name, RecordType::A).await;
        assert_eq!(answer.answers.len(), 1, "{name}");
        assert!(started.elapsed() >= Duration::from_millis(300));
    }
    // Now marked down: the next query goes straight to knotd.
    let started = Instant::now();
    let answer = ask(&forwarder, "n3.example.test", RecordType::A).await;
    assert_eq!(answer.answers.len(), 1);
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "took {:?}",
        started.elapsed()
    );
    // The background health check keeps failing against it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let failing = format!(
        "coredns_proxy_healthcheck_failures_total{{proxy_name=\"forward\",to=\"{silent}\"}} 0"
    );
    while has_line(&metrics(&forwarder), &failing) {
        assert!(Instant::now() < deadline, "no health check failure counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_back_up_after_health_check() {
    let knot = knot("back");
    let proxy = Proxy::start(knot.addr);
    let mut config = config(vec![proxy.addr, knot.addr]);
    config.policy = Policy::Sequential;
    config.max_fails = 1;
    let (forwarder, _) = forwarder(config);
    proxy.dropping.store(true, Ordering::SeqCst);
    let answer = ask(&forwarder, "n1.example.test", RecordType::A).await;
    assert_eq!(answer.answers.len(), 1, "answered by the second upstream");
    assert_eq!(proxy.queries(), 1);
    proxy.dropping.store(false, Ordering::SeqCst);
    // A health check (`. NS`, which knotd answers REFUSED: an answer all the same) gets through.
    let deadline = Instant::now() + Duration::from_secs(5);
    while proxy.queries() < 2 {
        assert!(
            Instant::now() < deadline,
            "no health check reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Up again once it answers, so first in sequence again: a new name goes through it.
    let mut attempt = 0;
    loop {
        let before = proxy.queries();
        ask(
            &forwarder,
            &format!("fresh{attempt}.example.test"),
            RecordType::A,
        )
        .await;
        if proxy.queries() == before + 1 {
            break;
        }
        attempt += 1;
        assert!(
            Instant::now() < deadline,
            "the upstream was never used again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And the health checks have stopped.
    let settled = proxy.queries();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(proxy.queries(), settled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_answer_when_every_upstream_fails() {
    let knot = knot("stale");
    let proxy = Proxy::start(knot.addr);
    let mut config = config(vec![proxy.addr]);
    config.cache.serve_stale = Duration::from_secs(3600);
    let (forwarder, hand) = forwarder(config);
    let fresh = ask(&forwarder, "www.example.test", RecordType::A).await;
    assert_eq!(fresh.answers[0].ttl, 30, "300 capped by the 30 s cache TTL");
    proxy.dropping.store(true, Ordering::SeqCst);
    hand.advance(Duration::from_secs(600));
    let stale = ask(&forwarder, "www.example.test", RecordType::A).await;
    assert_eq!(stale.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answers(&stale), vec!["A 192.0.2.1"]);
    assert_eq!(
        stale.answers[0].ttl, 30,
        "RFC 8767: stale answers carry TTL 30"
    );
    assert!(has_line(
        &metrics(&forwarder),
        "coredns_cache_served_stale_total{server=\"dns://:53\",zones=\".\",view=\"\"} 1"
    ));
    // Nothing stale for a name never asked: SERVFAIL.
    let never = ask(&forwarder, "mail.example.test", RecordType::A).await;
    assert_eq!(never.metadata.response_code, ResponseCode::ServFail);
    // Past the stale window: SERVFAIL too.
    hand.advance(Duration::from_secs(3600));
    let too_old = ask(&forwarder, "www.example.test", RecordType::A).await;
    assert_eq!(too_old.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_answers_cached_with_capped_ttl() {
    let knot = knot("negative");
    let proxy = Proxy::start(knot.addr);
    let (forwarder, hand) = forwarder(config(vec![proxy.addr]));
    let nx = ask(&forwarder, "nothere.example.test", RecordType::A).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(nx.authorities.len(), 1);
    assert_eq!(nx.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(nx.authorities[0].ttl, 5, "SOA minimum 60, capped at 5");
    let nodata = ask(&forwarder, "www.example.test", RecordType::TXT).await;
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    assert_eq!(nodata.authorities[0].ttl, 5);
    assert_eq!(proxy.queries(), 2);

    hand.advance(Duration::from_secs(3));
    let cached = ask(&forwarder, "NotHere.example.test", RecordType::A).await;
    assert_eq!(cached.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(cached.authorities[0].ttl, 2);
    assert_eq!(proxy.queries(), 2, "answered from the cache");
    let text = metrics(&forwarder);
    assert!(
        has_line(
            &text,
            "coredns_cache_hits_total{server=\"dns://:53\",zones=\".\",view=\"\",type=\"denial\"} 1"
        ),
        "{text}"
    );
    assert!(
        has_line(
            &text,
            "coredns_cache_entries{server=\"dns://:53\",zones=\".\",view=\"\",type=\"denial\"} 2"
        ),
        "{text}"
    );

    hand.advance(Duration::from_secs(2));
    ask(&forwarder, "nothere.example.test", RecordType::A).await;
    assert_eq!(proxy.queries(), 3, "expired after 5 s");
}

/// The TTL of the first record of `www.example.test A` through the forwarder.
async fn www_ttl(forwarder: &Forwarder) -> u32 {
    ask(forwarder, "www.example.test", RecordType::A)
        .await
        .answers[0]
        .ttl
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_counts_down_on_the_injected_clock() {
    let knot = knot("ttl");
    let proxy = Proxy::start(knot.addr);
    let mut config = config(vec![proxy.addr]);
    config.cache.max_ttl = 3600;
    let (forwarder, hand) = forwarder(config);
    assert_eq!(www_ttl(&forwarder).await, 300);
    hand.advance(Duration::from_millis(10_400));
    assert_eq!(www_ttl(&forwarder).await, 290);
    hand.advance(Duration::from_secs(289));
    assert_eq!(www_ttl(&forwarder).await, 1);
    assert_eq!(proxy.queries(), 1);
    hand.advance(Duration::from_secs(1));
    assert_eq!(www_ttl(&forwarder).await, 300);
    assert_eq!(proxy.queries(), 2, "expired: asked again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_keeps_the_bound() {
    let knot = knot("evict");
    let proxy = Proxy::start(knot.addr);
    let mut config = config(vec![proxy.addr]);
    config.cache.capacity = 4;
    let (forwarder, _) = forwarder(config);
    for i in 0..10 {
        let answer = ask(&forwarder, &format!("n{i}.example.test"), RecordType::A).await;
        assert_eq!(answers(&answer), vec![format!("A 198.51.100.{i}")]);
    }
    assert_eq!(forwarder.cache().len(), 4);
    let text = metrics(&forwarder);
    assert!(
        has_line(
            &text,
            "coredns_cache_entries{server=\"dns://:53\",zones=\".\",view=\"\",type=\"success\"} 4"
        ),
        "{text}"
    );
    assert!(
        has_line(
            &text,
            "coredns_cache_evictions_total{server=\"dns://:53\",zones=\".\",view=\"\",type=\"success\"} 6"
        ),
        "{text}"
    );
    // The last one is still cached; the first was evicted and is asked again.
    ask(&forwarder, "n9.example.test", RecordType::A).await;
    assert_eq!(proxy.queries(), 10);
    ask(&forwarder, "n0.example.test", RecordType::A).await;
    assert_eq!(proxy.queries(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identical_concurrent_queries_share_one_upstream_query() {
    let knot = knot("coalesce");
    let proxy = Proxy::start(knot.addr);
    proxy.delay_ms.store(300, Ordering::SeqCst);
    let mut config = config(vec![proxy.addr]);
    config.timeout = Duration::from_secs(2);
    let (forwarder, _) = forwarder(config);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50u16 {
        let forwarder = forwarder.clone();
        // Mixed spellings: one question, case-insensitively.
        let name = if i % 2 == 0 {
            "www.example.test"
        } else {
            "WwW.ExAmPlE.TeSt"
        };
        let packet = query(1000 + i, name, RecordType::A, Some(1232));
        tasks.spawn(async move {
            let (message, bytes) = ask_packet(&forwarder, &packet, UDP).await;
            (i, packet, message, bytes)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (i, packet, message, bytes) = joined.expect("task");
        assert_eq!(message.metadata.id, 1000 + i);
        assert_eq!(
            &bytes[12..packet.len() - 11],
            &packet[12..packet.len() - 11],
            "question as asked"
        );
        assert_eq!(answers(&message), vec!["A 192.0.2.1"]);
    }
    assert_eq!(
        proxy.queries(),
        1,
        "50 identical queries, one upstream query"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_concurrent_refuses_past_the_bound() {
    let knot = knot("concurrent");
    let proxy = Proxy::start(knot.addr);
    proxy.delay_ms.store(500, Ordering::SeqCst);
    let mut config = config(vec![proxy.addr]);
    config.max_concurrent = 2;
    config.timeout = Duration::from_secs(2);
    let (forwarder, _) = forwarder(config);
    let mut slow = tokio::task::JoinSet::new();
    for name in ["n1.example.test", "n2.example.test"] {
        let forwarder = forwarder.clone();
        slow.spawn(async move { ask(&forwarder, name, RecordType::A).await });
    }
    // Let both reach the upstream, then a third distinct query finds no room.
    let deadline = Instant::now() + Duration::from_secs(2);
    while proxy.queries() < 2 {
        assert!(Instant::now() < deadline, "the first queries never left");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = ask(&forwarder, "n3.example.test", RecordType::A).await;
    assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
    while let Some(answer) = slow.join_next().await {
        assert_eq!(
            answer.expect("task").metadata.response_code,
            ResponseCode::NoError
        );
    }
    assert!(has_line(
        &metrics(&forwarder),
        "coredns_forward_max_concurrent_rejects_total 1"
    ));
    // With room again, it is answered.
    let later = ask(&forwarder, "n3.example.test", RecordType::A).await;
    assert_eq!(later.metadata.response_code, ResponseCode::NoError);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_probe_coming_back_stops_startup() {
    // An "upstream" that is really us: it hands every query to our listener's check.
    let (clock, _) = Clock::manual();
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let addr = socket.local_addr().expect("addr");
    let looping = Forwarder::new(config(vec![addr]), clock, "dns://:53", Handle::current());
    let stop = Arc::new(AtomicBool::new(false));
    let listener = {
        let (looping, stop) = (looping.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((len, _)) = socket.recv_from(&mut buf) {
                    if let Ok(query) = parse_query(&buf[..len]) {
                        looping.is_loop_probe(&query);
                    }
                }
            }
        })
    };
    let error = looping.check_loop().await.expect_err("a loop");
    stop.store(true, Ordering::Relaxed);
    let _ = listener.join();
    let message = error.to_string();
    assert!(
        message.contains("forwarding loop") && message.contains(&addr.to_string()),
        "{message}"
    );
    assert!(message.contains(".zone-loop-check."), "{message}");

    // A real upstream is no loop.
    let knot = knot("loop");
    let (forwarder, _) = forwarder(config(vec![knot.addr]));
    forwarder.check_loop().await.expect("no loop");
}

/// A server answering an empty cluster zone over UDP and TCP on loopback, forwarding the rest.
fn start_server(forward: ForwardConfig) -> TestServer {
    let serve = ServeConfig::loopback().with_forward(forward);
    TestServer::start_with(Cluster::default(), ZoneConfig::default(), &serve)
}

#[test]
fn server_forwards_outside_names_over_udp_and_tcp() {
    let knot = knot("server");
    let proxy = Proxy::start(knot.addr);
    let server = start_server(config(vec![proxy.addr]));
    let addr = server.addr();
    let udp = |name: &str, qtype| {
        let answer = udp_within(
            addr,
            &query(0x4321, name, qtype, Some(1232)),
            Duration::from_secs(3),
        )
        .expect("an answer over UDP");
        Message::from_vec(&answer).expect("parses")
    };
    let forwarded = udp("www.example.test", RecordType::A);
    assert_eq!(forwarded.metadata.id, 0x4321);
    assert_eq!(answers(&forwarded), vec!["A 192.0.2.1"]);
    let probes = proxy.queries(); // the startup loop probe went there too
    let cached = udp("WWW.example.test", RecordType::A);
    assert_eq!(answers(&cached), vec!["A 192.0.2.1"]);
    assert_eq!(
        proxy.queries(),
        probes,
        "the second answer came from the cache"
    );

    // A cluster name is the zone's, never forwarded.
    let cluster = udp("nothere.default.svc.cluster.local", RecordType::A);
    assert_eq!(cluster.metadata.response_code, ResponseCode::NXDomain);
    assert!(cluster.metadata.authoritative);
    // A reverse name the zone does not hold goes upstream (knotd refuses it: not its zone).
    let reverse = udp("1.2.0.192.in-addr.arpa", RecordType::PTR);
    assert_eq!(reverse.metadata.response_code, ResponseCode::Refused);
    assert_eq!(proxy.queries(), probes + 1, "forwarded");

    // Over TCP, the big RRset whole (knotd truncates it over UDP; the forwarder retried on TCP,
    // straight to knotd as the proxy speaks only UDP).
    let direct = start_server(config(vec![knot.addr]));
    let big = tcp(
        direct.addr(),
        &query(9, "big.example.test", RecordType::A, None),
    )
    .expect("an answer over TCP");
    let big = Message::from_vec(&big).expect("parses");
    assert_eq!(big.answers.len(), BIG);
    direct.server.shutdown();

    let text = server.metrics.render();
    for wanted in [
        "coredns_cache_hits_total{server=\"dns://:53\",zones=\".\",view=\"\",type=\"success\"} 1",
        "coredns_forward_max_concurrent_rejects_total 0",
    ] {
        assert!(has_line(&text, wanted), "missing {wanted:?} in\n{text}");
    }
    for plugin in ["cache", "forward", "kubernetes"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("coredns_dns_responses_total")
                    && l.contains(&format!("plugin=\"{plugin}\""))),
            "no response counted for {plugin}:\n{text}"
        );
    }
    server.server.shutdown();
}
