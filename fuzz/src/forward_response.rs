//! Target `forward_response`: the forwarder's validation of an upstream reply
//! (`clusterdns::forward::message::parse_response`). The input is the upstream's packet. It is
//! checked against the question it carries itself (so that most inputs get past the question
//! match to the records) and against a fixed one (`www.example.com A`, ID 7). For an accepted
//! reply, checked: the kept records tile the body exactly, each TTL lies inside its record, the
//! counts add up, the smallest TTL is the smallest of the kept TTLs (RFC 2181 §8 applied), and
//! the negative TTL comes with an authority record. The accepted reply is then stored as the
//! cache stores it and written back to a client over UDP (512 and 1232) and TCP: that output
//! must fit, must pass the same validation again, and, with the upstream's ID, flags, question
//! spelling and TTLs put back, must parse with hickory-proto whenever the upstream's packet did
//! (cutting at record boundaries and replacing the OPT must not break compression pointers).

use clusterdns::forward::cache::Answer;
use clusterdns::forward::message::{parse_response, write_query, Response};
use clusterdns_zone::answer::response_limit;
use clusterdns_zone::wire::{read_u16, read_u32, HEADER_LEN};
use clusterdns_zone::{parse_query, Transport};
use hickory_proto::op::Message;

/// The fixed question: `www.example.com` A IN, ID 7.
const NAME: &[u8] = b"\x03www\x07example\x03com\x00";

/// The uncompressed question name at the start of `packet`'s question, lowercased.
fn own_question(packet: &[u8]) -> Option<(u16, Vec<u8>, u16, u16)> {
    let id = read_u16(packet, 0)?;
    let mut at = HEADER_LEN;
    loop {
        let len = usize::from(*packet.get(at)?);
        if len > 63 || at + 1 + len - HEADER_LEN > 255 {
            return None;
        }
        at += 1 + len;
        if len == 0 {
            break;
        }
    }
    let name = packet.get(HEADER_LEN..at)?.to_ascii_lowercase();
    Some((id, name, read_u16(packet, at)?, read_u16(packet, at + 2)?))
}

/// Validates `data` both ways (see the module docs).
pub fn run(data: &[u8]) {
    if let Some((id, name, qtype, qclass)) = own_question(data) {
        if let Some(response) = parse_response(data, id, &name, qtype, qclass) {
            check(data, &response, &name, qtype, qclass);
        }
    }
    if let Some(response) = parse_response(data, 7, NAME, 1, 1) {
        check(data, &response, NAME, 1, 1);
    }
}

fn ttl_value(raw: u32) -> u32 {
    if raw & 0x8000_0000 != 0 {
        0
    } else {
        raw
    }
}

fn check(data: &[u8], response: &Response, name: &[u8], qtype: u16, qclass: u16) {
    assert_eq!(response.body.start, HEADER_LEN + name.len() + 4);
    assert!(response.body.start <= response.body.end && response.body.end <= data.len());
    let body = &data[response.body.clone()];
    let mut start = 0usize;
    let mut min_ttl = None::<u32>;
    for record in &response.records {
        let (end, ttl_at) = (usize::from(record.end), usize::from(record.ttl_at));
        assert!(
            start < ttl_at && ttl_at + 6 <= end,
            "TTL outside its record"
        );
        let ttl = ttl_value(read_u32(body, ttl_at).unwrap_or_else(|| panic!("TTL past body")));
        min_ttl = Some(min_ttl.map_or(ttl, |m: u32| m.min(ttl)));
        start = end;
    }
    assert_eq!(start, body.len(), "records do not tile the body");
    assert_eq!(
        response
            .counts
            .iter()
            .map(|&c| usize::from(c))
            .sum::<usize>(),
        response.records.len()
    );
    assert_eq!(response.min_ttl, min_ttl, "smallest TTL");
    if response.negative_ttl.is_some() {
        assert!(response.counts[1] > 0, "negative TTL without authority");
    }
    assert!(response.rcode() < 16);

    let upstream_parses = Message::from_vec(data).is_ok();

    // Served back to a client asking the same question, as the cache does.
    let answer = Answer::new(data, response);
    let mut query_packet = write_query(0x4242, name, qtype, qclass, false);
    let Ok(query) = parse_query(&query_packet) else {
        panic!("our own query does not parse");
    };
    let mut out = vec![0u8; 65535];
    for transport in [
        Transport::Udp { max_payload: 512 },
        Transport::Udp { max_payload: 1232 },
        Transport::Tcp,
    ] {
        let Some(len) = answer.write(&query, &query_packet, &mut out, transport, Some(5)) else {
            assert!(
                HEADER_LEN + name.len() + 4 + 11 > response_limit(&query, transport),
                "not written though the question fits"
            );
            continue;
        };
        assert!(
            len <= response_limit(&query, transport),
            "written past the limit"
        );
        let written = &out[..len];
        let Some(again) = parse_response(written, 0x4242, name, qtype, qclass) else {
            panic!("served answer fails validation: upstream {data:02x?} served {written:02x?}");
        };
        assert!(again.records.len() <= response.records.len());
        // TC exactly when an answer or authority record was left out (RFC 2181 §9).
        let kept = again.counts[0] + again.counts[1];
        let had = response.counts[0] + response.counts[1];
        assert_eq!(written[2] & 0x02 != 0, kept < had, "TC iff answers cut");
        if !again.records.is_empty() {
            assert_eq!(again.min_ttl, Some(5), "TTLs rewritten");
        }
        // The served bytes with the upstream's ID, flags, question spelling and TTLs put back:
        // what differs from the upstream's packet then is only the cut and the OPT record. (A
        // compression pointer may lead into the header or a TTL, which nothing forbids; the
        // served packet itself then reads differently from the upstream's.)
        if upstream_parses {
            let mut restored = written.to_vec();
            restored[..4].copy_from_slice(&data[..4]);
            let question_end = HEADER_LEN + name.len() + 4;
            restored[HEADER_LEN..question_end].copy_from_slice(&data[HEADER_LEN..question_end]);
            for record in &again.records {
                let at = usize::from(record.ttl_at);
                restored[again.body.start + at..again.body.start + at + 4]
                    .copy_from_slice(&data[response.body.start + at..response.body.start + at + 4]);
            }
            if let Err(error) = Message::from_vec(&restored) {
                panic!(
                    "served answer does not parse ({error}): upstream {data:02x?} served {written:02x?}"
                );
            }
        }
    }
    // Uppercase spelling of the client's question: the case is echoed, the rest the same.
    query_packet[HEADER_LEN..HEADER_LEN + name.len()].make_ascii_uppercase();
    if let Ok(upper) = parse_query(&query_packet) {
        if let Some(len) = answer.write(&upper, &query_packet, &mut out, Transport::Tcp, None) {
            assert_eq!(
                out[HEADER_LEN..HEADER_LEN + name.len()],
                query_packet[HEADER_LEN..HEADER_LEN + name.len()]
            );
            assert!(len <= 65535);
        }
    }
}
