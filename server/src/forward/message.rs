//! Messages exchanged with upstreams: the queries we send, and the validation of what comes back.
//! An upstream answer is untrusted input: it is used only when its ID, QR bit, opcode and
//! question match what we asked, every record lies inside the packet, and every compression
//! pointer points backwards (RFC 1035 §4.1.4: "a prior occurrence") past the header. The last
//! rule lets a stored answer be cut at any record boundary (truncation) and be placed behind a
//! client's question of the same length without breaking a pointer.

use std::ops::Range;

use clusterdns_zone::answer::ADVERTISED_PAYLOAD;
use clusterdns_zone::wire::{read_u16, read_u32, FLAG_QR, FLAG_RD, FLAG_TC, OPCODE_MASK};
use clusterdns_zone::wire::{
    HEADER_LEN, TYPE_CNAME, TYPE_DNAME, TYPE_MX, TYPE_NS, TYPE_OPT, TYPE_PTR, TYPE_SOA, TYPE_SRV,
};

/// The query sent upstream: our `id`, RD set, one question, and an OPT record (RFC 6891) with
/// our payload size and the DO bit asked for. `qname` is lowercase wire format.
pub fn write_query(id: u16, qname: &[u8], qtype: u16, qclass: u16, dnssec_ok: bool) -> Vec<u8> {
    write_query_with_options(
        id,
        qname,
        qtype,
        qclass,
        (dnssec_ok, ADVERTISED_PAYLOAD),
        &[],
    )
}

/// [`write_query`] advertising `payload` bytes (a block's `bufsize` may lower ours), with
/// `options` (code, length, data..., RFC 6891 §6.1.2) in the OPT record: the EDNS0 options a
/// `rewrite edns0` rule sets. Options longer than an OPT record can hold are left out.
pub fn write_query_with_options(
    id: u16,
    qname: &[u8],
    qtype: u16,
    qclass: u16,
    (dnssec_ok, payload): (bool, u16),
    options: &[u8],
) -> Vec<u8> {
    let options = match u16::try_from(options.len()) {
        Ok(_) => options,
        Err(_) => &[],
    };
    let mut out = Vec::with_capacity(HEADER_LEN + qname.len() + 4 + 11 + options.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&FLAG_RD.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]);
    out.extend_from_slice(qname);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&qclass.to_be_bytes());
    let payload = payload.to_be_bytes();
    let do_bit = if dnssec_ok { 0x80 } else { 0 };
    let rdlen = (options.len() as u16).to_be_bytes();
    out.extend_from_slice(&[0, 0, 41, payload[0], payload[1], 0, 0, do_bit, 0]);
    out.extend_from_slice(&rdlen);
    out.extend_from_slice(options);
    out
}

/// Where one record of a stored body ends, and where its TTL is (offsets in the body).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordSpan {
    /// Offset just past the record.
    pub end: u16,
    /// Offset of its 4-byte TTL.
    pub ttl_at: u16,
}

/// An upstream response that passed validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The header flags word.
    pub flags: u16,
    /// The records kept per section (answer, authority, additional); the OPT record and
    /// anything after it are dropped.
    pub counts: [u16; 3],
    /// The kept records: the bytes right after the question.
    pub body: Range<usize>,
    /// Each kept record's span in the body.
    pub records: Vec<RecordSpan>,
    /// The smallest TTL of the kept records.
    pub min_ttl: Option<u32>,
    /// min(TTL, MINIMUM) of the first SOA of the authority section: how long a negative answer
    /// may be cached (RFC 2308 §5).
    pub negative_ttl: Option<u32>,
}

impl Response {
    /// The response code (the header's four bits; we send no EDNS version that could extend it).
    pub fn rcode(&self) -> u8 {
        (self.flags & 0x0F) as u8
    }

    /// Whether the upstream set TC.
    pub fn truncated(&self) -> bool {
        self.flags & FLAG_TC != 0
    }
}

/// RFC 2181 §8: a TTL with the top bit set is treated as zero.
fn ttl_value(raw: u32) -> u32 {
    if raw & 0x8000_0000 != 0 {
        0
    } else {
        raw
    }
}

/// Where names start in a response being validated: every label read so far, so that a
/// compression pointer is accepted only when it lands on one. A pointer into anything else (an
/// address, a TTL, the header) would make the name read differently once the cache rewrites
/// those bytes for another client.
struct LabelStarts(Vec<bool>);

