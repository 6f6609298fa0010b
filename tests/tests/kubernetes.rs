//! The `clusterdns` binary against the fake Kubernetes API server (`clusterdns_testkit::fakeapi`),
//! as an operator runs it with `--kubeconfig`: the initial sync (paged), live changes and their
//! latency, SERVFAIL before the first sync, answers through an outage, a re-list after 410 Gone,
//! how soon a new Service is answered after an API server restart, a failing re-list's backoff,
//! 403s logged once, dropped watch connections, and lameduck on SIGTERM. Every check is a real
//! DNS answer over UDP or TCP, or a real request to `/health`, `/ready` or `/metrics`.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clusterdns_testkit::client::{answer_is, ask, ask_tcp, QueryLoop};
use clusterdns_testkit::dns::Reply;
use clusterdns_testkit::fakeapi::{self, FakeApi, Kind};
use clusterdns_testkit::http::{http_get, metric};
use clusterdns_testkit::net::{free_port, loopback};
use clusterdns_testkit::process::{clusterdns_binary, Process};
use clusterdns_testkit::temp::TempDir;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use serde_json::Value;
/// How long the binary may take to start answering or to sync.
const STARTUP: Duration = Duration::from_secs(10);
/// How long a change may take to show in answers while the API server is up.
const PROPAGATION: Duration = Duration::from_secs(2);
/// How long recovery may take after a fault ends: the source retries with a backoff that
/// doubles from 100 ms up to 5 s.
const RECOVERY: Duration = Duration::from_secs(15);

const A: RecordType = RecordType::A;
const SRV: RecordType = RecordType::SRV;
const PTR: RecordType = RecordType::PTR;
const CNAME: RecordType = RecordType::CNAME;

