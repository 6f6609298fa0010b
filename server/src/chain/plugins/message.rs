//! Rebuilding a response for the client's question: the response to another question (one a
//! `rewrite` rule made, or an `autopath` search-path expansion) copied record by record into a
//! new message with the client's ID and question, every name decompressed, passed through a
//! renaming function and compressed again where RFC 1035 allows. Used by `rewrite` to revert
//! names, set TTLs and cut the answer after a rewritten CNAME ([`Edit`]), and by `autopath` to
//! put a CNAME from the asked name in front of the answer. [`append_answers`] adds the answer
//! records of another response (a looked-up CNAME target's) after a response's own: a
//! rewritten CNAME's, an ExternalName's whose chain leaves the zone ([`cname_chain_end`]
//! says where that chain ends), and a template's CNAME's ([`first_cname_target`]).

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

/// A section of a response, after the question.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// The answer section.
    Answer,
    /// The authority section.
    Authority,
    /// The additional section.
    Additional,
}

/// Where a record being copied sits: its section, its place in that section (from 0, as the
/// response numbers it) and its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordAt {
    /// The section.
    pub section: Section,
    /// Its index within the section in the response being copied.
    pub index: u16,
    /// Its type.
    pub rtype: u16,
}

/// What [`rebuild_with`] does to each record it copies. OPT records (RFC 6891) are copied as
/// they are: none of these is asked about them.
pub trait Edit {
    /// Whether the record is copied at all (the counts follow what is kept).
    fn keep(&self, _at: RecordAt) -> bool {
        true
    }

    /// The owner name or a name in the RDATA of the record, renamed; see [`Rename`].
    fn rename(&self, at: RecordAt, name: Vec<u8>, role: NameRole) -> Option<Vec<u8>>;

    /// The record's TTL (the value as the response has it).
    fn ttl(&self, _at: RecordAt, ttl: u32) -> u32 {
        ttl
    }
}

/// A [`Rename`] function as an [`Edit`] that keeps every record and TTL.
struct RenameOnly<'a>(Rename<'a>);

impl Edit for RenameOnly<'_> {
    fn rename(&self, _at: RecordAt, name: Vec<u8>, role: NameRole) -> Option<Vec<u8>> {
        (self.0)(name, role)
    }
}

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
    let question = query_packet.get(HEADER_LEN..query.question_end())?;
    let edit = RenameOnly(rename);
    rebuild_with(response, query.id, question, out, lead_cname, &edit)
}

/// [`rebuild`] with every record passed through `edit` (renamed, its TTL set, or left out),
/// and the client's query given as its ID and `question` (name uncompressed, type, class).
pub fn rebuild_with(
    response: &[u8],
    id: u16,
    question: &[u8],
    out: &mut Vec<u8>,
    lead_cname: bool,
    edit: &dyn Edit,
) -> Option<()> {
    out.clear();
    let header = response.get(..HEADER_LEN)?;
    let qname = question.get(..question.len().checked_sub(4)?)?;
    let questions = read_u16(response, 4)?;
    let answers = read_u16(response, 6)?;
    let authority = read_u16(response, 8)?;
    let additional = read_u16(response, 10)?;
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
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(header.get(2..4)?);
    out.extend_from_slice(&questions.max(1).to_be_bytes());
    // The counts are written again once the records are copied (an edit may leave some out).
    out.extend_from_slice(header.get(6..)?);
    let mut names = Compressor::default();
    names.write(out, qname, false);
    out.extend_from_slice(question.get(qname.len()..)?);
    for (name, tail) in other_questions {
        names.write(out, &name, true);
        out.extend_from_slice(tail);
    }
    let led = u16::from(lead.is_some());
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
    let counts = [answers, authority, additional];
    let mut kept = [led, 0, 0];
    for (section, count) in SECTIONS.into_iter().zip(counts) {
        for index in 0..count {
            let copied;
            (at, copied) = copy_record(response, at, out, &mut names, section, index, edit)?;
            kept[section as usize] += u16::from(copied);
        }
    }
    for (i, count) in kept.iter().enumerate() {
        out.get_mut(6 + 2 * i..8 + 2 * i)?
            .copy_from_slice(&count.to_be_bytes());
    }
    Some(())
}

/// The sections after the question, in order.
const SECTIONS: [Section; 3] = [Section::Answer, Section::Authority, Section::Additional];

