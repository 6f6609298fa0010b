//! Malformed input sent to a running server: each gets its documented answer (or is dropped), and
//! the server keeps answering afterwards (ARCHITECTURE.md, "The rules everything else follows", RFC
//! 1035 §4.1, RFC 6891 §6.1).

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use clusterdns_testkit::client;
use clusterdns_testkit::dns::{answer_count, query, rcode};
use clusterdns_testkit::fixture::{zone_config, TestServer};
use clusterdns_testkit::golden;
use clusterdns_zone::PodsMode;

/// The golden cases' directory, whose `cluster.yaml` the server answers.
const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden");

const FORMERR: u8 = 1;
const NOTIMP: u8 = 4;
const REFUSED: u8 = 5;

fn server() -> TestServer {
    TestServer::start(golden::cluster(GOLDEN), zone_config(PodsMode::Insecure))
}

/// The server still answers a normal query.
fn assert_alive(addr: SocketAddr) {
    let response = client::udp(
        addr,
        &query(9, "kubernetes.default.svc.cluster.local", 1, None),
    )
    .expect("server stopped answering");
    assert_eq!(rcode(&response), 0);
    assert_eq!(answer_count(&response), 1);
}

/// Sends raw bytes over UDP; `None` when nothing came back within a short wait.
fn send_udp(addr: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    client::udp_within(addr, bytes, Duration::from_millis(300)).ok()
}

fn header(id: u16, flags: u16, qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    [id, flags, qd, an, ns, ar]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
}

fn question(name_wire: &[u8], qtype: u16, class: u16) -> Vec<u8> {
    let mut out = name_wire.to_vec();
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&class.to_be_bytes());
    out
}

fn kubernetes_wire() -> Vec<u8> {
    b"\x0akubernetes\x07default\x03svc\x07cluster\x05local\x00".to_vec()
}

fn opt(version: u8) -> Vec<u8> {
    vec![0, 0, 41, 0x10, 0x00, 0, version, 0, 0, 0, 0]
}

#[test]
fn short_packets_and_responses_are_dropped() {
    let server = server();
    let addr = server.addr();
    assert_eq!(
        send_udp(addr, &[0x12, 0x34, 0x01]),
        None,
        "11-byte packet must be dropped"
    );
    assert_eq!(send_udp(addr, &[0; 11]), None);
    let mut response = header(1, 0x8000, 1, 0, 0, 0);
    response.extend(question(&kubernetes_wire(), 1, 1));
    assert_eq!(send_udp(addr, &response), None, "QR=1 must be dropped");
    assert_alive(addr);
}

#[test]
fn bad_questions_get_formerr() {
    let server = server();
    let addr = server.addr();
    let long_label = {
        let mut name = vec![64u8];
        name.extend(std::iter::repeat_n(b'a', 64));
        name.push(0);
        name
    };
    let long_name = {
        let mut name = Vec::new();
        for _ in 0..5 {
            name.push(60u8);
            name.extend(std::iter::repeat_n(b'a', 60));
        }
        name.push(0);
        name
    };
    // A pointer to itself at offset 12: a compression loop.
    let pointer_loop = vec![0xC0, 12];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "label longer than 63",
            [header(2, 0x0100, 1, 0, 0, 0), question(&long_label, 1, 1)].concat(),
        ),
        (
            "name longer than 255",
            [header(3, 0x0100, 1, 0, 0, 0), question(&long_name, 1, 1)].concat(),
        ),
        (
            "compression pointer loop",
            [header(4, 0x0100, 1, 0, 0, 0), question(&pointer_loop, 1, 1)].concat(),
        ),
        ("QDCOUNT 0", header(5, 0x0100, 0, 0, 0, 0)),
        (
            "QDCOUNT 2",
            [
                header(6, 0x0100, 2, 0, 0, 0),
                question(&kubernetes_wire(), 1, 1),
                question(&kubernetes_wire(), 1, 1),
            ]
            .concat(),
        ),
        (
            "truncated question",
            [
                header(7, 0x0100, 1, 0, 0, 0),
                kubernetes_wire()[..9].to_vec(),
            ]
            .concat(),
        ),
        (
            "two OPT records",
            [
                header(8, 0x0100, 1, 0, 0, 2),
                question(&kubernetes_wire(), 1, 1),
                opt(0),
                opt(0),
            ]
            .concat(),
        ),
        (
            // RFC 6891 §6.1.2: an option (code 10, length 8) runs past RDLENGTH 4.
            "OPT option longer than its RDATA",
            [
                header(9, 0x0100, 1, 0, 0, 1),
                question(&kubernetes_wire(), 1, 1),
                vec![0, 0, 41, 0x10, 0x00, 0, 0, 0, 0, 0, 4, 0, 10, 0, 8],
            ]
            .concat(),
        ),
    ];
    for (what, packet) in cases {
        let response = send_udp(addr, &packet).unwrap_or_else(|| panic!("{what}: no answer"));
        assert_eq!(rcode(&response), FORMERR, "{what}");
        assert_eq!(&response[..2], &packet[..2], "{what}: ID echoed");
        assert_eq!(response[2] & 0x80, 0x80, "{what}: QR set");
        assert_alive(addr);
    }
}

