//! CoreDNS's `rewrite` plugin through the real `clusterdns` binary: a Corefile with a server block
//! per rule kind, the cluster from the fake Kubernetes API server, Knot DNS as the upstream, and
//! a small UDP server that records the queries it gets (to see EDNS0 options arrive upstream,
//! which Knot does not show). Every check is a real DNS exchange over loopback.
//!
//! - the block form real clusters use (AKS's and Gardener's custom domains, kubespray's
//!   `answer auto`): `*.foo.example.com` answered from `*.default.svc.cluster.local`, the names
//!   of the answer put back; and `class CH IN` before it;
//! - `type`, `ttl`, `rcode` and `cname` rules on forwarded answers;
//! - `edns0 local` (with `{client_ip}`) and `edns0 subnet` options in the query the upstream
//!   gets, and not in the client's answer.
//!
//! `cname` is checked without the lookup of the new target: the answer ends with the rewritten
//! CNAME (the chain's lookup facility will complete it).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use clusterdns_testkit::client::udp;
use clusterdns_testkit::dns::{Query as TestQuery, Reply, Rr};
use clusterdns_testkit::fakeapi::{self, FakeApi, Kind};
use clusterdns_testkit::knot::Knot;
use clusterdns_testkit::net::{free_port, loopback};
use clusterdns_testkit::process::Process;
use clusterdns_testkit::temp::TempDir;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::RecordType;

/// How long the binary may take to start answering and to sync with the fake API.
const STARTUP: Duration = Duration::from_secs(15);

/// The upstream's zone: names under the subdomains the rule blocks serve.
const RECORDS: &str = "www A 192.0.2.1\n\
     www.type A 192.0.2.3\nwww.type AAAA 2001:db8::3\n\
     www.ttl 300 A 192.0.2.2\n\
     www.cname A 192.0.2.4\nmail.cname A 192.0.2.5\n\
     app.cname CNAME www.cname\ncdn.cname CNAME edge.cdn.example.net.\n";

/// The Corefile: `@NAME@` is filled in by [`Deployment::start`].
const COREFILE: &str = r"
.:@PORT@ {
    bind 127.0.0.1
    ready 127.0.0.1:@READY@
    errors
    rewrite continue class CH IN
    rewrite stop {
        name regex (.*)\.foo\.example\.com {1}.default.svc.cluster.local
        answer name (.*)\.default\.svc\.cluster\.local {1}.foo.example.com
        answer value (.*)\.default\.svc\.cluster\.local {1}.foo.example.com
    }
    rewrite stop {
        name suffix .bar.example.com .default.svc.cluster.local
        answer auto
    }
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig @KUBECONFIG@
    }
    forward . @KNOT@
}
type.example.test:@PORT@ {
    bind 127.0.0.1
    rewrite type AAAA A
    forward . @KNOT@
}
ttl.example.test:@PORT@ {
    bind 127.0.0.1
    rewrite continue {
        ttl regex (.*)\.ttl\.example\.test 15
    }
    forward . @KNOT@
}
rcode.example.test:@PORT@ {
    bind 127.0.0.1
    rewrite continue {
        rcode regex (.*)\.rcode\.example\.test NXDOMAIN NOERROR
    }
    forward . @KNOT@
}
cname.example.test:@PORT@ {
    bind 127.0.0.1
    rewrite continue cname exact www.cname.example.test. mail.cname.example.test.
    rewrite cname regex (.*)\.cdn\.example\.net\. {1}.other.example.test.
    forward . @KNOT@
}
tagged.test:@PORT@ {
    bind 127.0.0.1
    rewrite continue edns0 local set 0xffee {client_ip}
    rewrite edns0 subnet set 24 56
    forward . @RECORDER@
}
";

