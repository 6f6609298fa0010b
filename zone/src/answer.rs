//! The answer function: query bytes in, response bytes out, no I/O, no allocation, no lock.
//! `(snapshot, query, transport) -> response written into the caller's buffer`. The cheapest
//! checks come first (RFC 1035 §4.1.1, RFC 6891 §6.1): too short or a response → dropped,
//! an opcode other than QUERY → NOTIMP, not exactly one well-formed question → FORMERR, an EDNS
//! version above 0 → BADVERS, a class other than IN → REFUSED. Names outside the zones a
//! snapshot answers for are handed back to the caller ([`Answered::Outside`]).

use std::net::IpAddr;

use crate::name::{MAX_LABEL_LEN, MAX_NAME_LEN};
use crate::snapshot::{Lookup, Snapshot, SOA_RECORD_LEN};
use crate::wire::{
    read_u16, skip_name, Rcode, CLASSIC_UDP_PAYLOAD, CLASS_IN, HEADER_LEN, TYPE_A, TYPE_AAAA,
};
use crate::wire::{FLAG_AA, FLAG_CD, FLAG_QR, FLAG_RD, FLAG_TC, OPCODE_MASK, TYPE_OPT};

/// The UDP payload size we advertise in our OPT record (DNS Flag Day 2020).
pub const ADVERTISED_PAYLOAD: u16 = 1232;
/// Length of our OPT record.
const OPT_LEN: usize = 11;

/// How the query arrived, which bounds the response size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP: at most the client's EDNS payload size (512 without EDNS), and at most `max_payload`.
    Udp {
        /// Our ceiling on UDP responses.
        max_payload: u16,
    },
    /// TCP: up to 65535 bytes.
    Tcp,
}

/// EDNS(0) options of a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    /// The requestor's UDP payload size.
    pub payload: u16,
    /// The DNSSEC OK bit (copied into the response, RFC 3225 §3).
    pub dnssec_ok: bool,
}

/// A parsed query: everything the answer path needs, on the stack.
#[derive(Clone, Debug)]
pub struct Query {
    /// Message ID.
    pub id: u16,
    /// The header flags word of the query.
    pub flags: u16,
    qname: [u8; MAX_NAME_LEN],
    qname_len: u8,
    /// Query type.
    pub qtype: u16,
    /// Query class.
    pub qclass: u16,
    /// EDNS, when the query had an OPT record.
    pub edns: Option<Edns>,
}

impl Query {
    /// The question name in lowercase wire format.
    pub fn qname(&self) -> &[u8] {
        &self.qname[..usize::from(self.qname_len)]
    }

    /// Where the question ends in the query (header + name + type + class).
    pub fn question_end(&self) -> usize {
        HEADER_LEN + usize::from(self.qname_len) + 4
    }
}

/// Why a query could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Not worth an answer: too short to have a header, or a response (QR=1).
    Drop,
    /// Answer with this rcode and no question (opcode not QUERY, bad question, bad OPT).
    Reject(Rcode),
}

/// What the answer function did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answered {
    /// Nothing to send.
    Drop,
    /// A response of `len` bytes is in the output buffer.
    Response {
        /// Bytes written.
        len: usize,
        /// Its rcode.
        rcode: Rcode,
    },
    /// The name is outside our zones: the caller decides (forward, or refuse).
    Outside,
}

