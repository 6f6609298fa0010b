//! CoreDNS's `cache` options that act over time, through the real `clusterdns` binary with a
//! scripted upstream (`clusterdns_testkit::upstream::Numbered`: the n-th query for a name is
//! answered `192.0.2.n`, so an answer tells which fetch it came from):
//!
//! - `prefetch AMOUNT DURATION PERCENTAGE%`: a name hit often enough is fetched again before
//!   its TTL runs out, and the next client gets the new answer with a full TTL; a name hit too
//!   few times is not;
//! - `serve_stale DURATION immediate`: once the upstream stops answering, an expired answer is
//!   sent at once (TTL 30) while one refresh at a time is tried in the background, and the
//!   answer is refreshed when the upstream is back.
//!
//! The upstream's TTLs are a few seconds (`success ... MINTTL 0` lets the cache keep them), so
//! each test takes seconds of real time; the cache's own logic is unit-tested on a manual clock
//! (`server/src/forward/cache/tests.rs`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clusterdns_testkit::client::ask;
use clusterdns_testkit::dns::Reply;
use clusterdns_testkit::http::{http_get, metric};
use clusterdns_testkit::net::{free_port, loopback};
use clusterdns_testkit::process::Process;
use clusterdns_testkit::temp::TempDir;
use clusterdns_testkit::upstream::Numbered;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// How long the binary may take to start answering.
const STARTUP: Duration = Duration::from_secs(15);
/// The TTL of the upstream's answers in the prefetch test.
const PREFETCH_TTL: u32 = 4;

/// The Corefile: `@NAME@` is filled in by [`Server::start`].
const COREFILE: &str = "
prefetch.test:@PORT@ {
    bind 127.0.0.1
    ready 127.0.0.1:@READY@
    prometheus 127.0.0.1:@METRICS@
    forward . @PREFETCH@
    cache {
        success 1000 3600 0
        prefetch 2 1m 50%
    }
}
stale.test:@PORT@ {
    bind 127.0.0.1
    forward . @STALE@
    cache {
        success 1000 3600 0
        serve_stale 1h immediate
    }
}
";

/// The binary serving [`COREFILE`] with an upstream per block. Fields drop in order: the
/// server first.
struct Server {
    process: Process,
    dns: SocketAddr,
    metrics: SocketAddr,
    prefetch: Numbered,
    stale: Numbered,
    _dir: TempDir,
}

impl Server {
    fn start(test: &str, stale_ttl: u32) -> Server {
        let prefetch = Numbered::start(PREFETCH_TTL);
        let stale = Numbered::start(stale_ttl);
        let dir = TempDir::new(test);
        let (port, ready, metrics) = (free_port(), free_port(), free_port());
        let corefile = COREFILE
            .replace("@PORT@", &port.to_string())
            .replace("@READY@", &ready.to_string())
            .replace("@METRICS@", &metrics.to_string())
            .replace("@PREFETCH@", &prefetch.addr.to_string())
            .replace("@STALE@", &stale.addr.to_string());
        let path = dir.write("Corefile", &corefile);
        let process = Process::clusterdns(&[
            "--corefile",
            path.to_str().expect("a UTF-8 path"),
            "--threads",
            "1",
        ]);
        process.wait_status(loopback(ready), "/ready", 200, STARTUP);
        Server {
            process,
            dns: loopback(port),
            metrics: loopback(metrics),
            prefetch,
            stale,
            _dir: dir,
        }
    }

    /// Asks `name A`; the answer's address and TTL, and how long it took to come.
    fn ask(&self, name: &str) -> (String, u32, Duration) {
        let started = Instant::now();
        let reply = ask(self.dns, name, RecordType::A, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("no answer to {name}\n{}", self.process.logs()));
        let took = started.elapsed();
        (address(&reply, name), reply.answers[0].ttl, took)
    }

    /// A metric of the caches, summed over both blocks.
    fn metric(&self, name: &str) -> f64 {
        let (_, text) = http_get(self.metrics, "/metrics").expect("/metrics answers");
        metric(&text, name, &[]).unwrap_or_else(|| panic!("no {name} in\n{text}"))
    }
}

/// The one address of a NOERROR answer.
fn address(reply: &Reply, name: &str) -> String {
    assert_eq!(reply.rcode, ResponseCode::NoError, "{name}: {reply:?}");
    assert_eq!(reply.answers.len(), 1, "{name}: {reply:?}");
    let data = &reply.answers[0].data;
    data.strip_prefix("A ")
        .unwrap_or_else(|| panic!("{name}: not an address: {data}"))
        .to_owned()
}

