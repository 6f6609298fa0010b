//! Forwarding over DNS over TLS (RFC 7858; CoreDNS's `forward . tls://...` with `tls` and
//! `tls_servername`) through the real binary and a Corefile, to a real Unbound serving DNS over
//! TLS on loopback with a CA and certificate made for the test, which forwards to Knot DNS
//! holding the names:
//! - answers come through tls://, on a few connections reused for every query (CoreDNS's
//!   connection cache metrics), and a connection the upstream closed is replaced;
//! - a certificate not valid for `tls_servername`, or from an issuer the system does not trust,
//!   fails verification: SERVFAIL, and the upstream marked down with the reason logged;
//! - a dead TLS upstream is marked down and the next one answers; once something answers over
//!   TLS where it was, its health checks bring it back.
//!
//! Requires `unbound`, `openssl` and `knotd` (Debian packages `unbound`, `openssl`, `knot`); CI
//! installs them.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use clusterdns_testkit::client;
use clusterdns_testkit::dns::Reply;
use clusterdns_testkit::http::{http_get, metric};
use clusterdns_testkit::knot::Knot;
use clusterdns_testkit::net::{free_port, loopback};
use clusterdns_testkit::process::Process;
use clusterdns_testkit::temp::TempDir;
use clusterdns_testkit::unbound::{Certificates, Unbound};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// Connections clusterdns keeps to one TLS upstream at most (server/src/forward/tls.rs).
const CONNECTIONS: f64 = 2.0;
/// How long the binary and the upstreams may take to start, or a change to show.
const WITHIN: Duration = Duration::from_secs(10);

/// The zone behind Unbound: `n0` to `n79` and `www`.
fn zones() -> Vec<(&'static str, String)> {
    let mut records = String::from("www A 192.0.2.1\n");
    for i in 0..80 {
        records.push_str(&format!("n{i} A 198.51.100.{i}\n"));
    }
    vec![("example.test", records)]
}

/// Knot holding [`zones`], and Unbound serving DNS over TLS in front of it with a certificate
/// for `dns.test` and 127.0.0.1.
struct Upstreams {
    knot: Knot,
    certs: Certificates,
    unbound: Unbound,
}

impl Upstreams {
    fn start(name: &str) -> Upstreams {
        let zones = zones();
        let zones: Vec<(&str, &str)> = zones.iter().map(|(o, r)| (*o, r.as_str())).collect();
        let knot = Knot::with_records(name, &zones);
        let certs = Certificates::generate(name, &["dns.test"]);
        let unbound = Unbound::start(name, &certs, knot.addr);
        Upstreams {
            knot,
            certs,
            unbound,
        }
    }

    /// The CA file clusterdns trusts.
    fn ca(&self) -> &Path {
        &self.certs.ca
    }
}

/// The binary serving a Corefile on loopback.
struct Server {
    process: Process,
    dns: SocketAddr,
    metrics: SocketAddr,
    _dir: TempDir,
}

impl Server {
    /// Serves `.` with the block `body` (and a `prometheus`) on a free port, plus the blocks
    /// `others` (with `@PORT@` for that port); waits until it answers anything.
    fn start(name: &str, body: &str, others: &str) -> Server {
        let dir = TempDir::new(name);
        let (port, metrics) = (free_port(), free_port());
        let corefile = format!(
            ".:{port} {{\n    bind 127.0.0.1\n    prometheus 127.0.0.1:{metrics}\n    {body}\n}}\n{}",
            others.replace("@PORT@", &port.to_string())
        );
        let path = dir.write("Corefile", &corefile);
        let process = Process::clusterdns(&[
            "-conf".as_ref(),
            path.as_os_str(),
            "--threads".as_ref(),
            "1".as_ref(),
        ]);
        let dns = loopback(port);
        process.wait_until(Instant::now(), WITHIN, "an answer", || {
            client::ask(
                dns,
                "ready.invalid",
                RecordType::A,
                Duration::from_millis(300),
            )
            .map(|_| ())
            .ok_or(())
        });
        Server {
            process,
            dns,
            metrics: loopback(metrics),
            _dir: dir,
        }
    }

    fn ask(&self, name: &str) -> Reply {
        self.process.ask(self.dns, name, RecordType::A)
    }

    /// The sum of the samples of `name` with `labels` on /metrics (0 when there is none).
    fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        let (_, page) = http_get(self.metrics, "/metrics").expect("/metrics answers");
        metric(&page, name, labels).unwrap_or(0.0)
    }

    /// Connections opened to TLS upstreams, and queries sent on one already open.
    fn connections(&self) -> (f64, f64) {
        let tls = ["proto=\"tcp-tls\""];
        (
            self.metric("coredns_proxy_conn_cache_misses_total", &tls),
            self.metric("coredns_proxy_conn_cache_hits_total", &tls),
        )
    }

    /// Waits until the logs contain every one of `words` on one line.
    fn wait_log(&self, words: &[&str]) {
        let what = format!("a log line with {words:?}");
        self.process.wait_until(Instant::now(), WITHIN, &what, || {
            let logs = self.process.logs();
            match logs.lines().any(|l| words.iter().all(|w| l.contains(w))) {
                true => Ok(()),
                false => Err(()),
            }
        });
    }
}

