//! The `clusterdns` binary as an operator runs it: `--help`, clear one-line startup errors with a
//! non-zero exit, and live manifest reloads answered within a second with no query lost.

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_clusterdns");

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clusterdns-binary-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A free loopback port for both UDP and TCP (bound and released; good enough for tests).
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut out = vec![(id >> 8) as u8, id as u8, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.extend_from_slice(&[0, (qtype >> 8) as u8, qtype as u8, 0, 1]);
    out
}

/// Sends one query; returns (rcode, answer count, the response) or `None` on timeout.
fn ask(
    socket: &UdpSocket,
    server: SocketAddr,
    id: u16,
    name: &str,
    qtype: u16,
) -> Option<(u8, u16, Vec<u8>)> {
    socket.send_to(&query(id, name, qtype), server).ok()?;
    let mut buf = vec![0u8; 4096];
    loop {
        let (len, _) = socket.recv_from(&mut buf).ok()?;
        if len >= 12 && u16::from_be_bytes([buf[0], buf[1]]) == id {
            buf.truncate(len);
            return Some((buf[3] & 0x0F, u16::from_be_bytes([buf[6], buf[7]]), buf));
        }
    }
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).expect("create");
    file.write_all(text.as_bytes()).expect("write");
    file.sync_all().expect("sync");
    std::fs::rename(&tmp, path).expect("rename");
}

fn manifest(extra_service: bool, endpoints: &[&str]) -> String {
    let mut text = String::from(
        "apiVersion: v1\nkind: Service\nmetadata: {name: kubernetes, namespace: default}\n\
         spec: {clusterIP: 10.96.0.1, clusterIPs: [10.96.0.1], ports: [{name: https, port: 443, protocol: TCP}]}\n\
         ---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\n\
         spec: {clusterIP: None, ports: [{name: http, port: 80}]}\n\
         ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}\n\
         addressType: IPv4\nports: [{name: http, port: 80, protocol: TCP}]\nendpoints:\n",
    );
    for ip in endpoints {
        text.push_str(&format!(
            "- addresses: [{ip}]\n  conditions: {{ready: true}}\n"
        ));
    }
    if extra_service {
        text.push_str(
            "---\napiVersion: v1\nkind: Service\nmetadata: {name: added, namespace: default}\n\
             spec: {clusterIP: 10.96.0.99, ports: [{name: http, port: 80}]}\n",
        );
    }
    text
}

