//! One noisy client must not take the server from the others (the real binary each time):
//! - at its default bound of 1024 TCP connections, it is given 2,000 idle connections and
//!   connections that drip a query and stop. Throughout, UDP clients are answered, a new TCP
//!   client is answered (the connection idle the longest is closed to make room, RFC 7766
//!   §6.2.3), the server's RSS grows by at most 8 MiB, and each dripping connection is closed
//!   within the read timeout;
//! - the same read timeout given by a Corefile's `timeouts` (CoreDNS's directive);
//! - a flood of random names, which all miss the cache, towards an upstream that never answers:
//!   at most `--max-forward-pending` wait, the rest are REFUSED at once, memory stays flat, and
//!   cluster names are answered throughout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clusterdns::serving::FORWARD_NICE;
use clusterdns_testkit::client;
use clusterdns_testkit::dns::{query, rcode};
use clusterdns_testkit::net::{free_port, loopback};
use clusterdns_testkit::process::Process;
use hickory_proto::rr::RecordType;

const IDLE: usize = 2000;
const DRIPPING: usize = 20;
/// The server's `--tcp-read-timeout`, seconds.
const READ_TIMEOUT: u64 = 1;
const NAME: &str = "kubernetes.default.svc.cluster.local";

/// The resident set of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Raises this process's open-file limit (children inherit it) to hold every connection;
/// false when it cannot be raised far enough.
fn raise_file_limit(wanted: u64) -> bool {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return false;
        }
        if limit.rlim_cur >= wanted {
            return true;
        }
        limit.rlim_cur = wanted.min(limit.rlim_max);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur >= wanted
    }
}

/// The binary serving the golden corpus's cluster on a free loopback port with one worker and
/// `flags`, once it answers; and where it answers.
fn start(flags: &[&str]) -> (Process, SocketAddr) {
    let dns = loopback(free_port());
    let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/cluster.yaml");
    let mut args = vec![
        "--manifests".to_owned(),
        manifests.display().to_string(),
        "--listen".to_owned(),
        dns.to_string(),
        "--threads".to_owned(),
        "1".to_owned(),
    ];
    args.extend(flags.iter().map(|f| f.to_string()));
    let server = Process::clusterdns(&args);
    let answers = |r: &clusterdns_testkit::dns::Reply| r.is(&["A 10.96.0.1"]);
    let since = Instant::now();
    server.wait_answer(
        dns,
        since,
        Duration::from_secs(10),
        NAME,
        RecordType::A,
        answers,
    );
    (server, dns)
}

/// A query over a new TCP connection, answered within 2 s.
fn tcp_answer(dns: SocketAddr) -> Result<(), String> {
    let response = client::tcp(dns, &query(7, NAME, 1, None)).map_err(|e| e.to_string())?;
    match rcode(&response) {
        0 => Ok(()),
        other => Err(format!("rcode {other}")),
    }
}

#[test]
fn idle_and_dripping_connections_do_not_lock_others_out() {
    if !raise_file_limit(8192) {
        eprintln!("skipped: the open-file limit cannot be raised to 8192 here");
        return;
    }
    let (server, dns) = start(&[
        "--tcp-idle-timeout",
        "60",
        "--tcp-read-timeout",
        &READ_TIMEOUT.to_string(),
    ]);
    let pid = server.pid();
    let before = rss_kib(pid);

    // UDP clients, throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let (asked, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let udp = {
        let (stop, asked, failed) = (stop.clone(), asked.clone(), failed.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let answer = client::ask(dns, NAME, RecordType::A, Duration::from_secs(1));
                asked.fetch_add(1, Ordering::Relaxed);
                if !answer.is_some_and(|r| r.is(&["A 10.96.0.1"])) {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(10));
            }
        })
    };

    // 2,000 connections that never send anything, twice the bound.
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let stream = TcpStream::connect_timeout(&dns, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("idle connection {i}: {e}"));
        idle.push(stream);
        if i % 500 == 499 {
            tcp_answer(dns).unwrap_or_else(|e| panic!("a new TCP client after {i}: {e}"));
        }
    }
    // Connections that send a length, one byte of the query, and nothing more.
    let mut dripping = Vec::with_capacity(DRIPPING);
    for _ in 0..DRIPPING {
        let mut stream = TcpStream::connect(dns).expect("dripping connection");
        stream.write_all(&[0, 40, 0]).expect("the first bytes");
        stream
            .set_read_timeout(Some(Duration::from_secs(READ_TIMEOUT + 3)))
            .expect("read timeout");
        dripping.push((stream, Instant::now()));
    }
    tcp_answer(dns).expect("a new TCP client with every slot taken");
    let during = rss_kib(pid);

    // Each dripping connection is closed by the server within the read timeout (and a margin
    // for this machine).
    for (mut stream, began) in dripping {
        let mut byte = [0u8; 1];
        let read = stream.read(&mut byte);
        let after = began.elapsed();
        assert!(
            matches!(read, Ok(0) | Err(_)) && after < Duration::from_secs(READ_TIMEOUT + 2),
            "a dripping connection: {read:?} after {after:?}"
        );
        if let Err(e) = &read {
            assert_ne!(
                e.kind(),
                std::io::ErrorKind::WouldBlock,
                "not closed in time"
            );
        }
    }
    tcp_answer(dns).expect("a new TCP client at the end");
    stop.store(true, Ordering::Relaxed);
    udp.join().expect("the UDP client");
    let (asked, failed) = (
        asked.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    assert!(asked > 10, "only {asked} UDP queries");
    assert_eq!(failed, 0, "{failed} of {asked} UDP queries unanswered");
    let growth = during.saturating_sub(before);
    eprintln!(
        "RSS {before} KiB before, {during} KiB with {IDLE} idle and {DRIPPING} dripping \
         connections: +{growth} KiB; {asked} UDP queries answered"
    );
    assert!(growth <= 8 * 1024, "RSS grew by {growth} KiB");
    drop(idle);
    server.assert_alive();
}

