//! `ndots`: what a Pod's resolver goes through to resolve a name with the default
//! `ndots:5` resolv.conf, against clusterdns with and without `--autopath`, side by side.
//!
//! A client at 127.0.0.2 is a Pod of namespace `apps` (the manifest says so); its resolver
//! tries `<name>.apps.svc.cluster.local`, `<name>.svc.cluster.local`, `<name>.cluster.local`,
//! `<name>.corp.test` (the node's search domain) and the name as written, A and AAAA at each
//! step as glibc does, and stops at the first step that is not NXDOMAIN. Names outside the
//! cluster are answered by a Knot DNS on loopback, through clusterdns's cache.
//!
//! ```text
//! cargo build --profile dist -p clusterdns -p clusterdns-bench --bin ndots
//! CLUSTERDNS_BIN=target/dist/clusterdns target/dist/ndots [--rounds 200]
//! ```
//!
//! Prints, per name, the queries one resolution takes and its median and p99 wall time, warm
//! (the cache already holds the upstream answers), for both servers.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clusterdns_testkit::dns::{Query, Reply};
use clusterdns_testkit::knot::Knot;
use clusterdns_testkit::net::{free_port, loopback};
use clusterdns_testkit::process::Process;
use clusterdns_testkit::temp::TempDir;
use hickory_proto::op::ResponseCode;

/// The client Pod's search path, as kubelet writes it for namespace `apps`, plus the node's.
const SEARCH: [&str; 4] = [
    "apps.svc.cluster.local",
    "svc.cluster.local",
    "cluster.local",
    "corp.test",
];

/// What is resolved: an external name, a Service of another namespace, one of the Pod's own
/// namespace, and a name that exists nowhere.
const NAMES: [&str; 4] = ["api.example.test", "pg.db", "web", "nothing.example.test"];

const MANIFEST: &str = "\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: apps}
spec: {clusterIP: 10.96.1.10, clusterIPs: [10.96.1.10], ports: [{name: http, port: 80, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: pg, namespace: db}
spec: {clusterIP: 10.96.2.20, clusterIPs: [10.96.2.20], ports: [{name: pg, port: 5432, protocol: TCP}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: apps}
spec: {containers: [{name: c, image: busybox}]}
status: {phase: Running, podIP: 127.0.0.2, podIPs: [{ip: 127.0.0.2}]}
";

fn main() -> ExitCode {
    let rounds = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => 200,
        [flag, value] if flag == "--rounds" => match value.parse() {
            Ok(rounds) => rounds,
            Err(_) => return usage(),
        },
        _ => return usage(),
    };
    let knot = Knot::with_records(
        "ndots",
        &[("example.test", "api A 192.0.2.1\n"), ("corp.test", "")],
    );
    let dir = TempDir::new("ndots");
    dir.write("cluster.yaml", MANIFEST);
    dir.write("resolv.conf", "search corp.test\n");
    println!(
        "| name | queries, plain | queries, autopath | median / p99, plain | median / p99, \
         autopath |"
    );
    println!("| --- | --- | --- | --- | --- |");
    let plain = start(&dir, knot.addr, false);
    let autopath = start(&dir, knot.addr, true);
    for name in NAMES {
        let (plain_queries, plain_times) = measure(plain.1, name, rounds);
        let (auto_queries, auto_times) = measure(autopath.1, name, rounds);
        println!(
            "| `{name}` | {plain_queries} | {auto_queries} | {} | {} |",
            quantiles(plain_times),
            quantiles(auto_times)
        );
    }
    ExitCode::SUCCESS
}

fn usage() -> ExitCode {
    eprintln!("usage: ndots [--rounds N]");
    ExitCode::FAILURE
}

/// Starts clusterdns on the manifest, forwarding to `upstream`, with or without autopath.
fn start(dir: &TempDir, upstream: SocketAddr, autopath: bool) -> (Process, SocketAddr) {
    let dns = loopback(free_port());
    let mut args = vec![
        "--manifests".to_owned(),
        dir.path().join("cluster.yaml").display().to_string(),
        "--resolv-conf".to_owned(),
        dir.path().join("resolv.conf").display().to_string(),
        "--upstream".to_owned(),
        upstream.to_string(),
        "--listen".to_owned(),
        dns.to_string(),
        "--threads".to_owned(),
        "1".to_owned(),
    ];
    for flag in ["--health", "--ready", "--metrics"] {
        args.push(flag.to_owned());
        args.push(loopback(free_port()).to_string());
    }
    if autopath {
        args.push("--autopath".to_owned());
    }
    let process = Process::clusterdns(&args);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ask(dns, "web.apps.svc.cluster.local", 1).is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    (process, dns)
}

/// Resolves `name` `rounds` times after one warm-up; returns the queries one resolution
/// takes and each resolution's wall time.
fn measure(server: SocketAddr, name: &str, rounds: usize) -> (usize, Vec<Duration>) {
    resolve(server, name);
    let mut times = Vec::with_capacity(rounds);
    let mut queries = 0;
    for _ in 0..rounds {
        let started = Instant::now();
        queries = resolve(server, name);
        times.push(started.elapsed());
    }
    (queries, times)
}

/// Resolves `name` as glibc does with `ndots:5` and [`SEARCH`]: each step asks A and AAAA and
/// the walk stops at the first step that is not NXDOMAIN. Returns the queries sent.
fn resolve(server: SocketAddr, name: &str) -> usize {
    let dots = name.matches('.').count();
    let mut candidates: Vec<String> = Vec::new();
    if dots < 5 {
        candidates.extend(SEARCH.iter().map(|domain| format!("{name}.{domain}")));
    }
    candidates.push(name.to_owned());
    let mut sent = 0;
    for candidate in candidates {
        let a = ask(server, &candidate, 1);
        let aaaa = ask(server, &candidate, 28);
        sent += 2;
        let nxdomain = |reply: &Option<Reply>| {
            reply
                .as_ref()
                .is_some_and(|r| r.rcode == ResponseCode::NXDomain)
        };
        if !(nxdomain(&a) && nxdomain(&aaaa)) {
            break;
        }
    }
    sent
}

/// One query from the client Pod's address (127.0.0.2).
fn ask(server: SocketAddr, name: &str, qtype: u16) -> Option<Reply> {
    let socket = UdpSocket::bind((IpAddr::from([127, 0, 0, 2]), 0)).ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    socket
        .send_to(&Query::new(name, qtype).build(), server)
        .ok()?;
    let mut buf = [0u8; 4096];
    let len = socket.recv(&mut buf).ok()?;
    Reply::parse(&buf[..len]).ok()
}

/// `median / p99` in microseconds.
fn quantiles(mut times: Vec<Duration>) -> String {
    times.sort();
    let at = |q: f64| {
        let i = ((times.len() as f64 * q) as usize).min(times.len().saturating_sub(1));
        times.get(i).map_or(0, |d| d.as_micros())
    };
    format!("{} / {} µs", at(0.5), at(0.99))
}
