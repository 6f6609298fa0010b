//! `compare`: clusterdns side by side with Knot DNS, NSD and Unbound on the same synthetic cluster
//! (ARCHITECTURE.md, "Measuring"). For each size: generate the cluster (manifests, query files,
//! zone files), start every server on loopback pinned to CPU 0, check that their answers agree with
//! clusterdns's on a sample of the query files, then run interleaved rounds (A B C D A B C D...) of
//! the load generator (and dnsperf) pinned to CPU 1, and print a table per query file.
//!
//! Run it through `bench/scripts/compare.sh`, which builds the release binaries first. It
//! installs what is missing with apt-get (root), writes every config into a temporary
//! directory, and stops the servers it started on exit.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use clusterdns::ops::process;
use clusterdns_bench::check::{answer_set, AnswerSet};
use clusterdns_bench::generate::DEFAULT_DOMAIN;
use clusterdns_bench::packet::query_packet;
use clusterdns_bench::queryfile::qtype_code;
use serde_json::Value;

/// Runs clusterdns, Knot DNS, NSD and Unbound side by side and prints comparison tables.
#[derive(Debug, Parser)]
#[command(name = "compare", version, about, long_about = None)]
struct Args {
    /// Cluster sizes in Services (`1k`, `10k`, `50k`...); each gets 10 endpoints per Service.
    #[arg(long, default_value = "1k,10k,50k", value_delimiter = ',', value_parser = parse_size)]
    sizes: Vec<usize>,
    /// Interleaved rounds per size (the table shows the median).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of load per run.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Servers to run, in round order.
    #[arg(
        long,
        default_value = "clusterdns,clusterdns-corefile,knot,nsd,unbound",
        value_delimiter = ','
    )]
    servers: Vec<ServerKind>,
    /// Load clients, each run in turn against every server.
    #[arg(long, default_value = "loadgen,dnsperf", value_delimiter = ',')]
    clients: Vec<ClientKind>,
    /// Also run clusterdns with 2 workers (on CPUs 0 and 1, shared with the load generator).
    #[arg(long)]
    threads: bool,
    /// Query lines of the sample checked against clusterdns per query file (0: no check).
    #[arg(long, default_value_t = 2000)]
    check_sample: usize,
    /// Seconds without any `rustc` process required before each measured run.
    #[arg(long, default_value_t = 30)]
    quiet_secs: u64,
    /// Longest total wait for that quiet over the whole comparison, in seconds; once spent,
    /// runs are measured anyway and flagged.
    #[arg(long, default_value_t = 600)]
    max_quiet_wait: u64,
    /// First loopback port; servers take consecutive ports from it.
    #[arg(long, default_value_t = 5400)]
    base_port: u16,
    /// CPU the servers are pinned to.
    #[arg(long, default_value_t = 0)]
    server_cpu: usize,
    /// CPU the load clients are pinned to.
    #[arg(long, default_value_t = 1)]
    client_cpu: usize,
    /// Directory of the release binaries (clusterdns, gen-cluster, loadgen) [default: this
    /// binary's].
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Keep the generated files, configs and logs.
    #[arg(long)]
    keep: bool,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// UDP socket buffers asked of NSD and Unbound: what clusterdns sets (Knot sets its own).
const SOCKET_BUFFER: usize = 4 << 20;

/// A server under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
enum ServerKind {
    /// clusterdns, one worker.
    Clusterdns,
    /// clusterdns, two workers (only with --threads).
    #[value(skip)]
    Clusterdns2,
    /// clusterdns, one worker, configured by kubeadm's default Corefile instead of flags.
    ClusterdnsCorefile,
    /// Knot DNS (knotd).
    Knot,
    /// NSD.
    Nsd,
    /// Unbound, serving the zones with auth-zone.
    Unbound,
}

impl ServerKind {
    fn name(self) -> &'static str {
        match self {
            ServerKind::Clusterdns => "clusterdns",
            ServerKind::Clusterdns2 => "clusterdns 2w*",
            ServerKind::ClusterdnsCorefile => "clusterdns kubeadm Corefile",
            ServerKind::Knot => "knot",
            ServerKind::Nsd => "nsd",
            ServerKind::Unbound => "unbound",
        }
    }
}

/// A load client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ClientKind {
    /// This crate's batching load generator.
    Loadgen,
    /// dnsperf.
    Dnsperf,
}

