//! Replays the fuzz targets' seed corpora (`fuzz/corpus/<target>/`) through the targets' own
//! logic and checks (`fuzz/src/`, included here by path), so the stable toolchain and CI run
//! every seed without cargo-fuzz. Any other file a local fuzzing run left in a corpus directory
//! is replayed too. `write_seeds` (ignored) regenerates the seed files from this code.

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// Every file of the target's corpus, sorted; at least one (a seed) must be there.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(
        files.iter().any(|p| p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))),
        "no seed in {}",
        dir.display()
    );
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

fn replay(target: &str, run: fn(&[u8])) {
    for (path, bytes) in corpus(target) {
        let outcome = std::panic::catch_unwind(|| run(&bytes));
        assert!(outcome.is_ok(), "{target}: {} fails", path.display());
    }
}

#[test]
fn query_corpus() {
    replay("query", harness::query::run);
}

#[test]
fn forward_response_corpus() {
    replay("forward_response", harness::forward_response::run);
}

#[test]
fn cache_corpus() {
    replay("cache", harness::cache::run);
}

#[test]
fn manifest_corpus() {
    replay("manifest", harness::manifest::run);
}

#[test]
fn corefile_corpus() {
    // The seeds must not be skipped by the sandbox filter, or they test nothing.
    for (path, bytes) in corpus("corefile") {
        let text = String::from_utf8_lossy(&bytes);
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("seed-")
        {
            assert!(
                harness::corefile::reads_only_the_sandbox(&text),
                "{} is skipped by the target",
                path.display()
            );
        }
    }
    replay("corefile", harness::corefile::run);
}

#[test]
fn sandbox_filter_refuses_paths_outside() {
    use harness::corefile::reads_only_the_sandbox as ok;
    assert!(ok(". {\n forward . /etc/resolv.conf\n hosts hosts\n}\n"));
    assert!(ok("import custom/*.override\n"));
    for bad in [
        ". {\n hosts /dev/zero\n}\n",
        "import /proc/self/*\n",
        ". {\n hosts ../../../dev/zero\n}\n",
        ". {\n hosts \"/dev/zero\"\n}\n",
        ". {\n hosts \r/dev/zero\n}\n",
        ". {\n hosts /etc/coredns/../../dev/zero\n}\n",
        ". {\n hosts\u{a0}/dev/zero\n}\n",
    ] {
        assert!(!ok(bad), "{bad:?}");
    }
}

// ---- seed generation ------------------------------------------------------------------------

fn name(dotted: &str) -> Name {
    Name::from_ascii(dotted).unwrap()
}

fn query(id: u16, dotted: &str, qtype: RecordType, edns: Option<(u16, bool)>) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name(dotted), qtype));
    if let Some((payload, dnssec_ok)) = edns {
        let mut e = Edns::new();
        e.set_max_payload(payload).set_dnssec_ok(dnssec_ok);
        message.set_edns(e);
    }
    message.to_vec().unwrap()
}

