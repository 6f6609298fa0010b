//! DNS messages for tests: queries built by hand ([`Query`], [`query`]), facts read straight from
//! a response's header ([`rcode`], [`answer_count`], [`truncated`]), a decoded response reduced
//! to what tests compare ([`Reply`]), and records in presentation format ([`format_record`]).

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, Record};

/// A query to build: RD set, class IN, ID 0 and no EDNS unless set otherwise.
#[derive(Clone, Debug)]
pub struct Query<'a> {
    name: &'a str,
    qtype: u16,
    id: u16,
    class: u16,
    edns: Option<u16>,
    dnssec_ok: bool,
}

impl<'a> Query<'a> {
    /// A query for `name` (dotted, trailing dot optional, `.` for the root) and `qtype`.
    pub fn new(name: &'a str, qtype: u16) -> Query<'a> {
        Query {
            name,
            qtype,
            id: 0,
            class: 1,
            edns: None,
            dnssec_ok: false,
        }
    }

    /// The query with this ID.
    pub fn id(mut self, id: u16) -> Query<'a> {
        self.id = id;
        self
    }

    /// The query with this class (1 is IN, 3 is CH).
    pub fn class(mut self, class: u16) -> Query<'a> {
        self.class = class;
        self
    }

    /// The query with an EDNS OPT record advertising `payload` bytes, when given.
    pub fn edns(mut self, payload: Option<u16>) -> Query<'a> {
        self.edns = payload;
        self
    }

    /// The query with the DNSSEC OK bit set in its OPT record (which advertises 1232 bytes
    /// unless [`Query::edns`] says otherwise).
    pub fn dnssec_ok(mut self) -> Query<'a> {
        self.dnssec_ok = true;
        self.edns = self.edns.or(Some(1232));
        self
    }

    /// The query on the wire.
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.name.len() + 2 + 4 + 11);
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&[0x01, 0x00]);
        let additional = u16::from(self.edns.is_some());
        for count in [1u16, 0, 0, additional] {
            out.extend_from_slice(&count.to_be_bytes());
        }
        for label in (self.name.trim_end_matches('.').split('.')).filter(|l| !l.is_empty()) {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out.extend_from_slice(&self.qtype.to_be_bytes());
        out.extend_from_slice(&self.class.to_be_bytes());
        if let Some(payload) = self.edns {
            out.extend_from_slice(&[0, 0, 41]);
            out.extend_from_slice(&payload.to_be_bytes());
            let flags: u8 = if self.dnssec_ok { 0x80 } else { 0 };
            out.extend_from_slice(&[0, 0, flags, 0, 0, 0]);
        }
        out
    }
}

/// A query for `name` and `qtype` with `id`, RD set, class IN, and an EDNS OPT of `payload`
/// when given.
pub fn query(id: u16, name: &str, qtype: u16, payload: Option<u16>) -> Vec<u8> {
    Query::new(name, qtype).id(id).edns(payload).build()
}

/// The rcode (low four bits) of a response; 0xFF when it has no header.
pub fn rcode(response: &[u8]) -> u8 {
    response.get(3).map_or(0xFF, |b| b & 0x0F)
}

/// The answer count of a response header.
pub fn answer_count(response: &[u8]) -> u16 {
    u16::from_be_bytes([response[6], response[7]])
}

/// Whether the TC bit is set.
pub fn truncated(response: &[u8]) -> bool {
    response[2] & 0x02 != 0
}

/// One resource record, reduced to what tests compare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rr {
    /// The owner, lowercase, with the trailing dot.
    pub name: String,
    /// The TTL.
    pub ttl: u32,
    /// `TYPE RDATA`, e.g. `A 192.0.2.1`.
    pub data: String,
}

impl Rr {
    /// The record reduced to owner, TTL and `TYPE RDATA`.
    pub fn of(record: &Record) -> Rr {
        Rr {
            name: record.name.to_ascii().to_ascii_lowercase(),
            ttl: record.ttl,
            data: format!("{} {}", record.record_type(), rdata_text(&record.data)),
        }
    }
}

/// A decoded response: its rcode, AA bit and sections (records in the order received).
#[derive(Clone, Debug)]
pub struct Reply {
    /// The response code.
    pub rcode: ResponseCode,
    /// The AA bit.
    pub aa: bool,
    /// The answer section.
    pub answers: Vec<Rr>,
    /// The authority section.
    pub authority: Vec<Rr>,
    /// The additional section (without the OPT record).
    pub additional: Vec<Rr>,
}