/// `forward . TO...` over TLS, trusting `ca`, verifying `name`, with `more` options.
fn forward(to: &[SocketAddr], ca: &Path, name: &str, more: &str) -> String {
    let to: Vec<String> = to.iter().map(|a| format!("tls://{a}")).collect();
    format!(
        "forward . {} {{\n        tls {}\n        tls_servername {name}\n        {more}\n    }}",
        to.join(" "),
        ca.display()
    )
}

fn assert_n(server: &Server, i: usize) {
    let reply = server.ask(&format!("n{i}.example.test"));
    let expected = format!("A 198.51.100.{i}");
    assert!(
        reply.is(&[expected.as_str()]),
        "n{i}: {reply:?}\n{}",
        server.process.logs()
    );
}

#[test]
fn answers_come_over_tls_on_reused_connections() {
    let up = Upstreams::start("dot-reuse");
    let body = forward(&[up.unbound.dot], up.ca(), "dns.test", "");
    let server = Server::start("dot-reuse", &body, "");

    // One after another, then eight clients at once (names of their own: identical queries in
    // flight together would be sent once).
    for i in 0..40 {
        assert_n(&server, i);
    }
    std::thread::scope(|scope| {
        for t in 0..8 {
            let server = &server;
            scope.spawn(move || {
                for i in 0..10 {
                    assert_n(server, t * 10 + i);
                }
            });
        }
    });
    let (opened, reused) = server.connections();
    assert!(
        (1.0..=CONNECTIONS).contains(&opened) && opened + reused >= 120.0,
        "opened {opened}, reused {reused}: 120 queries should share at most {CONNECTIONS} \
         connections"
    );

    // The upstream goes away and comes back on the same port: the closed connections are
    // replaced by new ones.
    let port = up.unbound.dot.port();
    let Upstreams {
        knot,
        certs,
        unbound,
    } = up;
    drop(unbound);
    let _unbound = Unbound::start_on("dot-reuse-again", &certs, knot.addr, port);
    let reply = server.ask("www.example.test");
    assert!(
        reply.is(&["A 192.0.2.1"]),
        "after the upstream restarted: {reply:?}\n{}",
        server.process.logs()
    );
    let (reopened, _) = server.connections();
    assert!(reopened > opened, "opened {opened}, then {reopened}");
    server.process.assert_alive();
}

#[test]
fn a_certificate_that_fails_verification_is_servfail_and_logged() {
    let up = Upstreams::start("dot-verify");
    // `.`: a name the certificate is not for; `other.test`: no CA, so the system's roots,
    // which do not hold the test's CA.
    let body = forward(&[up.unbound.dot], up.ca(), "wrong.test", "");
    let other = format!(
        "other.test:@PORT@ {{\n    bind 127.0.0.1\n    forward . tls://{} {{\n        \
         tls_servername dns.test\n    }}\n}}\n",
        up.unbound.dot
    );
    let server = Server::start("dot-verify", &body, &other);
    for name in [
        "www.example.test",
        "n1.example.test",
        "www.other.test",
        "n1.other.test",
    ] {
        let reply = server.ask(name);
        assert_eq!(
            reply.rcode,
            ResponseCode::ServFail,
            "{name}: {reply:?}\n{}",
            server.process.logs()
        );
    }
    // The reason, once per upstream marked down (two failures: max_fails 2).
    server.wait_log(&["marked down", "certificate", "wrong.test"]);
    server.wait_log(&["marked down", "certificate", "UnknownIssuer"]);
    let (opened, _) = server.connections();
    assert_eq!(
        opened, 0.0,
        "no connection was opened: the handshakes failed"
    );
    server.process.assert_alive();
}

#[test]
fn a_dead_tls_upstream_is_marked_down_and_the_next_is_used() {
    let up = Upstreams::start("dot-dead");
    // Nothing listens there yet: connections are refused.
    let dead = loopback(free_port());
    let body = forward(
        &[dead, up.unbound.dot],
        up.ca(),
        "dns.test",
        "policy sequential\n        health_check 100ms",
    );
    let server = Server::start("dot-dead", &body, "");
    for i in 0..10 {
        assert_n(&server, i);
    }
    server.wait_log(&["marked down", &dead.to_string()]);
    let to_dead = format!("to=\"{dead}\"");
    let health_failures = || server.metric("coredns_proxy_healthcheck_failures_total", &[&to_dead]);
    server.process.wait_until(
        Instant::now(),
        WITHIN,
        "failed health checks of the dead upstream",
        || match health_failures() {
            n if n >= 2.0 => Ok(()),
            n => Err(n),
        },
    );
    let answered_by =
        |to: &str| server.metric("coredns_proxy_request_duration_seconds_count", &[to]);
    assert_eq!(answered_by(&to_dead), 0.0);

    // Something answers over TLS there now: a health check over TLS brings it back up, and
    // the sequential policy asks it first again.
    let _revived = Unbound::start_on("dot-dead-revived", &up.certs, up.knot.addr, dead.port());
    server.wait_log(&["back up", &dead.to_string()]);
    for i in 10..20 {
        assert_n(&server, i);
    }
    assert!(
        answered_by(&to_dead) >= 10.0,
        "the revived upstream answers: {}\n{}",
        answered_by(&to_dead),
        server.process.logs()
    );
    server.process.assert_alive();
}
