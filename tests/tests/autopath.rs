//! Server-side search-path completion (`--autopath`, CoreDNS's `autopath @kubernetes`) over
//! real sockets: the binary serves a cluster from manifests with Pods whose addresses are
//! loopback addresses, so a test client sending from 127.0.0.2 is "a Pod in namespace apps".
//! Names outside the cluster go to a real Knot DNS. One test takes the cluster from the fake
//! Kubernetes API server instead, with a Corefile.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use clusterdns_testkit::dns::{Query, Reply};
use clusterdns_testkit::fakeapi::{self, FakeApi, Kind};
use clusterdns_testkit::http::{http_get, metric};
use clusterdns_testkit::knot::Knot;
use clusterdns_testkit::net::{free_port, loopback};
use clusterdns_testkit::process::Process;
use clusterdns_testkit::temp::TempDir;
use hickory_proto::op::ResponseCode;

/// The cluster: two namespaces with a Service each, and three Pods: one in `apps` at
/// 127.0.0.2, one in `db` at 127.0.0.3, and a hostNetwork one at 127.0.0.4 (the node's address,
/// which must not count as any namespace's).
fn cluster(client_namespace: &str) -> String {
    format!(
        "\
apiVersion: v1
kind: Namespace
metadata: {{name: apps}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: db}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: apps}}
spec: {{clusterIP: 10.96.1.10, clusterIPs: [10.96.1.10], ports: [{{name: http, port: 80, protocol: TCP}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: pg, namespace: db}}
spec: {{clusterIP: 10.96.2.20, clusterIPs: [10.96.2.20], ports: [{{name: pg, port: 5432, protocol: TCP}}]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: {client_namespace}}}
spec: {{containers: [{{name: c, image: busybox}}]}}
status: {{phase: Running, podIP: 127.0.0.2, podIPs: [{{ip: 127.0.0.2}}]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: pg-client, namespace: db}}
spec: {{containers: [{{name: c, image: busybox}}]}}
status: {{phase: Running, podIP: 127.0.0.3, podIPs: [{{ip: 127.0.0.3}}]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: agent, namespace: apps}}
spec: {{hostNetwork: true, containers: [{{name: c, image: busybox}}]}}
status: {{phase: Running, podIP: 127.0.0.4, podIPs: [{{ip: 127.0.0.4}}]}}
"
    )
}

/// The node's resolvers: `example.test` and `corp.test`, the node's search domain.
fn knot() -> Knot {
    Knot::with_records(
        "autopath",
        &[
            ("example.test", "api A 192.0.2.1\n"),
            ("corp.test", "wiki A 192.0.2.2\n"),
        ],
    )
}

/// A running clusterdns with `--autopath`, its manifest and its address.
struct Server {
    process: Process,
    dns: SocketAddr,
    metrics: SocketAddr,
    dir: TempDir,
}

impl Server {
    fn start(upstream: SocketAddr) -> Server {
        let dir = TempDir::new("autopath");
        dir.write("cluster.yaml", &cluster("apps"));
        dir.write("resolv.conf", "search corp.test\nnameserver 192.0.2.99\n");
        let dns = loopback(free_port());
        let args = [
            "--manifests".to_owned(),
            dir.path().join("cluster.yaml").display().to_string(),
            "--listen".to_owned(),
            dns.to_string(),
            "--threads".to_owned(),
            "1".to_owned(),
            "--upstream".to_owned(),
            upstream.to_string(),
            "--resolv-conf".to_owned(),
            dir.path().join("resolv.conf").display().to_string(),
            "--autopath".to_owned(),
        ];
        let metrics = loopback(free_port());
        let ops = [
            "--health".to_owned(),
            loopback(free_port()).to_string(),
            "--ready".to_owned(),
            loopback(free_port()).to_string(),
            "--metrics".to_owned(),
            metrics.to_string(),
        ];
        let process = Process::clusterdns(&[&args[..], &ops[..]].concat());
        let server = Server {
            process,
            dns,
            metrics,
            dir,
        };
        server.wait(2, "web.apps.svc.cluster.local", |r| {
            r.rcode == ResponseCode::NoError
        });
        server
    }