#[test]
fn unknown_opcode_gets_notimp() {
    let server = server();
    let addr = server.addr();
    for opcode in [1u16, 2, 4, 5, 15] {
        let mut packet = header(10, opcode << 11, 1, 0, 0, 0);
        packet.extend(question(&kubernetes_wire(), 1, 1));
        let response = send_udp(addr, &packet).expect("no answer");
        assert_eq!(rcode(&response), NOTIMP, "opcode {opcode}");
        assert_eq!((response[2] >> 3) & 0x0F, opcode as u8, "opcode echoed");
    }
    assert_alive(addr);
}

#[test]
fn other_classes_are_refused() {
    let server = server();
    let addr = server.addr();
    for (class, what) in [(3u16, "CH"), (255u16, "ANY"), (4u16, "HS")] {
        let mut packet = header(11, 0x0100, 1, 0, 0, 0);
        packet.extend(question(b"\x07version\x04bind\x00", 16, class));
        let response = send_udp(addr, &packet).expect("no answer");
        assert_eq!(rcode(&response), REFUSED, "class {what}");
        let mut packet = header(12, 0x0100, 1, 0, 0, 0);
        packet.extend(question(&kubernetes_wire(), 1, class));
        let response = send_udp(addr, &packet).expect("no answer");
        assert_eq!(rcode(&response), REFUSED, "class {what} in the zone");
    }
    assert_alive(addr);
}

#[test]
fn edns_version_1_gets_badvers() {
    let server = server();
    let addr = server.addr();
    let packet = [
        header(13, 0x0100, 1, 0, 0, 1),
        question(&kubernetes_wire(), 1, 1),
        opt(1),
    ]
    .concat();
    let response = send_udp(addr, &packet).expect("no answer");
    let message = hickory_proto::op::Message::from_vec(&response).expect("decodable");
    let edns = message.edns.expect("OPT in the response");
    // BADVERS = 16: low four bits 0 in the header, upper bits 1 in the OPT record.
    assert_eq!(rcode(&response), 0);
    assert_eq!(edns.rcode_high(), 1);
    assert_eq!(edns.version(), 0);
    assert_alive(addr);
}

#[test]
fn tcp_bad_framing_and_silent_connections_do_not_hurt() {
    let server = server();
    let addr = server.addr();
    // A length prefix larger than the data, then close.
    {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .write_all(&[0x01, 0x00, 0x12, 0x34, 0x01])
            .expect("write");
    }
    // A connection that sends nothing, left open while others are served.
    let silent = TcpStream::connect(addr).expect("connect");
    let response = client::tcp(
        addr,
        &query(14, "kubernetes.default.svc.cluster.local", 1, None),
    )
    .expect("tcp answer");
    assert_eq!(rcode(&response), 0);
    assert_alive(addr);
    drop(silent);
    // Pipelined queries on one connection come back in order.
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(client::TIMEOUT))
        .expect("timeout");
    for id in 20..25u16 {
        client::send_framed(
            &mut stream,
            &query(id, "kube-dns.kube-system.svc.cluster.local", 1, None),
        )
        .expect("send");
    }
    for id in 20..25u16 {
        let response = client::read_framed(&mut stream).expect("pipelined answer");
        assert_eq!(u16::from_be_bytes([response[0], response[1]]), id);
    }
}

#[test]
fn queries_pipelined_in_one_write_are_all_answered_in_order() {
    // 300 queries in one write arrive several to a read: their answers leave in batches (and
    // past 16 KiB of answers, before the next query), never held back waiting for more input.
    let server = server();
    let mut stream = TcpStream::connect(server.addr()).expect("connect");
    stream
        .set_read_timeout(Some(client::TIMEOUT))
        .expect("timeout");
    let mut burst = Vec::new();
    for id in 0..300u16 {
        let packet = query(id, "kube-dns.kube-system.svc.cluster.local", 1, None);
        burst.extend_from_slice(&(packet.len() as u16).to_be_bytes());
        burst.extend_from_slice(&packet);
    }
    stream.write_all(&burst).expect("send");
    for id in 0..300u16 {
        let response = client::read_framed(&mut stream).expect("pipelined answer");
        assert_eq!(u16::from_be_bytes([response[0], response[1]]), id);
        assert_eq!(rcode(&response), 0);
    }
    // A last query alone is answered at once: nothing waits for a query that is not coming.
    client::send_framed(
        &mut stream,
        &query(999, "kube-dns.kube-system.svc.cluster.local", 1, None),
    )
    .expect("send");
    let response = client::read_framed(&mut stream).expect("the lone answer");
    assert_eq!(u16::from_be_bytes([response[0], response[1]]), 999);
}

#[test]
fn names_outside_the_zone_are_refused() {
    let server = server();
    let response =
        client::udp(server.addr(), &query(30, "www.example.com", 1, None)).expect("answer");
    assert_eq!(rcode(&response), REFUSED);
    assert_eq!(response[2] & 0x04, 0, "no AA outside the zone");
}
