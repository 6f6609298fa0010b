//! Node-local mode end to end, with real processes: a cluster-mode `clusterdns` serving a small
//! cluster from manifests as the cluster DNS, a node-local `clusterdns` in front of it, and
//! Knot DNS (`knotd`, Debian package `knot`) as the node's resolver for names outside the
//! cluster. Cluster names must travel over a few reused TCP connections, external names go to
//! knotd, and repeated names are answered from the cache; each is proven from the servers'
//! /metrics. Another sets up the node's interface and iptables rules inside a network namespace
//! of its own (as root, with `ip` and `iptables`; skipped with a message otherwise), and a third
//! shows the cluster DNS answering pipelined TCP queries as each is ready.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clusterdns_testkit::client::{answer_is, ask, read_framed};
use clusterdns_testkit::dns::{query, rcode, Query, Reply};
use clusterdns_testkit::http::{http_get, metric, status_is};
use clusterdns_testkit::knot::Knot;
use clusterdns_testkit::net::{free_port, loopback};
use clusterdns_testkit::process::{clusterdns_binary, Process};
use clusterdns_testkit::temp::TempDir;
use hickory_proto::rr::RecordType;

const POOL: u64 = 2;
const A: RecordType = RecordType::A;
const KUBERNETES: &str = "kubernetes.default.svc.cluster.local";
const WEB: &str = "web.default.svc.cluster.local";

/// One UDP exchange (3 s to answer); `None` on timeout.
fn ask_a(server: SocketAddr, name: &str) -> Option<Reply> {
    ask(server, name, A, Duration::from_secs(3))
}

/// Sends every name at once from one socket and waits for all answers (up to 5 s).
fn ask_all(server: SocketAddr, names: &[String]) -> Vec<Option<Reply>> {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    for (i, name) in names.iter().enumerate() {
        socket
            .send_to(&query(i as u16, name, 1, None), server)
            .expect("send");
    }
    let mut replies: Vec<Option<Reply>> = names.iter().map(|_| None).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    while replies.iter().any(Option::is_none) && Instant::now() < deadline {
        if let Ok((len, _)) = socket.recv_from(&mut buf) {
            let id = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
            if let Some(slot) = replies.get_mut(id) {
                *slot = Some(Reply::parse(&buf[..len]).expect("a well-formed response"));
            }
        }
    }
    replies
}

/// The sum of the samples of `name` whose labels contain every one of `labels` (0 when none).
fn sample_sum(text: &str, name: &str, labels: &[&str]) -> u64 {
    metric(text, name, labels).unwrap_or(0.0) as u64
}

/// Sends SIGTERM and waits (10 s at most) for the exit.
fn terminate(process: &Process) -> ExitStatus {
    process.terminate();
    process.wait_exit(Duration::from_secs(10))
}

/// Starts the binary with `args` and waits until `ready` holds (10 s at most).
fn start<E: std::fmt::Debug>(args: &[String], ready: impl FnMut() -> Result<(), E>) -> Process {
    let process = Process::clusterdns(args);
    let what = format!("clusterdns {args:?} ready");
    process.wait_until(Instant::now(), Duration::from_secs(10), &what, ready);
    process
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|&a| a.to_owned()).collect()
}

/// knotd serving `example.test`, the node's resolver for names outside the cluster.
fn knot() -> Knot {
    Knot::with_records("node-local", &[("example.test", "www A 192.0.2.1\n")])
}