/// `1k` → 1000, `50k` → 50000, `2500` → 2500.
fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let (digits, scale) = match text.strip_suffix(['k', 'K']) {
        Some(digits) => (digits, 1000),
        None => (text, 1),
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{text:?} is not a size like 1k, 10k or 2500"))
}

/// A size as the tables show it.
fn size_label(services: usize) -> String {
    if services.is_multiple_of(1000) {
        format!("{}k", services / 1000)
    } else {
        services.to_string()
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("compare: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Tells how long ago a `rustc` process was last seen (polled in the background).
struct Quiet {
    start: Instant,
    last_seen_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// Waiting time left over the whole comparison.
    budget: std::cell::Cell<Duration>,
}

impl Quiet {
    /// Starts polling `/proc` for `rustc` processes (as `pgrep -x rustc`) twice a second; the
    /// clock starts as if one had just been seen.
    fn start(budget: Duration) -> Self {
        let start = Instant::now();
        let last_seen_ms = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (last_seen_ms, stop) = (last_seen_ms.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if rustc_running() {
                        last_seen_ms.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
                    }
                    thread::sleep(Duration::from_millis(500));
                }
            });
        }
        Quiet {
            start,
            last_seen_ms,
            stop,
            budget: std::cell::Cell::new(budget),
        }
    }

    fn last_seen(&self) -> Duration {
        Duration::from_millis(self.last_seen_ms.load(Ordering::Relaxed))
    }

    /// Waits until no rustc has run for `quiet`, within what is left of the budget; false when
    /// it gave up.
    fn wait(&self, quiet: Duration) -> bool {
        let began = Instant::now();
        let mut told = false;
        loop {
            let since = self.start.elapsed().saturating_sub(self.last_seen());
            if since >= quiet {
                self.budget
                    .set(self.budget.get().saturating_sub(began.elapsed()));
                return true;
            }
            if began.elapsed() >= self.budget.get() {
                if !self.budget.get().is_zero() {
                    eprintln!("  (waiting budget for quiet spent: measuring anyway, flagged)");
                }
                self.budget.set(Duration::ZERO);
                return false;
            }
            if !told && self.last_seen() > Duration::ZERO {
                eprintln!("  waiting for {quiet:?} without rustc...");
                told = true;
            }
            thread::sleep(Duration::from_millis(500));
        }
    }

    /// Whether a rustc was seen after `since` (an instant of this run).
    fn seen_since(&self, since: Instant) -> bool {
        self.start + self.last_seen() >= since && self.last_seen() > Duration::ZERO
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Whether a process named exactly `rustc` exists.
fn rustc_running() -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
            && fs::read_to_string(entry.path().join("comm"))
                .is_ok_and(|comm| comm.trim() == "rustc")
    })
}

/// Finds a program on PATH or in the sbin directories.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Checks that the servers and dnsperf are installed; bench/scripts/compare.sh installs them.
fn check_programs() -> Result<(), String> {
    let needed = [
        ("knotd", "knot"),
        ("nsd", "nsd"),
        ("unbound", "unbound"),
        ("dnsperf", "dnsperf"),
        ("taskset", "util-linux"),
    ];
    let missing: Vec<&str> = needed
        .iter()
        .filter(|(program, _)| find_program(program).is_none())
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "missing packages: {} (bench/scripts/compare.sh installs them, or apt-get install them)",
        missing.join(" ")
    ))
}

/// A server process this run started, with what measuring it needs.
struct Server {
    kind: ServerKind,
    port: u16,
    child: Child,
    ready_after: Duration,
    dir: PathBuf,
}

impl Server {
    fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM to the process we started (NSD's children follow their parent), then wait.
        // SAFETY: kill(2) on the pid of our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The zones gen-cluster wrote: (origin, file), the cluster zone first.
fn zone_files(dir: &Path, domain: &str) -> Result<Vec<(String, PathBuf)>, String> {
    let zones_dir = dir.join("zones");
    let mut zones: Vec<(String, PathBuf)> = fs::read_dir(&zones_dir)
        .map_err(|e| format!("{}: {e}", zones_dir.display()))?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let origin = name.strip_suffix(".zone")?.to_owned();
            Some((origin, entry.path()))
        })
        .collect();
    zones.sort_by_key(|(origin, _)| (origin != domain, origin.clone()));
    Ok(zones)
}