impl Reply {
    /// Decodes a response.
    pub fn parse(response: &[u8]) -> Result<Reply, String> {
        let message = Message::from_vec(response).map_err(|e| format!("undecodable: {e}"))?;
        let section = |records: &[Record]| records.iter().map(Rr::of).collect();
        Ok(Reply {
            rcode: message.metadata.response_code,
            aa: message.metadata.authoritative,
            answers: section(&message.answers),
            authority: section(&message.authorities),
            additional: section(&message.additionals),
        })
    }

    /// The answer section's `TYPE RDATA`, sorted.
    pub fn data(&self) -> Vec<String> {
        let mut data: Vec<String> = self.answers.iter().map(|rr| rr.data.clone()).collect();
        data.sort();
        data
    }

    /// NOERROR with exactly `records` (sorted `TYPE RDATA`) in the answer section.
    pub fn is(&self, records: &[&str]) -> bool {
        self.rcode == ResponseCode::NoError && self.data() == records
    }

    /// Whether the rcode is NXDOMAIN.
    pub fn nxdomain(&self) -> bool {
        self.rcode == ResponseCode::NXDomain
    }

    /// The owners of the answer section, in order.
    pub fn owners(&self) -> Vec<String> {
        self.answers.iter().map(|rr| rr.name.clone()).collect()
    }

    /// The TTLs of the answer section, in order.
    pub fn ttls(&self) -> Vec<u32> {
        self.answers.iter().map(|rr| rr.ttl).collect()
    }
}

/// A record in presentation format, `name ttl IN TYPE rdata`, names as they came (case kept,
/// fully qualified), TXT and HINFO strings quoted.
pub fn format_record(record: &Record) -> String {
    format!(
        "{} {} IN {} {}",
        record.name,
        record.ttl,
        record.record_type(),
        rdata_text(&record.data)
    )
}

/// RDATA in presentation format: character strings quoted, the rest as hickory writes it.
fn rdata_text(data: &RData) -> String {
    let quoted = |bytes: &[u8]| format!("\"{}\"", String::from_utf8_lossy(bytes));
    match data {
        RData::TXT(txt) => {
            let parts: Vec<String> = txt.txt_data.iter().map(|p| quoted(p)).collect();
            parts.join(" ")
        }
        RData::HINFO(hinfo) => format!("{} {}", quoted(&hinfo.cpu), quoted(&hinfo.os)),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_layout() {
        let plain = query(0x1234, "a.b.", 1, None);
        assert_eq!(
            plain,
            [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 1, b'b', 0, 0, 1, 0, 1]
        );
        let edns = query(1, "a.b", 28, Some(1232));
        assert_eq!(edns.len(), plain.len() + 11);
        assert_eq!(edns[11], 1);
        assert_eq!(&edns[edns.len() - 11..][..5], &[0, 0, 41, 0x04, 0xD0]);
        let root = Query::new(".", 2).class(3).build();
        assert_eq!(&root[12..], &[0, 0, 2, 0, 3]);
    }

    #[test]
    fn records_read_back_in_presentation_format() {
        let mut response = query(7, "x.test", 16, None);
        response[2] = 0x85;
        response[7] = 2;
        response.extend_from_slice(&[0xC0, 12, 0, 16, 0, 1, 0, 0, 0, 60, 0, 7, 2, b'h', b'i']);
        response.extend_from_slice(&[3, b'y', b'o', b'u']);
        response.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        let reply = Reply::parse(&response).expect("decodes");
        assert!(reply.aa);
        assert!(
            reply.is(&["A 192.0.2.1", "TXT \"hi\" \"you\""]),
            "{reply:?}"
        );
        assert_eq!(reply.owners(), ["x.test.", "x.test."]);
        assert_eq!(reply.ttls(), [60, 60]);
        let message = Message::from_vec(&response).expect("decodes");
        assert_eq!(
            format_record(&message.answers[0]),
            "x.test. 60 IN TXT \"hi\" \"you\""
        );
        assert_eq!(rcode(&response), 0);
        assert_eq!(answer_count(&response), 2);
        assert!(!truncated(&response));
    }
}