/// A UDP server that records every query it gets and answers each with `A 192.0.2.99`.
struct Recorder {
    addr: SocketAddr,
    queries: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    fn start() -> Recorder {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the recorder");
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("read timeout");
        let addr = socket.local_addr().expect("its address");
        let queries = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (queries, stop) = (queries.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((len, from)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    let query = buf[..len].to_vec();
                    let answer = answer(&query);
                    // Recorded before it is answered: the test reads the record once the
                    // answer has reached the client.
                    queries.lock().unwrap().push(query);
                    if let Some(answer) = answer {
                        let _ = socket.send_to(&answer, from);
                    }
                }
            })
        };
        Recorder {
            addr,
            queries,
            stop,
            thread: Some(thread),
        }
    }

    fn queries(&self) -> Vec<Vec<u8>> {
        self.queries.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The recorder's answer to `query`: its ID and question, and one A record.
fn answer(query: &[u8]) -> Option<Vec<u8>> {
    let mut end = 12;
    while *query.get(end)? != 0 {
        end += 1 + usize::from(query[end]);
    }
    let question = query.get(12..end + 5)?;
    let mut out = query.get(..2)?.to_vec();
    out.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
    out.extend_from_slice(question);
    out.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 99]);
    Some(out)
}

/// The binary serving [`COREFILE`] against a seeded fake API, Knot and the recorder. Fields
/// drop in order: the server first.
struct Deployment {
    server: Process,
    dns: SocketAddr,
    recorder: Recorder,
    _api: FakeApi,
    _knot: Knot,
    _dir: TempDir,
}

impl Deployment {
    fn start(test: &str) -> Deployment {
        let api = FakeApi::with_core_services();
        // An ExternalName to another Service: its CNAME target is a cluster name too.
        api.upsert(
            Kind::Service,
            fakeapi::external_name_service("default", "alias", "web.default.svc.cluster.local"),
        );
        let knot = Knot::with_records(test, &[("example.test", RECORDS)]);
        let recorder = Recorder::start();
        let dir = TempDir::new(test);
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        let (port, ready) = (free_port(), loopback(free_port()));
        let corefile = COREFILE
            .replace("@PORT@", &port.to_string())
            .replace("@READY@", &ready.port().to_string())
            .replace("@KUBECONFIG@", &kubeconfig.display().to_string())
            .replace("@KNOT@", &knot.addr.to_string())
            .replace("@RECORDER@", &recorder.addr.to_string());
        let path = dir.write("Corefile", &corefile);
        let server = Process::clusterdns(&[
            "--corefile",
            path.to_str().expect("a UTF-8 path"),
            "--threads",
            "1",
        ]);
        server.wait_status(ready, "/ready", 200, STARTUP);
        Deployment {
            server,
            dns: loopback(port),
            recorder,
            _api: api,
            _knot: knot,
            _dir: dir,
        }
    }

    /// Asks `name qtype` (spelled as given) with EDNS, and returns the response whole.
    fn exchange(&self, name: &str, qtype: RecordType) -> Message {
        let query = TestQuery::new(name, u16::from(qtype))
            .id(0x4242)
            .edns(Some(1232))
            .build();
        let response = udp(self.dns, &query)
            .unwrap_or_else(|e| panic!("{name} {qtype}: {e}\n{}", self.server.logs()));
        let message = Message::from_vec(&response).expect("a response that decodes");
        assert_eq!(message.metadata.id, 0x4242);
        // The question comes back as the client asked it, whatever the rules asked instead.
        let question = &message.queries[0];
        assert_eq!(
            question.name().to_string(),
            format!("{name}."),
            "{message:?}"
        );
        assert_eq!(question.query_type(), qtype, "{message:?}");
        message
    }

    /// Asks `name qtype` and returns the reply reduced for comparison.
    fn ask(&self, name: &str, qtype: RecordType) -> Reply {
        let message = self.exchange(name, qtype);
        Reply::parse(&message.to_vec().expect("encodes")).expect("decodes")
    }
}

/// The records of a reply's section as `OWNER TTL TYPE DATA`.
fn texts(records: &[Rr]) -> Vec<String> {
    (records.iter())
        .map(|r| format!("{} {} {}", r.name, r.ttl, r.data))
        .collect()
}