fn query_seeds() -> Vec<(String, Vec<u8>)> {
    use RecordType::*;
    let edns = Some((1232, false));
    let mut seeds = vec![
        (
            "a-clusterip",
            query(1, "web.apps.svc.cluster.local.", A, None),
        ),
        (
            "aaaa-dualstack",
            query(2, "web.apps.svc.cluster.local.", AAAA, edns),
        ),
        (
            "a-headless-many",
            query(3, "many.apps.svc.cluster.local.", A, None),
        ),
        (
            "srv-named-port",
            query(4, "_http._tcp.web.apps.svc.cluster.local.", SRV, edns),
        ),
        (
            "srv-headless",
            query(
                5,
                "_postgres._tcp.db.apps.svc.cluster.local.",
                SRV,
                Some((4096, true)),
            ),
        ),
        (
            "a-hostname",
            query(6, "db-0.db.apps.svc.cluster.local.", A, None),
        ),
        (
            "aaaa-hostname",
            query(7, "db-0.db.apps.svc.cluster.local.", AAAA, edns),
        ),
        (
            "cname-externalname",
            query(8, "alias.apps.svc.cluster.local.", A, edns),
        ),
        ("ptr-v4", query(9, "5.1.96.10.in-addr.arpa.", PTR, None)),
        (
            "ptr-v6",
            query(
                10,
                "5.0.1.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.",
                PTR,
                edns,
            ),
        ),
        (
            "a-pod-verified",
            query(11, "10-0-2-1.apps.pod.cluster.local.", A, None),
        ),
        (
            "any-headless",
            query(12, "many.apps.svc.cluster.local.", ANY, edns),
        ),
        ("soa-apex", query(13, "cluster.local.", SOA, edns)),
        (
            "txt-dns-version",
            query(14, "dns-version.cluster.local.", TXT, None),
        ),
        (
            "a-nxdomain",
            query(15, "missing.apps.svc.cluster.local.", A, edns),
        ),
        ("a-outside", query(16, "www.example.com.", A, edns)),
        ("axfr", query(17, "cluster.local.", AXFR, None)),
        ("a-namespace", query(18, "apps.svc.cluster.local.", A, None)),
    ];
    // Uppercase: the question is echoed as asked.
    let mut upper = query(19, "WEB.Apps.SVC.cluster.LOCAL.", A, None);
    seeds.push(("a-mixed-case", std::mem::take(&mut upper)));
    // Class CH, opcode NOTIFY, an EDNS version of 1, two questions.
    let mut chaos = query(20, "web.apps.svc.cluster.local.", A, None);
    let at = chaos.len() - 2;
    chaos[at..].copy_from_slice(&3u16.to_be_bytes());
    seeds.push(("class-chaos", chaos));
    let mut notify = query(21, "web.apps.svc.cluster.local.", A, None);
    notify[2] |= 0x20;
    seeds.push(("opcode-notify", notify));
    let mut badvers = query(22, "web.apps.svc.cluster.local.", A, edns);
    let opt_version = badvers.len() - 5;
    badvers[opt_version] = 1;
    seeds.push(("edns-version-1", badvers));
    let mut two = query(23, "web.apps.svc.cluster.local.", A, None);
    two[5] = 2;
    seeds.push(("two-questions", two));
    seeds.into_iter().map(|(n, b)| (n.to_owned(), b)).collect()
}

fn record(owner: &str, ttl: u32, rdata: RData) -> Record {
    Record::from_rdata(name(owner), ttl, rdata)
}

fn response(
    id: u16,
    question: (&str, RecordType),
    rcode: ResponseCode,
    sections: [Vec<Record>; 3],
    edns: bool,
) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Response, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.metadata.recursion_available = true;
    message.metadata.response_code = rcode;
    let mut q = Query::query(name(question.0), question.1);
    q.set_query_class(DNSClass::IN);
    message.add_query(q);
    let [answers, authorities, additionals] = sections;
    message.add_answers(answers);
    message.add_authorities(authorities);
    message.add_additionals(additionals);
    if edns {
        message.set_edns(Edns::new());
    }
    message.to_vec().unwrap()
}

fn soa(zone: &str, ttl: u32, minimum: u32) -> Record {
    record(
        zone,
        ttl,
        RData::SOA(SOA::new(
            name(&format!("ns1.{zone}")),
            name(&format!("hostmaster.{zone}")),
            2024010101,
            7200,
            3600,
            1209600,
            minimum,
        )),
    )
}