#[test]
fn a_random_name_flood_is_bounded_and_cluster_names_stay_answered() {
    // An upstream that takes every query and answers none: each forwarded query waits.
    let blackhole = UdpSocket::bind("127.0.0.1:0").expect("blackhole");
    let upstream = blackhole.local_addr().expect("address");
    const PENDING: usize = 200;
    let (server, dns) = start(&[
        "--upstream",
        &upstream.to_string(),
        "--max-forward-pending",
        &PENDING.to_string(),
    ]);
    let pid = server.pid();
    let before = rss_kib(pid);

    // 5,000 distinct names, sent as fast as one socket can; a thread counts the REFUSED ones
    // as they come back (its socket's buffer holds only a few hundred datagrams).
    let flood = UdpSocket::bind("127.0.0.1:0").expect("flood socket");
    flood
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let receiver = flood.try_clone().expect("clone");
    let counting = thread::spawn(move || {
        let (mut refused, mut buf) = (0usize, [0u8; 1500]);
        while let Ok((len, _)) = receiver.recv_from(&mut buf) {
            if len >= 4 && rcode(&buf[..len]) == 5 {
                refused += 1;
            }
        }
        refused
    });
    const NAMES: usize = 5000;
    for i in 0..NAMES {
        let name = format!("r{i}-{}.flood.example", i * 7919 % 10007);
        flood
            .send_to(&query(i as u16, &name, 1, None), dns)
            .expect("send");
        if i % 1000 == 999 {
            // Cluster names meanwhile: answered from the zone, never behind the flood.
            let answer = client::ask(dns, NAME, RecordType::A, Duration::from_secs(1));
            assert!(
                answer.is_some_and(|r| r.is(&["A 10.96.0.1"])),
                "a cluster name during the flood, after {i} names"
            );
        }
    }
    let during = rss_kib(pid);
    let refused = counting.join().expect("the counting thread");
    eprintln!(
        "{NAMES} random names, at most {PENDING} waiting: {refused} REFUSED at once; RSS \
         {before} KiB before, {during} KiB during the flood"
    );
    // What reached the upstream: at most the waiting ones (the rest of the flood was refused,
    // or dropped by the kernel when it came faster than one worker reads).
    blackhole
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut asked = std::collections::BTreeSet::new();
    let mut buf = [0u8; 1500];
    while let Ok((len, _)) = blackhole.recv_from(&mut buf) {
        let name: Vec<u8> = (buf[12.min(len)..len].iter())
            .take_while(|&&b| b != 0)
            .copied()
            .collect();
        // Only the flood's names (the server also probes its upstreams for loops at start).
        if name.windows(5).any(|w| w == b"flood") {
            asked.insert(name);
        }
    }
    eprintln!("{} distinct names reached the upstream", asked.len());
    assert!(
        asked.len() <= PENDING,
        "{} names went upstream, more than the {PENDING} allowed to wait",
        asked.len()
    );
    assert!(
        refused >= NAMES / 2,
        "only {refused} of {NAMES} refused at once"
    );
    let growth = during.saturating_sub(before);
    assert!(
        growth <= 8 * 1024,
        "RSS grew by {growth} KiB during the flood"
    );
    let answer = client::ask(dns, NAME, RecordType::A, Duration::from_secs(1));
    assert!(
        answer.is_some_and(|r| r.is(&["A 10.96.0.1"])),
        "after the flood"
    );
    server.assert_alive();
}