const CLUSTER: &str = "\
apiVersion: v1
kind: Service
metadata: {name: kubernetes, namespace: default}
spec: {clusterIP: 10.96.0.1, clusterIPs: [10.96.0.1], ports: [{name: https, port: 443, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 10.96.0.20, clusterIPs: [10.96.0.20], ports: [{name: http, port: 80, protocol: TCP}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 80, protocol: TCP}]
endpoints:
- addresses: [10.1.0.1]
  conditions: {ready: true}
";

/// Where each server of the test listens.
struct Addrs {
    dns: SocketAddr,
    metrics: SocketAddr,
    ready: SocketAddr,
}

impl Addrs {
    fn free() -> Addrs {
        Addrs {
            dns: loopback(free_port()),
            metrics: loopback(free_port()),
            ready: loopback(free_port()),
        }
    }

    fn args(&self) -> Vec<String> {
        strings(&[
            "--listen",
            &self.dns.to_string(),
            "--threads",
            "1",
            "--health",
            "127.0.0.1:0",
            "--ready",
            &self.ready.to_string(),
            "--metrics",
            &self.metrics.to_string(),
            "--lameduck",
            "0",
        ])
    }

    fn metrics(&self) -> String {
        http_get(self.metrics, "/metrics").expect("metrics").1
    }
}

fn start_cluster_dns(manifests: &Path, addrs: &Addrs, upstream: SocketAddr) -> Process {
    let mut args = addrs.args();
    args.extend(strings(&[
        "--manifests",
        &manifests.to_string_lossy(),
        "--upstream",
        &upstream.to_string(),
    ]));
    let dns = addrs.dns;
    start(&args, || {
        answer_is(dns, KUBERNETES, A, Duration::from_secs(3), |_| true)
    })
}

#[test]
fn node_local_cache_in_front_of_the_cluster_dns() {
    let knot = knot();
    let dir = TempDir::new("node-local-e2e");
    let manifests = dir.write("cluster.yaml", CLUSTER);
    let cluster = Addrs::free();
    let cluster_dns = start_cluster_dns(&manifests, &cluster, knot.addr);

    let node = Addrs::free();
    let mut args = node.args();
    args.extend(strings(&[
        "--mode",
        "node-local",
        "--cluster-dns",
        &cluster.dns.to_string(),
        "--cluster-dns-connections",
        &POOL.to_string(),
        "--upstream",
        &knot.addr.to_string(),
    ]));
    let node_ready = node.ready;
    let _node_local = start(&args, || status_is(node_ready, "/ready", 200));

    // Every zone: the reverse name is counted under `.`, the block zone that routes it.
    let tcp = ["proto=\"tcp\""];
    let udp = ["proto=\"udp\""];
    let requests = "coredns_dns_requests_total";
    let before = cluster.metrics();
    let (tcp_before, udp_before) = (
        sample_sum(&before, requests, &tcp),
        sample_sum(&before, requests, &udp),
    );

    // A cluster name: the same answer as the cluster DNS gives directly.
    let direct = ask_a(cluster.dns, WEB).expect("direct");
    assert!(direct.is(&["A 10.96.0.20"]), "{direct:?}");
    let via_node = ask_a(node.dns, WEB).expect("via node");
    assert_eq!(via_node.data(), direct.data(), "{via_node:?}");
    assert_eq!(via_node.rcode, direct.rcode, "{via_node:?}");
    // A reverse name of the cluster: the cluster DNS answers it too.
    let ptr = ask(
        node.dns,
        "20.0.96.10.in-addr.arpa",
        RecordType::PTR,
        Duration::from_secs(3),
    )
    .expect("PTR");
    assert!(ptr.is(&["PTR web.default.svc.cluster.local."]), "{ptr:?}");

    // Many cluster names at once (each a miss: NXDOMAIN for made-up names), pipelined over the
    // pool's connections.
    let names: Vec<String> = (0..300)
        .map(|i| format!("missing-{i}.default.svc.cluster.local"))
        .collect();
    for batch in names.chunks(100) {
        for (name, reply) in batch.iter().zip(ask_all(node.dns, batch)) {
            let reply = reply.unwrap_or_else(|| panic!("no answer for {name}"));
            assert!(reply.nxdomain(), "{name}: {reply:?}");
        }
    }

    let after = cluster.metrics();
    let tcp_queries = sample_sum(&after, requests, &tcp) - tcp_before;
    assert_eq!(
        tcp_queries,
        2 + 300,
        "every cluster query of the node-local cache reached the cluster DNS over TCP"
    );
    assert_eq!(
        sample_sum(&after, requests, &udp) - udp_before,
        1,
        "only our direct query came over UDP"
    );
    let accepted = sample_sum(&after, "clusterdns_tcp_connections_total", &[]);
    assert!(
        (1..=POOL).contains(&accepted),
        "{accepted} TCP connections for {tcp_queries} queries: the pool's {POOL} are reused"
    );

    // Asked again: cache hits at the node, nothing more reaches the cluster DNS.
    let node_before = node.metrics();
    let hits = "coredns_cache_hits_total";
    for _ in 10..60 {
        let again = ask_a(node.dns, WEB).expect("again");
        assert!(again.is(&["A 10.96.0.20"]), "{again:?}");
    }
    let node_after = node.metrics();
    assert_eq!(
        sample_sum(&node_after, hits, &["type=\"success\""])
            - sample_sum(&node_before, hits, &["type=\"success\""]),
        50
    );
    assert_eq!(
        sample_sum(&cluster.metrics(), requests, &tcp) - tcp_before,
        tcp_queries,
        "cache hits do not reach the cluster DNS"
    );

    // An external name goes to the node's resolver (knotd), not to the cluster DNS; then it is
    // a cache hit too.
    let root_requests = |text: &str| sample_sum(text, requests, &["zone=\".\""]);
    let cluster_root = root_requests(&cluster.metrics());
    let www = ask_a(node.dns, "www.example.test").expect("external");
    assert!(www.is(&["A 192.0.2.1"]), "{www:?}");
    let again = ask_a(node.dns, "www.example.test").expect("external, again");
    assert!(again.is(&["A 192.0.2.1"]), "{again:?}");
    assert_eq!(root_requests(&cluster.metrics()), cluster_root);
    let node_text = node.metrics();
    let to_knot = format!("to=\"{}\"", knot.addr);
    assert_eq!(
        sample_sum(
            &node_text,
            "coredns_proxy_request_duration_seconds_count",
            &[&to_knot, "rcode=\"NOERROR\""]
        ),
        1,
        "{node_text}"
    );
    let to_cluster = format!("to=\"{}\"", cluster.dns);
    assert_eq!(
        sample_sum(
            &node_text,
            "coredns_proxy_request_duration_seconds_count",
            &[&to_cluster]
        ),
        2 + 300
    );
    assert_eq!(
        sample_sum(
            &node_text,
            "clusterdns_forward_tcp_connections_total",
            &[&to_cluster]
        ),
        accepted
    );

    // The cluster DNS restarts: the pool reconnects and cluster names resolve again.
    assert!(terminate(&cluster_dns).success());
    drop(cluster_dns);
    let _restarted = start_cluster_dns(&manifests, &cluster, knot.addr);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let name = format!("after-restart-{attempt}.default.svc.cluster.local");
        if ask_a(node.dns, &name).is_some_and(|r| r.nxdomain()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no answer through a new connection"
        );
    }
    let reconnected = sample_sum(
        &node.metrics(),
        "clusterdns_forward_tcp_connections_total",
        &[],
    );
    assert!(reconnected > accepted, "{reconnected} <= {accepted}");
}

/// Runs a command to completion.
fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"))
}