#[test]
fn a_custom_domain_is_answered_from_cluster_names_put_back() {
    let d = Deployment::start("rewrite-custom-domain");
    let logs = || d.server.logs();

    // AKS / Gardener: `name regex` with `answer name` and `answer value`, in a block.
    let web = d.ask("Web.Foo.Example.com", RecordType::A);
    assert_eq!(
        texts(&web.answers),
        ["web.foo.example.com. 5 A 10.96.0.20"],
        "{web:?}\n{}",
        logs()
    );
    assert!(web.aa, "answered by the cluster zone: {web:?}");
    // An ExternalName: the CNAME's owner and target, and the target's address, all put back.
    let alias = d.ask("alias.foo.example.com", RecordType::A);
    assert_eq!(
        texts(&alias.answers),
        [
            "alias.foo.example.com. 5 CNAME web.foo.example.com.",
            "web.foo.example.com. 5 A 10.96.0.20",
        ],
        "{alias:?}"
    );
    // SRV: the target is a value, rewritten too.
    let srv = d.ask("_http._tcp.web.foo.example.com", RecordType::SRV);
    assert_eq!(
        texts(&srv.answers),
        ["_http._tcp.web.foo.example.com. 5 SRV 0 100 80 web.foo.example.com."],
        "{srv:?}"
    );
    // A cluster name that does not exist is NXDOMAIN under the asked name.
    let nope = d.ask("nope.foo.example.com", RecordType::A);
    assert_eq!(nope.rcode, ResponseCode::NXDomain, "{nope:?}");
    // kubespray's `name suffix` with `answer auto`.
    let bar = d.ask("web.bar.example.com", RecordType::A);
    assert_eq!(
        texts(&bar.answers),
        ["web.bar.example.com. 5 A 10.96.0.20"],
        "{bar:?}"
    );
    // Names no rule matches are answered as without them.
    let plain = d.ask("web.default.svc.cluster.local", RecordType::A);
    assert_eq!(
        texts(&plain.answers),
        ["web.default.svc.cluster.local. 5 A 10.96.0.20"]
    );
    let outside = d.ask("www.example.test", RecordType::A);
    assert_eq!(
        texts(&outside.answers),
        ["www.example.test. 300 A 192.0.2.1"]
    );

    // `class CH IN` (continue): a CH query is answered as IN, under its CH question, and the
    // name rules after it still apply; other classes are refused as without the rule.
    let chaos = TestQuery::new("web.foo.example.com", 1)
        .id(9)
        .class(3)
        .build();
    let message = Message::from_vec(&udp(d.dns, &chaos).expect("an answer")).unwrap();
    assert_eq!(
        u16::from(message.queries[0].query_class()),
        3,
        "{message:?}"
    );
    let reply = Reply::parse(&message.to_vec().unwrap()).unwrap();
    assert_eq!(
        texts(&reply.answers),
        ["web.foo.example.com. 5 A 10.96.0.20"]
    );
    let hesiod = TestQuery::new("web.foo.example.com", 1)
        .id(9)
        .class(4)
        .build();
    let message = Message::from_vec(&udp(d.dns, &hesiod).expect("an answer")).unwrap();
    assert_eq!(message.metadata.response_code, ResponseCode::Refused);
}

#[test]
fn type_ttl_and_rcode_rules_change_forwarded_answers() {
    let d = Deployment::start("rewrite-type-ttl-rcode");
    let logs = || d.server.logs();

    // `type AAAA A`: the upstream is asked for A; the client gets it under its AAAA question.
    let typed = d.ask("www.type.example.test", RecordType::AAAA);
    assert_eq!(
        texts(&typed.answers),
        ["www.type.example.test. 300 A 192.0.2.3"],
        "{typed:?}\n{}",
        logs()
    );

    // `ttl regex ... 15`: every record of the answer, whatever the upstream said (300).
    let ttl = d.ask("www.ttl.example.test", RecordType::A);
    assert_eq!(
        texts(&ttl.answers),
        ["www.ttl.example.test. 15 A 192.0.2.2"],
        "{ttl:?}\n{}",
        logs()
    );
    let negative = d.ask("nothing.ttl.example.test", RecordType::A);
    assert_eq!(negative.rcode, ResponseCode::NXDomain);
    assert_eq!(
        negative.authority.iter().map(|r| r.ttl).collect::<Vec<_>>(),
        [15]
    );

    // `rcode regex ... NXDOMAIN NOERROR`: the upstream's NXDOMAIN leaves as NOERROR (with its
    // SOA), for names the regex matches only.
    let missing = d.ask("missing.rcode.example.test", RecordType::A);
    assert_eq!(
        missing.rcode,
        ResponseCode::NoError,
        "{missing:?}\n{}",
        logs()
    );
    assert!(missing.answers.is_empty());
    assert_eq!(missing.authority.len(), 1, "{missing:?}");
    let apex = d.ask("rcode.example.test", RecordType::A);
    assert_eq!(apex.rcode, ResponseCode::NXDomain, "{apex:?}");
}

