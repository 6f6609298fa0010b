//! The records of a response a plugin writes itself (`k8s_external`, `local`), in wire format
//! and section order, ready for `respond_records`. A record owned by the question's name, or
//! by a name below it or a suffix of it, points at the question (which every response of ours
//! echoes at offset 12, RFC 1035 §4.1.4), so it is spelled as the client spelled it and costs
//! two bytes.

use clusterdns_zone::wire::{CLASS_IN, HEADER_LEN};

/// The owner name of a record in a [`Body`].
#[derive(Clone, Copy, Debug)]
pub enum Owner<'a> {
    /// The question's name from this many bytes into it (0: the whole name), as a pointer.
    Question(usize),
    /// These labels (wire format, no root label) in front of the question's name.
    BelowQuestion(&'a [u8]),
    /// A name written out (uncompressed wire format).
    Name(&'a [u8]),
}

/// The sections a record goes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    /// The answer section.
    Answer = 0,
    /// The authority section.
    Authority = 1,
    /// The additional section.
    Additional = 2,
}

/// Records in wire format with their section counts (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Body {
    /// The records, answer section first.
    pub bytes: Vec<u8>,
    /// How many records each section holds.
    pub counts: [u16; 3],
}

impl Body {
    /// Appends a record of class IN to `section`, which must not come before the sections
    /// already written.
    pub fn push(&mut self, section: Section, owner: Owner, rtype: u16, ttl: u32, rdata: &[u8]) {
        debug_assert!(
            self.counts[section as usize + 1..].iter().all(|&c| c == 0),
            "records are pushed in section order"
        );
        match owner {
            Owner::Question(skip) => self.pointer(skip),
            Owner::BelowQuestion(labels) => {
                self.bytes.extend_from_slice(labels);
                self.pointer(0);
            }
            Owner::Name(name) => self.bytes.extend_from_slice(name),
        }
        self.bytes.extend_from_slice(&rtype.to_be_bytes());
        self.bytes.extend_from_slice(&CLASS_IN.to_be_bytes());
        self.bytes.extend_from_slice(&ttl.to_be_bytes());
        let rdata = rdata.get(..usize::from(u16::MAX)).unwrap_or(rdata);
        self.bytes
            .extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        self.bytes.extend_from_slice(rdata);
        self.counts[section as usize] = self.counts[section as usize].saturating_add(1);
    }

    /// Whether the answer section is empty.
    pub fn no_answer(&self) -> bool {
        self.counts[0] == 0
    }

    fn pointer(&mut self, skip: usize) {
        let at = (0xC000 | (HEADER_LEN + skip)) as u16;
        self.bytes.extend_from_slice(&at.to_be_bytes());
    }
}

/// SOA RDATA (RFC 1035 §3.3.13): `mname`, `rname` (uncompressed wire format) and the five
/// numbers.
pub fn soa_rdata(mname: &[u8], rname: &[u8], numbers: [u32; 5]) -> Vec<u8> {
    let mut rdata = Vec::with_capacity(mname.len() + rname.len() + 20);
    rdata.extend_from_slice(mname);
    rdata.extend_from_slice(rname);
    for number in numbers {
        rdata.extend_from_slice(&number.to_be_bytes());
    }
    rdata
}

#[cfg(test)]
mod tests {
    use super::*;
    use clusterdns_zone::answer::{parse_query, respond_records, Transport};
    use clusterdns_zone::{Answered, Rcode};
    use hickory_proto::op::Message;

    #[test]
    fn owners_point_at_the_question() {
        // `Www.Example.ORG A`.
        let packet = [
            &[0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0][..],
            b"\x03Www\x07Example\x03ORG\x00\x00\x01\x00\x01",
        ]
        .concat();
        let query = parse_query(&packet).expect("a query");
        let mut body = Body::default();
        body.push(Section::Answer, Owner::Question(0), 1, 5, &[192, 0, 2, 1]);
        body.push(Section::Authority, Owner::Question(4), 2, 5, b"\x02ns\x00");
        body.push(
            Section::Additional,
            Owner::BelowQuestion(b"\x02ns"),
            1,
            5,
            &[192, 0, 2, 2],
        );
        body.push(
            Section::Additional,
            Owner::Name(b"\x01x\x00"),
            1,
            5,
            &[1; 4],
        );
        assert_eq!(body.counts, [1, 1, 2]);
        let mut out = [0u8; 512];
        let udp = Transport::Udp { max_payload: 512 };
        let done = (Rcode::NoError, true);
        let written = respond_records(
            &query,
            &packet,
            &mut out,
            udp,
            done,
            &body.bytes,
            body.counts,
        );
        let Answered::Response { len, .. } = written else {
            panic!("{written:?}");
        };
        let message = Message::from_vec(&out[..len]).expect("decodes");
        let owners: Vec<String> = (message.answers.iter())
            .chain(&message.authorities)
            .chain(&message.additionals)
            .map(|r| r.name.to_string())
            .collect();
        assert_eq!(
            owners,
            [
                "Www.Example.ORG.",
                "Example.ORG.",
                "ns.Www.Example.ORG.",
                "x."
            ]
        );
    }
}