fn forward_seeds() -> Vec<(String, Vec<u8>)> {
    use RecordType::{A as TA, AAAA as TAAAA, MX as TMX, SRV as TSRV};
    let www = "www.example.com.";
    let a = |ttl, last| record(www, ttl, RData::A(A(Ipv4Addr::new(192, 0, 2, last))));
    let many: Vec<Record> = (1..=60).map(|i| a(300, i)).collect();
    let seeds = vec![
        (
            "a-two",
            response(
                7,
                (www, TA),
                ResponseCode::NoError,
                [vec![a(300, 1), a(60, 2)], vec![], vec![]],
                true,
            ),
        ),
        (
            "a-many-truncates",
            response(
                7,
                (www, TA),
                ResponseCode::NoError,
                [many, vec![], vec![]],
                false,
            ),
        ),
        (
            "cname-chain",
            response(
                7,
                (www, TA),
                ResponseCode::NoError,
                [
                    vec![
                        record(www, 3600, RData::CNAME(CNAME(name("edge.example.net.")))),
                        record(
                            "edge.example.net.",
                            20,
                            RData::A(A(Ipv4Addr::new(198, 51, 100, 7))),
                        ),
                    ],
                    vec![],
                    vec![],
                ],
                true,
            ),
        ),
        (
            "nxdomain-soa",
            response(
                7,
                (www, TA),
                ResponseCode::NXDomain,
                [vec![], vec![soa("example.com.", 3600, 60)], vec![]],
                true,
            ),
        ),
        (
            "nodata-soa",
            response(
                7,
                (www, TAAAA),
                ResponseCode::NoError,
                [vec![], vec![soa("example.com.", 30, 900)], vec![]],
                false,
            ),
        ),
        (
            "servfail",
            response(
                7,
                (www, TA),
                ResponseCode::ServFail,
                [vec![], vec![], vec![]],
                true,
            ),
        ),
        (
            "mx-with-glue",
            response(
                0x1234,
                ("example.com.", TMX),
                ResponseCode::NoError,
                [
                    vec![record(
                        "example.com.",
                        300,
                        RData::MX(MX::new(10, name("mail.example.com."))),
                    )],
                    vec![],
                    vec![
                        record(
                            "mail.example.com.",
                            300,
                            RData::A(A(Ipv4Addr::new(192, 0, 2, 25))),
                        ),
                        record(
                            "mail.example.com.",
                            300,
                            RData::AAAA(AAAA(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 25))),
                        ),
                    ],
                ],
                true,
            ),
        ),
        (
            "srv-txt",
            response(
                0x4321,
                ("_sip._udp.example.com.", TSRV),
                ResponseCode::NoError,
                [
                    vec![record(
                        "_sip._udp.example.com.",
                        120,
                        RData::SRV(SRV::new(1, 5, 5060, name("sip.example.com."))),
                    )],
                    vec![],
                    vec![record(
                        "sip.example.com.",
                        0x8000_0001,
                        RData::TXT(TXT::new(vec!["v=1".into()])),
                    )],
                ],
                true,
            ),
        ),
        (
            "refused",
            response(
                7,
                (www, TA),
                ResponseCode::Refused,
                [vec![], vec![], vec![]],
                false,
            ),
        ),
    ];
    let mut seeds: Vec<(String, Vec<u8>)> =
        seeds.into_iter().map(|(n, b)| (n.to_owned(), b)).collect();
    let mut tc = response(
        7,
        (www, TA),
        ResponseCode::NoError,
        [vec![a(300, 1)], vec![], vec![]],
        false,
    );
    tc[2] |= 0x02;
    seeds.push(("truncated-flag".into(), tc));
    seeds
}

/// Cache-target op encoder (mirrors `fuzz/src/cache.rs`).
struct Ops(Vec<u8>);