/// Parses a query. The question name must be uncompressed (nothing precedes it to point at,
/// so any pointer there is malformed or a loop).
pub fn parse_query(packet: &[u8]) -> Result<Query, Malformed> {
    if packet.len() < HEADER_LEN {
        return Err(Malformed::Drop);
    }
    let flags = u16::from_be_bytes([packet[2], packet[3]]);
    if flags & FLAG_QR != 0 {
        return Err(Malformed::Drop);
    }
    if flags & OPCODE_MASK != 0 {
        return Err(Malformed::Reject(Rcode::NotImp));
    }
    let formerr = Malformed::Reject(Rcode::FormErr);
    let count = |at| u16::from_be_bytes([packet[at], packet[at + 1]]);
    if count(4) != 1 {
        return Err(formerr);
    }
    let mut query = Query {
        id: u16::from_be_bytes([packet[0], packet[1]]),
        flags,
        qname: [0; MAX_NAME_LEN],
        qname_len: 0,
        qtype: 0,
        qclass: 0,
        edns: None,
    };
    let mut at = HEADER_LEN;
    let mut written = 0usize;
    loop {
        let len = usize::from(*packet.get(at).ok_or(formerr)?);
        if len > MAX_LABEL_LEN || written + 1 + len > MAX_NAME_LEN {
            return Err(formerr);
        }
        let label = packet.get(at..at + 1 + len).ok_or(formerr)?;
        for (dst, src) in query.qname[written..written + 1 + len]
            .iter_mut()
            .zip(label)
        {
            *dst = src.to_ascii_lowercase();
        }
        written += 1 + len;
        at += 1 + len;
        if len == 0 {
            break;
        }
    }
    query.qname_len = written as u8;
    query.qtype = read_u16(packet, at).ok_or(formerr)?;
    query.qclass = read_u16(packet, at + 2).ok_or(formerr)?;
    at += 4;
    // Skip answer and authority records; find the OPT among the additional ones.
    let records = usize::from(count(6)) + usize::from(count(8));
    for _ in 0..records {
        at = skip_name(packet, at).ok_or(formerr)?;
        let rdlen = usize::from(read_u16(packet, at + 8).ok_or(formerr)?);
        at += 10 + rdlen;
    }
    for _ in 0..count(10) {
        let name_at = at;
        at = skip_name(packet, at).ok_or(formerr)?;
        let rtype = read_u16(packet, at).ok_or(formerr)?;
        let class = read_u16(packet, at + 2).ok_or(formerr)?;
        let ttl_high = read_u16(packet, at + 4).ok_or(formerr)?;
        let rdlen = usize::from(read_u16(packet, at + 8).ok_or(formerr)?);
        if rtype == TYPE_OPT {
            // RFC 6891 §6.1.1: one OPT, owned by the root.
            if query.edns.is_some() || at != name_at + 1 {
                return Err(formerr);
            }
            let version = ttl_high & 0xFF;
            let dnssec_ok = read_u16(packet, at + 6).ok_or(formerr)? & 0x8000 != 0;
            if version != 0 {
                return Err(Malformed::Reject(Rcode::BadVers));
            }
            // RFC 6891 §6.1.2: the options must fill the RDATA exactly.
            let options = packet.get(at + 10..at + 10 + rdlen).ok_or(formerr)?;
            let mut option = 0;
            while option < options.len() {
                let len = usize::from(read_u16(options, option + 2).ok_or(formerr)?);
                option += 4 + len;
            }
            if option != options.len() {
                return Err(formerr);
            }
            query.edns = Some(Edns {
                payload: class,
                dnssec_ok,
            });
        }
        at += 10 + rdlen;
    }
    if at > packet.len() {
        return Err(formerr);
    }
    Ok(query)
}

/// The largest response the client accepts over `transport`.
pub fn response_limit(query: &Query, transport: Transport) -> usize {
    match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp { max_payload } => {
            let asked = query
                .edns
                .map_or(CLASSIC_UDP_PAYLOAD, |e| usize::from(e.payload));
            asked.clamp(
                CLASSIC_UDP_PAYLOAD,
                usize::from(max_payload).max(CLASSIC_UDP_PAYLOAD),
            )
        }
    }
}

/// Answers `packet` from `snapshot` into `out` (which should hold 65535 bytes for TCP).
pub fn answer(
    snapshot: &Snapshot,
    packet: &[u8],
    out: &mut [u8],
    transport: Transport,
) -> Answered {
    let query = match parse_query(packet) {
        Ok(query) => query,
        Err(Malformed::Drop) => return Answered::Drop,
        Err(Malformed::Reject(rcode)) => return reject(packet, rcode, out),
    };
    if query.qclass != CLASS_IN {
        return respond_rcode(&query, packet, out, Rcode::Refused, transport);
    }
    answer_query(snapshot, &query, packet, out, transport)
}

/// Answers an already parsed query of class IN.
pub fn answer_query(
    snapshot: &Snapshot,
    query: &Query,
    packet: &[u8],
    out: &mut [u8],
    transport: Transport,
) -> Answered {
    let limit = response_limit(query, transport).min(out.len());
    let ttl = snapshot.config().ttl;
    match snapshot.lookup(query.qname(), query.qtype) {
        Lookup::Outside => Answered::Outside,
        Lookup::NotSynced => respond_rcode(query, packet, out, Rcode::ServFail, transport),
        Lookup::TransferRefused => respond_rcode(query, packet, out, Rcode::Refused, transport),
        Lookup::Answer(found) => {
            let mut w = Writer::start(query, packet, out, limit, FLAG_AA, Rcode::NoError);
            let end = w.len + w.room();
            let written = found.write(w.out, w.len, end);
            w.len = written.len;
            w.counts = written.counts;
            if written.truncated {
                w.truncated();
            }
            w.finish()
        }
        Lookup::PodAddress(ip) => {
            let mut w = Writer::start(query, packet, out, limit, FLAG_AA, Rcode::NoError);
            let mut record = [0u8; 28];
            let len = encode_address(&mut record, ip, ttl);
            w.body(&record[..len], [1, 0, 0]);
            w.finish()
        }
        Lookup::NoData => negative(snapshot, query, packet, out, limit, Rcode::NoError),
        Lookup::NxDomain => negative(snapshot, query, packet, out, limit, Rcode::NxDomain),
    }
}

