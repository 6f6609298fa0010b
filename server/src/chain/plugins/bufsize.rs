//! CoreDNS's `bufsize`: a ceiling on the EDNS(0) UDP payload size a query advertises, applied
//! before the rest of the chain sees the query (RFC 6891 §6.2.5), so that answers stay small
//! enough not to be fragmented. It only ever lowers the size; a query without an OPT record is
//! left as it is (512 bytes, RFC 1035 §4.2.1).
//!
//! In clusterdns the advertised size decides two things, and both follow from the one change
//! made here: the largest UDP answer the client gets (`response_limit` reads the query's
//! payload, so every plugin's answer is cut at the lowered size, TC set), and the size the
//! block's forwarder advertises upstream (lowered at planning, see the directive's module).

use clusterdns_zone::answer::Query;

/// The default ceiling (DNS Flag Day 2020, as CoreDNS's setup defaults).
pub const DEFAULT: u16 = 1232;
/// The smallest ceiling accepted: the classic UDP payload (RFC 6891 §6.2.5 floor).
pub const MIN: u16 = 512;
/// The largest ceiling accepted, as CoreDNS's setup bounds it.
pub const MAX: u16 = 4096;

/// `query` as the next plugins see it under a ceiling of `size` bytes: a copy with its EDNS
/// payload lowered when it advertised more, `None` when it is unchanged (no OPT record, or a
/// payload within the ceiling). The copy is on the stack: nothing is allocated.
pub fn limit(query: &Query, size: u16) -> Option<Query> {
    let edns = query.edns.filter(|e| e.payload > size)?;
    let mut limited = query.clone();
    limited.edns = Some(clusterdns_zone::answer::Edns {
        payload: size,
        ..edns
    });
    Some(limited)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clusterdns_zone::answer::{parse_query, response_limit, Transport};

    /// A query for `.` A with an OPT record of `payload` bytes when given.
    fn query(payload: Option<u16>) -> Query {
        let mut packet = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1];
        if let Some(payload) = payload {
            packet[11] = 1;
            let [high, low] = payload.to_be_bytes();
            packet.extend_from_slice(&[0, 0, 41, high, low, 0, 0, 0x80, 0, 0, 0]);
        }
        parse_query(&packet).expect("a query")
    }

    // The three cases of CoreDNS's bufsize_test.go, with its ceiling of 1024.
    #[test]
    fn lowers_a_larger_payload_only() {
        let limited = limit(&query(Some(1024 + 128)), 1024).expect("lowered");
        let edns = limited.edns.expect("the OPT record stays");
        assert_eq!(edns.payload, 1024);
        assert!(edns.dnssec_ok, "the DO bit is kept");
        assert!(
            limit(&query(Some(1024 - 128)), 1024).is_none(),
            "never raised"
        );
        assert!(limit(&query(Some(1024)), 1024).is_none());
        assert!(
            limit(&query(None), 1024).is_none(),
            "no OPT record is added"
        );
    }

    #[test]
    fn the_response_limit_follows() {
        let udp = Transport::Udp { max_payload: 4096 };
        let limited = limit(&query(Some(4096)), 1100).expect("lowered");
        assert_eq!(response_limit(&limited, udp), 1100);
        // --max-udp-size still caps it: the smaller of the two wins.
        let small = Transport::Udp { max_payload: 900 };
        assert_eq!(response_limit(&limited, small), 900);
        // TCP is not bounded by EDNS.
        assert_eq!(response_limit(&limited, Transport::Tcp), 65535);
        // Without EDNS, 512 either way.
        assert_eq!(response_limit(&query(None), udp), 512);
    }
}
