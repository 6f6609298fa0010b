//! Node-local mode end to end, with real processes: a cluster-mode `clusterdns` serving a small
//! cluster from manifests as the cluster DNS, a node-local `clusterdns` in front of it, and
//! Knot DNS (`knotd`, Debian package `knot`) as the node's resolver for names outside the
//! cluster. Cluster names must travel over a few reused TCP connections, external names go to
//! knotd, and repeated names are answered from the cache; each is proven from the servers'
//! /metrics. Another sets up the node's interface and iptables rules inside a network namespace
//! of its own (as root, with `ip` and `iptables`; skipped with a message otherwise), and a third
//! shows the cluster DNS answering pipelined TCP queries as each is ready.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_clusterdns");
const POOL: u64 = 2;

/// A free loopback port for both UDP and TCP (bound and released).
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "clusterdns-nodelocal-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A query with RD set; `qclass` 1 is IN.
fn query(id: u16, name: &str, qtype: u16, qclass: u16) -> Vec<u8> {
    let mut out = vec![(id >> 8) as u8, id as u8, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&qclass.to_be_bytes());
    out
}

/// What a response says: rcode, answer count, and the RDATA of the last answer record.
#[derive(Debug, PartialEq, Eq)]
struct Reply {
    rcode: u8,
    answers: u16,
    last_rdata: Vec<u8>,
}

fn parse_reply(packet: &[u8]) -> Reply {
    let answers = u16::from_be_bytes([packet[6], packet[7]]);
    Reply {
        rcode: packet[3] & 0x0F,
        answers,
        last_rdata: last_rdata(packet, answers).unwrap_or_default(),
    }
}

/// The RDATA of the last answer record (question and answers walked; names may be compressed).
fn last_rdata(packet: &[u8], answers: u16) -> Option<Vec<u8>> {
    let skip_name = |mut at: usize| -> Option<usize> {
        loop {
            let len = *packet.get(at)?;
            if len & 0xC0 == 0xC0 {
                return Some(at + 2);
            }
            at += 1 + usize::from(len);
            if len == 0 {
                return Some(at);
            }
        }
    };
    let mut at = skip_name(12)? + 4;
    let mut rdata = None;
    for _ in 0..answers {
        at = skip_name(at)?;
        let len = usize::from(u16::from_be_bytes([
            *packet.get(at + 8)?,
            *packet.get(at + 9)?,
        ]));
        rdata = packet.get(at + 10..at + 10 + len);
        at += 10 + len;
    }
    rdata.map(<[u8]>::to_vec)
}

/// One UDP exchange; `None` on timeout.
fn ask(server: SocketAddr, id: u16, name: &str, qtype: u16) -> Option<Reply> {
    let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    socket.send_to(&query(id, name, qtype, 1), server).ok()?;
    let mut buf = [0u8; 4096];
    loop {
        let (len, _) = socket.recv_from(&mut buf).ok()?;
        if len >= 12 && u16::from_be_bytes([buf[0], buf[1]]) == id {
            return Some(parse_reply(&buf[..len]));
        }
    }
}

/// Sends every name at once from one socket and waits for all answers (up to 5 s).
fn ask_all(server: SocketAddr, names: &[String]) -> Vec<Option<Reply>> {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    for (i, name) in names.iter().enumerate() {
        socket
            .send_to(&query(i as u16, name, 1, 1), server)
            .expect("send");
    }
    let mut replies: Vec<Option<Reply>> = names.iter().map(|_| None).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    while replies.iter().any(Option::is_none) && Instant::now() < deadline {
        if let Ok((len, _)) = socket.recv_from(&mut buf) {
            let id = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
            if let Some(slot) = replies.get_mut(id) {
                *slot = Some(parse_reply(&buf[..len]));
            }
        }
    }
    replies
}

