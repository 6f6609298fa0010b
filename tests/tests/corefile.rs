//! The `clusterdns` binary run with a Corefile (`--corefile PATH`, or CoreDNS's `-conf PATH`), as
//! a cluster that replaces CoreDNS with it runs it: the default Corefiles of kubeadm, k3s, EKS and
//! AKS (verbatim in `tests/corefiles/`), a kitchen-sink Corefile using every directive and option
//! clusterdns takes, and `reload` under load. Every check is a real DNS answer over a loopback
//! socket, from the real binary fed by the fake Kubernetes API server
//! (`clusterdns_testkit::fakeapi`) and forwarding to Knot DNS (`clusterdns_testkit::knot`). The
//! Corefiles it must refuse, and `--check-corefile`, are command-line tests
//! (`server/tests/cli.rs`).
//!
//! The expected answers are CoreDNS 1.13's for the same Corefile (plugin order from its
//! `plugin.cfg`, not from the order of the lines), except where clusterdns deliberately differs:
//! answers from the cluster zone are never cached (the zone snapshot is always current), and
//! `reload` checks the Corefile twice a second instead of every 30 s.
//!
//! How the real Corefiles are adapted to run here, minimally (see [`adapt`]): the real ones say
//! `.:53` and nothing about addresses, so the port becomes a free loopback port and
//! `bind 127.0.0.1` is added to every server block; `health`, `ready` and `prometheus` get
//! `127.0.0.1:<free port>`; `kubernetes` gets `kubeconfig <path>` for the fake API server; and
//! `forward . /etc/resolv.conf` becomes `forward . 127.0.0.1:<knot port>`, since a resolv.conf
//! cannot name a port. Paths under `/etc/coredns/` (k3s's NodeHosts and custom imports) point
//! into the test's temp dir; AKS's relative `import custom/*` needs no change (imports are
//! relative to the Corefile's directory, and the test writes the Corefile into its temp dir).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clusterdns_testkit::client::QueryLoop;
use clusterdns_testkit::dns::{Reply, Rr};
use clusterdns_testkit::fakeapi::{self, FakeApi, Kind};
use clusterdns_testkit::http::{http_get, metric};
use clusterdns_testkit::knot::Knot;
use clusterdns_testkit::net::{free_port, loopback};
use clusterdns_testkit::process::{clusterdns_binary, Process};
use clusterdns_testkit::temp::TempDir;
use clusterdns_testkit::unbound::{Certificates, Unbound};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// How long the binary may take to start answering and to sync with the fake API.
const STARTUP: Duration = Duration::from_secs(15);
/// How long a change in the API may take to show in answers.
const PROPAGATION: Duration = Duration::from_secs(2);

const A: RecordType = RecordType::A;
const SRV: RecordType = RecordType::SRV;
const PTR: RecordType = RecordType::PTR;

const WEB: &str = "web.default.svc.cluster.local";
const LB: &str = "lb.default.svc.cluster.local";

// ---------------------------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------------------------

/// Starts `clusterdns FLAG PATH --threads 1`, `FLAG` being `--corefile` or `-conf`.
fn serve(flag: &str, path: &Path) -> Process {
    Process::clusterdns(&[
        OsStr::new(flag),
        path.as_os_str(),
        OsStr::new("--threads"),
        OsStr::new("1"),
    ])
}

// ---------------------------------------------------------------------------------------------
// The upstreams
// ---------------------------------------------------------------------------------------------

/// The zones of the upstream every Corefile forwards to: a forward zone, a reverse zone with
/// one PTR (so a forwarded reverse lookup is told apart from an NXDOMAIN of clusterdns's), and
/// the zone AKS's `internal.cloudapp.net` template falls through to (with a wildcard, so a name
/// the template answers NXDOMAIN would get an address here).
const UPSTREAM_ZONES: &[(&str, &str)] = &[
    (
        "example.test",
        "@ 3600 IN SOA ns hostmaster 1 7200 3600 1209600 60\n@ NS ns\n\
         ns A 192.0.2.53\nwww A 192.0.2.1\nmail A 192.0.2.25\n",
    ),
    (
        "2.0.192.in-addr.arpa",
        "@ 3600 IN SOA ns.example.test. hostmaster.example.test. 1 7200 3600 1209600 60\n\
         @ NS ns.example.test.\n99 PTR knot-ptr.example.test.\n",
    ),
    (
        "internal.cloudapp.net",
        "@ 3600 IN SOA ns hostmaster 1 7200 3600 1209600 60\n@ NS ns\n\
         ns A 10.240.0.53\nvm A 10.240.0.4\n* A 10.240.0.99\n",
    ),
];

/// The zone of a second upstream, for stub domains: only it serves `stub.test`.
const STUB_ZONES: &[(&str, &str)] = &[(
    "stub.test",
    "@ 3600 IN SOA ns hostmaster 1 7200 3600 1209600 60\n@ NS ns\n\
     ns A 198.51.100.53\nwww A 198.51.100.7\nwww.tls A 198.51.100.8\n",
)];

// ---------------------------------------------------------------------------------------------
// The cluster, the fixtures and their adaptation
// ---------------------------------------------------------------------------------------------

fn http(name: &str, port: u16) -> serde_json::Value {
    fakeapi::port(name, port, "TCP")
}

/// The cluster every test starts from: ClusterIP Services (one with a named port), a headless
/// Service with four ready endpoints (for `loadbalance`), a Service in a namespace a
/// `namespaces` filter leaves out, and a Pod.
fn seed(api: &FakeApi) {
    for ns in ["default", "kube-system", "other"] {
        api.upsert(Kind::Namespace, fakeapi::namespace(ns));
    }
    let services = [
        fakeapi::service("other", "hidden", &["10.96.0.30"], &[http("http", 80)]),
        fakeapi::headless_service("default", "lb", &[http("http", 8080)]),
    ];
    for service in fakeapi::core_services().into_iter().chain(services) {
        api.upsert(Kind::Service, service);
    }
    let endpoints: Vec<serde_json::Value> = (1..=4)
        .map(|i| fakeapi::endpoint(&[&format!("10.1.2.{i}")], None, Some(true)))
        .collect();
    api.upsert(
        Kind::EndpointSlice,
        fakeapi::endpoint_slice(
            "default",
            "lb-abcde",
            "lb",
            "IPv4",
            &[http("http", 8080)],
            &endpoints,
        ),
    );
    api.upsert(Kind::Pod, fakeapi::pod("default", "web-1", "10.1.1.1"));
}

