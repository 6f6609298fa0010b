//! Rebuilding a response for the client's question: the response to another question (one a
//! `rewrite` rule made, or an `autopath` search-path expansion) copied record by record into a
//! new message with the client's ID and question, every name decompressed, passed through a
//! renaming function and compressed again where RFC 1035 allows. Used by `rewrite` to revert
//! names and by `autopath` to put a CNAME from the asked name in front of the answer. Also the
//! two steps of completing an ExternalName's CNAME answer: where its chain ends
//! ([`cname_chain_end`]) and the target's answer records appended ([`append_answers`]).

use std::collections::HashMap;

use clusterdns_zone::answer::Query;
use clusterdns_zone::name::MAX_NAME_LEN;
use clusterdns_zone::wire::{read_u16, HEADER_LEN, TYPE_OPT};
use clusterdns_zone::wire::{TYPE_CNAME, TYPE_DNAME, TYPE_MX, TYPE_NS, TYPE_PTR};
use clusterdns_zone::wire::{TYPE_SOA, TYPE_SRV};

/// Which name of a record the renaming function is asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRole {
    /// A record's owner.
    Owner,
    /// A name in a record's data (CNAME target, SRV target, ...).
    Value,
}

/// Renames one name (uncompressed wire format, as the response spells it); `None` when the
/// result is not a domain name.
pub type Rename<'a> = &'a dyn Fn(Vec<u8>, NameRole) -> Option<Vec<u8>>;

