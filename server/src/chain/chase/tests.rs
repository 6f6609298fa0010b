//! A template's CNAME answer chased through the block's chain, as CoreDNS's `template` looks
//! its target up through the server: the README's "Fabricate a CNAME" example and the cases
//! around it, on a router built from a Corefile, with `hosts` and a second template standing in
//! for what the target resolves to, and a forwarder whose empty cache turns the lookup into a
//! deferred forward.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use clusterdns_testkit::dns::{answer_count, query, truncated, Reply};
use clusterdns_zone::{Snapshot, Transport, ZoneBuilder, ZoneConfig};
use hickory_proto::op::ResponseCode;

use super::*;
use crate::chain::{Handled, Router};
use crate::config::corefile::{parse, plan};
use crate::ops::metrics::Metrics;

const COREFILE: &str = r#"
.:1053 {
    template IN ANY foogle.com {
        match "^foogle\.com\.$"
        answer "foogle.com 60 IN CNAME google.com"
    }
    template IN A chain.test {
        match "^a\.chain\.test\.$"
        answer "{{ .Name }} 60 IN CNAME b.chain.test."
        fallthrough
    }
    template IN A chain.test {
        match "^b\.chain\.test\.$"
        answer "{{ .Name }} 60 IN CNAME a.chain.test."
    }
    template IN A self.test {
        answer "{{ .Name }} 60 IN CNAME {{ .Name }}"
    }
    template IN A away.test {
        answer "{{ .Name }} 60 IN CNAME nothere.invalid."
    }
    template IN A upstream.test {
        answer "{{ .Name }} 60 IN CNAME www.example.net."
    }
    template IN A big.test {
        match "^alias\.big\.test\.$"
        answer "{{ .Name }} 60 IN CNAME many.big.test."
        fallthrough
    }
    hosts {
        192.0.2.20 google.com
@MANY@        fallthrough
    }
}
example.net:1053 {
}
"#;

/// [`COREFILE`] with `many.big.test` given 40 addresses in `hosts`: about 1 KB of answer.
fn corefile() -> String {
    let many: String = (1..=40)
        .map(|i| format!("        192.0.2.{i} many.big.test\n"))
        .collect();
    COREFILE.replace("@MANY@", &many)
}

/// A router for [`COREFILE`]'s port (and the runtime its forwarders would run on).
fn router() -> (Router, tokio::runtime::Runtime) {
    let corefile = parse(Path::new("Corefile"), &corefile(), &|_| None).expect("parses");
    let plan = plan(&corefile).expect("plans");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let metrics = Metrics::new("test".into());
    let router = Router::new(&plan.ports[0], &metrics, runtime.handle());
    (router, runtime)
}

fn empty_zone() -> Snapshot {
    ZoneBuilder::new(ZoneConfig::default()).publish()
}

/// The router's answer to `name qtype`, decoded; `None` when it is deferred to a forwarder.
fn ask(router: &Router, snapshot: &Snapshot, name: &str, qtype: u16) -> Option<Reply> {
    let response = ask_raw(router, snapshot, name, qtype, Some(1232))?;
    Some(Reply::parse(&response).expect("decodes"))
}

/// The router's response to `name qtype` with the EDNS payload size `payload` (none: 512
/// bytes); `None` when it is deferred to a forwarder.
fn ask_raw(
    router: &Router,
    snapshot: &Snapshot,
    name: &str,
    qtype: u16,
    payload: Option<u16>,
) -> Option<Vec<u8>> {
    let packet = query(7, name, qtype, payload);
    let mut out = vec![0u8; 4096];
    let client = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 7), 5353));
    let transport = Transport::Udp { max_payload: 1232 };
    let started = std::time::Instant::now();
    match router.handle(snapshot, &packet, &mut out, transport, client, started) {
        Handled::Reply(reply) => Some(out[..reply.len].to_vec()),
        Handled::Forward(_) => None,
        Handled::Drop => panic!("{name}: dropped"),
    }
}