impl Ops {
    fn new(a: u8, b: u8, c: u8) -> Self {
        Ops(vec![a, b, c])
    }
    /// Inserts `records` (kind, ttl) under key `k`, cached as the forwarder would.
    fn insert(mut self, k: u8, flags: u16, shape: u8, records: &[(u8, u32)]) -> Self {
        self.0.push(k << 3);
        self.0.extend_from_slice(&flags.to_be_bytes());
        self.0.push(shape);
        for &(kind, ttl) in records {
            self.0.push(kind);
            self.0.extend_from_slice(&ttl.to_be_bytes());
            match kind % 5 {
                0 => self.0.extend_from_slice(&[192, 0, 2, 1]),
                1 => self
                    .0
                    .extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
                2 => {}
                3 => {
                    for v in [1u32, 7200, 3600, 1209600, 60] {
                        self.0.extend_from_slice(&v.to_be_bytes());
                    }
                }
                _ => {
                    self.0.push(5);
                    self.0.extend_from_slice(b"hello");
                }
            }
        }
        self
    }
    fn advance(mut self, mult: u8, by: u16) -> Self {
        self.0.push((mult << 6) | 3);
        self.0.extend_from_slice(&by.to_be_bytes());
        self
    }
    /// Asks key `k`: `how` bit 0 EDNS, bits 1-2 transport; `payload` when EDNS is sent.
    fn answer(mut self, k: u8, how: u8, case: u32, payload: u16) -> Self {
        self.0.push((k << 3) | 4);
        self.0.push(how);
        self.0.extend_from_slice(&case.to_be_bytes());
        if k & 8 != 0 || how & 1 != 0 {
            self.0.extend_from_slice(&payload.to_be_bytes());
        }
        self
    }
    fn stale(mut self, k: u8) -> Self {
        self.0.push((k << 3) | 6);
        self
    }
    fn get(mut self, k: u8) -> Self {
        self.0.push((k << 3) | 7);
        self
    }
}

fn cache_seeds() -> Vec<(String, Vec<u8>)> {
    let countdown = Ops::new(0x47, 0x01, 0x00)
        .insert(0, 0x8180, 2, &[(0, 300), (0, 60)])
        .answer(0, 0, 0, 0)
        .advance(1, 10)
        .answer(0, 1, 0xFFFF_FFFF, 1232)
        .advance(1, 100)
        .answer(0, 6, 0, 0)
        .stale(0)
        .get(0);
    let eviction = Ops::new(0x01, 0x00, 0x00)
        .insert(0, 0x8180, 1, &[(0, 30)])
        .insert(1, 0x8180, 1, &[(0, 30)])
        .answer(0, 0, 0, 0)
        .insert(2, 0x8180, 1, &[(0, 30)])
        .get(0)
        .get(1)
        .get(2);
    let negative = Ops::new(0x07, 0x00, 0x00)
        .insert(5, 0x8183, 1 << 3, &[(3, 3600)])
        .answer(5, 1, 0, 512)
        .advance(1, 4)
        .answer(5, 1, 0, 512)
        .advance(1, 2)
        .answer(5, 1, 0, 512);
    let prefetch = Ops::new(0x17, 0x00, 0x00)
        .insert(3, 0x8180, 1, &[(0, 30)])
        .answer(3, 6, 0, 0)
        .answer(3, 6, 0, 0)
        .answer(3, 6, 0, 0)
        .advance(0, 28_000)
        .answer(3, 6, 0, 0)
        .answer(3, 6, 0, 0);
    let truncation = Ops::new(0x0F, 0x03, 0x00)
        .insert(12, 0x81A0, 7 | (3 << 5), &[(1, 100); 10])
        .answer(12, 0, 0x5555_5555, 512)
        .answer(12, 6, 0, 0)
        .advance(3, 0)
        .answer(12, 0, 0, 600);
    // `serve_stale 1h immediate`, `prefetch 1 1s 50%`: an expired entry answered at once.
    let immediate = Ops::new(0x57, 0x00, 0x0D)
        .insert(1, 0x8180, 1, &[(0, 10)])
        .answer(1, 6, 0, 0)
        .advance(1, 5)
        .answer(1, 6, 0, 0)
        .advance(1, 6)
        .answer(1, 6, 0, 0)
        .answer(1, 1, 0, 1232)
        .advance(2, 61)
        .answer(1, 6, 0, 0);
    vec![
        ("countdown-stale".into(), countdown.0),
        ("stale-immediate".into(), immediate.0),
        ("eviction".into(), eviction.0),
        ("negative".into(), negative.0),
        ("prefetch".into(), prefetch.0),
        ("truncation-do-keepttl".into(), truncation.0),
    ]
}