/// A fixture of `tests/corefiles/`, as shipped.
fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corefiles")
        .join(format!("{name}.Corefile"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What the test puts where a real deployment has its own addresses and files.
struct Env {
    /// The DNS port (the real ones say `.:53`).
    port: u16,
    health: SocketAddr,
    ready: SocketAddr,
    metrics: SocketAddr,
    kubeconfig: PathBuf,
    /// Knot, for `forward . /etc/resolv.conf`.
    upstream: SocketAddr,
    /// The test's temp dir, for `/etc/coredns/NodeHosts` and `/etc/coredns/custom/`.
    etc_coredns: PathBuf,
}

impl Env {
    fn dns(&self) -> SocketAddr {
        loopback(self.port)
    }
}

/// `corefile` adapted to run on loopback here, line by line and minimally (see the module doc):
/// every changed line is one the real Corefiles have, and the test fails if one of those it
/// must change is missing, so a fixture that drifts is noticed.
fn adapt(corefile: &str, env: &Env) -> String {
    let mut out = String::new();
    let mut changed = std::collections::BTreeSet::new();
    let etc = env.etc_coredns.display();
    for line in corefile.lines() {
        let indent = &line[..line.len() - line.trim_start().len()];
        let trimmed = line.trim();
        let adapted = match trimmed {
            ".:53 {" => {
                changed.insert("port");
                format!("{indent}.:{} {{\n{indent}    bind 127.0.0.1", env.port)
            }
            "health" | "health {" => {
                changed.insert("health");
                line.replacen("health", &format!("health {}", env.health), 1)
            }
            "ready" => {
                changed.insert("ready");
                format!("{indent}ready {}", env.ready)
            }
            "prometheus :9153" => {
                changed.insert("prometheus");
                format!("{indent}prometheus {}", env.metrics)
            }
            _ if trimmed.starts_with("kubernetes ") && trimmed.ends_with('{') => {
                changed.insert("kubernetes");
                format!("{line}\n{indent}  kubeconfig {}", env.kubeconfig.display())
            }
            _ if trimmed.starts_with("forward . /etc/resolv.conf") => {
                changed.insert("forward");
                line.replacen("/etc/resolv.conf", &env.upstream.to_string(), 1)
            }
            _ if trimmed.contains("/etc/coredns/") => {
                line.replace("/etc/coredns", &etc.to_string())
            }
            _ => line.to_string(),
        };
        out.push_str(&adapted);
        out.push('\n');
    }
    for needed in [
        "port",
        "health",
        "ready",
        "prometheus",
        "kubernetes",
        "forward",
    ] {
        assert!(
            changed.contains(needed),
            "the Corefile has no `{needed}` line to adapt:\n{corefile}"
        );
    }
    out
}

/// `text` without the one line that reads `line` (trimmed); fails when there is none.
fn without_line(text: &str, line: &str) -> String {
    let kept: Vec<&str> = text.lines().filter(|l| l.trim() != line).collect();
    assert_eq!(
        kept.len() + 1,
        text.lines().count(),
        "exactly one `{line}` line expected in:\n{text}"
    );
    kept.join("\n") + "\n"
}

/// The node lines k3s writes into the NodeHosts key of its `coredns` ConfigMap.
const NODE_HOSTS: &str = "192.0.2.11 k3s-server-0\n192.0.2.12 k3s-agent-1\n";

/// One of the default Corefiles running against a seeded fake API and Knot. Fields drop in
/// order: the server first.
struct Deployment {
    server: Process,
    env: Env,
    api: FakeApi,
    _knot: Knot,
    _stub: Option<Knot>,
    _dir: TempDir,
}

impl Deployment {
    /// Starts the fixture `name` adapted by [`adapt`], then by `edit`; `prepare` adds files to
    /// the temp dir (the Corefile is `DIR/Corefile`, NodeHosts `DIR/NodeHosts`, imports under
    /// `DIR/custom/`), given the stub upstream's address when `stub` is set. `conf_flag` is
    /// `--corefile` or CoreDNS's `-conf`. Returns once `/ready` is 200.
    fn start(
        test: &str,
        name: &str,
        conf_flag: &str,
        stub: bool,
        edit: impl FnOnce(String) -> String,
        prepare: impl FnOnce(&TempDir, &Env, Option<SocketAddr>),
    ) -> Deployment {
        let api = FakeApi::start();
        seed(&api);
        let knot = Knot::start(test, UPSTREAM_ZONES);
        let stub = stub.then(|| Knot::start(&format!("{test}-stub"), STUB_ZONES));
        let dir = TempDir::new(test);
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        dir.write("NodeHosts", NODE_HOSTS);
        std::fs::create_dir_all(dir.path().join("custom")).expect("custom dir");
        let env = Env {
            port: free_port(),
            health: loopback(free_port()),
            ready: loopback(free_port()),
            metrics: loopback(free_port()),
            kubeconfig,
            upstream: knot.addr,
            etc_coredns: dir.path().to_path_buf(),
        };
        prepare(&dir, &env, stub.as_ref().map(|k| k.addr));
        let corefile = dir.write("Corefile", &edit(adapt(&fixture(name), &env)));
        let server = serve(conf_flag, &corefile);
        server.wait_status(env.ready, "/ready", 200, STARTUP);
        Deployment {
            server,
            env,
            api,
            _knot: knot,
            _stub: stub,
            _dir: dir,
        }
    }

    fn ask(&self, name: &str, qtype: RecordType) -> Reply {
        self.server.ask(self.env.dns(), name, qtype)
    }
}

// ---------------------------------------------------------------------------------------------
// The four default Corefiles
// ---------------------------------------------------------------------------------------------

/// What every default Corefile must do, as CoreDNS does with it. `ttl` is the `kubernetes`
/// block's (`ttl 30` in kubeadm's and AKS's, the default 5 in k3s's and EKS's).
fn assert_serves_like_coredns(d: &Deployment, ttl: u32) {
    let logs = || d.server.logs();

    // A cluster Service: authoritative, with the kubernetes block's TTL.
    let web = d.ask(WEB, A);
    assert!(web.is(&["A 10.96.0.20"]), "{web:?}\n{}", logs());
    assert!(web.aa, "cluster answers are authoritative: {web:?}");
    assert_eq!(web.ttls(), [ttl], "{web:?}");
    // SRV of a named port.
    let srv = d.ask("_https._tcp.kubernetes.default.svc.cluster.local", SRV);
    assert!(
        srv.is(&["SRV 0 100 443 kubernetes.default.svc.cluster.local."]),
        "{srv:?}"
    );
    // A name in the cluster zone that does not exist: NXDOMAIN (no fallthrough for it).
    let missing = d.ask("nope.default.svc.cluster.local", A);
    assert_eq!(missing.rcode, ResponseCode::NXDomain, "{missing:?}");
    assert!(missing.aa, "{missing:?}");

    // PTR of a Service's cluster IP, answered by `kubernetes`.
    let ptr = d.ask("20.0.96.10.in-addr.arpa", PTR);
    assert!(ptr.is(&["PTR web.default.svc.cluster.local."]), "{ptr:?}");
    // PTR of an address the cluster does not have: `fallthrough in-addr.arpa` hands it to
    // `forward`, so the answer is Knot's (its reverse zone has this one), not an NXDOMAIN.
    let unknown = d.ask("99.2.0.192.in-addr.arpa", PTR);
    assert!(
        unknown.is(&["PTR knot-ptr.example.test."]),
        "an unknown PTR must reach the upstream: {unknown:?}\n{}",
        logs()
    );

    // A name outside the cluster: forwarded to Knot.
    let www = d.ask("www.example.test", A);
    assert!(www.is(&["A 192.0.2.1"]), "{www:?}\n{}", logs());
    assert_eq!(www.owners(), ["www.example.test."]);

    // `loadbalance`: the A records of the headless Service come in more than one order.
    let mut firsts = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let lb = d.ask(LB, A);
        assert!(
            lb.is(&["A 10.1.2.1", "A 10.1.2.2", "A 10.1.2.3", "A 10.1.2.4"]),
            "{lb:?}"
        );
        firsts.insert(lb.answers[0].data.clone());
    }
    assert!(
        firsts.len() > 1,
        "loadbalance: the first A record was always {firsts:?} over 40 queries"
    );

    // Cluster answers are not cached although `cache 30` is configured: a changed cluster IP
    // shows at once (asked twice first, so a cache would hold the old one).
    d.ask(WEB, A);
    let since = Instant::now();
    d.api.upsert(
        Kind::Service,
        fakeapi::service("default", "web", &["10.96.0.21"], &[http("http", 80)]),
    );
    let took = d
        .server
        .wait_answer(d.env.dns(), since, PROPAGATION, WEB, A, |r| {
            r.is(&["A 10.96.0.21"])
        });
    eprintln!("the new cluster IP was answered {took:?} after the change");

    // The operations endpoints the Corefile asks for.
    d.server.wait_status(d.env.health, "/health", 200, STARTUP);
    let (code, text) = http_get(d.env.metrics, "/metrics").expect("/metrics answers");
    assert_eq!(code, 200);
    assert!(text.contains("coredns_dns_requests_total"), "{text}");
}

#[test]
fn kubeadm_default_corefile_serves_like_coredns() {
    let d = Deployment::start(
        "kubeadm",
        "kubeadm",
        "--corefile",
        false,
        |c| c,
        |_, _, _| {},
    );
    assert_serves_like_coredns(&d, 30);
}

/// What CoreDNS 1.13 documents in the READMEs of the plugins of kubeadm's Corefile (`metrics`,
/// i.e. `prometheus`; `cache`; `forward`; `health`; `kubernetes`; `reload`; `errors`, `loop`,
/// `ready` and `loadbalance` have none): each metric's type and label names. Where a README and
/// CoreDNS's code disagree, the code's set is here (CoreDNS emits it), with the README's noted.
const COREDNS_METRICS: &[(&str, &str, &[&str])] = &[
    // plugin/metrics/README.md
    (
        "coredns_build_info",
        "gauge",
        &["version", "revision", "goversion"],
    ),
    ("coredns_panics_total", "counter", &[]),
    (
        "coredns_dns_requests_total",
        "counter",
        &["server", "zone", "view", "proto", "family", "type"],
    ),
    // The README also lists `type`, which CoreDNS's code has not set since 2022; clusterdns keeps it.
    (
        "coredns_dns_request_duration_seconds",
        "histogram",
        &["server", "zone", "view", "type"],
    ),
    (
        "coredns_dns_request_size_bytes",
        "histogram",
        &["server", "zone", "view", "proto"],
    ),
    (
        "coredns_dns_do_requests_total",
        "counter",
        &["server", "view", "zone"],
    ),
    (
        "coredns_dns_response_size_bytes",
        "histogram",
        &["server", "zone", "view", "proto"],
    ),
    (
        "coredns_dns_responses_total",
        "counter",
        &["server", "zone", "view", "rcode", "plugin"],
    ),
    (
        "coredns_plugin_enabled",
        "gauge",
        &["server", "zone", "view", "name"],
    ),
    // plugin/cache/README.md
    (
        "coredns_cache_entries",
        "gauge",
        &["server", "type", "zones", "view"],
    ),
    (
        "coredns_cache_hits_total",
        "counter",
        &["server", "type", "zones", "view"],
    ),
    (
        "coredns_cache_misses_total",
        "counter",
        &["server", "zones", "view"],
    ),
    (
        "coredns_cache_requests_total",
        "counter",
        &["server", "zones", "view"],
    ),
    (
        "coredns_cache_prefetch_total",
        "counter",
        &["server", "zones", "view"],
    ),
    (
        "coredns_cache_drops_total",
        "counter",
        &["server", "zones", "view"],
    ),
    (
        "coredns_cache_served_stale_total",
        "counter",
        &["server", "zones", "view"],
    ),
    (
        "coredns_cache_evictions_total",
        "counter",
        &["server", "type", "zones", "view"],
    ),
    // plugin/forward/README.md
    ("coredns_forward_healthcheck_broken_total", "counter", &[]),
    (
        "coredns_forward_max_concurrent_rejects_total",
        "counter",
        &[],
    ),
    (
        "coredns_proxy_request_duration_seconds",
        "histogram",
        &["proxy_name", "to", "rcode"],
    ),
    // The README adds `rcode`; CoreDNS's code counts by upstream only.
    (
        "coredns_proxy_healthcheck_failures_total",
        "counter",
        &["proxy_name", "to"],
    ),
    (
        "coredns_proxy_conn_cache_hits_total",
        "counter",
        &["proxy_name", "to", "proto"],
    ),
    (
        "coredns_proxy_conn_cache_misses_total",
        "counter",
        &["proxy_name", "to", "proto"],
    ),
    // plugin/health/README.md
    ("coredns_health_request_duration_seconds", "histogram", &[]),
    ("coredns_health_request_failures_total", "counter", &[]),
    // plugin/kubernetes/README.md
    (
        "coredns_kubernetes_dns_programming_duration_seconds",
        "histogram",
        &["service_kind"],
    ),
    (
        "coredns_kubernetes_rest_client_request_duration_seconds",
        "histogram",
        &["verb", "host"],
    ),
    (
        "coredns_kubernetes_rest_client_rate_limiter_duration_seconds",
        "histogram",
        &["verb", "host"],
    ),
    (
        "coredns_kubernetes_rest_client_requests_total",
        "counter",
        &["code", "method", "host"],
    ),
    // plugin/reload/README.md
    ("coredns_reload_failed_total", "counter", &[]),
    ("coredns_reload_version_info", "gauge", &["hash", "value"]),
];

/// The metric families of a Prometheus text exposition: each name's `# TYPE` and the sets of
/// label names its series carry (a histogram's `_bucket`, `_sum` and `_count` series under the
/// family's name, `le` left out).
fn families(text: &str) -> BTreeMap<String, (String, BTreeSet<Vec<String>>)> {
    let mut families = BTreeMap::<String, (String, BTreeSet<Vec<String>>)>::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            families.entry(name.to_string()).or_default().0 = kind.to_string();
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (name, labels) = match line.split_once('{') {
            Some((name, rest)) => (name, rest.rsplit_once('}').expect("closing brace").0),
            None => (line.split_once(' ').expect("name value").0, ""),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                (families.get(base).map(|f| f.0.as_str()) == Some("histogram")).then_some(base)
            })
            .unwrap_or(name);
        let mut names: Vec<String> = labels
            .split("\",")
            .filter(|pair| !pair.is_empty())
            .map(|pair| pair.split_once('=').expect("label=value").0.to_string())
            .filter(|label| label != "le")
            .collect();
        names.sort();
        families
            .entry(family.to_string())
            .or_default()
            .1
            .insert(names);
    }
    families
}