impl LabelStarts {
    /// No label seen yet in a packet of `len` bytes.
    fn new(len: usize) -> LabelStarts {
        LabelStarts(vec![false; len])
    }

    /// Reads the name at `at`, remembering where its labels start; returns where it ends. A
    /// compression pointer must land on the start of a label read before.
    fn skip_name(&mut self, packet: &[u8], mut at: usize) -> Option<usize> {
        let mut length = 0usize;
        loop {
            let byte = *packet.get(at)?;
            match byte & 0xC0 {
                0x00 if byte == 0 => {
                    // The root label: a pointer may name the root (or a name ending here) too.
                    *self.0.get_mut(at)? = true;
                    return Some(at + 1);
                }
                0x00 => {
                    length += 1 + usize::from(byte);
                    if length > 255 {
                        return None;
                    }
                    *self.0.get_mut(at)? = true;
                    at += 1 + usize::from(byte);
                }
                0xC0 => {
                    let target =
                        (usize::from(byte & 0x3F) << 8) | usize::from(*packet.get(at + 1)?);
                    let known = target < at && self.0.get(target).copied().unwrap_or(false);
                    return known.then_some(at + 2);
                }
                _ => return None,
            }
        }
    }

    /// Checks the names inside the RDATA of the types that may compress them (RFC 3597 §4,
    /// and SRV and DNAME, which some servers compress anyway).
    fn check_rdata_names(&mut self, packet: &[u8], rtype: u16, rdata: Range<usize>) -> Option<()> {
        let (skip, names) = match rtype {
            TYPE_NS | TYPE_CNAME | TYPE_PTR | TYPE_DNAME => (0, 1),
            TYPE_MX => (2, 1),
            TYPE_SRV => (6, 1),
            TYPE_SOA => (0, 2),
            _ => return Some(()),
        };
        let mut at = rdata.start + skip;
        for _ in 0..names {
            at = self.skip_name(packet, at)?;
        }
        (at <= rdata.end).then_some(())
    }
}

