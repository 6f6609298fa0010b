//! The servers compared: how each is configured for the same cluster, started pinned to its
//! CPU, and stopped.

use super::*;

/// UDP socket buffers asked of NSD and Unbound: what clusterdns sets (Knot sets its own).
pub(super) const SOCKET_BUFFER: usize = 4 << 20;

/// A server under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub(super) enum ServerKind {
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
    /// No DNS server: `loadgen --respond`, which sends each query back with QR set (recvmmsg,
    /// sendmmsg, nothing else). What this machine's UDP path allows: the ceiling.
    Responder,
}

impl ServerKind {
    pub(super) fn name(self) -> &'static str {
        match self {
            ServerKind::Clusterdns => "clusterdns",
            ServerKind::Clusterdns2 => "clusterdns 2w*",
            ServerKind::ClusterdnsCorefile => "clusterdns kubeadm Corefile",
            ServerKind::Knot => "knot",
            ServerKind::Nsd => "nsd",
            ServerKind::Unbound => "unbound",
            ServerKind::Responder => "empty responder",
        }
    }
}

/// Finds a program on PATH or in the sbin directories.
pub(super) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Checks that the servers and dnsperf are installed; bench/scripts/compare.sh installs them.
pub(super) fn check_programs() -> Result<(), String> {
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
pub(super) struct Server {
    pub(super) kind: ServerKind,
    pub(super) port: u16,
    pub(super) child: Child,
    pub(super) ready_after: Duration,
    pub(super) dir: PathBuf,
}

impl Server {
    pub(super) fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub(super) fn pid(&self) -> u32 {
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
pub(super) fn zone_files(dir: &Path, domain: &str) -> Result<Vec<(String, PathBuf)>, String> {
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
pub(super) fn server_command(
    kind: ServerKind,
    port: u16,
    upstream: SocketAddr,
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
                "--upstream".into(),
                upstream.to_string(),
                "--threads".into(),
                threads.into(),
            ]
        }
        ServerKind::ClusterdnsCorefile => {
            // kubeadm's default Corefile, on the test port and loopback addresses, forwarding to
            // the loopback upstream instead of /etc/resolv.conf.
            let ops = port + 1000;
            let corefile = format!(
                ".:{port} {{\n    bind 127.0.0.1\n    errors\n    health 127.0.0.1:{ops} {{\n       \
                 lameduck 5s\n    }}\n    ready 127.0.0.1:{}\n    \
                 kubernetes {DEFAULT_DOMAIN} in-addr.arpa ip6.arpa {{\n       pods insecure\n       \
                 fallthrough in-addr.arpa ip6.arpa\n       ttl 30\n    }}\n    \
                 prometheus 127.0.0.1:{}\n    forward . {upstream} {{\n       \
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
        ServerKind::Responder => vec![
            bin_dir.join("loadgen").display().to_string(),
            "--respond".into(),
            format!("127.0.0.1:{port}"),
        ],
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

/// Starts one server pinned to `cpus` and waits until `dns-version.<domain> TXT` answers (the
/// responder: until it echoes the query).
/// `port` is the server's, `upstream` where clusterdns forwards.
pub(super) fn start_server(
    kind: ServerKind,
    (port, upstream): (u16, SocketAddr),
    cpus: &str,
    work: &Path,
    zones: &[(String, PathBuf)],
    bin_dir: &Path,
    domain: &str,
) -> Result<Server, String> {
    let dir = work.join(kind.name().replace([' ', '*'], ""));
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let command = server_command(kind, port, upstream, &dir, work, zones, bin_dir)?;
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
            let echoed = kind == ServerKind::Responder;
            if answer.rcode == 0 && (echoed || !answer.records.is_empty()) {
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
pub(super) fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The upstream clusterdns forwards to in a comparison, on loopback (never the machine's
/// resolvers: every name the load asks is in the zone, but an ExternalName Service's target is
/// looked up upstream). It answers every question NXDOMAIN with a root SOA of a 300 s minimum,
/// a negative answer the forwarder caches (RFC 2308), so a target is asked again only when its
/// entry expires, as with a real resolver; the ExternalName answers stay the CNAME alone, as
/// Knot's. Stops when dropped.
pub(super) struct Upstream {
    pub(super) address: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Upstream {
    /// Starts the upstream on a free loopback port.
    pub(super) fn start() -> Result<Upstream, String> {
        let socket =
            std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("upstream: bind: {e}"))?;
        let address = socket.local_addr().map_err(|e| format!("upstream: {e}"))?;
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .map_err(|e| format!("upstream: {e}"))?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = nxdomain(&buf[..len]) {
                    let _ = socket.send_to(&reply, from);
                }
            }
        });
        Ok(Upstream {
            address,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// NXDOMAIN to `query` (one question), with `. 300 IN SOA a. a. 1 300 300 300 300` in the
/// authority section; `None` for a packet that is not such a query.
fn nxdomain(query: &[u8]) -> Option<Vec<u8>> {
    let mut at = 12;
    while *query.get(at)? != 0 {
        at += 1 + usize::from(*query.get(at)?);
    }
    let question_end = at + 5;
    let mut reply = query.get(..question_end)?.to_vec();
    // QR, the client's RD, RA, NXDOMAIN; one question, one authority record.
    reply[2] = 0x80 | (query[2] & 0x01);
    reply[3] = 0x80 | 3;
    reply[4..12].copy_from_slice(&[0, 1, 0, 0, 0, 1, 0, 0]);
    reply.extend_from_slice(&[0, 0, 6, 0, 1, 0, 0, 1, 44, 0, 26, 1, b'a', 0, 1, b'a', 0]);
    for value in [1u32, 300, 300, 300, 300] {
        reply.extend_from_slice(&value.to_be_bytes());
    }
    Some(reply)
}