/// A loopback "upstream" that never answers and counts what reaches it, so forwarded queries
/// stay on this machine and a test can tell that cluster names were not forwarded.
struct Sink {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Sink {
    fn start() -> Sink {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the sink");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let addr = socket.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (received, stop) = (received.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 512];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((len, _)) = socket.recv_from(&mut buf) {
                        let question = Message::from_vec(&buf[..len]).ok().and_then(|m| {
                            let q = m.queries.first()?;
                            Some(format!("{} {}", q.name, q.query_type))
                        });
                        let mut log = received.lock().unwrap_or_else(|p| p.into_inner());
                        log.push(question.unwrap_or_else(|| "(undecodable)".into()));
                    }
                }
            });
        }
        Sink {
            addr,
            received,
            stop,
        }
    }

    /// The questions for names in the cluster zone that reached the sink. (The loop check's
    /// `*.zone-loop-check.` probe and reverse names are forwarded by design, as CoreDNS does
    /// with `fallthrough in-addr.arpa ip6.arpa`.)
    fn cluster_names_received(&self) -> Vec<String> {
        let received = self.received.lock().unwrap_or_else(|p| p.into_inner());
        received
            .iter()
            .filter(|question| {
                question
                    .split(' ')
                    .next()
                    .is_some_and(|name| name.to_ascii_lowercase().ends_with("cluster.local."))
            })
            .cloned()
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A running `clusterdns` fed by a fake API server; killed when dropped.
struct Running {
    process: Process,
    dns: SocketAddr,
    health: SocketAddr,
    ready: SocketAddr,
    metrics: SocketAddr,
    upstream: Sink,
    _dir: TempDir,
}

impl Running {
    /// Starts the binary against `api` with `extra` flags.
    fn start(api: &FakeApi, name: &str, extra: &[&str]) -> Running {
        let dir = TempDir::new(&format!("kubernetes-{name}"));
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        let (dns, health, ready, metrics) = (
            loopback(free_port()),
            loopback(free_port()),
            loopback(free_port()),
            loopback(free_port()),
        );
        let upstream = Sink::start();
        let process = Process::spawn(
            Command::new(clusterdns_binary())
                .args(["--kubeconfig", &kubeconfig.to_string_lossy()])
                .args(["--upstream", &upstream.addr.to_string()])
                // The sink never answers: fail forwarded queries well within a client's timeout.
                .args(["--forward-timeout-ms", "200"])
                .args(["--listen", &dns.to_string(), "--threads", "1"])
                .args(["--health", &health.to_string()])
                .args(["--ready", &ready.to_string()])
                .args(["--metrics", &metrics.to_string()])
                .args(extra),
        );
        Running {
            process,
            dns,
            health,
            ready,
            metrics,
            upstream,
            _dir: dir,
        }
    }

    fn stderr(&self) -> String {
        self.process.stderr()
    }

    fn ask(&self, name: &str, qtype: RecordType) -> Reply {
        self.process.ask(self.dns, name, qtype)
    }

    fn ask_tcp(&self, name: &str, qtype: RecordType) -> Reply {
        ask_tcp(self.dns, name, qtype)
            .unwrap_or_else(|| panic!("no TCP answer to {name} {qtype}\n{}", self.stderr()))
    }

    fn get(&self, addr: SocketAddr, path: &str) -> (u16, String) {
        http_get(addr, path).unwrap_or_else(|| panic!("GET {path}: no answer\n{}", self.stderr()))
    }

    fn ready_code(&self) -> u16 {
        self.get(self.ready, "/ready").0
    }

    fn metrics_text(&self) -> String {
        let (code, text) = self.get(self.metrics, "/metrics");
        assert_eq!(code, 200, "/metrics");
        text
    }

    /// Waits until the DNS port answers at all (any rcode).
    fn wait_serving(&self) {
        self.process
            .wait_until(Instant::now(), STARTUP, "the first answer", || {
                answer_is(self.dns, KUBERNETES, A, Duration::from_millis(200), |_| {
                    true
                })
            });
    }

    /// Waits until `/ready` answers 200; returns how long that took.
    fn wait_ready(&self, within: Duration) -> Duration {
        self.process.wait_status(self.ready, "/ready", 200, within)
    }

    fn assert_alive(&self) {
        self.process.assert_alive();
    }

    /// Sends SIGTERM.
    fn terminate(&self) {
        self.process.terminate();
    }

    /// Waits for the exit, failing after `within`.
    fn wait_exit(&self, within: Duration) -> ExitStatus {
        self.process.wait_exit(within)
    }
}

fn http(name: &str, port: u16) -> Value {
    fakeapi::port(name, port, "TCP")
}

/// The slice of the headless `db`: db-0 ready, db-1 with the condition unset (ready), db-2 not
/// ready, plus `extra`.
fn db_slice(extra: &[Value]) -> Value {
    let mut endpoints = vec![
        fakeapi::endpoint(&["10.1.0.1"], Some("db-0"), Some(true)),
        fakeapi::endpoint(&["10.1.0.2"], Some("db-1"), None),
        fakeapi::endpoint(&["10.1.0.3"], Some("db-2"), Some(false)),
    ];
    endpoints.extend_from_slice(extra);
    fakeapi::endpoint_slice(
        "default",
        "db-abcde",
        "db",
        "IPv4",
        &[http("postgres", 5432)],
        &endpoints,
    )
}

/// The cluster every test starts from.
fn seed(api: &FakeApi) {
    for ns in ["default", "kube-system"] {
        api.upsert(Kind::Namespace, fakeapi::namespace(ns));
    }
    let services = [
        fakeapi::headless_service("default", "db", &[http("postgres", 5432)]),
        fakeapi::external_name_service("default", "ext", "web.default.svc.cluster.local"),
        fakeapi::external_name_service("default", "out", "example.com"),
    ];
    for service in fakeapi::core_services().into_iter().chain(services) {
        api.upsert(Kind::Service, service);
    }
    api.upsert(Kind::EndpointSlice, db_slice(&[]));
    api.upsert(
        Kind::EndpointSlice,
        fakeapi::endpoint_slice(
            "default",
            "web-xyz",
            "web",
            "IPv4",
            &[http("http", 8080)],
            &[fakeapi::endpoint(&["10.1.1.1"], None, Some(true))],
        ),
    );
    api.upsert(Kind::Pod, fakeapi::pod("default", "web-1", "10.1.1.1"));
}

/// A fake API with the seed cluster, and the binary synced to it.
fn synced(name: &str, extra: &[&str]) -> (FakeApi, Running) {
    let api = FakeApi::start();
    seed(&api);
    let running = Running::start(&api, name, extra);
    let took = running.wait_ready(STARTUP);
    eprintln!("{name}: ready {took:?} after start");
    (api, running)
}

/// Waits until each of `kinds` has exactly one open watch.
fn wait_watching(api: &FakeApi, kinds: &[Kind]) {
    let watching = Instant::now();
    while kinds.iter().any(|&kind| api.open_watches(kind) != 1) {
        assert!(watching.elapsed() < RECOVERY, "watches not (re)opened");
        std::thread::sleep(Duration::from_millis(5));
    }
}

const KUBERNETES: &str = "kubernetes.default.svc.cluster.local";
const DB: &str = "db.default.svc.cluster.local";
const WEB: &str = "web.default.svc.cluster.local";

/// The seed cluster's answers.
fn assert_seed_answers(running: &Running) {
    let checks: [(&str, RecordType, &[&str]); 10] = [
        (KUBERNETES, A, &["A 10.96.0.1"]),
        (
            "_https._tcp.kubernetes.default.svc.cluster.local",
            SRV,
            &["SRV 0 100 443 kubernetes.default.svc.cluster.local."],
        ),
        (
            "_dns._udp.kube-dns.kube-system.svc.cluster.local",
            SRV,
            &["SRV 0 100 53 kube-dns.kube-system.svc.cluster.local."],
        ),
        (DB, A, &["A 10.1.0.1", "A 10.1.0.2"]),
        ("db-0.db.default.svc.cluster.local", A, &["A 10.1.0.1"]),
        (
            "_postgres._tcp.db.default.svc.cluster.local",
            SRV,
            &[
                "SRV 0 50 5432 db-0.db.default.svc.cluster.local.",
                "SRV 0 50 5432 db-1.db.default.svc.cluster.local.",
            ],
        ),
        (
            "1.0.96.10.in-addr.arpa",
            PTR,
            &["PTR kubernetes.default.svc.cluster.local."],
        ),
        (
            "1.0.1.10.in-addr.arpa",
            PTR,
            &["PTR db-0.db.default.svc.cluster.local."],
        ),
        (
            "ext.default.svc.cluster.local",
            A,
            &["A 10.96.0.20", "CNAME web.default.svc.cluster.local."],
        ),
        (
            "out.default.svc.cluster.local",
            CNAME,
            &["CNAME example.com."],
        ),
    ];
    for (name, qtype, records) in checks {
        let answer = running.ask(name, qtype);
        assert!(
            answer.is(records),
            "{name} {qtype}: {answer:?}, want {records:?}"
        );
    }
    let tcp = running.ask_tcp(KUBERNETES, A);
    assert!(tcp.is(&["A 10.96.0.1"]), "over TCP: {tcp:?}");
    let missing = running.ask("missing.default.svc.cluster.local", A);
    assert!(missing.nxdomain(), "a missing Service: {missing:?}");
}

#[test]
fn initial_sync_answers_every_kind_and_reports_ready() {
    let (api, running) = synced("initial", &[]);
    assert_seed_answers(&running);
    let forwarded = running.upstream.cluster_names_received();
    assert!(
        forwarded.is_empty(),
        "cluster names forwarded: {forwarded:?}"
    );
    assert_eq!(running.get(running.health, "/health").0, 200);
    assert_eq!(running.ready_code(), 200);
    let text = running.metrics_text();
    for name in [
        "coredns_dns_requests_total",
        "coredns_dns_responses_total",
        "coredns_build_info",
        "coredns_kubernetes_dns_programming_duration_seconds",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}");
    }
    assert!(
        metric(&text, "coredns_dns_requests_total", &[]).unwrap_or(0.0) >= 12.0,
        "queries counted"
    );
    for kind in [Kind::Namespace, Kind::Service, Kind::EndpointSlice] {
        assert_eq!(api.listings(kind), 1, "{kind:?} listed once");
        assert_eq!(api.lists(kind), 0, "{kind:?} streamed, not paged");
        assert!(api.watches(kind) >= 1, "{kind:?} watched");
    }
    let streamed = (api.requests().iter())
        .filter(|r| r.path.contains("sendInitialEvents=true"))
        .count();
    assert_eq!(streamed, 3, "one streaming list per resource");
}