/// The config file of a server, written into `dir`; returns the command line that runs it in
/// the foreground.
fn server_command(
    kind: ServerKind,
    port: u16,
    dir: &Path,
    cluster_dir: &Path,
    zones: &[(String, PathBuf)],
    bin_dir: &Path,
) -> Result<Vec<String>, String> {
    let d = dir.display();
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok::<String, String>(path.display().to_string())
    };
    let program = |name: &str| -> Result<String, String> {
        find_program(name)
            .map(|p| p.display().to_string())
            .ok_or_else(|| format!("{name} not found"))
    };
    Ok(match kind {
        ServerKind::Clusterdns | ServerKind::Clusterdns2 => {
            let threads = if kind == ServerKind::Clusterdns {
                "1"
            } else {
                "2"
            };
            vec![
                bin_dir.join("clusterdns").display().to_string(),
                "--manifests".into(),
                cluster_dir.join("cluster.yaml").display().to_string(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
                "--threads".into(),
                threads.into(),
            ]
        }
        ServerKind::ClusterdnsCorefile => {
            // kubeadm's default Corefile, on the test port and loopback addresses.
            let ops = port + 1000;
            let corefile = format!(
                ".:{port} {{\n    bind 127.0.0.1\n    errors\n    health 127.0.0.1:{ops} {{\n       \
                 lameduck 5s\n    }}\n    ready 127.0.0.1:{}\n    \
                 kubernetes {DEFAULT_DOMAIN} in-addr.arpa ip6.arpa {{\n       pods insecure\n       \
                 fallthrough in-addr.arpa ip6.arpa\n       ttl 30\n    }}\n    \
                 prometheus 127.0.0.1:{}\n    forward . /etc/resolv.conf {{\n       \
                 max_concurrent 1000\n    }}\n    cache 30 {{\n       disable success \
                 {DEFAULT_DOMAIN}\n       disable denial {DEFAULT_DOMAIN}\n    }}\n    loop\n    \
                 reload\n    loadbalance\n}}\n",
                ops + 1,
                ops + 2
            );
            vec![
                bin_dir.join("clusterdns").display().to_string(),
                "-conf".into(),
                write("Corefile", corefile)?,
                "--manifests".into(),
                cluster_dir.join("cluster.yaml").display().to_string(),
                "--threads".into(),
                "1".into(),
            ]
        }
        ServerKind::Knot => {
            fs::create_dir_all(dir.join("db")).map_err(|e| format!("{d}/db: {e}"))?;
            let mut conf = format!(
                "server:\n    listen: 127.0.0.1@{port}\n    rundir: {d}\n    \
                 udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
                 database:\n    storage: {d}/db\n\
                 log:\n  - target: stderr\n    any: notice\n\
                 template:\n  - id: default\n    semantic-checks: off\n    \
                 zonefile-sync: -1\n    zonefile-load: whole\n    journal-content: none\n\
                 zone:\n"
            );
            for (origin, file) in zones {
                let _ = writeln!(conf, "  - domain: {origin}\n    file: {}", file.display());
            }
            vec![program("knotd")?, "-c".into(), write("knot.conf", conf)?]
        }
        ServerKind::Nsd => {
            let mut conf = format!(
                "server:\n    ip-address: 127.0.0.1@{port}\n    port: {port}\n    \
                 server-count: 1\n    username: \"\"\n    chroot: \"\"\n    \
                 database: \"\"\n    zonelistfile: {d}/zone.list\n    pidfile: {d}/nsd.pid\n    \
                 xfrdfile: {d}/xfrd.state\n    xfrdir: {d}\n    logfile: {d}/nsd.log\n    \
                 verbosity: 1\n    tcp-count: 100\n    \
                 receive-buffer-size: {SOCKET_BUFFER}\n    send-buffer-size: {SOCKET_BUFFER}\n    \
                 rrl-ratelimit: 0\n    rrl-whitelist-ratelimit: 0\n\
                 remote-control:\n    control-enable: no\n"
            );
            for (origin, file) in zones {
                let _ = writeln!(
                    conf,
                    "zone:\n    name: \"{origin}\"\n    zonefile: \"{}\"",
                    file.display()
                );
            }
            vec![
                program("nsd")?,
                "-d".into(),
                "-c".into(),
                write("nsd.conf", conf)?,
            ]
        }
        ServerKind::Unbound => {
            // Authoritative from the zone files; anything else would go to a closed loopback
            // port, never to the network. The private reverse zones are Unbound's built-in
            // local zones unless unblocked.
            let mut conf = format!(
                "server:\n    interface: 127.0.0.1@{port}\n    port: {port}\n    \
                 num-threads: 1\n    username: \"\"\n    chroot: \"\"\n    directory: \"{d}\"\n    \
                 pidfile: \"{d}/unbound.pid\"\n    do-daemonize: no\n    use-syslog: no\n    \
                 logfile: \"\"\n    verbosity: 1\n    do-ip6: no\n    \
                 access-control: 127.0.0.0/8 allow\n    module-config: \"iterator\"\n    \
                 unblock-lan-zones: yes\n    insecure-lan-zones: yes\n    \
                 so-rcvbuf: {SOCKET_BUFFER}\n    so-sndbuf: {SOCKET_BUFFER}\n\
                 stub-zone:\n    name: \".\"\n    stub-addr: 127.0.0.1@1\n\
                 remote-control:\n    control-enable: no\n"
            );
            for (origin, file) in zones {
                let _ = writeln!(
                    conf,
                    "auth-zone:\n    name: \"{origin}.\"\n    zonefile: \"{}\"\n    \
                     for-downstream: yes\n    for-upstream: no\n    fallback-enabled: no",
                    file.display()
                );
            }
            vec![
                program("unbound")?,
                "-d".into(),
                "-c".into(),
                write("unbound.conf", conf)?,
            ]
        }
    })
}