/// Writes into `out` `response` (a whole message) with the answer records of `lookup` (the
/// response to another question, e.g. a CNAME target's) added after its own answer records,
/// and TC set when either has it. Names are compressed again as [`rebuild`] does. `None` when
/// either is malformed.
pub fn append_answers(response: &[u8], lookup: &[u8], out: &mut Vec<u8>) -> Option<()> {
    out.clear();
    let keep = RenameOnly(&|name, _| Some(name));
    let mut names = Compressor::default();
    out.extend_from_slice(response.get(..HEADER_LEN)?);
    let mut at = HEADER_LEN;
    for _ in 0..read_u16(response, 4)? {
        let (name, next) = read_name(response, at)?;
        names.write(out, &name, true);
        out.extend_from_slice(response.get(next..next + 4)?);
        at = next + 4;
    }
    let counts = [6, 8, 10].map(|i| read_u16(response, i));
    let mut lookup_at = HEADER_LEN;
    for _ in 0..read_u16(lookup, 4)? {
        lookup_at = read_name(lookup, lookup_at)?.1 + 4;
    }
    let added = read_u16(lookup, 6)?;
    for (section, count) in SECTIONS.into_iter().zip(counts) {
        for index in 0..count? {
            at = copy_record(response, at, out, &mut names, section, index, &keep)?.0;
        }
        if section == Section::Answer {
            for index in 0..added {
                lookup_at =
                    copy_record(lookup, lookup_at, out, &mut names, section, index, &keep)?.0;
            }
        }
    }
    let answers = counts[0]?.checked_add(added)?;
    out.get_mut(6..8)?.copy_from_slice(&answers.to_be_bytes());
    // RFC 2181 §9: the client must know that records are missing.
    *out.get_mut(2)? |= *lookup.get(2)? & 0x02;
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

/// The target of the first CNAME record in the answer section of `response`, whose question
/// ends at `question_end` (uncompressed, as spelled): what a template's CNAME answer points to.
/// `None` when the answer section holds no CNAME or is malformed.
pub fn first_cname_target(response: &[u8], question_end: usize) -> Option<Vec<u8>> {
    let mut at = question_end;
    for _ in 0..read_u16(response, 6)? {
        let (_, next) = read_name(response, at)?;
        if read_u16(response, next)? == TYPE_CNAME {
            return Some(read_name(response, next + 10)?.0);
        }
        at = next + 10 + usize::from(read_u16(response, next + 8)?);
    }
    None
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

/// Copies the record at `at` (the `index`th of its `section`) into `out` as `edit` says;
/// returns where it ends in `response`, and whether it was copied.
fn copy_record(
    response: &[u8],
    at: usize,
    out: &mut Vec<u8>,
    names: &mut Compressor,
    section: Section,
    index: u16,
    edit: &dyn Edit,
) -> Option<(usize, bool)> {
    let (owner, at) = read_name(response, at)?;
    let rtype = read_u16(response, at)?;
    let class = response.get(at + 2..at + 4)?;
    let ttl = u32::from(read_u16(response, at + 4)?) << 16 | u32::from(read_u16(response, at + 6)?);
    let rdata_start = at + 10;
    let rdata_end = rdata_start + usize::from(read_u16(response, at + 8)?);
    let rdata = response.get(rdata_start..rdata_end)?;
    let record = RecordAt {
        section,
        index,
        rtype,
    };
    let (owner, ttl) = if rtype == TYPE_OPT {
        (owner, ttl)
    } else if !edit.keep(record) {
        return Some((rdata_end, false));
    } else {
        let owner = edit.rename(record, owner, NameRole::Owner)?;
        (owner, edit.ttl(record, ttl))
    };
    names.write(out, &owner, true);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(class);
    out.extend_from_slice(&ttl.to_be_bytes());
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
                            Field::Value => edit.rename(record, name, NameRole::Value)?,
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
    Some((rdata_end, true))
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

/// Where the OPT record of `message` holds its TTL field (extended RCODE, version and flags,
/// RFC 6891 §6.1.3), if it has one; `None` too when `message` is malformed.
pub fn opt_ttl_offset(message: &[u8]) -> Option<usize> {
    let mut at = HEADER_LEN;
    for _ in 0..read_u16(message, 4)? {
        at = read_name(message, at)?.1 + 4;
    }
    let records = [6, 8, 10]
        .into_iter()
        .map(|i| read_u16(message, i).map(usize::from))
        .sum::<Option<usize>>()?;
    for _ in 0..records {
        at = read_name(message, at)?.1;
        if read_u16(message, at)? == TYPE_OPT {
            return Some(at + 4);
        }
        at += 10 + usize::from(read_u16(message, at + 8)?);
    }
    None
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