#[test]
fn an_initial_list_of_several_pages_is_complete() {
    let api = FakeApi::start();
    // A server without streaming lists: the watch that asks for one is refused (422), and the
    // source lists in pages instead.
    api.set_watch_list(false);
    seed(&api);
    for i in 0..1203u32 {
        let ip = format!("10.97.{}.{}", i / 250, i % 250 + 1);
        api.upsert(
            Kind::Service,
            fakeapi::service("default", &format!("s{i}"), &[&ip], &[]),
        );
    }
    let running = Running::start(&api, "pages", &[]);
    let took = running.wait_ready(STARTUP);
    for (name, ip) in [
        ("s0", "10.97.0.1"),
        ("s600", "10.97.2.101"),
        ("s1202", "10.97.4.203"),
    ] {
        let answer = running.ask(&format!("{name}.default.svc.cluster.local"), A);
        assert!(answer.is(&[&format!("A {ip}")]), "{name}: {answer:?}");
    }
    assert_seed_answers(&running);
    assert_eq!(
        api.lists(Kind::Service),
        3,
        "1,209 Services in pages of 500"
    );
    assert_eq!(api.listings(Kind::Service), 1);
    assert!(
        running
            .stderr()
            .contains("does not serve streaming lists; listing in pages"),
        "the fallback is logged"
    );
    eprintln!("pages: 1,209 Services synced {took:?} after start");
}