/// How long after `since` the condition became true; fails after one second.
fn time_until(since: Instant, what: &str, mut condition: impl FnMut() -> bool) -> Duration {
    loop {
        if condition() {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(1),
            "{what}: not within 1 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(manifests: &Path, port: u16) -> Running {
    let child = Command::new(BIN)
        .args([
            "--manifests",
            &manifests.to_string_lossy(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--threads",
            "2",
            "--health",
            "127.0.0.1:0",
            "--ready",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
            "--lameduck",
            "0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    Running(child)
}

#[test]
fn help_documents_every_flag_with_its_default() {
    let output = run(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--manifests",
        "--listen",
        "--threads",
        "--domain",
        "--ttl",
        "--pods",
        "--max-udp-size",
        "--tcp-idle-timeout",
        "--max-tcp-connections",
        "--manifest-poll-ms",
        "--kubeconfig",
        "--startup-timeout",
        "--lameduck",
        "--health",
        "--ready",
        "--metrics",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
    for default in [
        "0.0.0.0:53",
        "[::]:53",
        "cluster.local",
        "default: 5",
        "insecure",
        "default: 4096",
        "0.0.0.0:8080",
        "0.0.0.0:8181",
        "0.0.0.0:9153",
    ] {
        assert!(
            help.contains(default),
            "--help lacks default {default}:\n{help}"
        );
    }
}

#[test]
fn bad_startup_inputs_stop_with_one_clear_line() {
    let dir = temp_dir("errors");
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {ports: [{port: http}]}\n")
        .expect("write");
    let output = run(&[
        "--manifests",
        &bad.to_string_lossy(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("bad.yaml")
            && message.contains("Service default/web")
            && message.contains("spec.ports[0].port"),
        "{message}"
    );

    let missing = dir.join("missing.yaml");
    let output = run(&[
        "--manifests",
        &missing.to_string_lossy(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("missing.yaml"),
        "{}",
        stderr(&output)
    );

    let output = run(&["--manifests", &bad.to_string_lossy(), "--ttl", "99999"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--ttl"), "{}", stderr(&output));

    let output = run(&["--manifests", &bad.to_string_lossy(), "--domain", "a..b"]);
    assert!(!output.status.success());

    let good = dir.join("good.yaml");
    std::fs::write(&good, manifest(false, &["10.1.0.1"])).expect("write");
    let taken = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let output = run(&[
        "--manifests",
        &good.to_string_lossy(),
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("cannot bind udp 127.0.0.1"), "{message}");
}

#[test]
fn manifest_changes_are_answered_within_a_second_without_losing_queries() {
    let dir = temp_dir("reload");
    let file = dir.join("cluster.yaml");
    write_atomically(
        &file,
        &manifest(false, &["10.1.0.1", "10.1.0.2", "10.1.0.3"]),
    );
    let port = free_port();
    let server: SocketAddr = ([127, 0, 0, 1], port).into();
    let _running = start(&file, port);
    let probe = UdpSocket::bind("127.0.0.1:0").expect("bind");
    probe
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let deadline = Instant::now() + Duration::from_secs(10);
    while ask(&probe, server, 1, "kubernetes.default.svc.cluster.local", 1).is_none() {
        assert!(Instant::now() < deadline, "server did not start answering");
    }

    // Query in a loop while the file changes: every query must be answered.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let lost = Arc::new(AtomicUsize::new(0));
    let looper = {
        let (stop, answered, lost) = (stop.clone(), answered.clone(), lost.clone());
        std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
            socket
                .set_read_timeout(Some(Duration::from_secs(1)))
                .expect("timeout");
            let mut id = 0u16;
            while !stop.load(Ordering::Relaxed) {
                id = id.wrapping_add(1);
                match ask(
                    &socket,
                    server,
                    id,
                    "kubernetes.default.svc.cluster.local",
                    1,
                ) {
                    Some((0, 1, _)) => answered.fetch_add(1, Ordering::Relaxed),
                    _ => lost.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };

    // Add a Service.
    let written = Instant::now();
    write_atomically(
        &file,
        &manifest(true, &["10.1.0.1", "10.1.0.2", "10.1.0.3"]),
    );
    let added = time_until(written, "added Service answered", || {
        matches!(
            ask(&probe, server, 2, "added.default.svc.cluster.local", 1),
            Some((0, 1, _))
        )
    });

    // Remove an endpoint.
    let written = Instant::now();
    write_atomically(&file, &manifest(true, &["10.1.0.1", "10.1.0.3"]));
    let removed = time_until(written, "removed endpoint gone", || {
        matches!(
            ask(&probe, server, 3, "web.default.svc.cluster.local", 1),
            Some((0, 2, _))
        )
    });
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    looper.join().expect("query loop");
    let (answered, lost) = (
        answered.load(Ordering::Relaxed),
        lost.load(Ordering::Relaxed),
    );
    eprintln!("added visible after {added:?}, removal after {removed:?}; {answered} queries answered, {lost} lost");
    assert!(answered > 100, "the loop ran: {answered}");
    assert_eq!(lost, 0, "queries lost during the swaps");
}

#[test]
fn sigterm_stops_the_server() {
    let dir = temp_dir("sigterm");
    let file = dir.join("cluster.yaml");
    std::fs::write(&file, manifest(false, &["10.1.0.1"])).expect("write");
    let port = free_port();
    let mut running = start(&file, port);
    let probe = UdpSocket::bind("127.0.0.1:0").expect("bind");
    probe
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let server: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ask(&probe, server, 1, "kubernetes.default.svc.cluster.local", 1).is_none() {
        assert!(Instant::now() < deadline, "server did not start answering");
    }
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(running.0.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = running.0.try_wait().expect("wait") {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}