#[test]
fn kubeadm_metrics_carry_the_names_types_and_labels_coredns_documents() {
    let d = Deployment::start(
        "metrics",
        "kubeadm",
        "--corefile",
        false,
        |c| c,
        |_, _, _| {},
    );
    // A cluster name, a forwarded name twice (a miss, then a hit), an NXDOMAIN, over UDP and TCP,
    // and a query with the DNSSEC OK bit.
    assert!(d.ask(WEB, A).is(&["A 10.96.0.20"]), "{:?}", d.ask(WEB, A));
    for _ in 0..2 {
        assert!(d.ask("www.example.test", A).is(&["A 192.0.2.1"]));
    }
    assert!(d.ask("nowhere.example.test", A).nxdomain());
    clusterdns_testkit::client::ask_tcp(d.env.dns(), WEB, A).expect("a TCP answer");
    let with_do = clusterdns_testkit::dns::Query::new(WEB, 1)
        .dnssec_ok()
        .build();
    clusterdns_testkit::client::udp(d.env.dns(), &with_do).expect("an answer with DO");
    // The health plugin's self-probe runs once a second.
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let (code, text) = http_get(d.env.metrics, "/metrics").expect("/metrics answers");
        assert_eq!(code, 200);
        if metric(&text, "coredns_health_request_duration_seconds_count", &[]).unwrap_or(0.0) >= 1.0
        {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no health probe within 5 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let families = families(&text);
    let mut missing = Vec::new();
    for &(name, kind, labels) in COREDNS_METRICS {
        let Some((seen_kind, series)) = families.get(name) else {
            missing.push(format!("{name}: not exported"));
            continue;
        };
        if seen_kind != kind {
            missing.push(format!("{name}: a {seen_kind}, not a {kind}"));
        }
        let mut expected: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        expected.sort();
        if series.is_empty() {
            missing.push(format!("{name}: no series"));
        }
        for seen in series {
            if *seen != expected {
                missing.push(format!("{name}: labels {seen:?}, not {expected:?}"));
            }
        }
    }
    assert!(missing.is_empty(), "{}\n\n{text}", missing.join("\n"));
    // What the queries above must have counted.
    let at_least = |name: &str, labels: &[&str], n: f64| {
        let value = metric(&text, name, labels).unwrap_or(0.0);
        assert!(
            value >= n,
            "{name}{labels:?} = {value}, expected at least {n}"
        );
    };
    at_least("coredns_dns_do_requests_total", &[], 1.0);
    at_least(
        "coredns_dns_request_size_bytes_count",
        &["proto=\"tcp\""],
        1.0,
    );
    // www twice and nowhere went to the root zone's block.
    let forwarded = ["zone=\".\"", "proto=\"udp\""];
    at_least("coredns_dns_response_size_bytes_count", &forwarded, 3.0);
    at_least("coredns_cache_requests_total", &[], 3.0);
    at_least("coredns_cache_hits_total", &["type=\"success\""], 1.0);
    at_least(
        "coredns_kubernetes_rest_client_requests_total",
        &["code=\"200\""],
        3.0,
    );
    at_least("coredns_reload_version_info", &["hash=\"sha512\""], 1.0);
    assert_eq!(metric(&text, "coredns_panics_total", &[]), Some(0.0));
    assert_eq!(
        metric(&text, "coredns_health_request_failures_total", &[]),
        Some(0.0)
    );
}

#[test]
fn k3s_default_corefile_serves_like_coredns() {
    let d = Deployment::start("k3s", "k3s", "--corefile", false, |c| c, |_, _, _| {});
    assert_serves_like_coredns(&d, 5);
}

#[test]
fn eks_default_corefile_serves_like_coredns() {
    // As the EKS Deployment runs it: `args: ["-conf", "/etc/coredns/Corefile"]`.
    let d = Deployment::start("eks", "eks", "-conf", false, |c| c, |_, _, _| {});
    assert_serves_like_coredns(&d, 5);
}

#[test]
fn aks_default_corefile_serves_like_coredns() {
    let d = Deployment::start("aks", "aks", "--corefile", false, |c| c, |_, _, _| {});
    assert_serves_like_coredns(&d, 30);
}

/// kubeadm's Corefile without `fallthrough in-addr.arpa ip6.arpa`: `kubernetes` is then the
/// authority for every reverse name, so an address it does not know is NXDOMAIN with the
/// reverse zone's SOA, and never forwarded.
#[test]
fn kubeadm_without_fallthrough_is_authoritative_for_reverse_names() {
    let d = Deployment::start(
        "kubeadm-nofall",
        "kubeadm",
        "--corefile",
        false,
        |c| without_line(&c, "fallthrough in-addr.arpa ip6.arpa"),
        |_, _, _| {},
    );
    let ptr = d.ask("20.0.96.10.in-addr.arpa", PTR);
    assert!(ptr.is(&["PTR web.default.svc.cluster.local."]), "{ptr:?}");
    let unknown = d.ask("99.2.0.192.in-addr.arpa", PTR);
    assert_eq!(unknown.rcode, ResponseCode::NXDomain, "{unknown:?}");
    assert!(unknown.aa, "AA must be set: {unknown:?}");
    assert!(unknown.answers.is_empty(), "{unknown:?}");
    let soa: Vec<&Rr> = (unknown.authority.iter())
        .filter(|rr| rr.data.starts_with("SOA "))
        .collect();
    assert_eq!(soa.len(), 1, "one SOA in authority: {unknown:?}");
    assert_eq!(soa[0].name, "in-addr.arpa.", "{unknown:?}");
    // Forward names still go upstream.
    assert!(d.ask("www.example.test", A).is(&["A 192.0.2.1"]));
}

/// k3s: the NodeHosts file answers node names and their PTRs (`hosts` precedes `kubernetes`);
/// a `custom/*.server` file adds a stub-domain server block on the same port, routed to its own
/// upstream; `import /etc/coredns/custom/*.override` matching no file is no error; `/metrics`
/// writes the `cache` and `forward` families of both blocks once each.
#[test]
fn k3s_node_hosts_and_a_custom_server_block() {
    let d = Deployment::start(
        "k3s-custom",
        "k3s",
        "--corefile",
        true,
        |c| c,
        |dir, env, stub| {
            let stub = stub.expect("the stub upstream");
            // What a user puts in the `coredns-custom` ConfigMap: a stub domain on the main
            // block's port, adapted like the fixtures (the port, bind, the upstream's port).
            dir.write(
                "custom/stub.server",
                &format!(
                    "stub.test:{} {{\n    bind 127.0.0.1\n    errors\n    cache 30\n    \
                     forward . {stub}\n}}\n",
                    env.port
                ),
            );
        },
    );
    let node = d.ask("k3s-agent-1", A);
    assert!(node.is(&["A 192.0.2.12"]), "{node:?}\n{}", d.server.logs());
    let ptr = d.ask("12.2.0.192.in-addr.arpa", PTR);
    assert!(ptr.is(&["PTR k3s-agent-1."]), "{ptr:?}");
    let stub = d.ask("www.stub.test", A);
    assert!(
        stub.is(&["A 198.51.100.7"]),
        "stub.test must go to its own upstream: {stub:?}\n{}",
        d.server.logs()
    );
    // The main block still forwards everything else to its upstream.
    assert!(d.ask("www.example.test", A).is(&["A 192.0.2.1"]));
    assert!(d.ask(WEB, A).is(&["A 10.96.0.20"]));
    // Both blocks forward and cache, yet /metrics names each family once: a Prometheus parser
    // refuses a second `# HELP` or `# TYPE` line for a name. Each block's cache has its series.
    let (code, text) = http_get(d.env.metrics, "/metrics").expect("/metrics answers");
    assert_eq!(code, 200);
    let mut headers = BTreeSet::new();
    for line in text.lines().filter(|line| line.starts_with("# ")) {
        assert!(headers.insert(line), "{line:?} twice in\n{text}");
    }
    for zones in ["zones=\".\"", "zones=\"stub.test.\""] {
        let requests = metric(&text, "coredns_cache_requests_total", &[zones]);
        assert!(requests >= Some(1.0), "{zones}: {requests:?}\n{text}");
    }
}

/// k3s's NodeHosts says `ttl 60`, but the block also has `cache 30`, and `cache` comes before
/// `hosts` in CoreDNS's plugin order: CoreDNS caps the TTL of every response it caches at the
/// cache's 30 s, on the first answer too (`plugin/cache/cache.go`, `ResponseWriter.WriteMsg`
/// applies the capped TTL before writing). Only cluster answers are exempt from the cache in
/// clusterdns; `hosts` answers are not cluster answers.
#[test]
fn k3s_node_hosts_ttl_is_capped_by_the_cache() {
    let d = Deployment::start("k3s-ttl", "k3s", "--corefile", false, |c| c, |_, _, _| {});
    let node = d.ask("k3s-server-0", A);
    assert!(node.is(&["A 192.0.2.11"]), "{node:?}");
    assert_eq!(
        node.ttls(),
        [30],
        "hosts ttl 60 capped by cache 30: {node:?}"
    );
    let ptr = d.ask("11.2.0.192.in-addr.arpa", PTR);
    assert!(ptr.is(&["PTR k3s-server-0."]), "{ptr:?}");
    assert_eq!(ptr.ttls(), [30], "hosts ttl 60 capped by cache 30: {ptr:?}");
}

/// AKS: what a user puts in the `coredns-custom` ConfigMap as `test.override` (a `hosts` entry
/// and a `rewrite`) is spliced into the default server block by `import custom/*.override`;
/// and AKS's own two `template` blocks answer NXDOMAIN for what they match, falling through
/// (to `forward`) for the rest of `internal.cloudapp.net`.
#[test]
fn aks_imported_override_and_templates() {
    let d = Deployment::start(
        "aks-override",
        "aks",
        "--corefile",
        false,
        |c| c,
        |dir, _, _| {
            dir.write(
                "custom/test.override",
                "hosts {\n    192.0.2.44 override.example.test\n    fallthrough\n}\n\
                 rewrite stop name exact legacy.example.test www.example.test\n",
            );
        },
    );
    let hosts = d.ask("override.example.test", A);
    assert!(
        hosts.is(&["A 192.0.2.44"]),
        "{hosts:?}\n{}",
        d.server.logs()
    );
    let legacy = d.ask("legacy.example.test", A);
    assert!(legacy.is(&["A 192.0.2.1"]), "{legacy:?}");
    assert_eq!(
        legacy.owners(),
        ["legacy.example.test."],
        "an exact rewrite answers under the asked name: {legacy:?}"
    );
    // Untouched names still work.
    assert!(d.ask("www.example.test", A).is(&["A 192.0.2.1"]));
    assert!(d.ask(WEB, A).is(&["A 10.96.0.20"]));

    let reddog = d.ask("anything.reddog.microsoft.com", A);
    assert_eq!(reddog.rcode, ResponseCode::NXDomain, "{reddog:?}");
    // Four labels or more before internal.cloudapp.net: NXDOMAIN from the template (Knot's
    // wildcard would have given an address).
    let deep = d.ask("a.b.c.d.internal.cloudapp.net", A);
    assert_eq!(deep.rcode, ResponseCode::NXDomain, "{deep:?}");
    assert!(deep.answers.is_empty(), "{deep:?}");
    // Fewer: the template falls through to `forward`.
    let vm = d.ask("vm.internal.cloudapp.net", A);
    assert!(vm.is(&["A 10.240.0.4"]), "{vm:?}");
    let shallow = d.ask("a.b.c.internal.cloudapp.net", A);
    assert!(shallow.is(&["A 10.240.0.99"]), "{shallow:?}");
}

// ---------------------------------------------------------------------------------------------
// The kitchen sink
// ---------------------------------------------------------------------------------------------

/// A Corefile written for this test that uses every directive and every option clusterdns
/// takes, at least once. `@NAME@` are filled in by the test.
const KITCHEN_SINK: &str = r#"# Every directive and option clusterdns takes, at least once.
.:@P1@ {
    bind 127.0.0.1
    errors
    health 127.0.0.1:@HEALTH@ {
        lameduck 1s
    }
    ready 127.0.0.1:@READY@
    prometheus 127.0.0.1:@METRICS@
    log example.test alias.test "kitchen-log {type} {name} {rcode}" {
        class success
    }
    any
    loop
    reload
    loadbalance
    cache 30 example.test alias.test {
        success 1000 60 5
        denial 500 30 2
        prefetch 10
        serve_stale 1h verify
        servfail 2s
        disable denial alias.test
        keepttl
    }
    rewrite stop name suffix .alias.test .example.test answer auto
    rewrite stop name exact exact.rw.test www.example.test
    rewrite stop name prefix pre. www. answer auto
    rewrite stop name substring wwwx. www. answer auto
    rewrite continue name regex ^re-(.*)\.example\.test\.$ {1}.example.test answer name ^(.*)\.example\.test\.$ re-{1}.example.test
    template IN A tmpl.test {
        match ^web-(?P<n>[0-9]+)\.tmpl\.test\.$
        answer "{{ .Name }} 33 IN A 192.0.2.{{ .Group.n }}"
        additional "ns.tmpl.test. 33 IN A 192.0.2.53"
        authority "tmpl.test. 33 IN NS ns.tmpl.test."
        fallthrough
    }
    template ANY ANY tmpl.test {
        match ^gone\.tmpl\.test\.$
        rcode NXDOMAIN
        authority "tmpl.test. 60 IN SOA ns.tmpl.test. hostmaster.tmpl.test. 1 7200 3600 86400 60"
        fallthrough tmpl.test
    }
    hosts @HOSTS@ kitchen.test {
        192.0.2.80 inline.kitchen.test
        ttl 45
        reload 1s
        fallthrough
    }
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        endpoint @API@
        kubeconfig @KUBECONFIG@ fake
        namespaces default kube-system
        pods verified
        ttl 7
        fallthrough in-addr.arpa ip6.arpa
        noendpoints
    }
    forward . 127.0.0.1:@KNOT@ {
        except mail.example.test
        force_tcp
        max_fails 3
        expire 10s
        health_check 5s
        policy sequential
        max_concurrent 100
    }
}

