//! The Corefiles that Kubernetes distributions and installers ship (tests/corefiles/distributions/,
//! each with its source in that folder's README), run by the real binary as a cluster that swaps
//! CoreDNS for clusterdns runs them. Every fixture is checked with `--check-corefile`; each one
//! clusterdns serves is then started for real and must answer:
//! - the golden corpus (tests/golden/, the cluster of tests/golden/cluster.yaml loaded with
//!   `--manifests`) as CoreDNS answers it with that Corefile: the corpus's TTL 5 becomes the
//!   `kubernetes` block's `ttl`, only the cases of its `pods` mode apply, and the answers of
//!   `dns64` replace the AAAA NODATA cases they change. Node-local Corefiles (no `kubernetes`)
//!   forward the cluster zone to a cluster DNS (an in-process clusterdns serving the same
//!   cluster) and answer the same corpus through their cache;
//! - a name outside the cluster, forwarded to the upstream (Knot DNS on loopback; `tls://`
//!   upstreams become Unbound serving DNS over TLS in front of it);
//! - the names its other directives target (hosts entries, rewrites, templates, chaos, dns64,
//!   imported server blocks), with CoreDNS's answers written out per fixture.
//!
//! How a real Corefile is adapted to run here, the same way for every fixture (see [`adapt`]):
//! each port becomes a free loopback port and every server block binds 127.0.0.1 only;
//! `health`, `ready` and `prometheus` get loopback addresses; `forward` upstreams become Knot,
//! or the cluster DNS for a node-local block of the cluster zone or a reverse zone, and
//! `tls://` upstreams become one Unbound serving DNS over TLS (its certificate, made for the
//! test, is valid for the fixtures' `tls_servername`s); paths under `/etc/coredns/`,
//! `/etc/pki/` and `/rootfs/etc/hosts` point into the test's directory, where the files the
//! distribution ships beside its Corefile (NodeHosts, a hosts file, the `coredns-custom`
//! imports of AKS and Gardener, OpenShift's CA bundles, there the test's CA) are written.
//! Nothing else in a fixture changes.
//!
//! Fixtures that use a plugin of the issue "The plugins operators add to their Corefile"
//! (DNS-over-HTTPS server blocks) or a plugin that is not
//! CoreDNS's (OpenShift's `ocp_dnsnameresolver`) are [`Status::Waits`]: refused with the line and
//! the token, until that issue lands. One fixture CoreDNS itself refuses ([`Status::Refused`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clusterdns_testkit::client;
use clusterdns_testkit::dns::Reply;
use clusterdns_testkit::fixture::{zone_config, TestServer};
use clusterdns_testkit::golden::{self, check, load_cases, query_bytes, Case};
use clusterdns_testkit::knot::Knot;
use clusterdns_testkit::net::{free_port, loopback};
use clusterdns_testkit::process::{clusterdns_binary, Process};
use clusterdns_testkit::temp::TempDir;
use clusterdns_testkit::unbound::{Certificates, Unbound};
use clusterdns_zone::PodsMode;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/corefiles/distributions");
const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden");
/// How long a fixture may take to start answering.
const STARTUP: Duration = Duration::from_secs(20);