/// Starts one server pinned to `cpus` and waits until `dns-version.<domain> TXT` answers.
fn start_server(
    kind: ServerKind,
    port: u16,
    cpus: &str,
    work: &Path,
    zones: &[(String, PathBuf)],
    bin_dir: &Path,
    domain: &str,
) -> Result<Server, String> {
    let dir = work.join(kind.name().replace([' ', '*'], ""));
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let command = server_command(kind, port, &dir, work, zones, bin_dir)?;
    let log = dir.join("server.log");
    let out = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let started = Instant::now();
    let child = Command::new("taskset")
        .arg("-c")
        .arg(cpus)
        .args(&command)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("taskset {}: {e}", command.join(" ")))?;
    let mut server = Server {
        kind,
        port,
        child,
        ready_after: Duration::ZERO,
        dir,
    };
    let probe = format!("dns-version.{domain}");
    let deadline = started + Duration::from_secs(600);
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!(
                "{} exited ({status}) before answering; log {}:\n{}",
                kind.name(),
                log.display(),
                tail(&log, 20)
            ));
        }
        if let Ok(answer) = ask(server.address(), &probe, "TXT", Duration::from_millis(300)) {
            if answer.rcode == 0 && !answer.records.is_empty() {
                break;
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} not answering after 600 s; log {}:\n{}",
                kind.name(),
                log.display(),
                tail(&log, 20)
            ));
        }
        thread::sleep(Duration::from_millis(200));
    }
    server.ready_after = started.elapsed();
    Ok(server)
}

/// The last `lines` lines of a file.
fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Sends one query (no EDNS, as dnsperf) and decodes the answer.
fn ask(
    server: SocketAddr,
    name: &str,
    qtype: &str,
    timeout: Duration,
) -> Result<AnswerSet, String> {
    let code = qtype_code(qtype).ok_or_else(|| format!("unknown type {qtype}"))?;
    let id = (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(7)
        & 0xFFFF) as u16;
    let query = query_packet(id, name, code, None).ok_or_else(|| format!("bad name {name}"))?;
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    socket.send_to(&query, server).map_err(|e| e.to_string())?;
    let mut buffer = [0u8; 65535];
    loop {
        let (len, _) = socket.recv_from(&mut buffer).map_err(|e| e.to_string())?;
        if len >= 2 && buffer[..2] == id.to_be_bytes() {
            return answer_set(&buffer[..len]);
        }
    }
}

/// CPU time (utime + stime, clock ticks) of a process and all its descendants.
fn cpu_ticks(pid: u32) -> u64 {
    tree(pid)
        .iter()
        .map(|&p| stat_fields(p).map_or(0, |f| f.1))
        .sum()
}