/// A network namespace made for one test, deleted when dropped.
struct Netns(String);

impl Netns {
    /// A new namespace for `test`, or `None` (the test is skipped, saying why) where there
    /// cannot be one here.
    fn for_test(name: &str, test: &str) -> Option<Netns> {
        Netns::create(name)
            .map_err(|why| eprintln!("{test}: skipped: {why}"))
            .ok()
    }

    /// A new namespace with loopback up, or why there cannot be one here.
    fn create(name: &str) -> Result<Netns, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root".into());
        }
        for tool in ["ip", "iptables"] {
            if Command::new(tool).arg("-V").output().is_err() {
                return Err(format!("{tool} is not installed (iproute2, iptables)"));
            }
        }
        let netns = Netns(format!("{name}-{}", std::process::id()));
        let added = run("ip", &["netns", "add", &netns.0]);
        if !added.status.success() {
            return Err(format!(
                "ip netns add: {}",
                String::from_utf8_lossy(&added.stderr)
            ));
        }
        netns.exec(&["ip", "link", "set", "lo", "up"]);
        // A kernel (or container) without the raw table cannot run this test at all.
        let raw = netns.exec(&["iptables", "-w", "5", "-t", "raw", "-S"]);
        if !raw.status.success() {
            return Err(format!(
                "iptables cannot use the raw table here: {}",
                String::from_utf8_lossy(&raw.stderr).trim()
            ));
        }
        Ok(netns)
    }

    /// Runs a command inside the namespace.
    fn exec(&self, args: &[&str]) -> Output {
        let mut all = vec!["netns", "exec", &self.0];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    fn stdout(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.exec(args).stdout).into_owned()
    }

    /// A file handle on the namespace, for setns(2).
    fn handle(&self) -> std::fs::File {
        std::fs::File::open(format!("/run/netns/{}", self.0)).expect("open the netns")
    }

    /// Starts the binary inside the namespace.
    fn spawn(&self, args: &[&str]) -> Process {
        self.spawn_with_path(args, None)
    }

    /// Starts the binary inside the namespace, finding its programs (`ip`, `iptables`) first in
    /// `path` when given.
    fn spawn_with_path(&self, args: &[&str], path: Option<&Path>) -> Process {
        let handle = self.handle();
        let fd = handle.as_raw_fd();
        let mut command = Command::new(clusterdns_binary());
        command.args(args);
        if let Some(path) = path {
            let inherited = std::env::var("PATH").unwrap_or_default();
            command.env("PATH", format!("{}:{inherited}", path.display()));
        }
        // SAFETY: setns(2) is async-signal-safe; `handle` outlives the spawn.
        unsafe {
            command.pre_exec(move || match libc::setns(fd, libc::CLONE_NEWNET) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            });
        }
        let process = Process::spawn(&mut command);
        drop(handle);
        process
    }

    /// One UDP exchange from inside the namespace; `None` on timeout.
    fn ask(&self, server: SocketAddr, packet: Vec<u8>) -> Option<Vec<u8>> {
        let handle = self.handle();
        std::thread::spawn(move || {
            // SAFETY: moves only this thread into the namespace; it ends after the exchange.
            if unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return None;
            }
            let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
            socket
                .set_read_timeout(Some(Duration::from_millis(300)))
                .ok()?;
            socket.send_to(&packet, server).ok()?;
            let mut buf = [0u8; 512];
            let len = socket.recv(&mut buf).ok()?;
            Some(buf[..len].to_vec())
        })
        .join()
        .ok()
        .flatten()
    }
}

