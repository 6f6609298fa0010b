//! Rewriting the answer back: the question restored to the name the client asked, and the
//! owner names and RDATA names of the records renamed as the rule says (`answer auto`,
//! `answer name`, `answer value`), recompressed.

use super::*;

impl Rewritten<'_> {
    /// The name to ask instead (lowercase wire format).
    pub fn qname(&self) -> &WireName {
        &self.qname
    }

    /// Writes into `out` the response to the client's `query` (parsed from `query_packet`)
    /// made from `response`, the response to the rewritten query: the client's ID and question,
    /// the response's flags, and its records with their names reverted (see the module docs).
    /// Names are decompressed and written again, compressed only where RFC 1035 allows
    /// (owners and the names inside NS, CNAME, SOA, PTR, MX and the obsolete types of RFC 1035),
    /// so the result may be longer than `response`: the caller checks it against the client's
    /// limit. OPT records are copied as they are. `None` when `response` is malformed or a rule
    /// makes a name that is not a domain name (SERVFAIL, as CoreDNS fails to pack it).
    pub fn restore_response(
        &self,
        response: &[u8],
        query: &Query,
        query_packet: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<()> {
        out.clear();
        let header = response.get(..HEADER_LEN)?;
        let question = query_packet.get(HEADER_LEN..query.question_end())?;
        let qname = question.get(..question.len().checked_sub(4)?)?;
        let questions = read_u16(response, 4)?;
        let records = [6, 8, 10]
            .into_iter()
            .map(|at| read_u16(response, at).map(u32::from))
            .sum::<Option<u32>>()?;
        out.extend_from_slice(&query.id.to_be_bytes());
        out.extend_from_slice(header.get(2..4)?);
        out.extend_from_slice(&questions.max(1).to_be_bytes());
        out.extend_from_slice(header.get(6..)?);
        let mut names = Compressor::default();
        names.write(out, qname, false);
        out.extend_from_slice(question.get(qname.len()..)?);
        // CoreDNS replaces the first question and keeps any others.
        let mut at = HEADER_LEN;
        for i in 0..questions {
            let (name, next) = read_name(response, at)?;
            let tail = response.get(next..next + 4)?;
            if i > 0 {
                names.write(out, &name, true);
                out.extend_from_slice(tail);
            }
            at = next + 4;
        }
        for _ in 0..records {
            at = self.copy_record(response, at, out, &mut names)?;
        }
        Some(())
    }

    /// Copies the record at `at` into `out` with its names reverted; returns where it ends.
    pub(super) fn copy_record(
        &self,
        response: &[u8],
        at: usize,
        out: &mut Vec<u8>,
        names: &mut Compressor,
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
            self.revert(owner, Target::Owner)?
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
                                Field::Value => self.revert(name, Target::Value)?,
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

    /// `name` (wire format, as the response spells it) after the matched rules' response
    /// rewrites, last rule first; unchanged names keep their spelling. `None` when a rule
    /// makes something that is not a domain name.
    pub(super) fn revert(&self, name: Vec<u8>, target: Target) -> Option<Vec<u8>> {
        if !self.steps.iter().any(|step| step.rule.rewrites_answers()) {
            return Some(name);
        }
        let before = WireName::from_wire(&name)?.to_dotted();
        let mut current = Cow::Borrowed(before.as_str());
        for step in self.steps.iter().rev() {
            let new = (step.rule).revert(&step.original, &step.rewritten, &current, target);
            if let Some(new) = new {
                current = Cow::Owned(new);
            }
        }
        if *current == *before {
            return Some(name);
        }
        Some(WireName::from_dotted(&current)?.as_bytes().to_vec())
    }
}

/// A field of RDATA.
#[derive(Clone, Copy, Debug)]
pub(super) enum Field {
    /// Bytes copied as they are.
    Fixed(usize),
    /// A character string (length byte and bytes).
    Text,
    /// A domain name, possibly compressed.
    Name,
    /// A domain name that `answer value` and `answer auto` rewrite.
    Value,
}

/// The fields of the RDATA of the types that hold domain names (those that may arrive
/// compressed, RFC 3597 §4), and whether those names may be compressed on the way out.
pub(super) fn rdata_layout(rtype: u16) -> Option<(&'static [Field], bool)> {
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
pub(super) fn read_name(packet: &[u8], mut at: usize) -> Option<(Vec<u8>, usize)> {
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
pub(super) struct Compressor {
    /// Suffixes written so far (exact bytes) and their offsets in the message.
    suffixes: HashMap<Vec<u8>, u16>,
}

impl Compressor {
    /// Appends the uncompressed wire name `name`, ending in a pointer when `compress` and a
    /// suffix of it was written before; every suffix written becomes a target.
    pub(super) fn write(&mut self, out: &mut Vec<u8>, name: &[u8], compress: bool) {
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