#[test]
fn a_corefile_timeouts_read_closes_a_dripping_connection() {
    let dir = clusterdns_testkit::temp::TempDir::new("timeouts");
    let port = free_port();
    let dns = loopback(port);
    let corefile = dir.write(
        "Corefile",
        &format!(
            ".:{port} {{\n  bind 127.0.0.1\n  timeouts {{\n    read 1s\n    idle 30s\n  }}\n  \
             template IN A example.org {{\n    answer \"{{{{ .Name }}}} 60 IN A 192.0.2.1\"\n  }}\n}}\n"
        ),
    );
    let server = Process::clusterdns(&["-conf".as_ref(), corefile.as_os_str()]);
    let name = "www.example.org";
    server.wait_answer(
        dns,
        Instant::now(),
        Duration::from_secs(10),
        name,
        RecordType::A,
        |r| r.is(&["A 192.0.2.1"]),
    );
    // Idle (no byte sent) for longer than the read timeout: still open (idle is 30 s).
    let mut idle = TcpStream::connect(dns).expect("idle connection");
    // Dripping: a length and one byte, then nothing.
    let mut dripping = TcpStream::connect(dns).expect("dripping connection");
    dripping.write_all(&[0, 40, 0]).expect("first bytes");
    dripping
        .set_read_timeout(Some(Duration::from_secs(4)))
        .expect("timeout");
    let began = Instant::now();
    let mut byte = [0u8; 1];
    let read = dripping.read(&mut byte);
    assert!(
        matches!(read, Ok(0)) && began.elapsed() < Duration::from_secs(3),
        "closed within the 1 s read timeout: {read:?} after {:?}",
        began.elapsed()
    );
    let packet = query(9, name, 1, None);
    idle.write_all(&[(packet.len() >> 8) as u8, packet.len() as u8])
        .and_then(|()| idle.write_all(&packet))
        .expect("the idle connection takes a query");
    idle.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut length = [0u8; 2];
    idle.read_exact(&mut length)
        .expect("the idle connection, open after 1 s, is answered");
    server.assert_alive();
}

/// The nice value of each of `pid`'s threads whose name starts with `prefix`.
fn thread_nice(pid: u32, prefix: &str) -> Vec<i64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the server's threads");
    let mut nice = Vec::new();
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !name.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).expect("stat");
        // After the `(comm)` field: state is the 3rd field, nice the 19th.
        let rest = &stat[stat.rfind(')').expect("comm") + 2..];
        let field = rest.split(' ').nth(16).expect("nice field");
        nice.push(field.parse().expect("nice"));
    }
    nice
}

#[test]
fn forwarding_yields_the_core_and_its_bound_refuses_on_the_listener() {
    let blackhole = UdpSocket::bind("127.0.0.1:0").expect("blackhole");
    let upstream = blackhole.local_addr().expect("address");
    const CONCURRENT: usize = 50;
    let (server, dns) = start(&[
        "--upstream",
        &upstream.to_string(),
        "--max-concurrent",
        &CONCURRENT.to_string(),
    ]);
    // Forwarding runs below the listeners' priority: under a flood of names that miss the
    // cache, the scheduler keeps the core for cluster answers.
    let listeners = thread_nice(server.pid(), "clusterdns-udp");
    let forwarding = thread_nice(server.pid(), "clusterdns-fwd");
    assert!(!listeners.is_empty() && !forwarding.is_empty());
    for (&fwd, &udp) in forwarding.iter().zip(listeners.iter().cycle()) {
        let lower = i64::from(FORWARD_NICE);
        assert_eq!(fwd, (udp + lower).min(19), "forwarding threads' nice");
    }
    // `max_concurrent` (below --max-forward-pending) is met first: the rest are refused by
    // the listener at once, and never reach the upstream.
    let flood = UdpSocket::bind("127.0.0.1:0").expect("flood socket");
    flood
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    const NAMES: usize = 300;
    let mut refused = 0;
    let mut buf = [0u8; 1500];
    for i in 0..NAMES {
        let name = format!("c{i}.flood.example");
        flood
            .send_to(&query(i as u16, &name, 1, None), dns)
            .expect("send");
        // One at a time past the bound, so none is lost to a full socket buffer.
        if i >= CONCURRENT {
            let (len, _) = flood.recv_from(&mut buf).expect("an answer past the bound");
            assert_eq!(rcode(&buf[..len]), 5, "REFUSED past max_concurrent");
            refused += 1;
        }
    }
    assert_eq!(refused, NAMES - CONCURRENT);
    blackhole
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut asked = 0;
    while let Ok((len, _)) = blackhole.recv_from(&mut buf) {
        asked += usize::from(buf[..len].windows(5).any(|w| w == b"flood"));
    }
    assert!(asked <= CONCURRENT, "{asked} flood names went upstream");
    let answer = client::ask(dns, NAME, RecordType::A, Duration::from_secs(1));
    assert!(answer.is_some_and(|r| r.is(&["A 10.96.0.1"])));
    server.assert_alive();
}
