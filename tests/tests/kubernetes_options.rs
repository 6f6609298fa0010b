//! The `kubernetes` directive's options that real distributions' Corefiles use, carried out by
//! the real binary against the fake Kubernetes API server (`clusterdns_testkit::fakeapi`, which
//! honours `labelSelector` on lists and watches as the API server does), with Knot DNS as the
//! upstream the rest is forwarded to:
//!
//! - reverse zones given as CIDRs, one of them off an octet boundary (`10.96.0.0/12` is the 16
//!   zones `96.10.in-addr.arpa` to `111.10.in-addr.arpa`) and one IPv6 (`fd00::/120`): PTR
//!   answers under them, an unknown address in them is NXDOMAIN with that zone's SOA, and an
//!   address outside them goes on to `forward`;
//! - `labels`: a Service (and its EndpointSlices) relabelled into or out of the selector
//!   appears or disappears while serving;
//! - `namespace_labels`: a namespace relabelled into or out of the selector, its Services and
//!   names with it;
//! - `endpoint_pod_names`: a headless Service's endpoints without a hostname are named by the
//!   Pod their `targetRef` names, in A, SRV and PTR answers;
//! - `ignore empty_service`: a ClusterIP Service without a ready endpoint is NXDOMAIN until one
//!   is ready.
//!
//! The expected answers are CoreDNS 1.13's for the same Corefile, except that the PTR of a
//! Service in a namespace `namespace_labels` leaves out is NXDOMAIN here (CoreDNS still answers
//! it unless `namespaces` is also set, which it refuses together with `namespace_labels`).

use std::ffi::OsStr;
use std::net::{Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use clusterdns_testkit::dns::Reply;
use clusterdns_testkit::fakeapi::{self, FakeApi, Kind};
use clusterdns_testkit::knot::Knot;
use clusterdns_testkit::net::{free_port, loopback};
use clusterdns_testkit::process::Process;
use clusterdns_testkit::temp::TempDir;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::{json, Value};

/// How long the binary may take to start answering and to sync with the fake API.
const STARTUP: Duration = Duration::from_secs(15);
/// How long a change in the API may take to show in answers.
const PROPAGATION: Duration = Duration::from_secs(3);

const A: RecordType = RecordType::A;
const SRV: RecordType = RecordType::SRV;
const PTR: RecordType = RecordType::PTR;

/// The upstream: a reverse zone outside the CIDRs, with one PTR.
const UPSTREAM_ZONES: &[(&str, &str)] = &[(
    "2.0.192.in-addr.arpa",
    "@ 3600 IN SOA ns.example.test. hostmaster.example.test. 1 7200 3600 1209600 60\n\
     @ NS ns.example.test.\n99 PTR knot-ptr.example.test.\n",
)];

/// The Corefile under test: every option at once, as a distribution would write them.
const COREFILE: &str = "\
.:@PORT@ {
    bind 127.0.0.1
    errors
    ready @READY@
    kubernetes cluster.local 10.96.0.0/12 fd00::/120 {
        kubeconfig @KUBECONFIG@
        labels dns in (on, yes),!legacy
        namespace_labels team
        endpoint_pod_names
        ignore empty_service
    }
    forward . @UPSTREAM@
}
";

