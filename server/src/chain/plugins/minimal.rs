//! CoreDNS's `minimal`: a positive answer goes with its answer section alone, without the
//! authority and additional records (glue, NS) that the client did not ask for.
//!
//! As CoreDNS's `response.Typify` classifies a response: only NOERROR responses that are not
//! NODATA (an SOA in the authority section) and not a delegation (NS records in the authority
//! section and no answer) are minimized; NXDOMAIN, errors and zone transfers go as they are.
//! Where this differs from CoreDNS: the OPT record stays (CoreDNS drops it with the rest of the
//! additional section, which RFC 6891 §7 forbids), and a DNSSEC response whose signatures have
//! expired is minimized too (CoreDNS leaves those alone).

use clusterdns_zone::wire::{
    read_u16, skip_name, HEADER_LEN, TYPE_AXFR, TYPE_IXFR, TYPE_NS, TYPE_OPT, TYPE_SOA,
};

/// Minimizes the response of `len` bytes in `out` in place (see the module docs); returns its
/// length, `len` when it is left as it is (or is malformed).
pub fn minimize(out: &mut [u8], len: usize) -> usize {
    minimized(out, len).unwrap_or(len)
}

fn minimized(out: &mut [u8], len: usize) -> Option<usize> {
    let message = out.get(..len)?;
    if message.get(3)? & 0x0F != 0 {
        return None;
    }
    let count = |at| read_u16(message, at).map(usize::from);
    let (questions, answers, authority, additional) = (count(4)?, count(6)?, count(8)?, count(10)?);
    if authority == 0 && additional == 0 {
        return None;
    }
    let mut at = HEADER_LEN;
    for _ in 0..questions {
        at = skip_name(message, at)?;
        if matches!(read_u16(message, at)?, TYPE_AXFR | TYPE_IXFR) {
            return None;
        }
        at += 4;
    }
    let record = |at: usize| -> Option<(u16, usize)> {
        let after = skip_name(message, at)?;
        let end = after + 10 + usize::from(read_u16(message, after + 8)?);
        (end <= message.len()).then_some((read_u16(message, after)?, end))
    };
    for _ in 0..answers {
        at = record(at)?.1;
    }
    let answer_end = at;
    for _ in 0..authority {
        let (rtype, end) = record(at)?;
        if answers == 0 && (rtype == TYPE_SOA || rtype == TYPE_NS) {
            // NODATA or a delegation.
            return None;
        }
        at = end;
    }
    let mut opt = None;
    for _ in 0..additional {
        let (rtype, end) = record(at)?;
        if rtype == TYPE_OPT {
            opt = Some((at, end));
        }
        at = end;
    }
    let mut new_len = answer_end;
    if let Some((start, end)) = opt {
        out.copy_within(start..end, answer_end);
        new_len += end - start;
    }
    out[8..10].copy_from_slice(&[0, 0]);
    out[10..12].copy_from_slice(&u16::from(opt.is_some()).to_be_bytes());
    Some(new_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
    use hickory_proto::rr::rdata::{A, NS, SOA};
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    fn name(text: &str) -> Name {
        Name::from_ascii(text).expect("name")
    }

    /// A response to `qtype` with `rcode`, the answers `answer` (A records), and in the
    /// authority section an SOA (`soa`) or NS records (`ns`), glue, and an OPT record.
    fn response(
        rcode: ResponseCode,
        answer: usize,
        soa: bool,
        ns: bool,
        qtype: RecordType,
    ) -> Vec<u8> {
        let mut m = Message::new(7, MessageType::Response, OpCode::Query);
        m.metadata.response_code = rcode;
        m.add_query(Query::query(name("example.org."), qtype));
        for i in 0..answer {
            m.add_answer(Record::from_rdata(
                name("example.org."),
                5,
                RData::A(A::new(192, 0, 2, i as u8)),
            ));
        }
        if soa {
            let rdata = SOA::new(
                name("ns.example.org."),
                name("h.example.org."),
                1,
                2,
                3,
                4,
                5,
            );
            m.add_authority(Record::from_rdata(
                name("example.org."),
                5,
                RData::SOA(rdata),
            ));
        }
        if ns {
            m.add_authority(Record::from_rdata(
                name("example.org."),
                5,
                RData::NS(NS(name("ns.example.org."))),
            ));
            m.add_additional(Record::from_rdata(
                name("ns.example.org."),
                5,
                RData::A(A::new(192, 0, 2, 53)),
            ));
        }
        let mut edns = hickory_proto::op::Edns::new();
        edns.set_max_payload(1232);
        m.set_edns(edns);
        m.to_vec().expect("encodes")
    }

    fn minimize_message(bytes: Vec<u8>) -> (bool, Message) {
        let mut out = bytes.clone();
        let len = minimize(&mut out, bytes.len());
        (
            len != bytes.len(),
            Message::from_vec(&out[..len]).expect("decodes"),
        )
    }

    // CoreDNS's minimal_test.go: a positive answer loses its authority and additional
    // sections; NODATA, NXDOMAIN and delegations keep them.
    #[test]
    fn minimizes_positive_answers_only() {
        let a = RecordType::A;
        let (changed, m) = minimize_message(response(ResponseCode::NoError, 2, false, true, a));
        assert!(changed);
        assert_eq!(
            (m.answers.len(), m.authorities.len(), m.additionals.len()),
            (2, 0, 0)
        );
        assert!(m.edns.is_some(), "the OPT record stays");
        // NODATA.
        let (changed, m) = minimize_message(response(ResponseCode::NoError, 0, true, false, a));
        assert!(!changed);
        assert_eq!(m.authorities.len(), 1);
        // NXDOMAIN.
        let (changed, _) = minimize_message(response(ResponseCode::NXDomain, 0, true, false, a));
        assert!(!changed);
        // A delegation.
        let (changed, m) = minimize_message(response(ResponseCode::NoError, 0, false, true, a));
        assert!(!changed);
        assert_eq!((m.authorities.len(), m.additionals.len()), (1, 1));
        // SERVFAIL.
        let (changed, _) = minimize_message(response(ResponseCode::ServFail, 0, false, true, a));
        assert!(!changed);
        // An answer with an SOA beside it.
        let (changed, m) = minimize_message(response(ResponseCode::NoError, 1, true, false, a));
        assert!(changed);
        assert_eq!((m.answers.len(), m.authorities.len()), (1, 0));
        // A zone transfer.
        let (changed, _) = minimize_message(response(
            ResponseCode::NoError,
            1,
            true,
            false,
            RecordType::AXFR,
        ));
        assert!(!changed);
    }

    #[test]
    fn malformed_responses_are_left_alone() {
        let bytes = response(ResponseCode::NoError, 2, false, true, RecordType::A);
        let mut cut = bytes.clone();
        assert_eq!(minimize(&mut cut, bytes.len() - 3), bytes.len() - 3);
        assert_eq!(cut, bytes);
    }
}