/// Writes into `out` the response to the client's `query` (parsed from `query_packet`) made
/// from `response`: the client's ID and question, the response's flags, and its records with
/// their names passed through `rename`. With `lead_cname`, a CNAME from the client's name to
/// the owner of the first answer record owned by another name goes first, with that record's
/// TTL (CoreDNS's `autopath`). Names are compressed only where RFC 1035 allows (owners and the
/// names inside NS, CNAME, SOA, PTR, MX and the obsolete types of RFC 1035), so the result may
/// be longer than `response`: the caller checks it against the client's limit. OPT records are
/// copied as they are. `None` when `response` is malformed or a name cannot be renamed.
pub fn rebuild(
    response: &[u8],
    query: &Query,
    query_packet: &[u8],
    out: &mut Vec<u8>,
    lead_cname: bool,
    rename: Rename,
) -> Option<()> {
    out.clear();
    let header = response.get(..HEADER_LEN)?;
    let question = query_packet.get(HEADER_LEN..query.question_end())?;
    let qname = question.get(..question.len().checked_sub(4)?)?;
    let questions = read_u16(response, 4)?;
    let answers = read_u16(response, 6)?;
    let records = [6, 8, 10]
        .into_iter()
        .map(|at| read_u16(response, at).map(u32::from))
        .sum::<Option<u32>>()?;
    // CoreDNS replaces the first question and keeps any others.
    let mut at = HEADER_LEN;
    let mut other_questions = Vec::new();
    for i in 0..questions {
        let (name, next) = read_name(response, at)?;
        let tail = response.get(next..next + 4)?;
        if i > 0 {
            other_questions.push((name, tail));
        }
        at = next + 4;
    }
    let lead = match lead_cname {
        true => leading_cname(response, at, answers, qname)?,
        false => None,
    };
    out.extend_from_slice(&query.id.to_be_bytes());
    out.extend_from_slice(header.get(2..4)?);
    out.extend_from_slice(&questions.max(1).to_be_bytes());
    let answers = answers + u16::from(lead.is_some());
    out.extend_from_slice(&answers.to_be_bytes());
    out.extend_from_slice(header.get(8..)?);
    let mut names = Compressor::default();
    names.write(out, qname, false);
    out.extend_from_slice(question.get(qname.len()..)?);
    for (name, tail) in other_questions {
        names.write(out, &name, true);
        out.extend_from_slice(tail);
    }
    if let Some((target, ttl)) = lead {
        names.write(out, qname, true);
        out.extend_from_slice(&TYPE_CNAME.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        let rdlen_at = out.len();
        out.extend_from_slice(&[0, 0]);
        names.write(out, &target, true);
        let rdlen = u16::try_from(out.len() - rdlen_at - 2).ok()?;
        out.get_mut(rdlen_at..rdlen_at + 2)?
            .copy_from_slice(&rdlen.to_be_bytes());
    }
    for _ in 0..records {
        at = copy_record(response, at, out, &mut names, rename)?;
    }
    Some(())
}

/// The end of the CNAME chain that is the whole answer section of `response`, whose question
/// ends at `question_end`: the last CNAME's target (uncompressed, as spelled). `None` when the
/// answer section is empty, holds another type, or is malformed. The first test is on two
/// bytes, so a response that starts with an address costs nothing more.
pub fn cname_chain_end(response: &[u8], question_end: usize) -> Option<Vec<u8>> {
    let answers = read_u16(response, 6)?;
    let first_type = response.get(question_end..)?;
    // Answers built by the zone start with the question name as a pointer (0xC00C).
    if answers == 0 || first_type.get(2..4)? != TYPE_CNAME.to_be_bytes() {
        return None;
    }
    let mut at = question_end;
    let mut target = None;
    for _ in 0..answers {
        let (_, next) = read_name(response, at)?;
        if read_u16(response, next)? != TYPE_CNAME {
            return None;
        }
        let (name, _) = read_name(response, next + 10)?;
        target = Some(name);
        at = next + 10 + usize::from(read_u16(response, next + 8)?);
    }
    target
}

/// Writes into `out` the response `base` (header, question, answer records, then any other
/// records such as its OPT) with the answer records of `lookup`, another response, appended to
/// its answer section: a CNAME answer completed with what its target resolved to. Names of the
/// appended records are decompressed and compressed again as RFC 1035 allows. `None` when
/// either message is malformed.
pub fn append_answers(base: &[u8], lookup: &[u8], out: &mut Vec<u8>) -> Option<()> {
    out.clear();
    let base_answers = read_u16(base, 6)?;
    let added = read_u16(lookup, 6)?;
    let mut base_end = skip_questions(base)?;
    for _ in 0..base_answers {
        base_end = skip_record(base, base_end)?;
    }
    out.extend_from_slice(base.get(..base_end)?);
    let mut at = skip_questions(lookup)?;
    let mut names = Compressor::default();
    for _ in 0..added {
        at = copy_record(lookup, at, out, &mut names, &|n, _| Some(n))?;
    }
    out.extend_from_slice(base.get(base_end..)?);
    let total = base_answers.checked_add(added)?;
    out.get_mut(6..8)?.copy_from_slice(&total.to_be_bytes());
    Some(())
}

/// The offset after the question section of `message`.
fn skip_questions(message: &[u8]) -> Option<usize> {
    let mut at = HEADER_LEN;
    for _ in 0..read_u16(message, 4)? {
        at = read_name(message, at)?.1 + 4;
    }
    Some(at)
}

/// The offset after the record at `at`.
fn skip_record(message: &[u8], at: usize) -> Option<usize> {
    let (_, next) = read_name(message, at)?;
    let end = next + 10 + usize::from(read_u16(message, next + 8)?);
    (end <= message.len()).then_some(end)
}

/// The target and TTL of the CNAME `autopath` puts first: the owner of the first of the
/// `answers` records from `at` that `qname` does not own (compared without case).
fn leading_cname(
    response: &[u8],
    mut at: usize,
    answers: u16,
    qname: &[u8],
) -> Option<Option<(Vec<u8>, u32)>> {
    for _ in 0..answers {
        let (owner, next) = read_name(response, at)?;
        let ttl = u32::from(read_u16(response, next + 4)?) << 16
            | u32::from(read_u16(response, next + 6)?);
        if !owner.eq_ignore_ascii_case(qname) {
            return Some(Some((owner, ttl)));
        }
        at = next + 10 + usize::from(read_u16(response, next + 8)?);
    }
    Some(None)
}

/// Copies the record at `at` into `out` with its names renamed; returns where it ends.
fn copy_record(
    response: &[u8],
    at: usize,
    out: &mut Vec<u8>,
    names: &mut Compressor,
    rename: Rename,
) -> Option<usize> {
    let (owner, at) = read_name(response, at)?;
    let rtype = read_u16(response, at)?;
    let fixed = response.get(at..at + 8)?;
    let rdata_start = at + 10;
    let rdata_end = rdata_start + usize::from(read_u16(response, at + 8)?);
    let rdata = response.get(rdata_start..rdata_end)?;
    let owner = if rtype == TYPE_OPT {
        owner
    } else {
        rename(owner, NameRole::Owner)?
    };
    names.write(out, &owner, true);
    out.extend_from_slice(fixed);
    let rdlen_at = out.len();
    out.extend_from_slice(&[0, 0]);
    match rdata_layout(rtype) {
        None => out.extend_from_slice(rdata),
        Some((fields, compress)) => {
            let mut pos = rdata_start;
            for field in fields {
                match *field {
                    Field::Fixed(len) => {
                        out.extend_from_slice(response.get(pos..pos + len)?);
                        pos += len;
                    }
                    Field::Text => {
                        let len = usize::from(*response.get(pos)?);
                        out.extend_from_slice(response.get(pos..pos + 1 + len)?);
                        pos += 1 + len;
                    }
                    Field::Name | Field::Value => {
                        let (name, next) = read_name(response, pos)?;
                        pos = next;
                        let name = match field {
                            Field::Value => rename(name, NameRole::Value)?,
                            _ => name,
                        };
                        names.write(out, &name, compress);
                    }
                }
            }
            if pos != rdata_end {
                return None;
            }
        }
    }
    let rdlen = u16::try_from(out.len() - rdlen_at - 2).ok()?;
    out.get_mut(rdlen_at..rdlen_at + 2)?
        .copy_from_slice(&rdlen.to_be_bytes());
    Some(rdata_end)
}

/// A field of RDATA.
#[derive(Clone, Copy, Debug)]
enum Field {
    /// Bytes copied as they are.
    Fixed(usize),
    /// A character string (length byte and bytes).
    Text,
    /// A domain name, possibly compressed.
    Name,
    /// A domain name renamed as a [`NameRole::Value`].
    Value,
}

/// The fields of the RDATA of the types that hold domain names (those that may arrive
/// compressed, RFC 3597 §4), and whether those names may be compressed on the way out.
fn rdata_layout(rtype: u16) -> Option<(&'static [Field], bool)> {
    use Field::{Fixed, Name, Text, Value};
    const MD: u16 = 3;
    const MF: u16 = 4;
    const MB: u16 = 7;
    const MG: u16 = 8;
    const MR: u16 = 9;
    const MINFO: u16 = 14;
    const RP: u16 = 17;
    const AFSDB: u16 = 18;
    const RT: u16 = 21;
    const PX: u16 = 26;
    const NAPTR: u16 = 35;
    const KX: u16 = 36;
    Some(match rtype {
        TYPE_CNAME | TYPE_NS | TYPE_PTR => (&[Value], true),
        TYPE_DNAME => (&[Value], false),
        MD | MF | MB | MG | MR => (&[Name], true),
        TYPE_SOA => (&[Value, Name, Fixed(20)], true),
        MINFO => (&[Name, Name], true),
        RP => (&[Name, Name], false),
        TYPE_MX => (&[Fixed(2), Value], true),
        AFSDB | RT | KX => (&[Fixed(2), Name], false),
        PX => (&[Fixed(2), Name, Name], false),
        TYPE_SRV => (&[Fixed(6), Value], false),
        NAPTR => (&[Fixed(4), Text, Text, Text, Value], false),
        _ => return None,
    })
}

/// Reads the possibly compressed name at `at`: its labels uncompressed, spelled as they are,
/// and the offset after it. Pointers must point backwards past the header, which with the
/// length limit bounds the walk.
pub fn read_name(packet: &[u8], mut at: usize) -> Option<(Vec<u8>, usize)> {
    let mut name = Vec::with_capacity(32);
    let mut end = None;
    loop {
        let len = *packet.get(at)?;
        match len & 0xC0 {
            0x00 => {
                let label = packet.get(at..at + 1 + usize::from(len))?;
                name.extend_from_slice(label);
                if name.len() > MAX_NAME_LEN {
                    return None;
                }
                at += label.len();
                if len == 0 {
                    return Some((name, end.unwrap_or(at)));
                }
            }
            0xC0 => {
                let target = usize::from(read_u16(packet, at)? & 0x3FFF);
                if !(HEADER_LEN..at).contains(&target) {
                    return None;
                }
                end.get_or_insert(at + 2);
                at = target;
            }
            _ => return None,
        }
    }
}

/// Writes names into a message, pointing at an earlier spelling of the same suffix.
#[derive(Default)]
struct Compressor {
    /// Suffixes written so far (exact bytes) and their offsets in the message.
    suffixes: HashMap<Vec<u8>, u16>,
}

impl Compressor {
    /// Appends the uncompressed wire name `name`, ending in a pointer when `compress` and a
    /// suffix of it was written before; every suffix written becomes a target.
    fn write(&mut self, out: &mut Vec<u8>, name: &[u8], compress: bool) {
        let mut pos = 0usize;
        while let Some(suffix @ &[len, ..]) = name.get(pos..) {
            if len == 0 {
                break;
            }
            if compress {
                if let Some(&offset) = self.suffixes.get(suffix) {
                    out.extend_from_slice(&(0xC000 | offset).to_be_bytes());
                    return;
                }
            }
            if let Ok(offset @ 0..0x4000) = u16::try_from(out.len()) {
                self.suffixes.entry(suffix.to_vec()).or_insert(offset);
            }
            let Some(label) = suffix.get(..1 + usize::from(len)) else {
                break;
            };
            out.extend_from_slice(label);
            pos += label.len();
        }
        out.push(0);
    }
}

/// One record of a received message with its names uncompressed, so that it can be written
/// into another message anywhere (and compared by value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedRecord {
    /// The owner, uncompressed wire format, spelled as the message spells it.
    pub owner: Vec<u8>,
    /// The type.
    pub rtype: u16,
    /// The class.
    pub class: u16,
    /// The TTL.
    pub ttl: u32,
    /// The RDATA, with the names RFC 3597 §4 lets a message compress written out in full.
    pub rdata: Vec<u8>,
}