/// `metadata.labels` of `pairs`.
fn labels(pairs: &[(&str, &str)]) -> Value {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// A Namespace with `with` labels.
fn namespace(name: &str, with: &[(&str, &str)]) -> Value {
    let mut namespace = fakeapi::namespace(name);
    namespace["metadata"]["labels"] = labels(with);
    namespace
}

/// The `http` port, 80/TCP.
fn http() -> Value {
    fakeapi::port("http", 80, "TCP")
}

/// A ClusterIP Service with `with` labels.
fn service(ns: &str, name: &str, ips: &[&str], with: &[(&str, &str)]) -> Value {
    let mut service = fakeapi::service(ns, name, ips, &[http()]);
    service["metadata"]["labels"] = labels(with);
    service
}

/// An EndpointSlice of `service`, labelled as the EndpointSlice controller does: the Service's
/// labels (`with`) and the service-name label.
fn slice(
    ns: &str,
    service: &str,
    ports: &[Value],
    endpoints: &[Value],
    with: &[(&str, &str)],
) -> Value {
    let mut slice = fakeapi::endpoint_slice(
        ns,
        &format!("{service}-abcde"),
        service,
        "IPv4",
        ports,
        endpoints,
    );
    for (key, value) in with {
        slice["metadata"]["labels"][key] = (*value).into();
    }
    slice
}

/// A ready endpoint at `address`, with a hostname and a `targetRef` to a Pod when given.
fn endpoint(address: &str, hostname: Option<&str>, pod: Option<&str>) -> Value {
    let mut endpoint = fakeapi::endpoint(&[address], hostname, Some(true));
    if let Some(pod) = pod {
        endpoint["targetRef"] = json!({ "kind": "Pod", "name": pod, "namespace": "apps" });
    }
    endpoint
}

const DNS_ON: &[(&str, &str)] = &[("dns", "on")];

/// The EndpointSlice of `apps/hidden`, with its Service's labels `with`.
fn hidden_slice(with: &[(&str, &str)]) -> Value {
    let ready = fakeapi::endpoint(&["10.100.0.22"], None, Some(true));
    slice("apps", "hidden", &[http()], &[ready], with)
}

/// The cluster the test starts from.
fn seed(api: &FakeApi) {
    api.upsert(Kind::Namespace, namespace("apps", &[("team", "a")]));
    // Not served until it gets a `team` label.
    api.upsert(Kind::Namespace, namespace("lab", &[]));
    let postgres = fakeapi::port("postgres", 5432, "TCP");
    for object in [
        service("apps", "web", &["10.96.0.20"], DNS_ON),
        service("apps", "empty", &["10.96.0.21"], DNS_ON),
        service("apps", "hidden", &["10.96.0.22"], &[]),
        service(
            "apps",
            "legacy",
            &["10.96.0.23"],
            &[("dns", "on"), ("legacy", "true")],
        ),
        service("apps", "v6", &["fd00::10"], DNS_ON),
        service("lab", "api", &["10.96.0.30"], DNS_ON),
    ] {
        api.upsert(Kind::Service, object);
    }
    let mut db = fakeapi::headless_service("apps", "db", std::slice::from_ref(&postgres));
    db["metadata"]["labels"] = labels(DNS_ON);
    api.upsert(Kind::Service, db);

    api.upsert(
        Kind::EndpointSlice,
        slice(
            "apps",
            "web",
            &[http()],
            &[endpoint("10.100.0.5", None, Some("web-5f7c-q8"))],
            DNS_ON,
        ),
    );
    // `hidden`'s slice carries its Service's labels: none of the selector's yet.
    api.upsert(Kind::EndpointSlice, hidden_slice(&[]));
    let api_endpoint = fakeapi::endpoint(&["10.100.1.1"], None, Some(true));
    api.upsert(
        Kind::EndpointSlice,
        slice("lab", "api", &[http()], &[api_endpoint], DNS_ON),
    );
    // `empty`'s one endpoint is not ready.
    let not_ready = fakeapi::endpoint(&["10.100.0.6"], None, Some(false));
    api.upsert(
        Kind::EndpointSlice,
        slice("apps", "empty", &[http()], &[not_ready], DNS_ON),
    );
    api.upsert(
        Kind::EndpointSlice,
        slice(
            "apps",
            "db",
            &[postgres],
            &[
                // Named by its Pod; by its hostname (which wins); by its address.
                endpoint("10.100.0.7", None, Some("db-7d9f-x2")),
                endpoint("10.100.0.8", Some("primary"), Some("db-0")),
                endpoint("10.100.0.9", None, None),
            ],
            DNS_ON,
        ),
    );
}

struct Deployment {
    server: Process,
    dns: SocketAddr,
    api: FakeApi,
    _knot: Knot,
    _dir: TempDir,
}

impl Deployment {
    fn start() -> Deployment {
        let api = FakeApi::start();
        seed(&api);
        let knot = Knot::start("kubernetes-options", UPSTREAM_ZONES);
        let dir = TempDir::new("kubernetes-options");
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        let port = free_port();
        let ready = loopback(free_port());
        let corefile = COREFILE
            .replace("@PORT@", &port.to_string())
            .replace("@READY@", &ready.to_string())
            .replace("@KUBECONFIG@", &kubeconfig.display().to_string())
            .replace("@UPSTREAM@", &knot.addr.to_string());
        let path = dir.write("Corefile", &corefile);
        let server = Process::clusterdns(&[
            OsStr::new("--corefile"),
            path.as_os_str(),
            OsStr::new("--threads"),
            OsStr::new("1"),
        ]);
        server.wait_status(ready, "/ready", 200, STARTUP);
        Deployment {
            server,
            dns: loopback(port),
            api,
            _knot: knot,
            _dir: dir,
        }
    }

    fn ask(&self, name: &str, qtype: RecordType) -> Reply {
        self.server.ask(self.dns, name, qtype)
    }

    /// Asserts `name qtype` is answered with exactly `records`, authoritatively.
    fn assert_answers(&self, name: &str, qtype: RecordType, records: &[&str]) {
        let reply = self.ask(name, qtype);
        assert!(
            reply.is(records),
            "{name} {qtype}: {reply:?}\n{}",
            self.server.logs()
        );
        assert!(reply.aa, "{name}: {reply:?}");
    }

    /// Asserts `name qtype` is NXDOMAIN with the SOA of `zone` (dotted, lowercase).
    fn assert_nxdomain(&self, name: &str, qtype: RecordType, zone: &str) {
        let reply = self.ask(name, qtype);
        assert_eq!(
            reply.rcode,
            ResponseCode::NXDomain,
            "{name} {qtype}: {reply:?}"
        );
        assert!(reply.aa, "{name}: {reply:?}");
        assert_eq!(reply.authority.len(), 1, "{name}: {reply:?}");
        let soa = &reply.authority[0];
        assert_eq!(soa.name, zone, "{name}: {reply:?}");
        assert!(
            soa.data
                .starts_with(&format!("SOA ns.dns.{zone} hostmaster.{zone} ")),
            "{name}: {reply:?}"
        );
    }

    /// Waits until `name qtype` satisfies `condition`.
    fn wait(
        &self,
        since: Instant,
        name: &str,
        qtype: RecordType,
        condition: impl Fn(&Reply) -> bool,
    ) {
        self.server
            .wait_answer(self.dns, since, PROPAGATION, name, qtype, condition);
    }
}

/// The `ip6.arpa` name of `ip`, nibble by nibble.
fn ip6_arpa(ip: &str) -> String {
    let ip: Ipv6Addr = ip.parse().expect("an IPv6 address");
    let mut name = String::new();
    for byte in ip.octets().iter().rev() {
        name.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
    }
    name + "ip6.arpa"
}

#[test]
fn the_kubernetes_options_of_real_corefiles_are_carried_out() {
    let d = Deployment::start();
    let zone = "cluster.local.";

    // `labels`: a matching Service answers; one without the label, or with `legacy`, does not.
    d.assert_answers("web.apps.svc.cluster.local", A, &["A 10.96.0.20"]);
    d.assert_nxdomain("hidden.apps.svc.cluster.local", A, zone);
    d.assert_nxdomain("legacy.apps.svc.cluster.local", A, zone);

    // `ignore empty_service`: a ClusterIP Service with no ready endpoint does not exist, for
    // every name under it, so a search path goes on.
    d.assert_nxdomain("empty.apps.svc.cluster.local", A, zone);
    d.assert_nxdomain("_http._tcp.empty.apps.svc.cluster.local", SRV, zone);
    d.assert_nxdomain("empty.apps.svc.cluster.local", SRV, zone);

    // `endpoint_pod_names`: a headless Service's endpoints by Pod name, hostname or address.
    d.assert_answers(
        "db.apps.svc.cluster.local",
        A,
        &["A 10.100.0.7", "A 10.100.0.8", "A 10.100.0.9"],
    );
    d.assert_answers("db-7d9f-x2.db.apps.svc.cluster.local", A, &["A 10.100.0.7"]);
    d.assert_answers("primary.db.apps.svc.cluster.local", A, &["A 10.100.0.8"]);
    d.assert_answers("10-100-0-9.db.apps.svc.cluster.local", A, &["A 10.100.0.9"]);
    d.assert_nxdomain("10-100-0-7.db.apps.svc.cluster.local", A, zone);
    d.assert_nxdomain("db-0.db.apps.svc.cluster.local", A, zone);
    d.assert_answers(
        "_postgres._tcp.db.apps.svc.cluster.local",
        SRV,
        &[
            "SRV 0 33 5432 10-100-0-9.db.apps.svc.cluster.local.",
            "SRV 0 33 5432 db-7d9f-x2.db.apps.svc.cluster.local.",
            "SRV 0 33 5432 primary.db.apps.svc.cluster.local.",
        ],
    );

    // PTR under the CIDR reverse zones: a cluster IP, a Pod-named endpoint (10.100 is one of
    // the 16 zones /12 splits into), an IPv6 cluster IP; and PTR of an empty Service stays, as
    // in CoreDNS.
    d.assert_answers(
        "20.0.96.10.in-addr.arpa",
        PTR,
        &["PTR web.apps.svc.cluster.local."],
    );
    d.assert_answers(
        "7.0.100.10.in-addr.arpa",
        PTR,
        &["PTR db-7d9f-x2.db.apps.svc.cluster.local."],
    );
    // A ClusterIP Service's endpoint is named by its Pod too.
    d.assert_answers(
        "5.0.100.10.in-addr.arpa",
        PTR,
        &["PTR web-5f7c-q8.web.apps.svc.cluster.local."],
    );
    d.assert_answers(
        &ip6_arpa("fd00::10"),
        PTR,
        &["PTR v6.apps.svc.cluster.local."],
    );
    d.assert_answers(
        "21.0.96.10.in-addr.arpa",
        PTR,
        &["PTR empty.apps.svc.cluster.local."],
    );
    // An unknown address in them: NXDOMAIN with that reverse zone's SOA (no fallthrough).
    d.assert_nxdomain("99.0.96.10.in-addr.arpa", PTR, "96.10.in-addr.arpa.");
    d.assert_nxdomain("99.0.100.10.in-addr.arpa", PTR, "100.10.in-addr.arpa.");
    d.assert_nxdomain("22.0.96.10.in-addr.arpa", PTR, "96.10.in-addr.arpa.");
    let v6_zone = format!("{}d.f.ip6.arpa.", "0.".repeat(28));
    d.assert_nxdomain(&ip6_arpa("fd00::99"), PTR, &v6_zone);
    // An address outside them is not the cluster's: it goes on to `forward` (Knot has it).
    let outside = d.ask("99.2.0.192.in-addr.arpa", PTR);
    assert!(
        outside.is(&["PTR knot-ptr.example.test."]),
        "an address outside the CIDRs must be forwarded: {outside:?}\n{}",
        d.server.logs()
    );

    // `namespace_labels`: `lab` has no `team` label, so its Service and its names are absent.
    d.assert_nxdomain("api.lab.svc.cluster.local", A, zone);
    d.assert_nxdomain("lab.svc.cluster.local", A, zone);
    d.assert_nxdomain("30.0.96.10.in-addr.arpa", PTR, "96.10.in-addr.arpa.");
    d.assert_answers("apps.svc.cluster.local", A, &[]);

    // The namespace relabelled into the selector while serving: it appears...
    let since = Instant::now();
    d.api
        .upsert(Kind::Namespace, namespace("lab", &[("team", "b")]));
    d.wait(since, "api.lab.svc.cluster.local", A, |r| {
        r.is(&["A 10.96.0.30"])
    });
    d.assert_answers(
        "30.0.96.10.in-addr.arpa",
        PTR,
        &["PTR api.lab.svc.cluster.local."],
    );
    d.assert_answers("lab.svc.cluster.local", A, &[]);
    // ...and out of it: it goes.
    let since = Instant::now();
    d.api
        .upsert(Kind::Namespace, namespace("lab", &[("owner", "x")]));
    d.wait(since, "api.lab.svc.cluster.local", A, Reply::nxdomain);
    d.assert_nxdomain("30.0.96.10.in-addr.arpa", PTR, "96.10.in-addr.arpa.");
    d.assert_nxdomain("lab.svc.cluster.local", A, zone);

    // A Service relabelled into `labels` while serving (the EndpointSlice controller
    // relabels its slices with it) appears, its PTR too...
    let since = Instant::now();
    d.api.upsert(
        Kind::Service,
        service("apps", "hidden", &["10.96.0.22"], &[("dns", "yes")]),
    );
    d.api
        .upsert(Kind::EndpointSlice, hidden_slice(&[("dns", "yes")]));
    d.wait(since, "hidden.apps.svc.cluster.local", A, |r| {
        r.is(&["A 10.96.0.22"])
    });
    d.assert_answers(
        "22.0.96.10.in-addr.arpa",
        PTR,
        &["PTR hidden.apps.svc.cluster.local."],
    );
    // ...and relabelled out of it, goes.
    let since = Instant::now();
    d.api.upsert(
        Kind::Service,
        service("apps", "hidden", &["10.96.0.22"], &[("dns", "off")]),
    );
    d.api
        .upsert(Kind::EndpointSlice, hidden_slice(&[("dns", "off")]));
    d.wait(since, "hidden.apps.svc.cluster.local", A, Reply::nxdomain);
    d.assert_nxdomain("22.0.96.10.in-addr.arpa", PTR, "96.10.in-addr.arpa.");
    // So does a Service whose EndpointSlice loses the label: its endpoints go with it.
    let since = Instant::now();
    d.api.upsert(
        Kind::EndpointSlice,
        slice(
            "apps",
            "db",
            &[fakeapi::port("postgres", 5432, "TCP")],
            &[endpoint("10.100.0.7", None, Some("db-7d9f-x2"))],
            &[("dns", "off")],
        ),
    );
    d.wait(since, "db.apps.svc.cluster.local", A, Reply::nxdomain);

    // `ignore empty_service`: the endpoint becomes ready, the Service appears.
    let since = Instant::now();
    let ready = endpoint("10.100.0.6", None, Some("empty-1"));
    d.api.upsert(
        Kind::EndpointSlice,
        slice("apps", "empty", &[http()], &[ready], DNS_ON),
    );
    d.wait(since, "empty.apps.svc.cluster.local", A, |r| {
        r.is(&["A 10.96.0.21"])
    });
    d.assert_answers(
        "_http._tcp.empty.apps.svc.cluster.local",
        SRV,
        &["SRV 0 100 80 empty.apps.svc.cluster.local."],
    );

    // The selectors went to the API server with the lists and watches, as CoreDNS sends them.
    let requests = d.api.requests();
    let sent = |resource: &str, selector: &str| {
        requests
            .iter()
            .any(|r| r.path.contains(resource) && r.path.contains(selector))
    };
    assert!(sent("/services?", "labelSelector=dns"), "{requests:?}");
    assert!(
        sent("/endpointslices?", "labelSelector=dns"),
        "{requests:?}"
    );
    assert!(sent("/namespaces?", "labelSelector=team"), "{requests:?}");
}
