//! Large answers: a headless Service with 100 ready endpoints does not fit a 512-byte UDP
//! response (TC=1, whole records only), and comes complete over TCP and with a large EDNS size.
//! An SRV answer whose records fit but whose glue does not loses glue, not the answer, and
//! carries no TC (RFC 2181 §9).

use std::net::{IpAddr, Ipv4Addr};

use clusterdns_testkit::client;
use clusterdns_testkit::dns::{answer_count, query, rcode, truncated};
use clusterdns_testkit::fixture::{zone_config, TestServer};
use clusterdns_zone::{
    Cluster, Endpoint, EndpointSlice, PodsMode, Port, Protocol, Service, ServiceKind,
};

fn big_headless() -> Cluster {
    headless("big", 100)
}

fn headless(name: &str, count: u8) -> Cluster {
    let endpoints = (0..count)
        .map(|i| Endpoint {
            addresses: vec![IpAddr::V4(Ipv4Addr::new(10, 1, 0, i + 1))],
            hostname: None,
            ready: true,
        })
        .collect();
    Cluster {
        namespaces: vec!["default".into()],
        services: vec![Service {
            namespace: "default".into(),
            name: name.into(),
            kind: ServiceKind::Headless,
            ports: vec![],
            external: Vec::new(),
        }],
        slices: vec![EndpointSlice {
            namespace: "default".into(),
            name: format!("{name}-1").into(),
            service: name.into(),
            ports: vec![Port {
                name: "http".into(),
                protocol: Protocol::Tcp,
                port: 80,
            }],
            endpoints,
        }],
        pods: vec![],
    }
}

#[test]
fn hundred_endpoints_truncate_over_udp_and_come_whole_over_tcp() {
    let server = TestServer::start(big_headless(), zone_config(PodsMode::Insecure));
    let name = "big.default.svc.cluster.local";

    let udp = client::udp(server.addr(), &query(1, name, 1, None)).expect("udp answer");
    assert_eq!(rcode(&udp), 0);
    assert!(truncated(&udp), "TC=1 without EDNS");
    assert!(
        udp.len() <= 512,
        "{} bytes over UDP without EDNS",
        udp.len()
    );
    let partial = answer_count(&udp);
    assert!(
        partial > 0 && partial < 100,
        "whole records that fit: {partial}"
    );
    let message =
        hickory_proto::op::Message::from_vec(&udp).expect("a truncated answer still decodes");
    assert_eq!(message.answers.len(), usize::from(partial));

    let tcp = client::tcp(server.addr(), &query(2, name, 1, None)).expect("tcp answer");
    assert!(!truncated(&tcp));
    assert_eq!(answer_count(&tcp), 100);
    let message = hickory_proto::op::Message::from_vec(&tcp).expect("decodes");
    assert_eq!(message.answers.len(), 100);

    let edns = client::udp(server.addr(), &query(3, name, 1, Some(4096))).expect("udp answer");
    assert!(!truncated(&edns), "fits in 4096 bytes");
    assert_eq!(answer_count(&edns), 100);

    // SRV with glue: 100 SRV + 100 A; over UDP/1232 it is cut, over TCP whole.
    let srv_name = "_http._tcp.big.default.svc.cluster.local";
    let cut = client::udp(server.addr(), &query(4, srv_name, 33, Some(1232))).expect("answer");
    assert!(truncated(&cut));
    assert!(cut.len() <= 1232);
    let whole = client::tcp(server.addr(), &query(5, srv_name, 33, None)).expect("answer");
    let message = hickory_proto::op::Message::from_vec(&whole).expect("decodes");
    assert_eq!(message.answers.len(), 100);
    assert_eq!(message.additionals.len(), 100);
    assert!(
        message
            .answers
            .iter()
            .all(|r| r.to_string().contains(" 0 1 80 ")),
        "weight floor(100/100)=1"
    );
    server.server.shutdown();
}

#[test]
fn srv_records_that_fit_without_their_glue_are_not_truncated() {
    // Six SRV records fit in 512 bytes; their six A glue records do not all fit after them.
    let server = TestServer::start(headless("few", 6), zone_config(PodsMode::Insecure));
    let name = "_http._tcp.few.default.svc.cluster.local";
    let udp = client::udp(server.addr(), &query(1, name, 33, None)).expect("udp answer");
    assert!(udp.len() <= 512, "{} bytes", udp.len());
    assert!(!truncated(&udp), "every SRV record is there: no TC");
    let message = hickory_proto::op::Message::from_vec(&udp).expect("decodes");
    assert_eq!(message.answers.len(), 6);
    let glue = message.additionals.len();
    assert!(glue > 0 && glue < 6, "glue that fits: {glue}");
    let tcp = client::tcp(server.addr(), &query(2, name, 33, None)).expect("tcp answer");
    let message = hickory_proto::op::Message::from_vec(&tcp).expect("decodes");
    assert_eq!((message.answers.len(), message.additionals.len()), (6, 6));
    server.server.shutdown();
}