#[test]
fn cname_rules_rewrite_the_target_of_a_forwarded_answer() {
    let d = Deployment::start("rewrite-cname");
    let logs = || d.server.logs();
    // Knot answers the CNAME and the address of its in-zone target; the rule rewrites the
    // target, the records that followed it (www's address) are dropped, and the new target is
    // looked up through the block's forwarder (from the upstream, then from the cache), its
    // answer put after the CNAME, as CoreDNS's rule does.
    for _ in 0..2 {
        let app = d.ask("app.cname.example.test", RecordType::A);
        assert_eq!(
            texts(&app.answers),
            [
                "app.cname.example.test. 300 CNAME mail.cname.example.test.",
                "mail.cname.example.test. 300 A 192.0.2.5"
            ],
            "{app:?}\n{}",
            logs()
        );
    }
    // The README's regex form, on a target outside the upstream's zone (the lookup finds
    // nothing: the CNAME alone).
    let cdn = d.ask("cdn.cname.example.test", RecordType::A);
    assert_eq!(
        texts(&cdn.answers),
        ["cdn.cname.example.test. 300 CNAME edge.other.example.test."],
        "{cdn:?}"
    );
    // A name with no CNAME is answered as it is.
    let www = d.ask("www.cname.example.test", RecordType::A);
    assert_eq!(
        texts(&www.answers),
        ["www.cname.example.test. 300 A 192.0.2.4"]
    );
}

#[test]
fn edns0_options_reach_the_upstream_and_not_the_client() {
    let d = Deployment::start("rewrite-edns0");
    let message = d.exchange("x.tagged.test", RecordType::A);
    let reply = Reply::parse(&message.to_vec().unwrap()).unwrap();
    assert_eq!(
        texts(&reply.answers),
        ["x.tagged.test. 60 A 192.0.2.99"],
        "{reply:?}\n{}",
        d.server.logs()
    );
    // The client's answer carries its own EDNS state, not the options sent upstream.
    let edns = message.edns.expect("an OPT record, as the client sent one");
    assert!(edns.option(EdnsCode::Unknown(0xffee)).is_none(), "{edns:?}");
    assert!(edns.option(EdnsCode::Subnet).is_none(), "{edns:?}");

    let queries = d.recorder.queries();
    let sent = queries.last().expect("the upstream got the query");
    let sent = Message::from_vec(sent).expect("a query that decodes");
    assert_eq!(sent.queries[0].name().to_string(), "x.tagged.test.");
    let edns = sent.edns.expect("an OPT record upstream");
    // `{client_ip}`: the test's address, 127.0.0.1, in four bytes.
    assert_eq!(
        edns.option(EdnsCode::Unknown(0xffee)),
        Some(&EdnsOption::Unknown(0xffee, vec![127, 0, 0, 1])),
        "{edns:?}"
    );
    // `subnet set 24 56`: the client's /24 (RFC 7871).
    let Some(EdnsOption::Subnet(subnet)) = edns.option(EdnsCode::Subnet) else {
        panic!("no client subnet upstream: {edns:?}");
    };
    assert_eq!(
        subnet.addr(),
        "127.0.0.0".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(subnet.source_prefix(), 24);

    // Without EDNS from the client, the options still go upstream, and the answer has no OPT.
    let before = d.recorder.queries().len();
    let plain = TestQuery::new("y.tagged.test", 1).id(7).build();
    let response = udp(d.dns, &plain).expect("an answer");
    let message = Message::from_vec(&response).unwrap();
    assert!(message.edns.is_none(), "{message:?}");
    assert_eq!(message.answers.len(), 1);
    let queries = d.recorder.queries();
    assert_eq!(queries.len(), before + 1);
    let sent = Message::from_vec(queries.last().unwrap()).unwrap();
    assert!(sent
        .edns
        .is_some_and(|e| e.option(EdnsCode::Unknown(0xffee)).is_some()));
}