impl Netns {
    /// Relays every datagram arriving at `from` inside the namespace on to `to`, until dropped.
    fn relay(&self, from: &str, to: &str) -> Background {
        let (from, to): (SocketAddr, SocketAddr) =
            (from.parse().expect("from"), to.parse().expect("to"));
        self.background(move |stop| {
            let socket = UdpSocket::bind(from).expect("bind the relay");
            socket
                .set_read_timeout(Some(Duration::from_millis(50)))
                .expect("timeout");
            let mut buf = [0u8; 1500];
            while !stop.load(Ordering::Relaxed) {
                if let Ok(len) = socket.recv(&mut buf) {
                    let _ = socket.send_to(&buf[..len], to);
                }
            }
            (0, 0, Duration::ZERO)
        })
    }

    /// Sends `packet` to `server` from inside the namespace, one query every `every` from
    /// sixteen sockets in turn, each waiting up to a second for its answer, until stopped.
    fn query_loop(&self, server: SocketAddr, packet: Vec<u8>, every: Duration) -> Background {
        self.background(move |stop| {
            // Sixteen source ports, taken in turn: SO_REUSEPORT spreads queries by source, so
            // each process serving the address gets its share.
            let sockets: Vec<UdpSocket> = (0..16)
                .map(|_| {
                    let socket = UdpSocket::bind("0.0.0.0:0").expect("bind the client");
                    socket
                        .set_read_timeout(Some(Duration::from_secs(1)))
                        .expect("timeout");
                    socket
                })
                .collect();
            let (mut sent, mut unanswered, mut slowest) = (0, 0, Duration::ZERO);
            let mut packet = packet;
            let mut buf = [0u8; 512];
            while !stop.load(Ordering::Relaxed) {
                let id = (sent as u16).wrapping_add(1);
                packet[..2].copy_from_slice(&id.to_be_bytes());
                let asked = Instant::now();
                let socket = &sockets[sent % sockets.len()];
                socket.send_to(&packet, server).expect("send");
                sent += 1;
                loop {
                    match socket.recv(&mut buf) {
                        Ok(len) if len >= 2 && buf[..2] == id.to_be_bytes() => {
                            slowest = slowest.max(asked.elapsed());
                            break;
                        }
                        Ok(_) => continue,
                        Err(_) => {
                            unanswered += 1;
                            break;
                        }
                    }
                }
                std::thread::sleep(every.saturating_sub(asked.elapsed()));
            }
            (sent, unanswered, slowest)
        })
    }