impl OwnedRecord {
    /// Appends the record, uncompressed, to `out`; `None` when its RDATA is too long.
    pub fn write(&self, out: &mut Vec<u8>) -> Option<()> {
        let rdlen = u16::try_from(self.rdata.len()).ok()?;
        out.extend_from_slice(&self.owner);
        out.extend_from_slice(&self.rtype.to_be_bytes());
        out.extend_from_slice(&self.class.to_be_bytes());
        out.extend_from_slice(&self.ttl.to_be_bytes());
        out.extend_from_slice(&rdlen.to_be_bytes());
        out.extend_from_slice(&self.rdata);
        Some(())
    }
}

/// The records of `response` after its questions, by section (answer, authority,
/// additional), the OPT record left out; `None` when the message is malformed.
pub fn sections(response: &[u8]) -> Option<[Vec<OwnedRecord>; 3]> {
    let mut at = HEADER_LEN;
    for _ in 0..read_u16(response, 4)? {
        at = read_name(response, at)?.1 + 4;
    }
    let mut sections: [Vec<OwnedRecord>; 3] = Default::default();
    for (section, count_at) in sections.iter_mut().zip([6, 8, 10]) {
        for _ in 0..read_u16(response, count_at)? {
            let (owner, fixed) = read_name(response, at)?;
            let rtype = read_u16(response, fixed)?;
            let class = read_u16(response, fixed + 2)?;
            let ttl = u32::from(read_u16(response, fixed + 4)?) << 16
                | u32::from(read_u16(response, fixed + 6)?);
            let start = fixed + 10;
            let end = start + usize::from(read_u16(response, fixed + 8)?);
            let rdata = uncompressed_rdata(response, rtype, start, end)?;
            at = end;
            if rtype != TYPE_OPT {
                section.push(OwnedRecord {
                    owner,
                    rtype,
                    class,
                    ttl,
                    rdata,
                });
            }
        }
    }
    Some(sections)
}

/// The RDATA of a record of `rtype` at `start..end` of `message`, its names uncompressed.
fn uncompressed_rdata(message: &[u8], rtype: u16, start: usize, end: usize) -> Option<Vec<u8>> {
    let raw = message.get(start..end)?;
    let Some((fields, _)) = rdata_layout(rtype) else {
        return Some(raw.to_vec());
    };
    let mut out = Vec::with_capacity(raw.len() + 32);
    let mut pos = start;
    for field in fields {
        match *field {
            Field::Fixed(len) => {
                out.extend_from_slice(message.get(pos..pos + len)?);
                pos += len;
            }
            Field::Text => {
                let len = usize::from(*message.get(pos)?);
                out.extend_from_slice(message.get(pos..pos + 1 + len)?);
                pos += 1 + len;
            }
            Field::Name | Field::Value => {
                let (name, next) = read_name(message, pos)?;
                out.extend_from_slice(&name);
                pos = next;
            }
        }
    }
    (pos == end).then_some(out)
}