    /// Asks `name` A from `client` (a 127.0.0.x source address).
    fn ask(&self, client: u8, name: &str) -> Option<Reply> {
        let socket = UdpSocket::bind((IpAddr::from([127, 0, 0, client]), 0)).ok()?;
        socket.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        socket
            .send_to(&Query::new(name, 1).id(0x4242).build(), self.dns)
            .ok()?;
        let mut buf = [0u8; 4096];
        let len = socket.recv(&mut buf).ok()?;
        Reply::parse(&buf[..len]).ok()
    }

    /// Asks until `condition` holds (10 s at most).
    fn wait(&self, client: u8, name: &str, condition: impl Fn(&Reply) -> bool) -> Reply {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(reply) = self.ask(client, name).filter(|r| condition(r)) {
                return reply;
            }
            self.process.assert_alive();
            assert!(
                Instant::now() < deadline,
                "{name} from 127.0.0.{client}: no such answer\n{}",
                self.process.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Asks `name` from client 127.0.0.`client` and checks the walked answer: NOERROR with exactly
/// `records` (`owner TYPE RDATA`), the CNAME from the asked name first.
fn walked(server: &Server, client: u8, name: &str, records: [&str; 2]) {
    let reply = server.ask(client, name).expect("answer");
    assert_eq!(reply.rcode, ResponseCode::NoError, "{name}");
    assert_eq!(answers(&reply), records, "{name}");
}

/// Waits until `name` from client 127.0.0.`client` is answered (NOERROR), then checks that the
/// answer is exactly `records`.
fn wait_walked(server: &Server, client: u8, name: &str, records: [&str; 2]) {
    let reply = server.wait(client, name, |r| r.rcode == ResponseCode::NoError);
    assert_eq!(answers(&reply), records, "{name}");
}

/// The answer records as `owner TYPE RDATA`, without TTLs.
fn answers(reply: &Reply) -> Vec<String> {
    (reply.answers.iter())
        .map(|rr| format!("{} {}", rr.name, rr.data))
        .collect()
}

#[test]
fn the_first_expansion_is_answered_with_the_end_of_the_search_path() {
    let knot = knot();
    let server = Server::start(knot.addr);

    // A Service in another namespace: pg.db, asked as a Pod of apps first tries it.
    walked(
        &server,
        2,
        "pg.db.apps.svc.cluster.local",
        [
            "pg.db.apps.svc.cluster.local. CNAME pg.db.svc.cluster.local.",
            "pg.db.svc.cluster.local. A 10.96.2.20",
        ],
    );

    // An external name: through the cluster's expansions and the node's search domain.
    walked(
        &server,
        2,
        "api.example.test.apps.svc.cluster.local",
        [
            "api.example.test.apps.svc.cluster.local. CNAME api.example.test.",
            "api.example.test. A 192.0.2.1",
        ],
    );

    // The node's search domain itself: `wiki` is wiki.corp.test.
    walked(
        &server,
        2,
        "wiki.apps.svc.cluster.local",
        [
            "wiki.apps.svc.cluster.local. CNAME wiki.corp.test.",
            "wiki.corp.test. A 192.0.2.2",
        ],
    );

    // A name that exists nowhere: NXDOMAIN for the name asked, as without autopath.
    let reply = server
        .ask(2, "nothing.example.test.apps.svc.cluster.local")
        .expect("answer");
    assert_eq!(reply.rcode, ResponseCode::NXDomain);
    assert!(reply.answers.is_empty());

    // A name that exists as asked is answered as it is.
    let reply = server.ask(2, "web.apps.svc.cluster.local").expect("answer");
    assert_eq!(
        answers(&reply),
        ["web.apps.svc.cluster.local. A 10.96.1.10"]
    );
}

#[test]
fn unknown_and_host_network_clients_get_plain_answers() {
    let knot = knot();
    let server = Server::start(knot.addr);
    // 127.0.0.5 is no Pod; 127.0.0.4 is a hostNetwork Pod, so the node's address.
    for client in [5, 4] {
        let reply = server
            .ask(client, "pg.db.apps.svc.cluster.local")
            .expect("answer");
        assert_eq!(
            reply.rcode,
            ResponseCode::NXDomain,
            "client 127.0.0.{client}"
        );
        assert!(reply.answers.is_empty());
    }
    // A Pod of db: its own first expansion is pg.db.db.svc..., not this one.
    let reply = server
        .ask(3, "pg.db.apps.svc.cluster.local")
        .expect("answer");
    assert_eq!(reply.rcode, ResponseCode::NXDomain);
}

#[test]
fn the_index_follows_a_pod_that_moves_to_another_namespace() {
    let knot = knot();
    let server = Server::start(knot.addr);
    let reply = server
        .ask(2, "pg.db.apps.svc.cluster.local")
        .expect("answer");
    assert_eq!(reply.answers.len(), 2);

    // The Pod at 127.0.0.2 is now in db: its first expansion is <name>.db.svc.cluster.local.
    server.dir.write("cluster.yaml", &cluster("db"));
    wait_walked(
        &server,
        2,
        "web.apps.db.svc.cluster.local",
        [
            "web.apps.db.svc.cluster.local. CNAME web.apps.svc.cluster.local.",
            "web.apps.svc.cluster.local. A 10.96.1.10",
        ],
    );
    let reply = server
        .ask(2, "pg.db.apps.svc.cluster.local")
        .expect("answer");
    assert_eq!(reply.rcode, ResponseCode::NXDomain);
}

#[test]
fn autopath_answers_are_counted() {
    let knot = knot();
    let server = Server::start(knot.addr);
    server
        .ask(2, "pg.db.apps.svc.cluster.local")
        .expect("answer");
    let text = http_get(server.metrics, "/metrics")
        .map(|(_, body)| body)
        .unwrap_or_default();
    let counted = metric(&text, "coredns_autopath_success_total", &[]);
    assert_eq!(counted, Some(1.0), "{text}");
}

/// The same move through the Kubernetes API: the Pod is deleted from `apps` and a Pod with
/// its address appears in `db`, as list and watch events of the fake API server; the Corefile
/// says `autopath @kubernetes`.
#[test]
fn the_index_follows_the_pod_watch_of_the_api_server() {
    let api = FakeApi::start();
    for namespace in ["apps", "db"] {
        api.upsert(Kind::Namespace, fakeapi::namespace(namespace));
    }
    let http = [fakeapi::port("http", 80, "TCP")];
    api.upsert(
        Kind::Service,
        fakeapi::service("apps", "web", &["10.96.1.10"], &http),
    );
    api.upsert(
        Kind::Service,
        fakeapi::service("db", "pg", &["10.96.2.20"], &http),
    );
    api.upsert(Kind::Pod, fakeapi::pod("apps", "client", "127.0.0.2"));
    let dir = TempDir::new("autopath-api");
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let dns = loopback(free_port());
    let corefile = dir.write(
        "Corefile",
        &format!(
            ".:{port} {{\n    bind 127.0.0.1\n    autopath @kubernetes\n    \
             kubernetes cluster.local {{\n        kubeconfig {kubeconfig}\n    }}\n}}\n",
            port = dns.port(),
            kubeconfig = kubeconfig.display()
        ),
    );
    // Without `health`, `ready` or `prometheus` in the Corefile, no ops endpoint is served.
    let server = Server {
        process: Process::clusterdns(&["-conf".to_owned(), corefile.display().to_string()]),
        dns,
        metrics: loopback(free_port()),
        dir,
    };
    wait_walked(
        &server,
        2,
        "pg.db.apps.svc.cluster.local",
        [
            "pg.db.apps.svc.cluster.local. CNAME pg.db.svc.cluster.local.",
            "pg.db.svc.cluster.local. A 10.96.2.20",
        ],
    );

    api.delete(Kind::Pod, "apps", "client");
    api.upsert(Kind::Pod, fakeapi::pod("db", "client", "127.0.0.2"));
    wait_walked(
        &server,
        2,
        "web.apps.db.svc.cluster.local",
        [
            "web.apps.db.svc.cluster.local. CNAME web.apps.svc.cluster.local.",
            "web.apps.svc.cluster.local. A 10.96.1.10",
        ],
    );
    let reply = server
        .ask(2, "pg.db.apps.svc.cluster.local")
        .expect("answer");
    assert_eq!(reply.rcode, ResponseCode::NXDomain);
}