stub.test:@P1@ {
    bind 127.0.0.1
    errors
    cache 10
    forward . dns://127.0.0.1:@STUB@ {
        prefer_udp
    }
}

tls.stub.test:@P1@ {
    bind 127.0.0.1
    forward . tls://127.0.0.1:@DOT@ {
        tls @CA@
        tls_servername dns.test
    }
}

.:@P2@ {
    bind 127.0.0.1 127.0.0.2
    hosts {
        192.0.2.90 noreverse.kitchen.test
        no_reverse
        fallthrough
    }
    forward . 127.0.0.1:@KNOT@ @RESOLV@ {
        policy sequential
    }
}
"#;

#[test]
fn kitchen_sink_corefile_uses_every_directive_and_option() {
    let api = FakeApi::start();
    seed(&api);
    let knot = Knot::start("kitchen", UPSTREAM_ZONES);
    let stub = Knot::start("kitchen-stub", STUB_ZONES);
    // DNS over TLS in front of the stub domain's upstream.
    let certs = Certificates::generate("kitchen", &["dns.test"]);
    let dot = Unbound::start("kitchen", &certs, stub.addr);
    let dir = TempDir::new("kitchen");
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let hosts = dir.write("hosts", "192.0.2.81 file.kitchen.test\n");
    // `forward` to a resolv.conf path: listed second under `policy sequential`, so never asked
    // while Knot answers (a resolv.conf cannot name a port).
    let resolv = dir.write("resolv.conf", "nameserver 127.0.0.1\n");
    let (p1, p2) = (free_port(), free_port());
    let (health, ready, metrics) = (free_port(), free_port(), free_port());
    let text = KITCHEN_SINK
        .replace("@P1@", &p1.to_string())
        .replace("@P2@", &p2.to_string())
        .replace("@HEALTH@", &health.to_string())
        .replace("@READY@", &ready.to_string())
        .replace("@METRICS@", &metrics.to_string())
        .replace("@HOSTS@", &hosts.display().to_string())
        .replace("@API@", &api.url())
        .replace("@KUBECONFIG@", &kubeconfig.display().to_string())
        .replace("@KNOT@", &knot.addr.port().to_string())
        .replace("@STUB@", &stub.addr.port().to_string())
        .replace("@RESOLV@", &resolv.display().to_string())
        .replace("@DOT@", &dot.dot.port().to_string())
        .replace("@CA@", &certs.ca.display().to_string());
    assert!(!text.contains('@'), "a placeholder left:\n{text}");
    let corefile = dir.write("Corefile", &text);

    let check = Command::new(clusterdns_binary())
        .arg("--check-corefile")
        .arg(&corefile)
        .output()
        .expect("run --check-corefile");
    assert!(
        check.status.success(),
        "--check-corefile refused the kitchen sink: {}",
        String::from_utf8_lossy(&check.stderr)
    );

    let server = serve("--corefile", &corefile);
    server.wait_status(loopback(ready), "/ready", 200, STARTUP);
    server.wait_status(loopback(health), "/health", 200, STARTUP);
    let main = loopback(p1);
    let ask = |name: &str, qtype: RecordType| server.ask(main, name, qtype);
    let logs = || server.logs();

    // kubernetes: ttl 7, the namespaces filter, verified pods, reverse names.
    let k = ask("kubernetes.default.svc.cluster.local", A);
    assert!(k.is(&["A 10.96.0.1"]), "{k:?}\n{}", logs());
    assert_eq!(k.ttls(), [7], "{k:?}");
    let hidden = ask("hidden.other.svc.cluster.local", A);
    assert_eq!(
        hidden.rcode,
        ResponseCode::NXDomain,
        "namespace `other` is not exposed: {hidden:?}"
    );
    let pod = ask("10-1-1-1.default.pod.cluster.local", A);
    assert!(pod.is(&["A 10.1.1.1"]), "{pod:?}");
    let no_pod = ask("10-1-9-9.default.pod.cluster.local", A);
    assert_eq!(
        no_pod.rcode,
        ResponseCode::NXDomain,
        "pods verified: no such Pod: {no_pod:?}"
    );
    let ptr = ask("1.0.96.10.in-addr.arpa", PTR);
    assert!(
        ptr.is(&["PTR kubernetes.default.svc.cluster.local."]),
        "{ptr:?}"
    );
    assert_eq!(ptr.ttls(), [7], "{ptr:?}");
    let unknown = ask("99.2.0.192.in-addr.arpa", PTR);
    assert!(unknown.is(&["PTR knot-ptr.example.test."]), "{unknown:?}");

    // hosts: inline and file entries with its ttl, PTR for its addresses, reload of the file.
    let inline = ask("inline.kitchen.test", A);
    assert!(inline.is(&["A 192.0.2.80"]), "{inline:?}\n{}", logs());
    assert_eq!(inline.ttls(), [45], "{inline:?}");
    let file = ask("file.kitchen.test", A);
    assert!(file.is(&["A 192.0.2.81"]), "{file:?}");
    assert_eq!(file.ttls(), [45], "{file:?}");
    let reverse = ask("80.2.0.192.in-addr.arpa", PTR);
    assert!(reverse.is(&["PTR inline.kitchen.test."]), "{reverse:?}");
    assert_eq!(reverse.ttls(), [45], "{reverse:?}");
    let since = Instant::now();
    std::fs::write(
        &hosts,
        "192.0.2.81 file.kitchen.test\n192.0.2.82 added.kitchen.test\n",
    )
    .expect("rewrite the hosts file");
    let took = server.wait_answer(
        main,
        since,
        Duration::from_secs(5),
        "added.kitchen.test",
        A,
        |r| r.is(&["A 192.0.2.82"]),
    );
    eprintln!("hosts reload 1s: the new entry answered after {took:?}");

    // rewrite: every match type; the answer is under the name the client asked.
    for (asked, kind) in [
        ("www.alias.test", "suffix, answer auto"),
        ("exact.rw.test", "exact"),
        ("pre.example.test", "prefix, answer auto"),
        ("wwwx.example.test", "substring, answer auto"),
        ("re-www.example.test", "regex, answer name"),
    ] {
        let r = ask(asked, A);
        assert!(r.is(&["A 192.0.2.1"]), "rewrite {kind}: {r:?}\n{}", logs());
        assert_eq!(
            r.owners(),
            [format!("{asked}.")],
            "rewrite {kind}: the answer must be under the asked name: {r:?}"
        );
    }

    // template: an answer with additional and authority sections; an rcode template.
    let web7 = ask("web-7.tmpl.test", A);
    assert!(web7.is(&["A 192.0.2.7"]), "{web7:?}\n{}", logs());
    assert_eq!(web7.owners(), ["web-7.tmpl.test."]);
    assert_eq!(web7.ttls(), [33]);
    assert!(
        (web7.additional.iter()).any(|rr| rr.name == "ns.tmpl.test." && rr.data == "A 192.0.2.53"),
        "{web7:?}"
    );
    assert!(
        (web7.authority.iter()).any(|rr| rr.name == "tmpl.test." && rr.data == "NS ns.tmpl.test."),
        "{web7:?}"
    );
    let gone = ask("gone.tmpl.test", A);
    assert_eq!(gone.rcode, ResponseCode::NXDomain, "{gone:?}");
    assert!(
        (gone.authority.iter()).any(|rr| rr.name == "tmpl.test." && rr.data.starts_with("SOA ")),
        "{gone:?}"
    );

    // any: ANY queries get RFC 8482's HINFO.
    let any = ask("www.example.test", RecordType::ANY);
    assert!(
        any.is(&[r#"HINFO "ANY obsoleted" "See RFC 8482""#]),
        "{any:?}"
    );

    // forward: `except` leaves the name to the next plugin, and there is none: SERVFAIL
    // (Knot would have answered 192.0.2.25).
    let except = ask("mail.example.test", A);
    assert_eq!(except.rcode, ResponseCode::ServFail, "{except:?}");
    // cache: `success 1000 60` caps the TTL of Knot's 300 s answer at 60 on this port; the
    // second port has no cache and passes 300 through.
    let www = ask("www.example.test", A);
    assert!(www.is(&["A 192.0.2.1"]), "{www:?}");
    assert_eq!(www.ttls(), [60], "{www:?}");

    // The stub domain's own block, routed to its own upstream (the main one lacks the zone).
    let stubbed = ask("www.stub.test", A);
    assert!(stubbed.is(&["A 198.51.100.7"]), "{stubbed:?}\n{}", logs());
    // ...and a zone under it, over TLS through Unbound.
    let over_tls = ask("www.tls.stub.test", A);
    assert!(over_tls.is(&["A 198.51.100.8"]), "{over_tls:?}\n{}", logs());

    // The second port, on both of its bind addresses: its own hosts (no_reverse) and forward.
    for addr in [loopback(p2), SocketAddr::from(([127, 0, 0, 2], p2))] {
        let nr = server.ask(addr, "noreverse.kitchen.test", A);
        assert!(nr.is(&["A 192.0.2.90"]), "{addr}: {nr:?}\n{}", logs());
        let nr_ptr = server.ask(addr, "90.2.0.192.in-addr.arpa", PTR);
        assert!(
            !nr_ptr.data().iter().any(|d| d.contains("noreverse")),
            "{addr}: no_reverse: {nr_ptr:?}"
        );
        let www2 = server.ask(addr, "www.example.test", A);
        assert!(www2.is(&["A 192.0.2.1"]), "{addr}: {www2:?}");
        assert_eq!(
            www2.ttls(),
            [300],
            "{addr}: no cache on this port: {www2:?}"
        );
    }
    // ...which the first port's blocks do not have.
    let not_here = ask("noreverse.kitchen.test", A);
    assert!(
        !not_here.data().contains(&"A 192.0.2.90".to_string()),
        "the second port's hosts answered on the first: {not_here:?}"
    );

    // log: only names under example.test and alias.test, only successful answers, on stdout.
    let nx = ask("nope.example.test", A);
    assert_eq!(nx.rcode, ResponseCode::NXDomain, "{nx:?}");
    let deadline = Instant::now() + Duration::from_secs(2);
    while !server
        .stdout()
        .contains("kitchen-log A www.example.test. NOERROR")
    {
        assert!(
            Instant::now() < deadline,
            "no log line for www.example.test on stdout\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let stdout = server.stdout();
    assert!(
        !stdout.contains("nope.example.test"),
        "class success: an NXDOMAIN was logged:\n{stdout}"
    );
    assert!(
        !stdout.contains("inline.kitchen.test"),
        "a name outside the log's zones was logged:\n{stdout}"
    );

    let (code, text) = http_get(loopback(metrics), "/metrics").expect("/metrics answers");
    assert_eq!(code, 200);
    assert!(text.contains("coredns_dns_requests_total"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// reload under load
// ---------------------------------------------------------------------------------------------

fn probe_corefile(port: u16, metrics: u16, answer: &str) -> String {
    format!(
        "probe.test:{port} {{\n    bind 127.0.0.1\n    prometheus 127.0.0.1:{metrics}\n    \
         reload\n    template IN A probe.test {{\n        \
         answer \"{{{{ .Name }}}} 60 IN A {answer}\"\n    }}\n}}\n"
    )
}

/// The Corefile as a ConfigMap volume presents it: `Corefile -> ..data/Corefile`,
/// `..data -> ..v1`, so that an update can be a swap of the `..data` symlink.
fn configmap_volume(dir: &Path, first: &str) -> PathBuf {
    let version = dir.join("..v1");
    std::fs::create_dir_all(&version).expect("version dir");
    std::fs::write(version.join("Corefile"), first).expect("write");
    std::os::unix::fs::symlink("..v1", dir.join("..data")).expect("..data");
    std::os::unix::fs::symlink("..data/Corefile", dir.join("Corefile")).expect("Corefile");
    dir.join("Corefile")
}

/// Replaces the file behind the `..data` symlink in place: write a temp file, rename it over.
fn replace_in_place(dir: &Path, text: &str) {
    let tmp = dir.join("..v1/.Corefile.tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, dir.join("..v1/Corefile")).expect("rename");
}

/// What the kubelet does on a ConfigMap update: a new version dir, `..data` swapped to it.
fn swap_symlink(dir: &Path, version: &str, text: &str) {
    let new = dir.join(version);
    std::fs::create_dir_all(&new).expect("version dir");
    std::fs::write(new.join("Corefile"), text).expect("write");
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(version, &tmp).expect("symlink");
    std::fs::rename(&tmp, dir.join("..data")).expect("swap ..data");
}

/// A reload rebuilds the server blocks and their forwarders; the `cache` and `forward` counters
/// of the replaced ones carry on in the new ones' series, as CoreDNS's process-wide counters do,
/// instead of starting again from 0 (which Prometheus would read as a reset).
#[test]
fn forward_and_cache_counters_carry_on_across_a_reload() {
    let knot = Knot::start("reload-counters", UPSTREAM_ZONES);
    let dir = TempDir::new("reload-counters");
    let (port, metrics_port) = (free_port(), free_port());
    let (dns, metrics) = (loopback(port), loopback(metrics_port));
    let corefile = |ttl: u32| {
        format!(
            ".:{port} {{\n    bind 127.0.0.1\n    prometheus 127.0.0.1:{metrics_port}\n    \
             reload\n    cache {ttl}\n    forward . {}\n}}\n",
            knot.addr
        )
    };
    let path = dir.write("Corefile", &corefile(30));
    let server = serve("--corefile", &path);
    server.wait_answer(dns, Instant::now(), STARTUP, "www.example.test", A, |r| {
        r.is(&["A 192.0.2.1"])
    });
    let scrape = |name: &str| {
        let (code, text) = http_get(metrics, "/metrics").expect("/metrics answers");
        assert_eq!(code, 200);
        metric(&text, name, &[]).unwrap_or(0.0)
    };
    for _ in 0..4 {
        assert!(server.ask(dns, "www.example.test", A).is(&["A 192.0.2.1"]));
    }
    let before = scrape("coredns_cache_requests_total");
    assert!(before >= 5.0, "{before}");

    // A change that rebuilds the block (and so its forwarder and cache).
    let since = Instant::now();
    let tmp = dir.write("Corefile.new", &corefile(40));
    std::fs::rename(&tmp, &path).expect("rename");
    while scrape("clusterdns_reloads_total") < 1.0 {
        assert!(
            since.elapsed() < Duration::from_secs(3),
            "no reload within 3 s\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..3 {
        assert!(server.ask(dns, "www.example.test", A).is(&["A 192.0.2.1"]));
    }
    // Twice: the scrape that finds the old forwarder gone, and one after it.
    for _ in 0..2 {
        let after = scrape("coredns_cache_requests_total");
        assert_eq!(after, before + 3.0, "\n{}", server.logs());
    }
}

#[test]
fn reload_applies_changes_under_load_and_keeps_serving_through_a_bad_one() {
    let dir = TempDir::new("reload");
    let (port, metrics_port) = (free_port(), free_port());
    let dns = loopback(port);
    let metrics = loopback(metrics_port);
    let corefile = configmap_volume(dir.path(), &probe_corefile(port, metrics_port, "192.0.2.1"));
    let server = serve("--corefile", &corefile);
    server.wait_answer(dns, Instant::now(), STARTUP, "probe.test", A, |r| {
        r.is(&["A 192.0.2.1"])
    });

    // The load: one query after another, each with 1 s to be answered (any answer will do).
    let load = QueryLoop::start(
        dns,
        "probe.test",
        A,
        Duration::from_secs(1),
        Duration::from_millis(2),
        |_| true,
    );
    let reload_failed = || {
        let (code, text) = http_get(metrics, "/metrics").expect("/metrics answers");
        assert_eq!(code, 200);
        metric(&text, "coredns_reload_failed_total", &[])
    };
    assert_eq!(reload_failed(), Some(0.0), "no failed reload yet");

    // 1: a valid change, written to a temp file and renamed over.
    let since = Instant::now();
    replace_in_place(dir.path(), &probe_corefile(port, metrics_port, "192.0.2.2"));
    let took = server.wait_answer(dns, since, Duration::from_secs(1), "probe.test", A, |r| {
        r.is(&["A 192.0.2.2"])
    });
    eprintln!("reload 1 (rename) answered after {took:?}");

    // 2: an invalid file: refused, counted once, logged; the previous config keeps answering.
    let invalid = probe_corefile(port, metrics_port, "192.0.2.9")
        .replace("    reload\n", "    reload\n    frobnicate\n");
    let since = Instant::now();
    replace_in_place(dir.path(), &invalid);
    while reload_failed() != Some(1.0) {
        assert!(
            since.elapsed() < Duration::from_secs(2),
            "coredns_reload_failed_total not 1 within 2 s: {:?}\n{}",
            reload_failed(),
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Two more checks of the file go by: still the old answer, still counted once.
    std::thread::sleep(Duration::from_millis(1100));
    let kept = server.ask(dns, "probe.test", A);
    assert!(kept.is(&["A 192.0.2.2"]), "{kept:?}\n{}", server.logs());
    assert_eq!(
        reload_failed(),
        Some(1.0),
        "the same bad file counted again"
    );
    assert!(
        server.logs().contains("frobnicate"),
        "the refused reload must be logged naming the token:\n{}",
        server.logs()
    );

    // 3: a valid change as the kubelet makes it, a swap of the `..data` symlink.
    let since = Instant::now();
    swap_symlink(
        dir.path(),
        "..v2",
        &probe_corefile(port, metrics_port, "192.0.2.3"),
    );
    let took = server.wait_answer(dns, since, Duration::from_secs(1), "probe.test", A, |r| {
        r.is(&["A 192.0.2.3"])
    });
    eprintln!("reload 3 (symlink swap) answered after {took:?}");
    assert_eq!(reload_failed(), Some(1.0));

    let (answered, unanswered) = load.stop();
    let sent = answered + unanswered;
    eprintln!("{sent} queries during the reloads, {unanswered} unanswered");
    assert!(sent > 100, "too few queries to tell: {sent}");
    assert_eq!(
        unanswered,
        0,
        "queries went unanswered during reloads\n{}",
        server.logs()
    );
}