    /// Runs `work` on a thread inside the namespace until the result is stopped.
    fn background(
        &self,
        work: impl FnOnce(Arc<AtomicBool>) -> (usize, usize, Duration) + Send + 'static,
    ) -> Background {
        let handle = self.handle();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                // SAFETY: moves only this thread into the namespace.
                let entered = unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(entered, 0, "setns");
                work(stop)
            })
        };
        // The thread is in the namespace before its work begins.
        std::thread::sleep(Duration::from_millis(50));
        Background {
            stop,
            thread: Some(thread),
        }
    }
}

/// A thread working inside a namespace; stopped when dropped.
struct Background {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<(usize, usize, Duration)>>,
}

impl Background {
    /// Stops the work and returns what it counted: queries sent, unanswered, the slowest answer.
    fn stop(mut self) -> (usize, usize, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        (self.thread.take()).map_or((0, 0, Duration::ZERO), |t| t.join().expect("the thread"))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.0]);
    }
}

/// Every address of the namespace, one per line (`ip -o addr show`).
fn addresses(netns: &Netns) -> String {
    netns.stdout(&["ip", "-o", "addr", "show"])
}

#[test]
fn node_setup_in_a_network_namespace() {
    let Some(netns) = Netns::for_test("clusterdns-nl", "node_setup_in_a_network_namespace") else {
        return;
    };
    let interface = "nodelocaltest";
    let args = |keep: bool| {
        let extra: &[&str] = match keep {
            true => &["--lameduck", "0", "--skip-teardown"],
            false => &["--lameduck", "0"],
        };
        netns_args(interface, "127.0.0.1:5398", extra)
    };
    let raw_rule = "-A PREROUTING -d 169.254.20.10/32 -p udp -m udp --dport 53 -j NOTRACK";
    let filter_rule = "-A INPUT -d 169.254.20.10/32 -p tcp -m tcp --dport 53 -j ACCEPT";
    let rules = || {
        netns.stdout(&["iptables", "-t", "raw", "-S"])
            + &netns.stdout(&["iptables", "-t", "filter", "-S"])
    };
    let has_interface = || {
        netns
            .exec(&["ip", "link", "show", "dev", interface])
            .status
            .success()
    };
    // The kernel decides where the address goes: the dummy interface where it has the link
    // type, else lo (this project's VMs have no dummy type; the next test is about that case).
    let dummy = dummy_links(&netns);
    eprintln!(
        "node_setup_in_a_network_namespace: the address goes on {}",
        match dummy {
            Ok(()) => interface.to_owned(),
            Err(_) => "lo".to_owned(),
        }
    );

    // Up: the address is in place, the rules are in, and queries are answered there.
    let server: SocketAddr = LISTEN.parse().expect("addr");
    let running = netns.spawn(&args(false));
    let reply = wait_version_bind(&netns, &running, server);
    assert_eq!(rcode(&reply), 5, "class CH: REFUSED");
    let on = match dummy {
        Ok(()) => netns.stdout(&["ip", "-o", "addr", "show", "dev", interface]),
        Err(_) => netns.stdout(&["ip", "-o", "addr", "show", "dev", "lo"]),
    };
    assert!(on.contains("169.254.20.10/32"), "{on}");
    let installed = rules();
    for rule in [raw_rule, filter_rule] {
        assert!(installed.contains(rule), "{rule} not in\n{installed}");
    }
    assert_eq!(installed.matches("NOTRACK").count(), 6, "{installed}");

    // SIGTERM: rules and address (with the interface, if one was made) are removed.
    assert!(terminate(&running).success());
    assert!(!rules().contains("169.254.20.10"), "{}", rules());
    assert!(!has_interface(), "interface left behind");
    assert!(
        !addresses(&netns).contains("169.254.20.10"),
        "{}",
        addresses(&netns)
    );

    // With --skip-teardown they stay (for a restart that must not interrupt DNS).
    let kept = netns.spawn(&args(true));
    wait_version_bind(&netns, &kept, server);
    assert!(terminate(&kept).success());
    assert!(rules().contains(raw_rule), "{}", rules());
    assert!(
        addresses(&netns).contains("169.254.20.10/32"),
        "{}",
        addresses(&netns)
    );
}