#[test]
fn popular_names_are_prefetched_before_they_expire() {
    let server = Server::start("cache-prefetch", 1);
    let (popular, rare) = ("www.prefetch.test", "rare.prefetch.test");

    // The first query of each is fetched: answer 1, the TTL whole.
    let (first, ttl, _) = server.ask(popular);
    let fetched = Instant::now();
    assert_eq!((first.as_str(), ttl), ("192.0.2.1", PREFETCH_TTL));
    assert_eq!(server.ask(rare).0, "192.0.2.1");
    // Hit 1 of `prefetch 2`: 4 s of 4 left, no prefetch.
    assert_eq!(server.ask(popular).0, "192.0.2.1");

    // Past half the TTL: the popular name's hit 2 prefetches (2 s left is 50% of 4), the rare
    // name's hit 1 does not. Both are answered from the cache as they are.
    std::thread::sleep(Duration::from_millis(2200));
    let (cached, left, _) = server.ask(popular);
    assert_eq!(cached, "192.0.2.1");
    assert!(left <= 2, "the hit that prefetches sees {left} s left");
    assert_eq!(server.ask(rare).0, "192.0.2.1");

    // The refresh lands before the first answer expires: the next client gets answer 2 with
    // the TTL whole again, and the upstream was asked twice, never by a client waiting.
    server.process.wait_answer(
        server.dns,
        Instant::now(),
        Duration::from_millis(1500),
        popular,
        RecordType::A,
        |reply| reply.answers.first().map(|a| a.data.as_str()) == Some("A 192.0.2.2"),
    );
    let refreshed_after = fetched.elapsed();
    assert!(
        refreshed_after < Duration::from_millis(3800),
        "refreshed {refreshed_after:?} after the fetch, past the 4 s TTL"
    );
    let (_, ttl, _) = server.ask(popular);
    assert!(
        ttl >= PREFETCH_TTL - 1,
        "a fresh TTL, not what was left: {ttl}"
    );
    assert_eq!(server.prefetch.asked(popular), 2);
    assert_eq!(server.prefetch.asked(rare), 1, "one hit is not popular");
    assert_eq!(server.metric("coredns_cache_prefetch_total"), 1.0);
    server.process.assert_alive();
}

#[test]
fn immediate_serve_stale_answers_at_once_then_refreshes() {
    let server = Server::start("cache-stale", 1);
    let name = "www.stale.test";
    let (first, ttl, _) = server.ask(name);
    assert_eq!((first.as_str(), ttl), ("192.0.2.1", 1));

    // The upstream goes silent and the answer expires.
    server.stale.set_silent(true);
    std::thread::sleep(Duration::from_millis(1300));

    // Every client gets the expired answer at once, with RFC 8767's TTL of 30, not after the
    // upstream's 2 s timeout; one refresh is tried in the background, not one per client.
    for _ in 0..5 {
        let (stale, ttl, took) = server.ask(name);
        assert_eq!((stale.as_str(), ttl), ("192.0.2.1", 30));
        assert!(
            took < Duration::from_millis(500),
            "stale answer took {took:?}"
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        server.stale.asked(name),
        2,
        "one refresh for five stale answers"
    );

    // The upstream answers again: once the failed refresh has timed out, the next stale hit
    // refreshes the entry, and clients get the new answer with its own TTL.
    server.stale.set_silent(false);
    server.process.wait_answer(
        server.dns,
        Instant::now(),
        Duration::from_secs(6),
        name,
        RecordType::A,
        |reply| reply.answers.first().map(|a| (a.data.as_str(), a.ttl)) == Some(("A 192.0.2.3", 1)),
    );
    assert!(
        server.metric("coredns_cache_served_stale_total") >= 5.0,
        "stale answers counted"
    );
    server.process.assert_alive();
}

#[test]
fn immediate_serve_stale_with_a_slow_upstream() {
    // A slow upstream rather than a dead one: the stale answer goes at once and the refresh
    // lands when the upstream's answer does.
    let server = Server::start("cache-slow", 1);
    let name = "slow.stale.test";
    assert_eq!(server.ask(name).0, "192.0.2.1");
    server.stale.set_delay(Duration::from_millis(800));
    std::thread::sleep(Duration::from_millis(1300));
    let (stale, ttl, took) = server.ask(name);
    assert_eq!((stale.as_str(), ttl), ("192.0.2.1", 30));
    assert!(
        took < Duration::from_millis(500),
        "stale answer took {took:?}"
    );
    let refreshed = server.process.wait_answer(
        server.dns,
        Instant::now(),
        Duration::from_secs(3),
        name,
        RecordType::A,
        |reply| reply.answers.first().map(|a| a.data.as_str()) == Some("A 192.0.2.2"),
    );
    assert!(
        refreshed >= Duration::from_millis(300),
        "the refresh waited on the slow upstream ({refreshed:?})"
    );
    assert_eq!(server.stale.asked(name), 2);
}