#[test]
fn streaming_lists_cut_short_fall_back_to_pages() {
    let api = FakeApi::start();
    // Something between the server and clusterdns ends each streaming list before its end
    // bookmark: after two such lists a resource lists in pages.
    api.cut_streaming_lists(true);
    seed(&api);
    let running = Running::start(&api, "cut-streams", &[]);
    running.wait_ready(STARTUP);
    assert_seed_answers(&running);
    for kind in [Kind::Namespace, Kind::Service, Kind::EndpointSlice] {
        assert!(api.lists(kind) >= 1, "{kind:?} listed in pages");
    }
    let log = running.stderr();
    assert!(
        log.contains("streaming lists end before their end bookmark; listing in pages"),
        "{log}"
    );
    let text = running.metrics_text();
    let cut = metric(
        &text,
        "clusterdns_kubernetes_watch_errors_total",
        &["reason=\"incomplete_list\""],
    );
    assert!(cut.unwrap_or(0.0) >= 1.0, "{text}");
}

#[test]
fn changes_through_the_api_show_in_answers() {
    let (api, running) = synced("changes", &[]);
    let name = "new.default.svc.cluster.local";
    let mut timings = Vec::new();
    let mut step = |what: &str, write: &dyn Fn(), name: &str, check: &dyn Fn(&Reply) -> bool| {
        let written = Instant::now();
        write();
        let took = running
            .process
            .wait_answer(running.dns, written, PROPAGATION, name, A, check);
        timings.push(format!("{what}: {took:?}"));
    };
    step(
        "Service added",
        &|| {
            api.upsert(
                Kind::Service,
                fakeapi::service("default", "new", &["10.96.0.50"], &[]),
            );
        },
        name,
        &|a| a.is(&["A 10.96.0.50"]),
    );
    step(
        "ClusterIP changed",
        &|| {
            api.upsert(
                Kind::Service,
                fakeapi::service("default", "new", &["10.96.0.51"], &[]),
            );
        },
        name,
        &|a| a.is(&["A 10.96.0.51"]),
    );
    step(
        "endpoint added",
        &|| {
            let extra = fakeapi::endpoint(&["10.1.0.4"], Some("db-3"), Some(true));
            let slice = fakeapi::with_trigger_time(db_slice(&[extra]), &fakeapi::now_rfc3339());
            api.upsert(Kind::EndpointSlice, slice);
        },
        DB,
        &|a| a.is(&["A 10.1.0.1", "A 10.1.0.2", "A 10.1.0.4"]),
    );
    step(
        "endpoint not ready",
        &|| {
            let slice = fakeapi::endpoint_slice(
                "default",
                "db-abcde",
                "db",
                "IPv4",
                &[http("postgres", 5432)],
                &[
                    fakeapi::endpoint(&["10.1.0.1"], Some("db-0"), Some(false)),
                    fakeapi::endpoint(&["10.1.0.2"], Some("db-1"), Some(true)),
                ],
            );
            api.upsert(
                Kind::EndpointSlice,
                fakeapi::with_trigger_time(slice, &fakeapi::now_rfc3339()),
            );
        },
        DB,
        &|a| a.is(&["A 10.1.0.2"]),
    );
    step(
        "EndpointSlice deleted",
        &|| {
            api.delete(Kind::EndpointSlice, "default", "db-abcde");
        },
        DB,
        &Reply::nxdomain,
    );
    step(
        "Service deleted",
        &|| {
            api.delete(Kind::Service, "default", "new");
        },
        name,
        &Reply::nxdomain,
    );
    step(
        "Namespace and Service added",
        &|| {
            api.upsert(Kind::Namespace, fakeapi::namespace("team"));
            api.upsert(
                Kind::Service,
                fakeapi::service("team", "api", &["10.96.7.7"], &[]),
            );
        },
        "api.team.svc.cluster.local",
        &|a| a.is(&["A 10.96.7.7"]),
    );
    eprintln!("write-to-answer latency:\n  {}", timings.join("\n  "));
    let text = running.metrics_text();
    let programmed = metric(
        &text,
        "coredns_kubernetes_dns_programming_duration_seconds_count",
        &[],
    )
    .unwrap_or(0.0);
    assert!(
        programmed >= 2.0,
        "two slices with a trigger time were programmed, histogram count {programmed}\n{text}"
    );
}