/// The address every node-local process of these tests listens on.
const LISTEN: &str = "169.254.20.10:53";

/// Asks `version.bind` CH at `server` from inside `netns` until an answer comes (10 s at most).
fn wait_version_bind(netns: &Netns, running: &Process, server: SocketAddr) -> Vec<u8> {
    let version_bind = Query::new("version.bind", 16).id(7).class(3).build();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(reply) = netns.ask(server, version_bind.clone()) {
            return reply;
        }
        running.assert_alive();
        assert!(Instant::now() < deadline, "no answer on {server}");
    }
}

/// Whether `netns` can have dummy links; the kernel's refusal otherwise.
fn dummy_links(netns: &Netns) -> Result<(), String> {
    let made = netns.exec(&["ip", "link", "add", "probe0", "type", "dummy"]);
    match made.status.success() {
        true => {
            netns.exec(&["ip", "link", "del", "probe0"]);
            Ok(())
        }
        false => Err(String::from_utf8_lossy(&made.stderr).trim().to_owned()),
    }
}

/// An `ip` that refuses dummy links with a kernel's words and runs the real `ip` for the rest,
/// in `dir`: for a kernel that has them, where the refusal cannot be provoked for real.
fn ip_without_dummy_links(dir: &TempDir) -> PathBuf {
    let real = String::from_utf8_lossy(&run("sh", &["-c", "command -v ip"]).stdout)
        .trim()
        .to_owned();
    assert!(!real.is_empty(), "no ip on PATH");
    let script = format!(
        "#!/bin/sh\n\
         for arg; do\n\
         \x20 if [ \"$arg\" = dummy ]; then echo 'Error: Unknown device type.' >&2; exit 2; fi\n\
         done\n\
         exec {real} \"$@\"\n"
    );
    let ip = dir.write("ip", &script);
    let mut mode = std::fs::metadata(&ip).expect("ip").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut mode, 0o755);
    std::fs::set_permissions(&ip, mode).expect("chmod");
    dir.path().to_path_buf()
}