/// (ppid, utime + stime) of a process, from `/proc/<pid>/stat`.
fn stat_fields(pid: u32) -> Option<(u32, u64)> {
    let fields = process::stat_fields(&pid.to_string())?;
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// `pid` and its descendants.
fn tree(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            if let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() {
                if let Some((ppid, _)) = stat_fields(p) {
                    parents.push((p, ppid));
                }
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    out
}

/// Peak and current resident memory of a server in KiB: the largest of its processes (NSD's
/// serving child shares the zone with its parent, so a sum would count it twice).
fn memory_kib(pid: u32) -> (u64, u64) {
    let processes = tree(pid);
    let peak = processes
        .iter()
        .map(|&p| process::status_kib(&p.to_string(), "VmHWM:").unwrap_or(0))
        .max()
        .unwrap_or(0);
    let now = processes
        .iter()
        .map(|&p| process::status_kib(&p.to_string(), "VmRSS:").unwrap_or(0))
        .max()
        .unwrap_or(0);
    (peak, now)
}

/// One measured run.
#[derive(Clone, Debug, Default)]
struct Measured {
    qps: f64,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    mean_us: f64,
    lost: u64,
    completed: u64,
    cpu_us_per_query: f64,
    client_cpu_us_per_query: f64,
    disturbed: bool,
}

/// What dnsperf printed, reduced to the figures of a [`Measured`].
fn parse_dnsperf(output: &str) -> Option<Measured> {
    let number = |prefix: &str| -> Option<f64> {
        let line = output
            .lines()
            .find(|l| l.trim_start().starts_with(prefix))?;
        line.trim_start()[prefix.len()..]
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some(Measured {
        qps: number("Queries per second:")?,
        mean_us: number("Average Latency (s):")? * 1e6,
        lost: number("Queries lost:")? as u64,
        completed: number("Queries completed:")? as u64,
        ..Measured::default()
    })
}

/// What loadgen's JSON line says, reduced to the figures of a [`Measured`].
fn parse_loadgen(output: &str) -> Option<Measured> {
    let line = output.lines().rev().find(|l| l.starts_with('{'))?;
    let value: Value = serde_json::from_str(line).ok()?;
    Some(Measured {
        qps: value["qps"].as_f64()?,
        p50_us: value["p50_us"].as_f64(),
        p99_us: value["p99_us"].as_f64(),
        mean_us: value["mean_us"].as_f64()?,
        lost: value["lost"].as_u64()?,
        completed: value["completed"].as_u64()?,
        ..Measured::default()
    })
}

/// Runs one client against one server for the configured duration.
fn measure(
    args: &Args,
    client: ClientKind,
    server: &Server,
    queries: &Path,
    bin_dir: &Path,
) -> Result<Measured, String> {
    let cpu = args.client_cpu.to_string();
    let duration = format!("{}", args.duration);
    let port = server.port.to_string();
    let mut command = Command::new("taskset");
    command.arg("-c").arg(&cpu);
    match client {
        ClientKind::Loadgen => {
            command
                .arg(bin_dir.join("loadgen"))
                .args(["--server", &server.address().to_string(), "--queries"])
                .arg(queries)
                .args(["--duration", &duration, "--json"]);
        }
        ClientKind::Dnsperf => {
            let seconds = args.duration.ceil().max(1.0).to_string();
            command
                .arg(find_program("dnsperf").ok_or("dnsperf not found")?)
                .args(["-s", "127.0.0.1", "-p", &port, "-d"])
                .arg(queries)
                .args(["-l", &seconds, "-c", "8", "-q", "500", "-Q", "2000000"]);
        }
    }
    let before = cpu_ticks(server.pid());
    let client_before = children_cpu();
    let output = command.output().map_err(|e| format!("{client:?}: {e}"))?;
    let after = cpu_ticks(server.pid());
    let client_cpu = children_cpu().saturating_sub(client_before);
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "{client:?} against {} failed: {}\n{stdout}{}",
            server.kind.name(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let mut measured = match client {
        ClientKind::Loadgen => parse_loadgen(&stdout),
        ClientKind::Dnsperf => parse_dnsperf(&stdout),
    }
    .ok_or_else(|| format!("{client:?}: unreadable output:\n{stdout}"))?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu_us = (after.saturating_sub(before)) as f64 * 1e6 / hz;
    measured.cpu_us_per_query = cpu_us / measured.completed.max(1) as f64;
    measured.client_cpu_us_per_query =
        client_cpu.as_secs_f64() * 1e6 / measured.completed.max(1) as f64;
    Ok(measured)
}

/// User + system CPU time of this process's waited-for children so far (the load clients).
fn children_cpu() -> Duration {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The median of some values (the mean of the middle two for an even count).
fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Every run of one (server, client) pair on one query file.
type Runs = BTreeMap<(String, ServerKind, &'static str), Vec<Measured>>;

fn client_name(client: ClientKind) -> &'static str {
    match client {
        ClientKind::Loadgen => "loadgen",
        ClientKind::Dnsperf => "dnsperf",
    }
}

/// Checks a sample of a query file against clusterdns: each other server's answer (rcode and
/// answer-section records) must equal clusterdns's. Returns one report line per server.
fn check_answers(servers: &[Server], queries: &Path, sample: usize) -> Result<Vec<String>, String> {
    let text = fs::read_to_string(queries).map_err(|e| format!("{}: {e}", queries.display()))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let step = (lines.len() / sample.max(1)).max(1);
    let picked: Vec<(&str, &str)> = lines
        .iter()
        .step_by(step)
        .take(sample)
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some((words.next()?, words.next().unwrap_or("A")))
        })
        .collect();
    let Some(reference) = servers.iter().find(|s| s.kind == ServerKind::Clusterdns) else {
        return Ok(Vec::new());
    };
    let timeout = Duration::from_secs(1);
    let expected: Vec<Result<AnswerSet, String>> = picked
        .iter()
        .map(|(name, qtype)| ask(reference.address(), name, qtype, timeout))
        .collect();
    let mut report = Vec::new();
    for server in servers.iter().filter(|s| {
        !matches!(
            s.kind,
            ServerKind::Clusterdns | ServerKind::Clusterdns2 | ServerKind::ClusterdnsCorefile
        )
    }) {
        let mut same = 0;
        let mut differ: BTreeMap<String, (usize, String)> = BTreeMap::new();
        for ((name, qtype), want) in picked.iter().zip(&expected) {
            let got = ask(server.address(), name, qtype, timeout);
            let kind = match (want, &got) {
                (Ok(w), Ok(g)) if w == g => {
                    same += 1;
                    continue;
                }
                (Ok(w), Ok(g)) if w.rcode != g.rcode => {
                    format!("{qtype} rcode {} vs {}", w.rcode, g.rcode)
                }
                (Ok(_), Ok(_)) => format!("{qtype} records differ"),
                (Err(e), _) => format!("clusterdns: {e}"),
                (_, Err(e)) => format!("{}: {e}", server.kind.name()),
            };
            let example = format!(
                "{name} {qtype}: clusterdns {want:?} / {} {got:?}",
                server.kind.name()
            );
            differ.entry(kind).or_insert((0, example)).0 += 1;
        }
        let mut line = format!(
            "{} vs clusterdns: {same}/{} identical",
            server.kind.name(),
            picked.len()
        );
        for (kind, (count, example)) in &differ {
            let _ = write!(line, "\n    {count} x {kind}, e.g. {example}");
        }
        report.push(line);
    }
    Ok(report)
}

fn run(args: &Args) -> Result<(), String> {
    if args.rounds == 0 || args.duration.is_nan() || args.duration <= 0.0 {
        return Err("--rounds and --duration must be positive".into());
    }
    check_programs()?;
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot locate this binary: {e}"))?
            .parent()
            .map(Path::to_path_buf)
            .ok_or("cannot locate the binary directory")?,
    };
    for binary in ["clusterdns", "gen-cluster", "loadgen"] {
        if !bin_dir.join(binary).is_file() {
            return Err(format!(
                "{}: missing; build with cargo build --release -p clusterdns -p clusterdns-bench",
                bin_dir.join(binary).display()
            ));
        }
    }
    let quiet = Quiet::start(Duration::from_secs(args.max_quiet_wait));
    let work = std::env::temp_dir().join(format!("clusterdns-compare.{}", std::process::id()));
    fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let mut kinds = args.servers.clone();
    kinds.dedup();
    if args.threads && kinds.contains(&ServerKind::Clusterdns) {
        kinds.insert(1, ServerKind::Clusterdns2);
    }
    let mut out = String::new();
    let _ = writeln!(out, "{}", machine_line());
    let _ = writeln!(
        out,
        "servers pinned to CPU {}, clients to CPU {}; {} rounds of {} s, interleaved; median of rounds",
        args.server_cpu, args.client_cpu, args.rounds, args.duration
    );
    let result = (|| {
        for &services in &args.sizes {
            size_run(args, services, &kinds, &work, &bin_dir, &quiet, &mut out)?;
        }
        Ok::<(), String>(())
    })();
    println!("\n{out}");
    if args.keep {
        eprintln!("kept: {}", work.display());
    } else {
        let _ = fs::remove_dir_all(&work);
    }
    result
}

/// The CPU model and core count, for the header.
fn machine_line() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    format!("machine: {cores} cores, {model}")
}

/// Generates one size, starts the servers, checks answers, measures, and appends the tables.
fn size_run(
    args: &Args,
    services: usize,
    kinds: &[ServerKind],
    work: &Path,
    bin_dir: &Path,
    quiet: &Quiet,
    out: &mut String,
) -> Result<(), String> {
    let label = size_label(services);
    let dir = work.join(&label);
    eprintln!("== {label}: generating");
    let status = Command::new(bin_dir.join("gen-cluster"))
        .args(["--services", &services.to_string()])
        .args(["--endpoints", &(services * 10).to_string()])
        .args(["--seed", &args.seed.to_string(), "--out"])
        .arg(&dir)
        .status()
        .map_err(|e| format!("gen-cluster: {e}"))?;
    if !status.success() {
        return Err(format!("gen-cluster failed: {status}"));
    }
    let domain = DEFAULT_DOMAIN;
    let zones = zone_files(&dir, domain)?;
    let mut servers = Vec::new();
    for (i, &kind) in kinds.iter().enumerate() {
        let cpus = if kind == ServerKind::Clusterdns2 {
            format!("{},{}", args.server_cpu, args.client_cpu)
        } else {
            args.server_cpu.to_string()
        };
        eprintln!("== {label}: starting {}", kind.name());
        let port = args.base_port + i as u16;
        servers.push(start_server(
            kind, port, &cpus, &dir, &zones, bin_dir, domain,
        )?);
    }
    let files = ["service-mix", "search-storm"];
    let mut checks = Vec::new();
    if args.check_sample > 0 {
        for file in files {
            for line in check_answers(
                &servers,
                &dir.join(format!("{file}.txt")),
                args.check_sample,
            )? {
                eprintln!("  answers, {file}: {line}");
                checks.push(format!("- {file}: {line}"));
            }
        }
    }
    let mut runs: Runs = BTreeMap::new();
    for round in 0..args.rounds {
        for file in files {
            let queries = dir.join(format!("{file}.txt"));
            for &client in &args.clients {
                for server in &servers {
                    let calm = quiet.wait(Duration::from_secs(args.quiet_secs));
                    let began = Instant::now();
                    let mut measured = measure(args, client, server, &queries, bin_dir)?;
                    measured.disturbed = !calm || quiet.seen_since(began);
                    eprintln!(
                        "  round {} {file} {} {}: {:.0} qps, lost {}, {:.2} us CPU/query{}",
                        round + 1,
                        client_name(client),
                        server.kind.name(),
                        measured.qps,
                        measured.lost,
                        measured.cpu_us_per_query,
                        if measured.disturbed {
                            " (rustc ran)"
                        } else {
                            ""
                        }
                    );
                    runs.entry((file.to_owned(), server.kind, client_name(client)))
                        .or_default()
                        .push(measured);
                }
            }
        }
    }
    let _ = writeln!(out, "\n## {label} Services, {} endpoints\n", services * 10);
    let _ = writeln!(
        out,
        "| server | ready after start | peak RSS (VmHWM) | RSS after the runs |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: |");
    let mut rss: BTreeMap<ServerKind, (u64, u64)> = BTreeMap::new();
    for server in &servers {
        let (peak, now) = memory_kib(server.pid());
        rss.insert(server.kind, (peak, now));
        let _ = writeln!(
            out,
            "| {} | {:.1} s | {:.0} MiB | {:.0} MiB |",
            server.kind.name(),
            server.ready_after.as_secs_f64(),
            peak as f64 / 1024.0,
            now as f64 / 1024.0
        );
    }
    if !checks.is_empty() {
        let _ = writeln!(
            out,
            "\nAnswer check ({} lines sampled from each query file; rcode and answer records vs clusterdns):\n",
            args.check_sample
        );
        for line in &checks {
            let _ = writeln!(out, "{line}");
        }
    }
    for file in files {
        write_table(out, file, &runs, &rss, kinds, args);
    }
    if args.keep {
        for server in &servers {
            eprintln!("  {} files: {}", server.kind.name(), server.dir.display());
        }
    }
    Ok(())
}

/// One table: a row per (server, client), medians over rounds, ratios to clusterdns.
fn write_table(
    out: &mut String,
    file: &str,
    runs: &Runs,
    rss: &BTreeMap<ServerKind, (u64, u64)>,
    kinds: &[ServerKind],
    args: &Args,
) {
    let _ = writeln!(out, "\n### {file}\n");
    let _ = writeln!(
        out,
        "| client | server | qps | qps ÷ clusterdns | p50 | p99 | lost | server CPU µs/answer | CPU ÷ clusterdns | peak RSS | RSS ÷ clusterdns | client CPU µs/query |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let reference_rss = rss.get(&ServerKind::Clusterdns).map_or(0, |r| r.0).max(1) as f64;
    for &client in &args.clients {
        let name = client_name(client);
        let summary = |kind: ServerKind| {
            let measured = runs.get(&(file.to_owned(), kind, name))?;
            let pick = |f: &dyn Fn(&Measured) -> f64| {
                let mut values: Vec<f64> = measured.iter().map(f).collect();
                median(&mut values)
            };
            Some((
                pick(&|m| m.qps),
                pick(&|m| m.p50_us.unwrap_or(m.mean_us)),
                pick(&|m| m.p99_us.unwrap_or(f64::NAN)),
                measured.iter().map(|m| m.lost).sum::<u64>(),
                pick(&|m| m.cpu_us_per_query),
                measured.iter().filter(|m| m.disturbed).count(),
                pick(&|m| m.client_cpu_us_per_query),
            ))
        };
        let Some(reference) = summary(ServerKind::Clusterdns) else {
            continue;
        };
        for &kind in kinds {
            let Some((qps, p50, p99, lost, cpu, disturbed, client_cpu)) = summary(kind) else {
                continue;
            };
            let peak = rss.get(&kind).map_or(0, |r| r.0) as f64;
            let p50_label = match client {
                ClientKind::Loadgen => format!("{:.3} ms", p50 / 1e3),
                ClientKind::Dnsperf => format!("{:.3} ms avg", p50 / 1e3),
            };
            let p99_label = if p99.is_nan() {
                "–".to_owned()
            } else {
                format!("{:.3} ms", p99 / 1e3)
            };
            let flag = if disturbed > 0 {
                format!(" ({disturbed} rounds with rustc)")
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "| {name} | {}{flag} | {:.0} | {:.2} | {p50_label} | {p99_label} | {lost} | {:.2} | {:.2} | {:.0} MiB | {:.2} | {client_cpu:.2} |",
                kind.name(),
                qps,
                qps / reference.0.max(1.0),
                cpu,
                cpu / reference.4.max(1e-9),
                peak / 1024.0,
                peak / reference_rss
            );
        }
    }
    if kinds.contains(&ServerKind::Clusterdns2) {
        let _ = writeln!(
            out,
            "\n\\* clusterdns 2w: two workers pinned to CPUs {} and {}; the machine has 2 cores, so the load client shares one of them.",
            args.server_cpu, args.client_cpu
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1k"), Ok(1000));
        assert_eq!(parse_size("50K"), Ok(50_000));
        assert_eq!(parse_size("2500"), Ok(2500));
        assert!(parse_size("0").is_err());
        assert!(parse_size("k").is_err());
        assert_eq!(size_label(10_000), "10k");
        assert_eq!(size_label(2500), "2500");
    }

    #[test]
    fn dnsperf_output() {
        let output = "Statistics:\n\n  Queries sent:         301526\n  Queries completed:    301520 (100.00%)\n  \
                      Queries lost:         6 (0.00%)\n\n  Response codes:       NOERROR 286440 (95.00%)\n  \
                      Run time (s):         3.000160\n  Queries per second:   100501.3\n\n  \
                      Average Latency (s):  0.001207 (min 0.000021, max 0.010000)\n";
        let measured = parse_dnsperf(output).expect("parses");
        assert_eq!(measured.completed, 301_520);
        assert_eq!(measured.lost, 6);
        assert!((measured.qps - 100_501.3).abs() < 1e-6);
        assert!((measured.mean_us - 1207.0).abs() < 1e-6);
        assert!(parse_dnsperf("nothing").is_none());
    }

    #[test]
    fn loadgen_output() {
        let line = r#"{"label":"","sent":10,"completed":9,"lost":1,"qps":3.0,"p50_us":12.5,"p99_us":40.0,"p999_us":41.0,"mean_us":15.0}"#;
        let measured = parse_loadgen(line).expect("parses");
        assert_eq!((measured.completed, measured.lost), (9, 1));
        assert_eq!(measured.p99_us, Some(40.0));
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}