/// NXDOMAIN or NODATA: the zone SOA in the authority section (RFC 2308 §2).
fn negative(
    snapshot: &Snapshot,
    query: &Query,
    packet: &[u8],
    out: &mut [u8],
    limit: usize,
    rcode: Rcode,
) -> Answered {
    let zone_len = snapshot.config().domain.as_bytes().len();
    negative_of(snapshot, query, packet, out, limit, (rcode, zone_len))
}

/// NXDOMAIN for a name under a reverse zone the cluster is authoritative for (`zone_len` bytes,
/// a suffix of the question name) that no Service or endpoint owns: that zone's SOA in the
/// authority section; SERVFAIL before the first sync, as for the cluster domain.
pub fn reverse_nxdomain(
    snapshot: &Snapshot,
    query: &Query,
    packet: &[u8],
    out: &mut [u8],
    transport: Transport,
    zone_len: usize,
) -> Answered {
    if !snapshot.is_synced() {
        return respond_rcode(query, packet, out, Rcode::ServFail, transport);
    }
    let limit = response_limit(query, transport).min(out.len());
    negative_of(
        snapshot,
        query,
        packet,
        out,
        limit,
        (Rcode::NxDomain, zone_len),
    )
}

fn negative_of(
    snapshot: &Snapshot,
    query: &Query,
    packet: &[u8],
    out: &mut [u8],
    limit: usize,
    (rcode, zone_len): (Rcode, usize),
) -> Answered {
    let mut w = Writer::start(query, packet, out, limit, FLAG_AA, rcode);
    let mut soa = [0u8; SOA_RECORD_LEN];
    let len = snapshot.write_soa_of(query.qname().len(), zone_len, &mut soa);
    if len <= w.room() {
        w.body(&soa[..len], [0, if len > 0 { 1 } else { 0 }, 0]);
    } else {
        w.truncated();
    }
    w.finish()
}

/// Writes a response with `rcode`, the question echoed and no records.
pub fn respond_rcode(
    query: &Query,
    packet: &[u8],
    out: &mut [u8],
    rcode: Rcode,
    transport: Transport,
) -> Answered {
    let limit = response_limit(query, transport).min(out.len());
    Writer::start(query, packet, out, limit, 0, rcode).finish()
}

/// Writes a response with `rcode`, the question echoed and `records`: uncompressed records
/// holding `counts[0]` answers, then `counts[1]` authority and `counts[2]` additional ones (for
/// answers made outside the zone: hosts, templates, rewritten names). When they do not fit the
/// client's limit the response carries none of them and sets TC.
pub fn respond_records(
    query: &Query,
    packet: &[u8],
    out: &mut [u8],
    transport: Transport,
    (rcode, authoritative): (Rcode, bool),
    records: &[u8],
    counts: [u16; 3],
) -> Answered {
    let limit = response_limit(query, transport).min(out.len());
    let flags = if authoritative { FLAG_AA } else { 0 };
    let mut w = Writer::start(query, packet, out, limit, flags, rcode);
    if records.len() <= w.room() {
        w.body(records, counts);
    } else {
        w.truncated();
    }
    w.finish()
}

/// Writes a response with `rcode` and the question echoed, whose records `write` appends in
/// place: it is given the output, where the records start and where they must end (room for
/// the OPT record kept), and says what it wrote (for answers other plugins encode record by
/// record, such as zone files).
pub fn respond_with(
    query: &Query,
    packet: &[u8],
    out: &mut [u8],
    transport: Transport,
    (rcode, authoritative): (Rcode, bool),
    write: impl FnOnce(&mut [u8], usize, usize) -> crate::Written,
) -> Answered {
    let limit = response_limit(query, transport).min(out.len());
    let flags = if authoritative { FLAG_AA } else { 0 };
    let mut w = Writer::start(query, packet, out, limit, flags, rcode);
    let end = w.len + w.room();
    let written = write(w.out, w.len, end);
    w.len = written.len;
    w.counts = written.counts;
    if written.truncated {
        w.truncated();
    }
    w.finish()
}

