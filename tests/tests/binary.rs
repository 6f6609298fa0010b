//! The `clusterdns` binary as an operator runs it with `--manifests`: live manifest reloads
//! answered within a second with no query lost, and a clean exit on SIGTERM. (Its command line
//! alone is tested in `server/tests/cli.rs`.)

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use clusterdns_testkit::client::{answer_is, QueryLoop};
use clusterdns_testkit::dns::Reply;
use clusterdns_testkit::net::{free_port, loopback};
use clusterdns_testkit::process::Process;
use clusterdns_testkit::temp::TempDir;
use hickory_proto::rr::RecordType;

const KUBERNETES: &str = "kubernetes.default.svc.cluster.local";
const A: RecordType = RecordType::A;

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

/// Starts the binary on `manifests`, answering on `127.0.0.1:port`, and waits until it answers.
fn start(manifests: &Path, port: u16) -> Process {
    let process = Process::clusterdns(&[
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
    ]);
    let server = loopback(port);
    process.wait_until(
        Instant::now(),
        Duration::from_secs(10),
        "the first answer",
        || answer_is(server, KUBERNETES, A, Duration::from_millis(200), |_| true),
    );
    process
}

/// `name A` at `server` asked once (200 ms to answer): NOERROR with exactly `records`, or what
/// came instead.
fn answered_with(server: SocketAddr, name: &str, records: &[&str]) -> Result<(), Option<Reply>> {
    answer_is(server, name, A, Duration::from_millis(200), |r| {
        r.is(records)
    })
}

#[test]
fn manifest_changes_are_answered_within_a_second_without_losing_queries() {
    let dir = TempDir::new("binary-reload");
    let file = dir.path().join("cluster.yaml");
    write_atomically(
        &file,
        &manifest(false, &["10.1.0.1", "10.1.0.2", "10.1.0.3"]),
    );
    let port = free_port();
    let server = loopback(port);
    let running = start(&file, port);

    // Query in a loop while the file changes: every query must be answered.
    let looper = QueryLoop::start(
        server,
        KUBERNETES,
        A,
        Duration::from_secs(1),
        Duration::ZERO,
        |reply| reply.is(&["A 10.96.0.1"]),
    );

    // Add a Service.
    let written = Instant::now();
    write_atomically(
        &file,
        &manifest(true, &["10.1.0.1", "10.1.0.2", "10.1.0.3"]),
    );
    let added = running.wait_until(
        written,
        Duration::from_secs(1),
        "added Service answered",
        || answered_with(server, "added.default.svc.cluster.local", &["A 10.96.0.99"]),
    );

    // Remove an endpoint.
    let written = Instant::now();
    write_atomically(&file, &manifest(true, &["10.1.0.1", "10.1.0.3"]));
    let removed = running.wait_until(
        written,
        Duration::from_secs(1),
        "removed endpoint gone",
        || {
            answered_with(
                server,
                "web.default.svc.cluster.local",
                &["A 10.1.0.1", "A 10.1.0.3"],
            )
        },
    );
    std::thread::sleep(Duration::from_millis(200));
    let (answered, lost) = looper.stop();
    eprintln!("added visible after {added:?}, removal after {removed:?}; {answered} queries answered, {lost} lost");
    assert!(answered > 100, "the loop ran: {answered}");
    assert_eq!(lost, 0, "queries lost during the swaps");
}

#[test]
fn sigterm_stops_the_server() {
    let dir = TempDir::new("binary-sigterm");
    let file = dir.write("cluster.yaml", &manifest(false, &["10.1.0.1"]));
    let running = start(&file, free_port());
    running.terminate();
    let status = running.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "exit status {status}\n{}", running.logs());
}
