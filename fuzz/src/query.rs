//! Target `query`: the zone's answer function. The input is a query packet as a client sends
//! it; it is answered by `clusterdns_zone::answer` from a fixed snapshot (pods verified) over UDP
//! with the payload ceilings the server may be configured with and over TCP, from a snapshot in
//! `pods insecure` mode, and from one not yet synced, each into a buffer the size the UDP and TCP
//! listeners give it. Checked: the response stays inside the buffer and the client's limit, it
//! carries the query's ID, QR and rcode, echoes the question byte for byte, and parses with
//! hickory-proto whenever the query parsed; a dropped query is one `parse_query` drops.

use std::cell::RefCell;
use std::sync::OnceLock;

use clusterdns_zone::answer::{response_limit, Malformed};
use clusterdns_zone::wire::{FLAG_QR, FLAG_TC, HEADER_LEN};
use clusterdns_zone::{answer, parse_query, Answered, PodsMode, Query, Snapshot, Transport};
use hickory_proto::op::Message;

use super::zone;

/// The snapshots answered from.
struct Zones {
    verified: Snapshot,
    insecure: Snapshot,
    unsynced: Snapshot,
}

fn zones() -> &'static Zones {
    static ZONES: OnceLock<Zones> = OnceLock::new();
    ZONES.get_or_init(|| Zones {
        verified: zone::snapshot(PodsMode::Verified),
        insecure: zone::snapshot(PodsMode::Insecure),
        unsynced: zone::unsynced(),
    })
}

/// The largest message over TCP, and the TCP listener's response buffer.
const TCP_BUFFER: usize = 65535;

/// The response buffer the UDP listener gives `transport` (`udp::response_room`).
fn room(transport: Transport) -> usize {
    match transport {
        Transport::Udp { max_payload } => usize::from(max_payload).max(512),
        Transport::Tcp => TCP_BUFFER,
    }
}

thread_local! {
    static OUT: RefCell<Vec<u8>> = RefCell::new(vec![0; TCP_BUFFER]);
}

/// The transports every snapshot is asked over.
const TRANSPORTS: [Transport; 5] = [
    Transport::Udp { max_payload: 512 },
    Transport::Udp { max_payload: 1232 },
    Transport::Udp { max_payload: 4096 },
    Transport::Udp { max_payload: 0 },
    Transport::Tcp,
];

/// Answers `data` every way (see the module docs) and checks each response.
pub fn run(data: &[u8]) {
    let zones = zones();
    // What a UDP worker does first with every batch it receives.
    zones.verified.prefetch([data]);
    answer_every_way(&zones.verified, data);
    let udp = Transport::Udp { max_payload: 1232 };
    answer_checked(&zones.insecure, data, &parse_query(data), udp);
    answer_checked(&zones.unsynced, data, &parse_query(data), udp);
}

/// Answers `data` from `snapshot` over each transport and checks each response.
pub fn answer_every_way(snapshot: &Snapshot, data: &[u8]) {
    let parsed = parse_query(data);
    for transport in TRANSPORTS {
        answer_checked(snapshot, data, &parsed, transport);
    }
}

fn answer_checked(
    snapshot: &Snapshot,
    data: &[u8],
    parsed: &Result<Query, Malformed>,
    transport: Transport,
) {
    OUT.with(|out| {
        let mut out = out.borrow_mut();
        let out = &mut out[..room(transport)];
        let answered = answer(snapshot, data, out, transport);
        check(data, parsed, transport, out, answered);
    });
}

fn check(
    data: &[u8],
    parsed: &Result<Query, Malformed>,
    transport: Transport,
    out: &[u8],
    answered: Answered,
) {
    let (len, rcode) = match answered {
        Answered::Drop => {
            assert_eq!(
                parsed.as_ref().err(),
                Some(&Malformed::Drop),
                "dropped a query parse_query keeps"
            );
            return;
        }
        Answered::Outside => {
            assert!(parsed.is_ok(), "a malformed query is not Outside");
            return;
        }
        Answered::Response { len, rcode } => (len, rcode),
    };
    assert!(
        (HEADER_LEN..=out.len()).contains(&len),
        "response length {len} outside 12..={}",
        out.len()
    );
    let response = &out[..len];
    assert_eq!(response[..2], data[..2], "ID not echoed");
    let flags = u16::from_be_bytes([response[2], response[3]]);
    assert_ne!(flags & FLAG_QR, 0, "QR not set");
    assert_eq!(flags & 0x0F, rcode as u16 & 0x0F, "header rcode differs");
    match parsed {
        Err(Malformed::Drop) => panic!("answered a query parse_query drops"),
        Err(Malformed::Reject(expected)) => {
            assert_eq!(rcode, *expected, "reject rcode");
            assert_eq!(
                response[4..6],
                [0, 0],
                "a rejected query's question is echoed"
            );
            assert!(len <= HEADER_LEN + 11, "reject longer than header and OPT");
        }
        Ok(query) => {
            let limit = response_limit(query, transport);
            assert!(len <= limit, "response of {len} over the client's {limit}");
            let question = HEADER_LEN..query.question_end();
            assert_eq!(
                response[question.clone()],
                data[question],
                "question not echoed"
            );
            if transport == Transport::Tcp {
                assert_eq!(flags & FLAG_TC, 0, "TC over TCP");
            }
            match Message::from_vec(response) {
                Ok(message) => {
                    assert_eq!(message.queries.len(), 1);
                    assert_eq!(
                        message.edns.is_some(),
                        query.edns.is_some(),
                        "OPT in the response iff in the query"
                    );
                }
                Err(error) => panic!(
                    "response does not parse ({error}): query {data:02x?} response {response:02x?}"
                ),
            }
        }
    }
}