/// Where no dummy interface can be made, node-local mode puts its address on lo with scope
/// host: a pod behind a veth pair reaches it through the NOTRACK rules, and the teardown
/// removes the rules and the address and leaves lo as it was. On a kernel without the dummy
/// type (this project's VMs) the refusal is the kernel's own; elsewhere an `ip` that refuses
/// dummy links stands in for it, and the test says which.
#[test]
fn without_dummy_interfaces_the_address_goes_on_loopback() {
    let test = "without_dummy_interfaces_the_address_goes_on_loopback";
    let Some(node) = Netns::for_test("clusterdns-lo", test) else {
        return;
    };
    let Some(pod) = Netns::for_test("clusterdns-pod", test) else {
        return;
    };
    let dir = TempDir::new("node-local-no-dummy");
    let path = match dummy_links(&node) {
        Err(refusal) => {
            eprintln!("{test}: the kernel refuses dummy links ({refusal}): the real failure");
            None
        }
        Ok(()) => {
            eprintln!("{test}: this kernel has dummy links: an `ip` that refuses them stands in");
            Some(ip_without_dummy_links(&dir))
        }
    };
    // The pod: a veth pair to the node, and a route to the link-local address through it.
    let veth = node.exec(&[
        "ip",
        "link",
        "add",
        "vnode",
        "type",
        "veth",
        "peer",
        "name",
        "vpod",
        "netns",
        pod.0.as_str(),
    ]);
    assert!(veth.status.success(), "{veth:?}");
    for (netns, device, address) in [
        (&node, "vnode", "10.250.0.1/30"),
        (&pod, "vpod", "10.250.0.2/30"),
    ] {
        assert!(netns
            .exec(&["ip", "addr", "add", address, "dev", device])
            .status
            .success());
        assert!(netns
            .exec(&["ip", "link", "set", device, "up"])
            .status
            .success());
    }
    let route = pod.exec(&[
        "ip",
        "route",
        "add",
        "169.254.20.10/32",
        "via",
        "10.250.0.1",
    ]);
    assert!(route.status.success(), "{route:?}");
    let lo_before = node.stdout(&["ip", "-o", "addr", "show", "dev", "lo"]);

    let interface = "nodelocaldns";
    let args = netns_args(interface, "127.0.0.1:5398", &["--lameduck", "0"]);
    let running = node.spawn_with_path(&args, path.as_deref());
    let server: SocketAddr = LISTEN.parse().expect("addr");
    let started = Instant::now();
    let reply = wait_version_bind(&pod, &running, server);
    assert_eq!(rcode(&reply), 5, "class CH: REFUSED");
    eprintln!(
        "{test}: answered the pod {:?} after start",
        started.elapsed()
    );
    let stderr = running.stderr();
    assert!(
        stderr.contains("no dummy interface can be made here")
            && stderr.contains(&format!("`ip link add {interface} type dummy` failed"))
            && stderr.contains("Unknown device type"),
        "{stderr}"
    );
    let lo = node.stdout(&["ip", "-o", "addr", "show", "dev", "lo"]);
    assert!(lo.contains("inet 169.254.20.10/32 scope host lo"), "{lo}");
    let link = node.exec(&["ip", "link", "show", "dev", interface]);
    assert!(!link.status.success(), "no {interface} was made");
    let rules = node.stdout(&["iptables", "-t", "raw", "-S"]);
    assert_eq!(rules.matches("NOTRACK").count(), 6, "{rules}");

    assert!(terminate(&running).success());
    let rules = node.stdout(&["iptables", "-t", "raw", "-S"])
        + &node.stdout(&["iptables", "-t", "filter", "-S"]);
    assert!(
        !rules.contains("169.254.20.10"),
        "rules left behind:\n{rules}"
    );
    assert_eq!(
        node.stdout(&["ip", "-o", "addr", "show", "dev", "lo"]),
        lo_before,
        "lo as it was before"
    );
    let up = node.stdout(&["ip", "-o", "link", "show", "dev", "lo"]);
    assert!(up.contains("UP"), "{up}");
}

/// The arguments of a node-local process in a test namespace, upstreams pointing at `upstream`
/// (the cluster DNS is never asked).
fn netns_args<'a>(interface: &'a str, upstream: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--mode",
        "node-local",
        "--listen",
        LISTEN,
        "--threads",
        "1",
        "--cluster-dns",
        "127.0.0.1:5399",
        "--upstream",
        upstream,
        "--health",
        "169.254.20.10:8080",
        "--ready",
        "127.0.0.1:8181",
        "--metrics",
        "127.0.0.1:9253",
        "--setup-interface",
        interface,
        "--setup-iptables",
    ];
    args.extend_from_slice(extra);
    args
}

/// A forwarding loop found at startup stops the process the way SIGTERM does: with the reason
/// on stderr and exit status 1, and with the node's interface and rules removed.
#[test]
fn a_forwarding_loop_stops_the_process_through_the_teardown() {
    let Some(netns) = Netns::for_test(
        "clusterdns-loop",
        "a_forwarding_loop_stops_the_process_through_the_teardown",
    ) else {
        return;
    };
    let interface = "nodelocalloop";
    // The "upstream" hands every query back to us: a loop.
    let relay = netns.relay("127.0.0.1:5398", "169.254.20.10:53");
    let running = netns.spawn(&netns_args(
        interface,
        "127.0.0.1:5398",
        &["--lameduck", "5"],
    ));
    let status = running.wait_exit(Duration::from_secs(20));
    drop(relay);
    let stderr = running.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("forwarding loop"), "{stderr}");
    let rules = netns.stdout(&["iptables", "-t", "raw", "-S"]);
    assert!(
        !rules.contains("169.254.20.10"),
        "rules left behind:\n{rules}"
    );
    let interface_left = netns.exec(&["ip", "link", "show", "dev", interface]);
    assert!(!interface_left.status.success(), "interface left behind");
    assert!(
        !addresses(&netns).contains("169.254.20.10"),
        "address left behind:\n{}",
        addresses(&netns)
    );
}