/// A header-only response to a query that could not be parsed (NOTIMP, FORMERR, BADVERS).
fn reject(packet: &[u8], rcode: Rcode, out: &mut [u8]) -> Answered {
    if out.len() < HEADER_LEN + OPT_LEN {
        return Answered::Drop;
    }
    let flags = u16::from_be_bytes([packet[2], packet[3]]);
    let keep = flags & (OPCODE_MASK | FLAG_RD | FLAG_CD);
    let reply = FLAG_QR | keep | (rcode as u16 & 0x0F);
    out[..2].copy_from_slice(&packet[..2]);
    out[2..4].copy_from_slice(&reply.to_be_bytes());
    out[4..12].fill(0);
    let mut len = HEADER_LEN;
    if rcode == Rcode::BadVers {
        // RFC 6891 §6.1.3: BADVERS travels in an OPT record of version 0.
        out[11] = 1;
        len += write_opt(&mut out[len..], Rcode::BadVers, false);
    }
    Answered::Response { len, rcode }
}

/// Writes our OPT record (RFC 6891 §6.1.2) with the upper bits of `rcode`.
fn write_opt(out: &mut [u8], rcode: Rcode, dnssec_ok: bool) -> usize {
    let extended = ((rcode as u16) >> 4) as u8;
    let do_bit = if dnssec_ok { 0x80 } else { 0 };
    let payload = ADVERTISED_PAYLOAD.to_be_bytes();
    let opt = [
        0, 0, 41, payload[0], payload[1], extended, 0, do_bit, 0, 0, 0,
    ];
    out[..OPT_LEN].copy_from_slice(&opt);
    OPT_LEN
}

/// Encodes an A/AAAA record owned by the question name.
fn encode_address(out: &mut [u8; 28], ip: IpAddr, ttl: u32) -> usize {
    out[0] = 0xC0;
    out[1] = HEADER_LEN as u8;
    let (rtype, len) = match ip {
        IpAddr::V4(_) => (TYPE_A, 4usize),
        IpAddr::V6(_) => (TYPE_AAAA, 16usize),
    };
    out[2..4].copy_from_slice(&rtype.to_be_bytes());
    out[4..6].copy_from_slice(&CLASS_IN.to_be_bytes());
    out[6..10].copy_from_slice(&ttl.to_be_bytes());
    out[10..12].copy_from_slice(&(len as u16).to_be_bytes());
    match ip {
        IpAddr::V4(v4) => out[12..16].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out[12..28].copy_from_slice(&v6.octets()),
    }
    12 + len
}

/// Assembles a response in place: header, echoed question, records, OPT.
struct Writer<'a> {
    out: &'a mut [u8],
    len: usize,
    limit: usize,
    flags: u16,
    rcode: Rcode,
    counts: [u16; 3],
    edns: Option<Edns>,
}

impl<'a> Writer<'a> {
    fn start(
        query: &Query,
        packet: &[u8],
        out: &'a mut [u8],
        limit: usize,
        flags: u16,
        rcode: Rcode,
    ) -> Self {
        let question = &packet[HEADER_LEN..query.question_end()];
        let len = HEADER_LEN + question.len();
        out[..2].copy_from_slice(&query.id.to_be_bytes());
        out[HEADER_LEN..len].copy_from_slice(question);
        let keep = query.flags & (FLAG_RD | FLAG_CD);
        Writer {
            out,
            len,
            limit,
            flags: FLAG_QR | keep | flags,
            rcode,
            counts: [0; 3],
            edns: query.edns,
        }
    }

    /// Bytes left for records, keeping room for the OPT record.
    fn room(&self) -> usize {
        let opt = if self.edns.is_some() { OPT_LEN } else { 0 };
        self.limit.saturating_sub(self.len + opt)
    }

    /// Appends records; returns where they start in the output.
    fn body(&mut self, bytes: &[u8], counts: [u16; 3]) -> usize {
        let at = self.len;
        self.out[at..at + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        for (total, add) in self.counts.iter_mut().zip(counts) {
            *total += add;
        }
        at
    }

    fn truncated(&mut self) {
        self.flags |= FLAG_TC;
    }

    fn finish(mut self) -> Answered {
        let mut additional = self.counts[2];
        if let Some(edns) = self.edns {
            self.len += write_opt(&mut self.out[self.len..], self.rcode, edns.dnssec_ok);
            additional += 1;
        }
        let out = &mut self.out;
        let flags = self.flags | (self.rcode as u16 & 0x0F);
        let header = [
            0,
            0,
            (flags >> 8) as u8,
            flags as u8,
            0,
            1,
            (self.counts[0] >> 8) as u8,
            self.counts[0] as u8,
            (self.counts[1] >> 8) as u8,
            self.counts[1] as u8,
            (additional >> 8) as u8,
            additional as u8,
        ];
        out[2..HEADER_LEN].copy_from_slice(&header[2..]);
        Answered::Response {
            len: self.len,
            rcode: self.rcode,
        }
    }
}