/// What clusterdns does with a fixture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// Accepted and served.
    Serves,
    /// Refused until the named plugin is supported: the refusal must name this token.
    Waits(&'static str),
    /// Refused, as CoreDNS refuses it: the refusal must name this token.
    Refused(&'static str),
}

/// Every fixture of the folder and what is expected of it; a fixture missing here fails the
/// test, so a new one is not forgotten.
const FIXTURES: &[(&str, Status)] = &[
    ("aks", Status::Serves),
    ("charmed-kubernetes", Status::Serves),
    ("coredns-deployment", Status::Serves),
    ("coredns-helm", Status::Serves),
    ("eks", Status::Serves),
    ("gardener", Status::Serves),
    ("gardener-nodelocaldns", Status::Serves),
    ("gardener-search-path-rewrites", Status::Serves),
    ("k0s", Status::Serves),
    ("k3s", Status::Serves),
    ("kops", Status::Serves),
    ("kops-dns-none", Status::Serves),
    ("kops-gossip", Status::Serves),
    ("kops-ipv6", Status::Serves),
    ("kube-up", Status::Serves),
    ("kubeadm", Status::Serves),
    ("kubeadm-1.16", Status::Serves),
    ("kubeadm-1.17", Status::Serves),
    ("kubeadm-1.19", Status::Serves),
    ("kubespray", Status::Serves),
    ("kubespray-etchosts", Status::Serves),
    // kubespray's documented example: `cache 0` and `rewrite name stop ...`, which CoreDNS
    // refuses too; clusterdns stops at its first line it cannot take, the https:// block.
    ("kubespray-external-zones", Status::Refused("https://")),
    ("kubespray-k8s-external", Status::Serves),
    ("kubespray-nodelocaldns", Status::Serves),
    (
        "kubespray-nodelocaldns-external-zones",
        Status::Waits("https://"),
    ),
    ("kubespray-old-dns-domains", Status::Serves),
    ("kubespray-rewrite", Status::Serves),
    ("microk8s", Status::Serves),
    ("microk8s-fallback", Status::Serves),
    ("minikube", Status::Serves),
    ("nodelocaldns", Status::Serves),
    ("openshift", Status::Serves),
    ("openshift-debug", Status::Serves),
    (
        "openshift-dnsnameresolver",
        Status::Waits("ocp_dnsnameresolver"),
    ),
    ("openshift-forward-tcp", Status::Serves),
    ("openshift-onprem", Status::Serves),
    ("openshift-servers", Status::Serves),
    ("openshift-tcp", Status::Serves),
    ("openshift-tls", Status::Serves),
    ("openshift-tls-upstream", Status::Serves),
    ("openshift-upstreams", Status::Serves),
    ("rke2", Status::Serves),
    ("rke2-nodelocal", Status::Serves),
    ("talos", Status::Serves),
    ("vcluster", Status::Serves),
];

/// The imports a fixture is run with: a folder of `aks-custom/` or `gardener-custom/`, copied
/// (adapted) to the `custom/` folder beside the Corefile.
const CUSTOM: &[(&str, &str)] = &[
    ("aks", "aks-custom/custom-domain"),
    ("aks", "aks-custom/forward"),
    ("aks", "aks-custom/hosts"),
    ("aks", "aks-custom/query-logging"),
    ("aks", "aks-custom/rewrite"),
    ("aks", "aks-custom/search-domains"),
    ("aks", "aks-custom/stub-domains"),
    ("gardener", "gardener-custom"),
];

/// The upstream every `.` forward goes to: a zone with names to forward, the reverse zone of
/// an address no Service has, and the zones AKS's templates and override blocks name.
const UPSTREAM_ZONES: &[(&str, &str)] = &[
    ("example.test", "www A 192.0.2.1\nv4only A 192.0.2.33\n"),
    ("2.0.192.in-addr.arpa", "99 PTR knot-ptr.example.test.\n"),
    (
        "internal.cloudapp.net",
        "vm A 10.240.0.4\n* A 10.240.0.99\n",
    ),
    // OpenShift's DNS-over-TLS servers (openshift-tls).
    ("bar.com", "www A 192.0.2.80\n"),
    ("foo.com", "www A 192.0.2.81\n"),
];

/// The names the test's DNS-over-TLS certificate is valid for: the fixtures' `tls_servername`s.
const TLS_NAMES: &[&str] = &["example.com", "dns.bar.com", "dns.foo.com"];

fn fixture_path(name: &str) -> PathBuf {
    Path::new(DIR).join(format!("{name}.Corefile"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn status(name: &str) -> Status {
    match FIXTURES.iter().find(|(n, _)| *n == name) {
        Some((_, status)) => *status,
        None => panic!("{name}.Corefile is not in FIXTURES: say what clusterdns does with it"),
    }
}

// ---------------------------------------------------------------------------------------------
// --check-corefile
// ---------------------------------------------------------------------------------------------

#[test]
fn every_fixture_is_accepted_or_refused_naming_the_reason() {
    let mut names: Vec<String> = std::fs::read_dir(DIR)
        .expect("fixtures dir")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".Corefile").map(str::to_owned)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 40, "only {} fixtures", names.len());
    let certs = Certificates::generate("check", TLS_NAMES);
    let mut problems = Vec::new();
    for name in &names {
        // Checked where its imports resolve: a copy with the files it names.
        let dir = TempDir::new(&format!("check-{name}"));
        let corefile = prepare(&dir, name, None, &certs.ca, None);
        let output = Command::new(clusterdns_binary())
            .arg("--check-corefile")
            .arg(&corefile)
            .output()
            .expect("run clusterdns");
        let stderr = String::from_utf8_lossy(&output.stderr);
        match status(name) {
            Status::Serves if !output.status.success() => {
                problems.push(format!("{name}: refused: {stderr}"))
            }
            Status::Waits(token) | Status::Refused(token)
                if output.status.success() || !stderr.contains(token) =>
            {
                problems.push(format!(
                    "{name}: expected a refusal naming {token:?}, got {:?}: {stderr}",
                    output.status
                ))
            }
            _ => {}
        }
        if !output.status.success() && !stderr.contains("Corefile:") {
            problems.push(format!("{name}: the refusal names no FILE:LINE: {stderr}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Adapting a fixture
// ---------------------------------------------------------------------------------------------

/// The addresses a running fixture gets.
struct Env {
    /// Original port → the free loopback port that replaces it.
    ports: BTreeMap<u16, u16>,
    health: SocketAddr,
    ready: SocketAddr,
    metrics: SocketAddr,
    /// Knot, for forwards out of the cluster.
    upstream: SocketAddr,
    /// The cluster DNS, for node-local forwards of the cluster zone and reverse zones.
    cluster_dns: SocketAddr,
    /// Unbound, serving DNS over TLS in front of Knot, for `tls://` forwards.
    dot: SocketAddr,
}

impl Env {
    /// The loopback port that replaces `port` (a new free one the first time).
    fn port(&mut self, port: u16) -> u16 {
        *self.ports.entry(port).or_insert_with(free_port)
    }
}

/// Writes fixture `name` adapted (see the module docs) into `dir` as `Corefile`, with the files
/// it names (its CA bundles are the PEM file `ca`) and the imports of `custom` (a folder of the
/// fixtures dir); returns its path. Without `env` only the paths are adapted (for
/// `--check-corefile`).
fn prepare(
    dir: &TempDir,
    name: &str,
    custom: Option<&str>,
    ca: &Path,
    mut env: Option<&mut Env>,
) -> PathBuf {
    let text = read(&fixture_path(name));
    for bundle in text.split_whitespace() {
        if let Some(file) = bundle.strip_prefix("/etc/pki/") {
            dir.write(&format!("pki/{file}"), &read(ca));
        }
    }
    let mut adapted = |text: &str, depth| adapt(text, depth, dir.path(), env.as_deref_mut());
    let corefile = adapted(&text, 0);
    std::fs::create_dir_all(dir.path().join("custom")).expect("custom dir");
    std::fs::create_dir_all(dir.path().join("generated-config")).expect("generated dir");
    dir.write("generated-config/custom-server-block.server", "");
    dir.write("NodeHosts", "192.0.2.11 node-a\n192.0.2.12 node-b\n");
    dir.write(
        "rootfs-hosts",
        "203.0.113.10 api.internal.minimal.k8s.local\n\
         203.0.113.11 api.internal.minimal.example.com\n",
    );
    dir.write(
        "hosts",
        &read(&Path::new(DIR).join("kubespray-etchosts.hosts")),
    );
    if let Some(custom) = custom {
        for entry in std::fs::read_dir(Path::new(DIR).join(custom)).expect("custom dir") {
            let path = entry.expect("entry").path();
            let file = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            // `*.override` files are imported inside the `.` block, `*.server` files beside it.
            let depth = usize::from(file.ends_with(".override"));
            dir.write(&format!("custom/{file}"), &adapted(&read(&path), depth));
        }
    }
    dir.write("Corefile", &corefile)
}

/// One Corefile's text adapted to run here: paths always; ports, binds, ops addresses and
/// upstreams when `env` is given. `depth` is 1 for a file imported inside a server block.
fn adapt(text: &str, mut depth: usize, dir: &Path, mut env: Option<&mut Env>) -> String {
    let d = dir.display().to_string();
    let mut out = String::new();
    let mut zone = String::new();
    // A block whose rewrite rules make cluster names forwards them to the cluster DNS, as the
    // AKS docs say its forward must ("a specific DNS server such as 10.0.0.10").
    let mut to_cluster = false;
    let mut has_kubernetes = false;
    for line in text.lines() {
        let code = line.split('#').next().unwrap_or("");
        let trimmed = code.trim();
        let indent = &line[..line.len() - line.trim_start().len()];
        let words: Vec<&str> = trimmed.split_whitespace().collect();
        let opens = code.matches('{').count();
        let closes = code.matches('}').count();
        let mut adapted = line
            .replace("/etc/coredns/custom", &format!("{d}/custom"))
            .replace("/etc/coredns/", &format!("{d}/"))
            .replace("/rootfs/etc/hosts", &format!("{d}/rootfs-hosts"))
            .replace("/etc/pki/", &format!("{d}/pki/"));
        if let Some(env) = env.as_deref_mut() {
            if depth == 0 && trimmed.ends_with('{') && !words.is_empty() {
                // A server block: its keys on the test's ports, bound to loopback.
                let keys: Vec<String> = words[..words.len() - 1]
                    .iter()
                    .map(|key| rekey(key, env))
                    .collect();
                zone = keys.first().cloned().unwrap_or_default();
                adapted = format!("{} {{\n{indent}    bind 127.0.0.1 ::1", keys.join(" "));
                (to_cluster, has_kubernetes) = (false, false);
            } else if depth >= 1 {
                has_kubernetes |= words.first() == Some(&"kubernetes");
                to_cluster |= trimmed.contains("svc.cluster.local");
                adapted = match words.first().copied() {
                    Some("bind") => String::new(),
                    Some("health") => {
                        let block = if trimmed.ends_with('{') { " {" } else { "" };
                        format!("{indent}health {}{block}", env.health)
                    }
                    Some("ready") => format!("{indent}ready {}", env.ready),
                    Some("prometheus") => format!("{indent}prometheus {}", env.metrics),
                    Some("forward") if words.len() >= 3 => {
                        let node_local = ["cluster.local", "in-addr.arpa", "ip6.arpa"]
                            .iter()
                            .any(|z| zone.starts_with(z));
                        let to = if node_local || (to_cluster && !has_kubernetes) {
                            env.cluster_dns
                        } else {
                            env.upstream
                        };
                        let tls = words[2..].iter().any(|w| w.starts_with("tls://"));
                        let block = if trimmed.ends_with('{') { " {" } else { "" };
                        match tls {
                            true => {
                                format!("{indent}forward {} tls://{}{block}", words[1], env.dot)
                            }
                            false => format!("{indent}forward {} {to}{block}", words[1]),
                        }
                    }
                    _ => adapted,
                };
            }
        }
        depth = (depth + opens).saturating_sub(closes);
        out.push_str(&adapted);
        out.push('\n');
    }
    out
}

/// A server block key on the test's port for its original port (53 when it has none).
fn rekey(key: &str, env: &mut Env) -> String {
    let (scheme, rest) = match key.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), key),
    };
    let (zone, port) = match rest.rsplit_once(':') {
        Some((zone, port)) if !zone.is_empty() || port.parse::<u16>().is_ok() => {
            (zone, port.parse().unwrap_or(53))
        }
        _ => (rest, 53),
    };
    let zone = if zone.is_empty() { "." } else { zone };
    format!("{scheme}{zone}:{}", env.port(port))
}

// ---------------------------------------------------------------------------------------------
// Running a fixture
// ---------------------------------------------------------------------------------------------

/// What the fixtures forward to: Knot, and Unbound serving DNS over TLS in front of it with a
/// certificate for [`TLS_NAMES`].
struct Upstreams {
    knot: Knot,
    certs: Certificates,
    unbound: Unbound,
}

/// A fixture served by the binary.
struct Run {
    name: String,
    server: Process,
    /// Where the fixture's `.`-or-cluster block answers.
    dns: SocketAddr,
    _dir: TempDir,
}

impl Run {
    fn start(
        name: &str,
        custom: Option<&str>,
        upstreams: &Upstreams,
        cluster_dns: SocketAddr,
    ) -> Run {
        let knot = &upstreams.knot;
        let dir = TempDir::new(&format!("dist-{name}"));
        let mut env = Env {
            ports: BTreeMap::new(),
            health: loopback(free_port()),
            ready: loopback(free_port()),
            metrics: loopback(free_port()),
            upstream: knot.addr,
            cluster_dns,
            dot: upstreams.unbound.dot,
        };
        // The main port first, so it is known: every fixture serves its main block on 53
        // except OpenShift (5353), Gardener (8053) and vcluster (1053).
        let main_port = main_port(&read(&fixture_path(name)));
        let dns_port = env.port(main_port);
        let corefile = prepare(&dir, name, custom, &upstreams.certs.ca, Some(&mut env));
        let manifest = Path::new(GOLDEN).join("cluster.yaml");
        let mut args: Vec<&std::ffi::OsStr> = vec!["-conf".as_ref(), corefile.as_os_str()];
        if cluster_options(&read(&fixture_path(name))).is_some() {
            // The cluster from the golden corpus's manifest, in place of an API server.
            args.extend::<[&std::ffi::OsStr; 2]>(["--manifests".as_ref(), manifest.as_os_str()]);
        }
        args.extend::<[&std::ffi::OsStr; 2]>(["--threads".as_ref(), "1".as_ref()]);
        let server = Process::clusterdns(&args);
        let dns = loopback(dns_port);
        let what = format!("{name}: an answer at {dns}, serving\n{}", read(&corefile));
        server.wait_until(Instant::now(), STARTUP, &what, || {
            let timeout = Duration::from_millis(300);
            client::answer_is(dns, "www.example.test", RecordType::A, timeout, |r| {
                r.rcode == ResponseCode::NoError
            })
        });
        Run {
            name: name.into(),
            server,
            dns,
            _dir: dir,
        }
    }

    fn ask(&self, name: &str, qtype: RecordType) -> Reply {
        client::ask(self.dns, name, qtype, Duration::from_secs(3)).unwrap_or_else(|| {
            panic!(
                "{}: no answer to {name} {qtype}\n{}",
                self.name,
                self.server.logs()
            )
        })
    }
}

/// The port of the block that serves `.` (or the cluster zone) in `corefile`.
fn main_port(corefile: &str) -> u16 {
    let mut depth = 0usize;
    for line in corefile.lines() {
        let code = line.split('#').next().unwrap_or("");
        let key_line = depth == 0 && code.trim_end().ends_with('{');
        depth = (depth + code.matches('{').count()).saturating_sub(code.matches('}').count());
        if !key_line {
            continue;
        }
        for word in code.split_whitespace() {
            let word = word.trim_start_matches("dns://");
            if let Some(port) = word
                .strip_prefix(".:")
                .or_else(|| word.strip_prefix("cluster.local:"))
            {
                return port.parse().unwrap_or(53);
            }
        }
    }
    53
}

/// Whether the server block with the `kubernetes` directive forwards over `tls://`.
fn cluster_forward_is_tls(corefile: &str) -> bool {
    let (mut depth, mut kubernetes, mut tls) = (0usize, false, false);
    for line in corefile.lines() {
        let code = line.split('#').next().unwrap_or("");
        let words: Vec<&str> = code.split_whitespace().collect();
        if depth == 0 {
            (kubernetes, tls) = (false, false);
        }
        kubernetes |= words.first() == Some(&"kubernetes");
        tls |= words.first() == Some(&"forward") && words.iter().any(|w| w.starts_with("tls://"));
        depth = (depth + code.matches('{').count()).saturating_sub(code.matches('}').count());
        if depth == 0 && kubernetes && tls {
            return true;
        }
    }
    false
}

/// The `kubernetes` block's TTL and pods mode in `corefile` (CoreDNS's defaults: 5, disabled);
/// `None` when it has no `kubernetes` directive.
fn cluster_options(corefile: &str) -> Option<(u32, PodsMode)> {
    let mut inside = false;
    let mut found = false;
    let (mut ttl, mut pods) = (5, PodsMode::Disabled);
    for line in corefile.lines() {
        let words: Vec<&str> = line.split('#').next()?.split_whitespace().collect();
        match words.as_slice() {
            ["kubernetes", ..] => {
                found = true;
                inside = line.contains('{');
            }
            ["ttl", value] if inside => ttl = value.parse().ok()?,
            ["pods", mode] if inside => {
                pods = match *mode {
                    "insecure" => PodsMode::Insecure,
                    "verified" => PodsMode::Verified,
                    _ => PodsMode::Disabled,
                }
            }
            ["}"] => inside = false,
            _ => {}
        }
    }
    found.then_some((ttl, pods))
}

/// The golden cases as CoreDNS answers them with a `kubernetes` block of `ttl` and `pods`:
/// those of that pods mode (and those outside the pod zone), the TTL 5 of cluster records and
/// of the SOA minimum as `ttl`.
fn cases_for(ttl: u32, pods: PodsMode) -> Vec<Case> {
    let cases = load_cases(GOLDEN).expect("golden cases parse");
    cases
        .into_iter()
        .filter(|case| {
            // Cases are written for `pods insecure` unless they say otherwise; those about the
            // pod zone are the ones another mode changes.
            let qname = case.qname.to_ascii_lowercase();
            let pod_zone = qname.split('.').any(|l| l == "pod");
            // Names outside the cluster's zones are the upstream's or another block's to
            // answer, which the Corefile decides: checked per fixture instead.
            let cluster = ["cluster.local.", "in-addr.arpa.", "ip6.arpa."]
                .iter()
                .any(|zone| qname.ends_with(zone));
            cluster && (case.pods == pods || (case.pods == PodsMode::Insecure && !pod_zone))
        })
        .map(|mut case| {
            for section in case.sections.iter_mut() {
                for record in section.iter_mut() {
                    *record = with_ttl(record, ttl);
                }
            }
            case
        })
        .collect()
}

/// A normalized record line with the cluster TTL 5 replaced by `ttl`.
fn with_ttl(record: &str, ttl: u32) -> String {
    let mut fields: Vec<String> = record.split(' ').map(str::to_owned).collect();
    if fields.get(1).map(String::as_str) == Some("5") {
        fields[1] = ttl.to_string();
    }
    if fields.get(3).map(String::as_str) == Some("SOA")
        && fields.last().map(String::as_str) == Some("5")
    {
        let last = fields.len() - 1;
        fields[last] = ttl.to_string();
    }
    golden::normalize(&fields.join(" "))
}

/// Runs the golden corpus over TCP against `run`; `skip` leaves out cases another check owns.
fn assert_golden(run: &Run, cases: Vec<Case>, skip: impl Fn(&Case) -> bool) {
    let cases: Vec<Case> = cases.into_iter().filter(|c| !skip(c)).collect();
    assert!(cases.len() > 50, "{}: only {} cases", run.name, cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let result = client::tcp(run.dns, &query_bytes(case, 0x4747, None))
            .map_err(|e| e.to_string())
            .and_then(|response| check(case, &response));
        if let Err(problem) = result {
            failures.push(problem);
        }
    }
    assert!(
        failures.is_empty(),
        "{}: {} of {} golden cases differ:\n{}",
        run.name,
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// What every fixture that serves the cluster does: the golden corpus and a forwarded name.
fn assert_common(run: &Run, corefile: &str) {
    let www = run.ask("www.example.test", RecordType::A);
    assert!(www.is(&["A 192.0.2.1"]), "{}: {www:?}", run.name);
    let dns64 = corefile.lines().any(|l| l.trim() == "dns64");
    // The names the cluster block passes on are the upstream's to answer: Knot refuses those
    // it does not serve, which the corpus expects; Unbound, the resolver in front of it for a
    // tls:// forward, answers them its own way (NXDOMAIN from its local reverse zones,
    // SERVFAIL for a refusal).
    let through_resolver = cluster_forward_is_tls(corefile);
    let skip = |case: &Case| {
        (dns64 && case.qtype == 28 && case.rcode == "NOERROR" && case.sections[0].is_empty())
            || (through_resolver && case.rcode == "REFUSED")
    };
    match cluster_options(corefile) {
        Some((ttl, pods)) => assert_golden(run, cases_for(ttl, pods), skip),
        // A node's own resolver (OpenShift's on-prem CoreDNS) does not serve the cluster.
        None if !corefile
            .lines()
            .any(|l| l.trim_start().starts_with("cluster.local:")) => {}
        // Node-local: the cluster DNS (flags: TTL 5, pods insecure) through the cache.
        // A cache keeps the names inside records as the query that filled it spelled them
        // (CoreDNS's too), so the cases of names echoed in the client's case are left out.
        None => assert_golden(run, cached(cases_for(5, PodsMode::Insecure)), |case| {
            (case.sections.iter().flatten()).any(|r| {
                // The record data: after owner, TTL, class and type.
                r.split(' ')
                    .skip(4)
                    .any(|f| f.chars().any(|c| c.is_ascii_uppercase()))
            })
        }),
    }
}

/// The TTL bounds of the cluster zone's cache in every node-local fixture:
/// `cache { success 9984 30; denial 9984 5 }`.
const NODE_LOCAL_CACHE: (u32, u32) = (30, 5);

/// The cases as a node-local cache answers them, as CoreDNS's `cache` writes a response:
/// every record gets the smallest TTL of the message, capped by the cache's maximum for
/// success or denial. One deliberate difference: clusterdns sends forwarded and cached answers
/// with AA clear (RFC 1035 §4.1.1: only an authority sets it), where CoreDNS's cache sets it on
/// every answer it writes for old glibc versions.
fn cached(cases: Vec<Case>) -> Vec<Case> {
    cases
        .into_iter()
        .map(|mut case| {
            case.flags.remove("aa");
            let ttl_of = |record: &String| record.split(' ').nth(1)?.parse::<u32>().ok();
            let smallest = case.sections.iter().flatten().filter_map(ttl_of).min();
            let cap = match case.sections[0].is_empty() {
                true => NODE_LOCAL_CACHE.1,
                false => NODE_LOCAL_CACHE.0,
            };
            if let Some(ttl) = smallest.map(|t| t.min(cap)) {
                for record in case.sections.iter_mut().flatten() {
                    let mut fields: Vec<&str> = record.split(' ').collect();
                    let ttl = ttl.to_string();
                    if fields.len() > 1 {
                        fields[1] = &ttl;
                    }
                    *record = fields.join(" ");
                }
            }
            case
        })
        .collect()
}

/// The checks of one fixture's own directives, as CoreDNS answers them.
fn assert_specific(run: &Run, custom: Option<&str>) {
    let name = run.name.as_str();
    let a = RecordType::A;
    let is = |qname: &str, qtype: RecordType, records: &[&str]| {
        let reply = run.ask(qname, qtype);
        assert!(
            reply.is(records),
            "{name} {custom:?}: {qname} {qtype}: {reply:?}\n{}",
            run.server.logs()
        );
        reply
    };
    let rcode = |qname: &str, qtype: RecordType, code: ResponseCode| {
        let reply = run.ask(qname, qtype);
        assert_eq!(
            reply.rcode, code,
            "{name} {custom:?}: {qname} {qtype}: {reply:?}"
        );
    };
    match (name, custom) {
        ("k3s" | "vcluster", _) => {
            is("node-a", a, &["A 192.0.2.11"]);
        }
        ("minikube", _) => {
            is("host.minikube.internal", a, &["A 192.168.64.1"]);
        }
        ("kops-gossip", _) => {
            is("api.internal.minimal.k8s.local", a, &["A 203.0.113.10"]);
        }
        ("kops-dns-none", _) => {
            is("api.internal.minimal.example.com", a, &["A 203.0.113.11"]);
        }
        ("kubespray-etchosts", _) => {
            is("api.example.com", a, &["A 192.168.0.100"]);
            is("ingress.example.com", a, &["A 192.168.0.200"]);
        }
        ("kops-ipv6", _) => {
            // dns64, for IPv6 clients (an IPv6-only cluster's Pods): an IPv4-only Service and an
            // IPv4-only upstream name get 64:ff9b::/96 addresses.
            let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, run.dns.port()));
            for (qname, expected) in [
                (
                    "kubernetes.default.svc.cluster.local",
                    "AAAA 64:ff9b::a60:1",
                ),
                ("v4only.example.test", "AAAA 64:ff9b::c000:221"),
            ] {
                let reply = client::ask(v6, qname, RecordType::AAAA, Duration::from_secs(3));
                assert!(
                    reply.as_ref().is_some_and(|r| r.is(&[expected])),
                    "{name}: {qname} AAAA from ::1: {reply:?}\n{}",
                    run.server.logs()
                );
            }
        }
        ("kubespray-k8s-external", _) => {
            // The external zone's apex; the golden cluster's Services have no external
            // address, so their names there do not exist.
            let soa = run.ask("k8s_external.local", RecordType::SOA);
            assert_eq!(soa.answers.len(), 1, "{name}: {soa:?}");
            rcode(
                "kubernetes.default.k8s_external.local",
                a,
                ResponseCode::NXDomain,
            );
        }
        ("kubespray-rewrite", _) => {
            let reply = is("kubernetes.default.my.domain", a, &["A 10.96.0.1"]);
            assert_eq!(reply.owners(), ["kubernetes.default.my.domain."], "{name}");
        }
        ("kubespray-old-dns-domains", _) => {
            let reply = is("kubernetes.default.svc.example1.com", a, &["A 10.96.0.1"]);
            assert_eq!(
                reply.owners(),
                ["kubernetes.default.svc.example1.com."],
                "{name}"
            );
        }
        ("gardener" | "gardener-search-path-rewrites", _) => {
            // A search path walked once too often: answered for the name as asked.
            let asked = "kubernetes.default.svc.cluster.local.svc.cluster.local";
            let reply = is(asked, a, &["A 10.96.0.1"]);
            assert_eq!(reply.owners(), [format!("{asked}.")], "{name}");
            // With gardener-custom, corefile.override adds `debug` and `whoami` to the block:
            // `whoami` comes last in CoreDNS's order, after `forward`, so it answers nothing
            // here; the block still serves (checked by the caller).
        }
        (
            "openshift"
            | "openshift-debug"
            | "openshift-servers"
            | "openshift-tcp"
            | "openshift-forward-tcp"
            | "openshift-upstreams"
            | "openshift-tls-upstream",
            _,
        ) => {
            // chaos on hostname.bind: CoreDNS answers CH TXT with the host name.
            let reply = chaos(run.dns, "hostname.bind");
            assert_eq!(reply.rcode, ResponseCode::NoError, "{name}: {reply:?}");
            assert_eq!(reply.answers.len(), 1, "{name}: {reply:?}");
        }
        ("openshift-tls", _) => {
            let reply = chaos(run.dns, "hostname.bind");
            assert_eq!(reply.answers.len(), 1, "{name}: {reply:?}");
            // bar.com's servers over TLS, verified with its CA bundle (the test's CA).
            is("www.bar.com", a, &["A 192.0.2.80"]);
            // foo.com's are verified with the system's roots (a bare `tls`), which do not hold
            // the test's CA: CoreDNS fails the handshake too.
            rcode("www.foo.com", a, ResponseCode::ServFail);
        }
        ("openshift-onprem", _) => {
            is(
                "foo.apps.my-test-cluster.installer.team.coreos.systems",
                a,
                &["A 10.0.0.2"],
            );
            is(
                "api.my-test-cluster.installer.team.coreos.systems",
                a,
                &["A 10.0.0.1"],
            );
            is("testnode", a, &["A 192.168.1.99"]);
        }
        ("aks", None) => {
            // The templates: NXDOMAIN for long internal.cloudapp.net names, all of
            // reddog.microsoft.com; a short cloudapp name falls through to the upstream.
            rcode("a.b.c.d.internal.cloudapp.net", a, ResponseCode::NXDomain);
            rcode("x.reddog.microsoft.com", a, ResponseCode::NXDomain);
            is("vm.internal.cloudapp.net", a, &["A 10.240.0.4"]);
        }
        ("aks", Some("aks-custom/hosts")) => {
            is("example1.org", a, &["A 10.0.0.1"]);
        }
        ("aks", Some("aks-custom/rewrite")) => {
            let reply = is("kubernetes.example.com", a, &["A 10.96.0.1"]);
            assert_eq!(reply.owners(), ["kubernetes.example.com."], "{name}");
        }
        ("aks", Some("aks-custom/search-domains")) => {
            // The override block forwards what the default templates answer NXDOMAIN for.
            is("a.b.c.d.internal.cloudapp.net", a, &["A 10.240.0.99"]);
        }
        _ => {}
    }
}

/// A CH TXT query for `name`.
fn chaos(dns: SocketAddr, name: &str) -> Reply {
    let packet = clusterdns_testkit::dns::Query::new(name, 16)
        .class(3)
        .build();
    let response = client::udp(dns, &packet).expect("chaos answer");
    Reply::parse(&response).expect("decodes")
}

#[test]
fn every_served_fixture_answers_as_coredns_does() {
    let knot = Knot::with_records("distributions", UPSTREAM_ZONES);
    let certs = Certificates::generate("distributions", TLS_NAMES);
    let unbound = Unbound::start("distributions", &certs, knot.addr);
    let upstreams = Upstreams {
        knot,
        certs,
        unbound,
    };
    let cluster = TestServer::start(golden::cluster(GOLDEN), zone_config(PodsMode::Insecure));
    let mut runs: Vec<(&str, Option<&str>)> = FIXTURES
        .iter()
        .filter(|(_, status)| *status == Status::Serves)
        .map(|(name, _)| (*name, None))
        .collect();
    runs.extend(CUSTOM.iter().map(|(name, custom)| (*name, Some(*custom))));
    // Every fixture runs, and the failures are reported together.
    let mut failed = Vec::new();
    for (name, custom) in runs {
        let started = Instant::now();
        let cluster_dns = cluster.addr();
        let upstreams = &upstreams;
        let outcome = std::panic::catch_unwind(move || {
            let run = Run::start(name, custom, upstreams, cluster_dns);
            let corefile = read(&fixture_path(name));
            assert_common(&run, &corefile);
            assert_specific(&run, custom);
            run.server.assert_alive();
        });
        match outcome {
            Ok(()) => eprintln!(
                "{name} {custom:?}: served as CoreDNS does ({:?})",
                started.elapsed()
            ),
            Err(_) => failed.push(format!("{name} {custom:?}")),
        }
    }
    cluster.server.shutdown();
    assert!(
        failed.is_empty(),
        "fixtures that failed (see above): {failed:?}"
    );
}