const MANIFEST_JSON: &str = r#"{
  "apiVersion": "v1",
  "kind": "List",
  "items": [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
    {"apiVersion": "v1", "kind": "Service",
     "metadata": {"name": "web", "namespace": "shop"},
     "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10", "fd00::10"],
              "ports": [{"name": "http", "port": 80}, {"port": 53, "protocol": "UDP"}]}},
    {"apiVersion": "v1", "kind": "Service",
     "metadata": {"name": "db", "namespace": "shop"},
     "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}},
    {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
     "metadata": {"name": "db-abc", "namespace": "shop",
                  "labels": {"kubernetes.io/service-name": "db"}},
     "addressType": "IPv4",
     "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
     "endpoints": [{"addresses": ["10.1.0.5"], "hostname": "db-0", "conditions": {"ready": true}},
                   {"addresses": ["10.1.0.6"], "conditions": {"ready": false}}]},
    {"apiVersion": "v1", "kind": "Service",
     "metadata": {"name": "ext", "namespace": "shop"},
     "spec": {"type": "ExternalName", "externalName": "www.example.com"}},
    {"apiVersion": "v1", "kind": "Pod",
     "metadata": {"name": "web-1", "namespace": "shop"},
     "status": {"podIP": "10.1.0.7", "podIPs": [{"ip": "10.1.0.7"}]}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
  ]
}
"#;

const MANIFEST_MULTI: &str = "\
apiVersion: v1
kind: Service
metadata: {name: Web, namespace: Shop}
spec:
  clusterIP: 10.96.0.10
  ports:
  - {name: http, port: 80}
---
apiVersion: v1
kind: ServiceList
items:
- metadata: {name: api, namespace: shop}
  spec:
    clusterIP: fd00::20
    ports:
    - name: grpc
      port: 9090
- metadata: &meta {name: headless, namespace: shop}
  spec: {clusterIP: None}
---
# flow style, parsed whole
{apiVersion: v1, kind: Namespace, metadata: {name: other}}
";

fn manifest_seeds() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    vec![
        (
            "kubectl-get-all.yaml".into(),
            std::fs::read(root.join("server/tests/fixtures/manifests/kubectl-get-all.yaml"))
                .unwrap(),
        ),
        ("list.json".into(), MANIFEST_JSON.as_bytes().to_vec()),
        (
            "multi-document.yaml".into(),
            MANIFEST_MULTI.as_bytes().to_vec(),
        ),
    ]
}

const COREFILE_IMPORTS: &str = "\
(common) {
    errors
    import a.conf
}
cluster.local:1053 10.0.0.0/24 {
    import common
    kubernetes cluster.local in-addr.arpa {
        pods verified
        ttl 10
    }
    hosts hosts {
        10.9.9.9 inline.example
        fallthrough
    }
    template IN A example.net {
        answer \"{{ .Name }} 60 IN A 192.0.2.9\"
    }
    rewrite name regex (.*)\\.old\\.example {1}.new.example answer auto
    forward . resolv.conf 192.0.2.1:5353 {
        policy sequential
    }
    cache 300 {
        success 1000 60 5
        denial 500 30
        prefetch 2 1m 10%
        serve_stale 1h
    }
    import custom/*.override
}
import *.server
";

fn corefile_seeds() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut seeds = Vec::new();
    for name in ["aks", "eks", "k3s", "kubeadm"] {
        let path = root.join(format!("tests/corefiles/{name}.Corefile"));
        seeds.push((format!("{name}.Corefile"), std::fs::read(path).unwrap()));
    }
    seeds.push((
        "deploy-example.Corefile".into(),
        std::fs::read(root.join("deploy/examples/Corefile")).unwrap(),
    ));
    seeds.push((
        "imports-and-plugins.Corefile".into(),
        COREFILE_IMPORTS.as_bytes().to_vec(),
    ));
    seeds
}

/// Writes the seed corpora. Run with `cargo test -p clusterdns-e2e --test fuzz_corpus --
/// --ignored write_seeds`; the seeds are committed.
#[test]
#[ignore]
fn write_seeds() {
    for (target, seeds) in [
        ("query", query_seeds()),
        ("forward_response", forward_seeds()),
        ("cache", cache_seeds()),
        ("manifest", manifest_seeds()),
        ("corefile", corefile_seeds()),
    ] {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in seeds {
            std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
        }
    }
}