/// GET `path` over HTTP/1.1: (status, body).
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// The sum of the samples of `metric` whose labels contain every one of `labels`.
fn sample_sum(text: &str, metric: &str, labels: &[&str]) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    /// Sends SIGTERM and waits for the exit.
    fn terminate(&mut self) -> ExitStatus {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        self.exited()
    }

    /// Waits up to 10 s for the exit.
    fn exited(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.0.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Starts the binary with `args` and waits until `ready` holds (10 s at most).
fn start(args: &[String], mut ready: impl FnMut() -> bool) -> Running {
    let mut running = Running(
        Command::new(BIN)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn clusterdns"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        if let Ok(Some(status)) = running.0.try_wait() {
            let mut stderr = String::new();
            if let Some(mut pipe) = running.0.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            panic!("clusterdns {args:?} exited ({status}):\n{stderr}");
        }
        assert!(Instant::now() < deadline, "clusterdns {args:?} not ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    running
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|&a| a.to_owned()).collect()
}

/// knotd serving `example.test` on a loopback port.
struct Knot {
    _child: Running,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Knot {
    fn start() -> Knot {
        let knotd = ["/usr/sbin/knotd", "/usr/local/sbin/knotd"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!("knotd (Knot DNS) is not installed: `apt-get install knot` (CI does)")
            });
        let dir = temp_dir("knot");
        std::fs::create_dir_all(dir.join("db")).expect("db dir");
        std::fs::write(
            dir.join("example.test.zone"),
            "$ORIGIN example.test.\n$TTL 300\n\
             @ 3600 IN SOA ns.example.test. hostmaster.example.test. 1 7200 3600 1209600 60\n\
             @ NS ns\nns A 192.0.2.53\nwww A 192.0.2.1\n",
        )
        .expect("zone file");
        let port = free_port();
        let d = dir.display();
        std::fs::write(
            dir.join("knot.conf"),
            format!(
                "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\n    udp-workers: 1\n    \
                 tcp-workers: 1\n    background-workers: 1\n\
                 database:\n    storage: \"{d}/db\"\n\
                 log:\n  - target: stderr\n    any: warning\n\
                 template:\n  - id: default\n    storage: \"{d}\"\n    zonefile-sync: -1\n    \
                 journal-content: none\n\
                 zone:\n  - domain: example.test.\n    file: \"example.test.zone\"\n"
            ),
        )
        .expect("knot.conf");
        let child = Command::new(knotd)
            .arg("-c")
            .arg(dir.join("knot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("knotd starts");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Running(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while ask(addr, 1, "www.example.test", 1).is_none() {
            assert!(Instant::now() < deadline, "knotd did not answer on {addr}");
        }
        Knot {
            _child: child,
            addr,
            dir,
        }
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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
        let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
        Addrs {
            dns: at(free_port()),
            metrics: at(free_port()),
            ready: at(free_port()),
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

fn start_cluster_dns(manifests: &std::path::Path, addrs: &Addrs, upstream: SocketAddr) -> Running {
    let mut args = addrs.args();
    args.extend(strings(&[
        "--manifests",
        &manifests.to_string_lossy(),
        "--upstream",
        &upstream.to_string(),
    ]));
    let dns = addrs.dns;
    start(&args, || {
        ask(dns, 1, "kubernetes.default.svc.cluster.local", 1).is_some()
    })
}

#[test]
fn node_local_cache_in_front_of_the_cluster_dns() {
    let knot = Knot::start();
    let dir = temp_dir("e2e");
    let manifests = dir.join("cluster.yaml");
    std::fs::write(&manifests, CLUSTER).expect("manifests");
    let cluster = Addrs::free();
    let mut cluster_dns = start_cluster_dns(&manifests, &cluster, knot.addr);

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
    let _node_local = start(&args, || {
        http_get(node_ready, "/ready").is_some_and(|(status, _)| status == 200)
    });

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
    let direct = ask(cluster.dns, 2, "web.default.svc.cluster.local", 1).expect("direct");
    assert_eq!(direct.last_rdata, vec![10, 96, 0, 20]);
    let via_node = ask(node.dns, 3, "web.default.svc.cluster.local", 1).expect("via node");
    assert_eq!(via_node, direct);
    // A reverse name of the cluster: the cluster DNS answers it too.
    let ptr = ask(node.dns, 4, "20.0.96.10.in-addr.arpa", 12).expect("PTR");
    assert_eq!((ptr.rcode, ptr.answers), (0, 1), "{ptr:?}");

    // Many cluster names at once (each a miss: NXDOMAIN for made-up names), pipelined over the
    // pool's connections.
    let names: Vec<String> = (0..300)
        .map(|i| format!("missing-{i}.default.svc.cluster.local"))
        .collect();
    for batch in names.chunks(100) {
        for (name, reply) in batch.iter().zip(ask_all(node.dns, batch)) {
            let reply = reply.unwrap_or_else(|| panic!("no answer for {name}"));
            assert_eq!(reply.rcode, 3, "{name}: {reply:?}");
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
    for id in 10..60 {
        let again = ask(node.dns, id, "web.default.svc.cluster.local", 1).expect("again");
        assert_eq!(again.last_rdata, vec![10, 96, 0, 20]);
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
    let www = ask(node.dns, 70, "www.example.test", 1).expect("external");
    assert_eq!(www.last_rdata, vec![192, 0, 2, 1]);
    assert_eq!(ask(node.dns, 71, "www.example.test", 1), Some(www));
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
    assert!(cluster_dns.terminate().success());
    drop(cluster_dns);
    cluster_dns = start_cluster_dns(&manifests, &cluster, knot.addr);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let name = format!("after-restart-{attempt}.default.svc.cluster.local");
        if ask(node.dns, 80, &name, 1).is_some_and(|r| r.rcode == 3) {
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
    drop(cluster_dns);
    let _ = std::fs::remove_dir_all(&dir);
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
    fn spawn(&self, args: &[&str]) -> Running {
        let handle = self.handle();
        let fd = handle.as_raw_fd();
        let mut command = Command::new(BIN);
        command
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: setns(2) is async-signal-safe; `handle` outlives the spawn.
        unsafe {
            command.pre_exec(move || match libc::setns(fd, libc::CLONE_NEWNET) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            });
        }
        let child = command.spawn().expect("spawn in the netns");
        drop(handle);
        Running(child)
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

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.0]);
    }
}

#[test]
fn node_setup_in_a_network_namespace() {
    let netns = match Netns::create("clusterdns-nl") {
        Ok(netns) => netns,
        Err(why) => {
            eprintln!("node_setup_in_a_network_namespace: skipped: {why}");
            return;
        }
    };
    let interface = "nodelocaltest";
    let listen = "169.254.20.10:53";
    let args = |keep: bool| {
        let mut args = vec![
            "--mode",
            "node-local",
            "--listen",
            listen,
            "--threads",
            "1",
            "--cluster-dns",
            "127.0.0.1:5399",
            "--upstream",
            "127.0.0.1:5398",
            "--health",
            "169.254.20.10:8080",
            "--ready",
            "127.0.0.1:8181",
            "--metrics",
            "127.0.0.1:9253",
            "--lameduck",
            "0",
            "--setup-interface",
            interface,
            "--setup-iptables",
        ];
        if keep {
            args.push("--skip-teardown");
        }
        args
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

    // Some kernels (this project's VMs among them) have no dummy interface type: then the error
    // names the command and the kernel's reason, and nothing is left behind. An existing
    // interface of any type is used as it is, so the rest of the test runs either way.
    let dummy = netns.exec(&["ip", "link", "add", "probe0", "type", "dummy"]);
    if dummy.status.success() {
        netns.exec(&["ip", "link", "del", "probe0"]);
    } else {
        let mut failed = netns.spawn(&args(false));
        let status = failed.exited();
        let mut stderr = String::new();
        if let Some(mut pipe) = failed.0.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        assert!(!status.success());
        assert!(
            stderr.contains("cannot set up the node")
                && stderr.contains(&format!("`ip link add {interface} type dummy` failed")),
            "{stderr}"
        );
        assert!(!has_interface() && !rules().contains("NOTRACK"));
        let made = netns.exec(&["ip", "link", "add", interface, "type", "bridge"]);
        assert!(made.status.success(), "{made:?}");
    }

    // Up: the address is on the interface, the rules are in, and queries are answered there.
    let server: SocketAddr = listen.parse().expect("addr");
    let version_bind = query(7, "version.bind", 16, 3);
    let mut running = netns.spawn(&args(false));
    let deadline = Instant::now() + Duration::from_secs(10);
    let reply = loop {
        if let Some(reply) = netns.ask(server, version_bind.clone()) {
            break reply;
        }
        assert!(
            running.0.try_wait().expect("wait").is_none(),
            "exited early"
        );
        assert!(Instant::now() < deadline, "no answer on {server}");
    };
    assert_eq!(reply[3] & 0x0F, 5, "class CH: REFUSED");
    let addrs = netns.stdout(&["ip", "-o", "addr", "show", "dev", interface]);
    assert!(addrs.contains("169.254.20.10/32"), "{addrs}");
    let installed = rules();
    for rule in [raw_rule, filter_rule] {
        assert!(installed.contains(rule), "{rule} not in\n{installed}");
    }
    assert_eq!(installed.matches("NOTRACK").count(), 6, "{installed}");

    // SIGTERM: rules and interface are removed.
    assert!(running.terminate().success());
    assert!(!rules().contains("169.254.20.10"), "{}", rules());
    assert!(!has_interface(), "interface left behind");

    // With --skip-teardown they stay (for a restart that must not interrupt DNS).
    netns.exec(&["ip", "link", "add", interface, "type", "bridge"]);
    let mut kept = netns.spawn(&args(true));
    let deadline = Instant::now() + Duration::from_secs(10);
    while netns.ask(server, version_bind.clone()).is_none() {
        assert!(Instant::now() < deadline, "no answer on {server}");
    }
    assert!(kept.terminate().success());
    assert!(rules().contains(raw_rule), "{}", rules());
    assert!(has_interface());
}

/// The cluster DNS answers the queries pipelined on one TCP connection as each is ready: a
/// query waiting on a silent upstream does not hold up the cluster names behind it (the
/// node-local cache sends all its cluster queries over two such connections).
#[test]
fn pipelined_tcp_queries_are_answered_as_each_is_ready() {
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let dir = temp_dir("pipelined");
    let manifests = dir.join("cluster.yaml");
    std::fs::write(&manifests, CLUSTER).expect("manifests");
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
        ask(dns, 1, "kubernetes.default.svc.cluster.local", 1).is_some()
    });

    let mut stream = TcpStream::connect(dns).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut frames = Vec::new();
    for (id, name) in [
        (1, "www.example.test"),
        (2, "kubernetes.default.svc.cluster.local"),
        (3, "web.default.svc.cluster.local"),
    ] {
        let packet = query(id, name, 1, 1);
        frames.extend_from_slice(&(packet.len() as u16).to_be_bytes());
        frames.extend_from_slice(&packet);
    }
    let sent = Instant::now();
    stream.write_all(&frames).expect("send");
    let mut answers = Vec::new();
    for _ in 0..3 {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).expect("length");
        let mut packet = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut packet).expect("answer");
        let id = u16::from_be_bytes([packet[0], packet[1]]);
        answers.push((id, packet[3] & 0x0F, sent.elapsed()));
    }
    let order: Vec<(u16, u8)> = answers.iter().map(|&(id, rcode, _)| (id, rcode)).collect();
    assert_eq!(order, [(2, 0), (3, 0), (1, 2)], "{answers:?}");
    assert!(answers[1].2 < Duration::from_millis(500), "{answers:?}");
    assert!(answers[2].2 >= Duration::from_millis(900), "{answers:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