/// Starts the binary with `--startup-timeout 0` while `fault` keeps it from syncing: every
/// cluster name answers SERVFAIL (never NXDOMAIN) and `/ready` is 503; once `lift` runs, it
/// syncs and answers.
fn servfail_until_synced(name: &str, fault: impl Fn(&FakeApi), lift: impl Fn(&FakeApi)) {
    let api = FakeApi::start();
    seed(&api);
    fault(&api);
    let running = Running::start(&api, name, &["--startup-timeout", "0"]);
    running.wait_serving();
    let until = Instant::now() + Duration::from_secs(1);
    let mut asked = 0;
    while Instant::now() < until {
        for (qname, qtype) in [
            (KUBERNETES, A),
            ("missing.default.svc.cluster.local", A),
            ("_https._tcp.kubernetes.default.svc.cluster.local", SRV),
            ("1.0.96.10.in-addr.arpa", PTR),
        ] {
            let answer = running.ask(qname, qtype);
            assert_eq!(
                answer.rcode,
                ResponseCode::ServFail,
                "{qname} {qtype} before the first sync: {answer:?}"
            );
            asked += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let tcp = running.ask_tcp(KUBERNETES, A);
    assert_eq!(tcp.rcode, ResponseCode::ServFail, "over TCP: {tcp:?}");
    let forwarded = running.upstream.cluster_names_received();
    assert!(
        forwarded.is_empty(),
        "forwarded before the sync: {forwarded:?}"
    );
    assert_eq!(running.ready_code(), 503, "/ready before the first sync");
    assert_eq!(running.get(running.health, "/health").0, 200);

    let lifted = Instant::now();
    lift(&api);
    let answered = running
        .process
        .wait_answer(running.dns, lifted, RECOVERY, KUBERNETES, A, |a| {
            a.is(&["A 10.96.0.1"])
        });
    let ready = running.wait_ready(Duration::from_secs(2));
    eprintln!("{name}: {asked} SERVFAILs before sync; answering {answered:?} after the fault ended, /ready 200 {ready:?} later");
    assert_seed_answers(&running);
}

#[test]
fn servfail_before_sync_while_forbidden_then_answers() {
    servfail_until_synced(
        "servfail-forbidden",
        |api| api.forbid(Kind::EndpointSlice, true),
        |api| api.forbid(Kind::EndpointSlice, false),
    );
}

#[test]
fn servfail_before_sync_while_the_api_is_down_then_answers() {
    servfail_until_synced(
        "servfail-down",
        |api| api.set_down(true),
        |api| api.set_down(false),
    );
}

#[test]
fn startup_timeout_holds_answers_back_until_it_expires() {
    let api = FakeApi::start();
    seed(&api);
    api.forbid(Kind::Service, true);
    let started = Instant::now();
    let running = Running::start(&api, "startup-timeout", &["--startup-timeout", "1"]);
    let first = loop {
        if let Some(answer) = ask(running.dns, KUBERNETES, A, Duration::from_millis(100)) {
            break answer;
        }
        running.assert_alive();
        assert!(
            started.elapsed() < STARTUP,
            "never answered\n{}",
            running.stderr()
        );
    };
    let answering = started.elapsed();
    assert_eq!(
        first.rcode,
        ResponseCode::ServFail,
        "unsynced after the timeout: {first:?}"
    );
    assert!(
        answering >= Duration::from_millis(900),
        "answered {answering:?} after start, before the 1 s startup timeout"
    );
    assert_eq!(running.ready_code(), 503);
    api.forbid(Kind::Service, false);
    let lifted = Instant::now();
    let synced = running
        .process
        .wait_answer(running.dns, lifted, RECOVERY, KUBERNETES, A, |a| {
            a.is(&["A 10.96.0.1"])
        });
    eprintln!("startup-timeout: first answer (SERVFAIL) {answering:?} after start; synced {synced:?} after the 403s ended");
}

#[test]
fn answers_continue_through_an_api_outage_and_catch_up_after() {
    let (api, running) = synced("outage", &[]);
    api.set_down(true);
    let down = Instant::now();
    api.upsert(
        Kind::Service,
        fakeapi::service("default", "during", &["10.96.0.77"], &[]),
    );
    api.delete(Kind::Service, "default", "web");
    let mut answered = 0;
    while down.elapsed() < Duration::from_secs(3) {
        let answer = running.ask(KUBERNETES, A);
        assert!(answer.is(&["A 10.96.0.1"]), "during the outage: {answer:?}");
        let answer = running.ask(DB, A);
        assert!(
            answer.is(&["A 10.1.0.1", "A 10.1.0.2"]),
            "during the outage: {answer:?}"
        );
        let answer = running.ask(WEB, A);
        assert!(
            answer.is(&["A 10.96.0.20"]),
            "the last snapshot serves: {answer:?}"
        );
        answered += 3;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(running.ready_code(), 200, "still ready during an outage");
    let up = Instant::now();
    api.set_down(false);
    let added = running.process.wait_answer(
        running.dns,
        up,
        RECOVERY,
        "during.default.svc.cluster.local",
        A,
        |a| a.is(&["A 10.96.0.77"]),
    );
    let deleted = running
        .process
        .wait_answer(running.dns, up, RECOVERY, WEB, A, Reply::nxdomain);
    eprintln!("outage: {answered} answers in 3 s; after recovery the addition showed in {added:?}, the deletion in {deleted:?}");
}

/// The longest the watches wait between two attempts while the API server is unreachable
/// (`RETRY_CAP` in server/src/sources/kubernetes.rs: 100 ms doubling up to this).
const RETRY_CAP: Duration = Duration::from_secs(5);
/// What applying a watch event and publishing the zone may add to it.
const WRITE: Duration = Duration::from_secs(1);

/// An API server restart: every connection cut, the server down long enough for the watches'
/// retry delay to reach its cap, then back, once with its watch history (the watches resume)
/// and once without (a restarted API server's watch cache starts empty: the resumed watches get
/// 410 and re-list). A Service created the moment it is back is answered within the retry
/// cap plus the write; the figures are printed (README, "Operations").
#[test]
fn after_an_api_server_restart_a_new_service_is_answered_within_the_retry_cap() {
    let (api, running) = synced("restart", &[]);
    // 0.1 + 0.2 + ... + 3.2 s of failed attempts: then the delay is at its cap.
    let outage = Duration::from_millis(6_300) + Duration::from_millis(700);
    let mut figures = Vec::new();
    for (round, history_kept) in [(1u8, true), (2, false)] {
        wait_watching(&api, &[Kind::Namespace, Kind::Service, Kind::EndpointSlice]);
        api.set_down(true);
        std::thread::sleep(outage);
        if !history_kept {
            // What the restarted server's watch cache no longer holds: a write the watches
            // have not seen (the cluster's resourceVersion moves on with any object), compacted.
            api.upsert(
                Kind::Namespace,
                fakeapi::namespace(&format!("moved-on-{round}")),
            );
            api.expire();
        }
        api.set_down(false);
        let up = Instant::now();
        let name = format!("restart-{round}");
        let ip = format!("10.96.3.{round}");
        api.upsert(
            Kind::Service,
            fakeapi::service("default", &name, &[&ip], &[]),
        );
        let took = running.process.wait_answer(
            running.dns,
            up,
            RETRY_CAP + WRITE,
            &format!("{name}.default.svc.cluster.local"),
            A,
            |a| a.is(&[&format!("A {ip}")]),
        );
        let how = match history_kept {
            true => "resumed",
            false => "re-listed",
        };
        eprintln!("restart {round} ({how}): answered {took:?} after the API server was back");
        figures.push(format!("{how} {took:?}"));
        assert_eq!(running.ready_code(), 200, "ready throughout");
    }
    assert!(
        api.listings(Kind::Service) >= 2,
        "the second restart re-listed"
    );
    eprintln!(
        "restart: a Service created as the API server came back was answered after: {}",
        figures.join(", ")
    );
    assert_seed_answers(&running);
}

/// A re-list that keeps failing backs off as a failing watch does (the watcher reports `Init`
/// before each attempt; were that success, it would retry every 100 ms, just when an API server
/// that has restarted is busiest), and the answers stay.
#[test]
fn a_failing_relist_backs_off() {
    let (api, running) = synced("relist-backoff", &[]);
    wait_watching(&api, &[Kind::Service]);
    let lists = |api: &FakeApi| {
        (api.requests().iter())
            .filter(|r| r.path.contains("/services") && r.path.contains("sendInitialEvents=true"))
            .count()
    };
    let before = lists(&api);
    api.forbid(Kind::Service, true);
    api.expire();
    let window = Duration::from_secs(7);
    std::thread::sleep(window);
    let attempts = lists(&api) - before;
    // At once after the 410, then 0.1, 0.3, 0.7, 1.5, 3.1 and 6.3 s later.
    assert!(
        (2..=8).contains(&attempts),
        "{attempts} list attempts in {window:?}"
    );
    assert_eq!(running.ready_code(), 200);
    assert_seed_answers(&running);
    api.forbid(Kind::Service, false);
    eprintln!("relist-backoff: {attempts} list attempts in {window:?} while forbidden");
}

#[test]
fn a_relist_after_410_converges_to_the_final_state() {
    let (api, running) = synced("relist", &[]);
    let written = Instant::now();
    api.upsert(
        Kind::Service,
        fakeapi::service("default", "x", &["10.96.1.1"], &[]),
    );
    running.process.wait_answer(
        running.dns,
        written,
        PROPAGATION,
        "x.default.svc.cluster.local",
        A,
        |a| a.is(&["A 10.96.1.1"]),
    );
    // Changes no watch delivers: made while the watches are cut, then compacted away, so the
    // resumed watches get 410 and only a re-list (deleting what it did not list) shows them.
    api.set_down(true);
    api.delete(Kind::Service, "default", "web");
    api.delete(Kind::Service, "default", "x");
    api.upsert(
        Kind::Service,
        fakeapi::service("default", "y", &["10.96.1.2"], &[]),
    );
    api.upsert(
        Kind::EndpointSlice,
        db_slice(&[fakeapi::endpoint(&["10.1.0.9"], Some("db-9"), Some(true))]),
    );
    api.expire();
    let up = Instant::now();
    api.set_down(false);
    running.process.wait_answer(
        running.dns,
        up,
        RECOVERY,
        "y.default.svc.cluster.local",
        A,
        |a| a.is(&["A 10.96.1.2"]),
    );
    running.process.wait_answer(
        running.dns,
        up,
        RECOVERY,
        "x.default.svc.cluster.local",
        A,
        Reply::nxdomain,
    );
    running
        .process
        .wait_answer(running.dns, up, RECOVERY, WEB, A, Reply::nxdomain);
    let took = running
        .process
        .wait_answer(running.dns, up, RECOVERY, DB, A, |a| {
            a.is(&["A 10.1.0.1", "A 10.1.0.2", "A 10.1.0.9"])
        });
    assert!(api.listings(Kind::Service) >= 2, "services re-listed");
    assert!(
        api.listings(Kind::EndpointSlice) >= 2,
        "endpointslices re-listed"
    );
    // And after a 410 on an open watch, too (once the re-listed resources watch again).
    wait_watching(&api, &[Kind::Namespace, Kind::Service, Kind::EndpointSlice]);
    api.expire();
    let expired = Instant::now();
    api.upsert(
        Kind::Service,
        fakeapi::service("default", "z", &["10.96.1.3"], &[]),
    );
    running.process.wait_answer(
        running.dns,
        expired,
        PROPAGATION,
        "z.default.svc.cluster.local",
        A,
        |a| a.is(&["A 10.96.1.3"]),
    );
    // `z` may come through the open watch before the 410 does: wait for the re-list itself.
    let lists = || {
        metric(
            &running.metrics_text(),
            "clusterdns_kubernetes_lists_total",
            &["resource=\"services\""],
        )
        .unwrap_or(0.0)
    };
    while lists() < 3.0 {
        assert!(
            expired.elapsed() < RECOVERY,
            "the initial list and two re-lists counted: {}",
            lists()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "relist: converged {took:?} after the API came back; fake API saw {} service lists",
        api.listings(Kind::Service)
    );
    assert_seed_remaining(&running);
}

/// What no test above changes stays answered.
fn assert_seed_remaining(running: &Running) {
    let answer = running.ask(KUBERNETES, A);
    assert!(answer.is(&["A 10.96.0.1"]), "{answer:?}");
}

/// Lines of the log that mention `resource` being forbidden.
fn forbidden_lines(log: &str, resource: &str) -> Vec<String> {
    log.lines()
        .filter(|line| line.contains(resource))
        .filter(|line| {
            let lower = line.to_ascii_lowercase();
            lower.contains("forbidden") || lower.contains("403")
        })
        .map(str::to_string)
        .collect()
}

/// Requests for `path_part` seen so far.
fn requests_for(api: &FakeApi, path_part: &str) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.path.contains(path_part))
        .count()
}

/// After the sync, `kind` turns forbidden and `provoke` makes the source ask for it again: the
/// retries are logged once, counted in /metrics, and the answers stay.
fn forbidden_after_sync(name: &str, provoke: impl Fn(&FakeApi)) {
    let (api, running) = synced(name, &[]);
    assert!(forbidden_lines(&running.stderr(), "endpointslices").is_empty());
    wait_watching(&api, &[Kind::EndpointSlice]);
    let before = requests_for(&api, "endpointslices");
    api.forbid(Kind::EndpointSlice, true);
    provoke(&api);
    // Enough retries (100 ms doubling) to tell "once" from "per retry".
    let started = Instant::now();
    while requests_for(&api, "endpointslices") < before + 5 {
        assert!(
            started.elapsed() < RECOVERY,
            "the source did not retry\n{}",
            running.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let retries = requests_for(&api, "endpointslices") - before;
    assert_seed_answers(&running);
    assert_eq!(
        running.ready_code(),
        200,
        "a forbidden re-list keeps the pod ready"
    );
    let text = running.metrics_text();
    let errors = metric(
        &text,
        "clusterdns_kubernetes_watch_errors_total",
        &["resource=\"endpointslices\"", "reason=\"forbidden\""],
    )
    .unwrap_or(0.0);
    assert!(errors >= 1.0, "403s counted in /metrics: {errors}\n{text}");
    let lists = metric(
        &text,
        "clusterdns_kubernetes_lists_total",
        &["resource=\"endpointslices\""],
    )
    .unwrap_or(0.0);
    assert_eq!(
        lists, 1.0,
        "only the initial list of endpointslices completed; failed attempts are not lists"
    );
    let lines = forbidden_lines(&running.stderr(), "endpointslices");
    assert_eq!(
        lines.len(),
        1,
        "{retries} forbidden requests should log one line, got {}:\n{}",
        lines.len(),
        lines.join("\n")
    );

    api.forbid(Kind::EndpointSlice, false);
    let lifted = Instant::now();
    api.upsert(
        Kind::EndpointSlice,
        db_slice(&[fakeapi::endpoint(&["10.1.0.8"], Some("db-8"), Some(true))]),
    );
    let took = running
        .process
        .wait_answer(running.dns, lifted, RECOVERY, DB, A, |a| {
            a.is(&["A 10.1.0.1", "A 10.1.0.2", "A 10.1.0.8"])
        });
    eprintln!("{name}: {retries} forbidden requests, {errors} counted; a change showed {took:?} after the 403s ended");
}

#[test]
fn a_forbidden_watch_is_logged_once_counted_and_keeps_answers() {
    forbidden_after_sync("forbidden-watch", FakeApi::drop_connections);
}

#[test]
fn a_forbidden_relist_is_logged_once_counted_and_keeps_answers() {
    forbidden_after_sync("forbidden-relist", FakeApi::expire);
}

#[test]
fn dropped_connections_resume_and_later_changes_arrive() {
    let (api, running) = synced("drops", &[]);
    for round in 0..3u8 {
        // Ready means listed; the watch may still be opening, and a cut before it opens cuts
        // nothing.
        wait_watching(&api, &[Kind::Service]);
        api.drop_connections();
        let written = Instant::now();
        let name = format!("d{round}.default.svc.cluster.local");
        let ip = format!("10.96.2.{}", round + 1);
        api.upsert(
            Kind::Service,
            fakeapi::service("default", &format!("d{round}"), &[&ip], &[]),
        );
        let took = running
            .process
            .wait_answer(running.dns, written, RECOVERY, &name, A, |a| {
                a.is(&[&format!("A {ip}")])
            });
        eprintln!("drop {round}: a change after the cut showed in {took:?}");
    }
    assert!(api.watches(Kind::Service) >= 4, "watches resumed");
    assert_eq!(
        api.listings(Kind::Service),
        1,
        "resumed from the last version, not re-listed"
    );
    assert_seed_answers(&running);
}

#[test]
fn sigterm_fails_readiness_at_once_and_answers_through_lameduck() {
    let lameduck = Duration::from_secs(2);
    let (_api, running) = synced("lameduck", &["--lameduck", "2"]);
    let looper = QueryLoop::start(
        running.dns,
        KUBERNETES,
        A,
        Duration::from_millis(500),
        Duration::ZERO,
        |a| a.is(&["A 10.96.0.1"]),
    );
    std::thread::sleep(Duration::from_millis(200));
    let signalled = Instant::now();
    running.terminate();
    loop {
        if http_get(running.ready, "/ready").is_some_and(|(code, _)| code == 503) {
            break;
        }
        assert!(
            signalled.elapsed() < Duration::from_millis(500),
            "/ready not 503 within 500 ms of SIGTERM\n{}",
            running.stderr()
        );
    }
    let not_ready = signalled.elapsed();
    let (at_signal, _) = looper.counts();
    std::thread::sleep(lameduck - Duration::from_millis(500));
    let (answered, lost_during) = looper.counts();
    let during = answered - at_signal;
    assert_eq!(
        running.get(running.health, "/health").0,
        200,
        "alive in lameduck"
    );
    let status = running.wait_exit(lameduck + Duration::from_secs(5));
    let exited = signalled.elapsed();
    looper.stop();
    eprintln!("lameduck: /ready 503 {not_ready:?} after SIGTERM; {during} answers in the next 1.5 s, {lost_during} lost; exit {exited:?} after SIGTERM");
    assert!(during > 50, "answering continued in lameduck: {during}");
    assert_eq!(lost_during, 0, "queries lost during lameduck");
    assert!(
        status.success(),
        "exit status {status}\n{}",
        running.stderr()
    );
    assert!(
        exited >= lameduck - Duration::from_millis(100),
        "exited {exited:?} after SIGTERM, before the {lameduck:?} lameduck"
    );
}