/// Validates `packet` as the answer to our query `id` for (`qname`, `qtype`, `qclass`);
/// `None` when it is not one (to be ignored).
pub fn parse_response(
    packet: &[u8],
    id: u16,
    qname: &[u8],
    qtype: u16,
    qclass: u16,
) -> Option<Response> {
    let flags = read_u16(packet, 2)?;
    if read_u16(packet, 0)? != id
        || flags & FLAG_QR == 0
        || flags & OPCODE_MASK != 0
        || read_u16(packet, 4)? != 1
    {
        return None;
    }
    // The question, uncompressed. Length bytes are below 64 and letters above, so a
    // case-insensitive byte comparison compares the label structure exactly.
    let name_end = HEADER_LEN + qname.len();
    if !packet
        .get(HEADER_LEN..name_end)?
        .eq_ignore_ascii_case(qname)
        || read_u16(packet, name_end)? != qtype
        || read_u16(packet, name_end + 2)? != qclass
    {
        return None;
    }
    let body_start = name_end + 4;
    let mut labels = LabelStarts::new(packet.len());
    labels.skip_name(packet, HEADER_LEN)?;
    let sections = [
        read_u16(packet, 6)?,
        read_u16(packet, 8)?,
        read_u16(packet, 10)?,
    ];
    let mut response = Response {
        flags,
        counts: [0; 3],
        body: body_start..body_start,
        records: Vec::new(),
        min_ttl: None,
        negative_ttl: None,
    };
    let mut at = body_start;
    'sections: for (section, &count) in sections.iter().enumerate() {
        for _ in 0..count {
            at = labels.skip_name(packet, at)?;
            let rtype = read_u16(packet, at)?;
            let ttl = ttl_value(read_u32(packet, at + 4)?);
            let rdata_start = at + 10;
            let rdata = rdata_start..rdata_start + usize::from(read_u16(packet, at + 8)?);
            if rdata.end > packet.len() {
                return None;
            }
            if rtype == TYPE_OPT {
                // RFC 6891 §6.1.1: only in the additional section. It is ours to write, and
                // whatever follows it is optional data we may drop.
                if section != 2 {
                    return None;
                }
                break 'sections;
            }
            labels.check_rdata_names(packet, rtype, rdata.clone())?;
            if rtype == TYPE_SOA && section == 1 && response.negative_ttl.is_none() {
                let minimum = ttl_value(read_u32(packet, rdata.end.checked_sub(4)?)?);
                response.negative_ttl = Some(ttl.min(minimum));
            }
            response.min_ttl = Some(response.min_ttl.map_or(ttl, |min| min.min(ttl)));
            response.records.push(RecordSpan {
                end: (rdata.end - body_start) as u16,
                ttl_at: (at + 4 - body_start) as u16,
            });
            response.counts[section] += 1;
            response.body.end = rdata.end;
            at = rdata.end;
        }
    }
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &[u8] = b"\x03www\x07example\x03com\x00";

    /// A response to `write_query(7, NAME, A, IN)`: the question, then `records`, then counts.
    fn response(flags: u16, counts: [u16; 3], records: &[u8]) -> Vec<u8> {
        let mut packet = write_query(7, NAME, 1, 1, false);
        packet.truncate(HEADER_LEN + NAME.len() + 4);
        packet[2..4].copy_from_slice(&flags.to_be_bytes());
        packet[6..8].copy_from_slice(&counts[0].to_be_bytes());
        packet[8..10].copy_from_slice(&counts[1].to_be_bytes());
        packet[10..12].copy_from_slice(&counts[2].to_be_bytes());
        packet.extend_from_slice(records);
        packet
    }

    /// An A record owned by the question name (pointer to offset 12) with `ttl`.
    fn a_record(ttl: u32) -> Vec<u8> {
        let mut r = vec![0xC0, 12, 0, 1, 0, 1];
        r.extend_from_slice(&ttl.to_be_bytes());
        r.extend_from_slice(&[0, 4, 192, 0, 2, 1]);
        r
    }

    const OPT: [u8; 11] = [0, 0, 41, 4, 0xD0, 0, 0, 0, 0, 0, 0];

    #[test]
    fn a_lower_payload_is_advertised() {
        let query = write_query_with_options(7, NAME, 1, 1, (false, 1100), &[]);
        let edns = clusterdns_zone::parse_query(&query).unwrap().edns.unwrap();
        assert_eq!(edns.payload, 1100);
        assert!(!edns.dnssec_ok);
    }

    #[test]
    fn query_has_question_and_opt() {
        let query = write_query(0xBEEF, NAME, 28, 1, true);
        assert_eq!(&query[..4], &[0xBE, 0xEF, 0x01, 0x00]);
        assert_eq!(&query[4..12], &[0, 1, 0, 0, 0, 0, 0, 1]);
        let parsed = clusterdns_zone::parse_query(&query).unwrap();
        assert_eq!(parsed.qname(), NAME);
        assert_eq!(parsed.qtype, 28);
        let edns = parsed.edns.unwrap();
        assert!(edns.dnssec_ok);
        assert_eq!(edns.payload, ADVERTISED_PAYLOAD);
    }

    #[test]
    fn query_carries_the_options_it_is_given() {
        let options = [0xff, 0xee, 0, 2, b'h', b'i'];
        let query = write_query_with_options(7, NAME, 1, 1, (false, ADVERTISED_PAYLOAD), &options);
        assert!(query.ends_with(&[0, 6, 0xff, 0xee, 0, 2, b'h', b'i']));
        let parsed = clusterdns_zone::parse_query(&query).unwrap();
        assert!(parsed.edns.is_some());
    }

    #[test]
    fn answer_records_spans_and_ttls() {
        let mut records = a_record(300);
        records.extend(a_record(60));
        records.extend_from_slice(&OPT);
        let packet = response(0x8180, [2, 0, 1], &records);
        let parsed = parse_response(&packet, 7, NAME, 1, 1).unwrap();
        assert_eq!(parsed.rcode(), 0);
        assert_eq!(parsed.counts, [2, 0, 0]);
        assert_eq!(parsed.min_ttl, Some(60));
        assert_eq!(
            parsed.records,
            vec![
                RecordSpan { end: 16, ttl_at: 6 },
                RecordSpan {
                    end: 32,
                    ttl_at: 22
                }
            ]
        );
        assert_eq!(parsed.body.len(), 32);
        assert!(!parsed.truncated());
    }

    #[test]
    fn negative_ttl_is_soa_ttl_or_minimum() {
        // example.com SOA: mname, rname as pointers to offset 16 ("example.com"), then 5 numbers.
        let mut soa = vec![
            0xC0, 16, 0, 6, 0, 1, 0, 0, 0x0E, 0x10, 0, 24, 0xC0, 16, 0xC0, 16,
        ];
        for value in [1u32, 7200, 3600, 1_209_600, 60] {
            soa.extend_from_slice(&value.to_be_bytes());
        }
        let packet = response(0x8183, [0, 1, 0], &soa);
        let parsed = parse_response(&packet, 7, NAME, 1, 1).unwrap();
        assert_eq!(parsed.rcode(), 3);
        assert_eq!(parsed.negative_ttl, Some(60));
        assert_eq!(parsed.counts, [0, 1, 0]);
    }

    #[test]
    fn case_insensitive_question_match() {
        let mut packet = response(0x8180, [1, 0, 0], &a_record(5));
        packet[13..16].copy_from_slice(b"WwW");
        assert!(parse_response(&packet, 7, NAME, 1, 1).is_some());
    }

    #[test]
    fn mismatches_are_ignored() {
        let good = response(0x8180, [1, 0, 0], &a_record(5));
        assert!(parse_response(&good, 8, NAME, 1, 1).is_none(), "other ID");
        assert!(
            parse_response(&good, 7, NAME, 28, 1).is_none(),
            "other type"
        );
        assert!(parse_response(&good, 7, b"\x03www\x07example\x03org\x00", 1, 1).is_none());
        let query = response(0x0100, [1, 0, 0], &a_record(5));
        assert!(parse_response(&query, 7, NAME, 1, 1).is_none(), "QR=0");
        let notify = response(0xA180, [1, 0, 0], &a_record(5));
        assert!(
            parse_response(&notify, 7, NAME, 1, 1).is_none(),
            "opcode NOTIFY"
        );
    }

    #[test]
    fn malformed_records_are_rejected_without_panic() {
        let good = response(0x8180, [1, 0, 0], &a_record(5));
        for cut in 0..good.len() {
            let _ = parse_response(&good[..cut], 7, NAME, 1, 1);
        }
        assert!(parse_response(&good[..good.len() - 1], 7, NAME, 1, 1).is_none());
        // A pointer forward, into the header, and to itself.
        for target in [200u8, 2, 33] {
            let mut record = a_record(5);
            record[1] = target;
            let packet = response(0x8180, [1, 0, 0], &record);
            assert!(parse_response(&packet, 7, NAME, 1, 1).is_none(), "{target}");
        }
        // A CNAME whose target points forward.
        let cname = [0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 5, 0, 2, 0xC0, 60];
        assert!(parse_response(&response(0x8180, [1, 0, 0], &cname), 7, NAME, 1, 1).is_none());
        // OPT in the answer section.
        assert!(parse_response(&response(0x8180, [1, 0, 0], &OPT), 7, NAME, 1, 1).is_none());
    }

    #[test]
    fn records_after_opt_are_dropped_and_top_bit_ttl_is_zero() {
        let mut records = a_record(0x8000_0001);
        records.extend_from_slice(&OPT);
        records.extend(a_record(5));
        let packet = response(0x8180, [1, 0, 2], &records);
        let parsed = parse_response(&packet, 7, NAME, 1, 1).unwrap();
        assert_eq!(parsed.counts, [1, 0, 0]);
        assert_eq!(parsed.min_ttl, Some(0));
    }

    #[test]
    fn pointers_must_land_on_a_name() {
        // A second owner pointing into the first record's address (192.0.2.1), which reads as
        // a label: fuzzing found such replies, whose names change once the cache rewrites
        // the bytes they point into.
        let body = HEADER_LEN + NAME.len() + 4;
        let mut records = a_record(300);
        let address = u8::try_from(body + 12).unwrap();
        let mut second = a_record(300);
        second[1] = address;
        records.extend(second);
        let packet = response(0x8180, [2, 0, 0], &records);
        assert!(parse_response(&packet, 7, NAME, 1, 1).is_none());
        // Pointing at the root label ending the question's name is fine (the fuzzed cache
        // target asks for the root itself).
        let mut root = a_record(300);
        root[1] = u8::try_from(HEADER_LEN + NAME.len() - 1).unwrap();
        let packet = response(0x8180, [1, 0, 0], &root);
        assert!(parse_response(&packet, 7, NAME, 1, 1).is_some());
        // So is pointing at a label of the question's name.
        let mut suffix = a_record(300);
        suffix[1] = u8::try_from(HEADER_LEN + 4).unwrap();
        let packet = response(0x8180, [1, 0, 0], &suffix);
        assert!(parse_response(&packet, 7, NAME, 1, 1).is_some());
    }
}