#[test]
fn a_template_cname_is_followed_as_coredns_follows_it() {
    let (router, _runtime) = router();
    let snapshot = empty_zone();
    // (name, type, the answer section as `OWNER TYPE DATA`)
    let table: [(&str, u16, &[&str]); 7] = [
        // The README's example: the target's A record (here from `hosts`) after the CNAME.
        (
            "foogle.com",
            TYPE_A,
            &["foogle.com. CNAME google.com.", "google.com. A 192.0.2.20"],
        ),
        // `hosts` has no AAAA for it: NODATA there, so the CNAME alone.
        ("foogle.com", TYPE_AAAA, &["foogle.com. CNAME google.com."]),
        // Only A and AAAA questions are chased.
        ("foogle.com", 15, &["foogle.com. CNAME google.com."]),
        ("foogle.com", 16, &["foogle.com. CNAME google.com."]),
        // A target another template answers with a CNAME: its answer is taken, not chased
        // again (one lookup per query).
        (
            "a.chain.test",
            TYPE_A,
            &[
                "a.chain.test. CNAME b.chain.test.",
                "b.chain.test. CNAME a.chain.test.",
            ],
        ),
        // A CNAME to the name itself is a loop: nothing to look up.
        ("self.test", TYPE_A, &["self.test. CNAME self.test."]),
        // A target nothing in the block answers (REFUSED there): the CNAME alone, NOERROR.
        (
            "x.away.test",
            TYPE_A,
            &["x.away.test. CNAME nothere.invalid."],
        ),
    ];
    for (name, qtype, want) in table {
        let reply = ask(&router, &snapshot, name, qtype).expect("answered on the spot");
        assert_eq!(reply.rcode, ResponseCode::NoError, "{name} {qtype}");
        assert!(
            reply.aa,
            "{name} {qtype}: a template's answer is authoritative"
        );
        let got: Vec<String> = (reply.answers.iter())
            .map(|r| format!("{} {}", r.name, r.data))
            .collect();
        assert_eq!(got, want, "{name} {qtype}");
    }
}

#[test]
fn a_target_the_cache_lacks_is_looked_up_off_the_batch() {
    // CoreDNS routes the lookup through the server: `www.example.net` would go to the
    // example.net block. clusterdns asks the block's own chain, which has no forwarder here, so
    // the CNAME goes alone; with a forwarder and an empty cache, the query is deferred.
    let (router, _runtime) = router();
    let snapshot = empty_zone();
    let alone = ask(&router, &snapshot, "www.upstream.test", TYPE_A).expect("answered");
    assert_eq!(alone.answers.len(), 1);

    let text = corefile().replace("    hosts {", "    forward . 192.0.2.53\n    hosts {");
    let corefile = parse(Path::new("Corefile"), &text, &|_| None).expect("parses");
    let plan = plan(&corefile).expect("plans");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let router = Router::new(
        &plan.ports[0],
        &Metrics::new("test".into()),
        runtime.handle(),
    );
    assert!(
        ask(&router, &snapshot, "www.upstream.test", TYPE_A).is_none(),
        "a cache miss for the target: deferred"
    );
    // A target `hosts` has is still answered on the worker.
    let reply = ask(&router, &snapshot, "foogle.com", TYPE_A).expect("answered");
    assert_eq!(reply.answers.len(), 2);
}

#[test]
fn a_completed_answer_too_big_for_the_client_goes_as_the_cname_with_tc() {
    // CoreDNS copies the lookup's TC bit (its TestTruncatedCNAME); here the lookup is made over
    // TCP's room, and TC says the completed answer did not fit the client's (RFC 2181 §9).
    let (router, _runtime) = router();
    let snapshot = empty_zone();
    let whole = ask_raw(&router, &snapshot, "alias.big.test", TYPE_A, Some(1232)).unwrap();
    assert_eq!(
        answer_count(&whole),
        41,
        "the CNAME and 40 addresses in 1232 bytes"
    );
    assert!(!truncated(&whole));
    let cut = ask_raw(&router, &snapshot, "alias.big.test", TYPE_A, None).unwrap();
    assert!(truncated(&cut));
    let cut = Reply::parse(&cut).expect("decodes");
    assert_eq!(cut.answers.len(), 1, "the CNAME alone in 512 bytes");
    assert_eq!(cut.answers[0].data, "CNAME many.big.test.");
}