/// An upgrade as the node-local DaemonSet does it (maxSurge): a new process starts beside the
/// old one on the same addresses, then the old one gets SIGTERM. Five replacements under a
/// steady stream of queries lose none, and the interface and rules stay up throughout.
#[test]
fn node_local_replacements_drop_nothing() {
    let Some(netns) = Netns::for_test("clusterdns-up", "node_local_replacements_drop_nothing")
    else {
        return;
    };
    let interface = "nodelocalup";
    let args = netns_args(
        interface,
        "127.0.0.1:5398",
        &["--lameduck", "1", "--handover-wait", "5"],
    );
    let serving = |process: &Process| {
        process.wait_until(
            Instant::now(),
            Duration::from_secs(10),
            "serving",
            || match process.stderr().contains("serving") {
                true => Ok(()),
                false => Err("not yet"),
            },
        );
    };
    let mut current = netns.spawn(&args);
    serving(&current);
    // version.bind CH: answered (REFUSED) at once by every process, from the first query.
    let load = netns.query_loop(
        "169.254.20.10:53".parse().expect("addr"),
        Query::new("version.bind", 16).class(3).build(),
        Duration::from_millis(2),
    );
    for _ in 0..5 {
        let next = netns.spawn(&args);
        serving(&next);
        current.terminate();
        assert!(current.wait_exit(Duration::from_secs(20)).success());
        let stderr = current.stderr();
        assert!(stderr.contains("handing over"), "{stderr}");
        let rules = netns.stdout(&["iptables", "-t", "raw", "-S"]);
        assert!(rules.contains("169.254.20.10"), "rules removed:\n{rules}");
        current = next;
    }
    let (sent, unanswered, slowest) = load.stop();
    eprintln!(
        "node_local_replacements_drop_nothing: 5 replacements, {sent} queries, {unanswered} \
         unanswered, slowest answer {slowest:?}"
    );
    assert!(sent > 1000, "{sent} queries");
    assert_eq!(unanswered, 0, "{unanswered} of {sent} queries unanswered");
    // The last one, alone, tears the setup down.
    assert!(terminate(&current).success());
    let rules = netns.stdout(&["iptables", "-t", "raw", "-S"]);
    assert!(!rules.contains("169.254.20.10"), "{rules}");
    assert!(
        !addresses(&netns).contains("169.254.20.10"),
        "{}",
        addresses(&netns)
    );
}

/// The cluster DNS answers the queries pipelined on one TCP connection as each is ready: a
/// query waiting on a silent upstream does not hold up the cluster names behind it (the
/// node-local cache sends all its cluster queries over two such connections).
#[test]
fn pipelined_tcp_queries_are_answered_as_each_is_ready() {
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let dir = TempDir::new("node-local-pipelined");
    let manifests = dir.write("cluster.yaml", CLUSTER);
    let cluster = Addrs::free();
    let mut args = cluster.args();
    args.extend(strings(&[
        "--manifests",
        &manifests.to_string_lossy(),
        "--upstream",
        &silent.local_addr().expect("addr").to_string(),
        "--forward-timeout-ms",
        "1000",
    ]));
    let dns = cluster.dns;
    let _cluster_dns = start(&args, || {
        answer_is(dns, KUBERNETES, A, Duration::from_secs(3), |_| true)
    });

    let mut stream = TcpStream::connect(dns).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut frames = Vec::new();
    for (id, name) in [(1, "www.example.test"), (2, KUBERNETES), (3, WEB)] {
        let packet = query(id, name, 1, None);
        frames.extend_from_slice(&(packet.len() as u16).to_be_bytes());
        frames.extend_from_slice(&packet);
    }
    let sent = Instant::now();
    stream.write_all(&frames).expect("send");
    let mut answers = Vec::new();
    for _ in 0..3 {
        let packet = read_framed(&mut stream).expect("answer");
        let id = u16::from_be_bytes([packet[0], packet[1]]);
        answers.push((id, rcode(&packet), sent.elapsed()));
    }
    let order: Vec<(u16, u8)> = answers.iter().map(|&(id, rcode, _)| (id, rcode)).collect();
    assert_eq!(order, [(2, 0), (3, 0), (1, 2)], "{answers:?}");
    assert!(answers[1].2 < Duration::from_millis(500), "{answers:?}");
    assert!(answers[2].2 >= Duration::from_millis(900), "{answers:?}");
}
