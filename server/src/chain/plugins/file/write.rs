//! Writing a zone's [`Answer`] into the response, record by record, with no allocation.
//!
//! Names are compressed against the question only (RFC 1035 §4.1.4): a record owned by the
//! question name is a pointer to it, and any other name that ends with a suffix of the
//! question (the zone's part, mostly) points at that suffix, so it is spelled as the client
//! spelled it. Names inside RDATA are compressed only in the types RFC 1035 defines (NS,
//! CNAME, SOA, PTR, MX; RFC 3597 §4); SRV targets never (RFC 2782).
//!
//! A record is written whole or not at all. When the answer section, a negative answer's SOA
//! or a referral (its NS records and the glue of its in-domain servers, RFC 9471) does not fit,
//! the response stops there with TC set; the apex NS under a positive answer and the addresses
//! in the additional section are left out without it (RFC 2181 §9).

use clusterdns_zone::name::is_subdomain;
use clusterdns_zone::wire::{CLASS_IN, TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_MX, TYPE_NS, TYPE_PTR};
use clusterdns_zone::wire::{TYPE_SOA, TYPE_SRV};
use clusterdns_zone::Written;

use super::zone::{Additional, Answer, Authority, Kind, Owner, RrSet, Zone};

/// Writes `answer` (from `zone`, to the question `qname`, lowercase wire format) into
/// `out[start..end]`.
pub fn write(
    zone: &Zone,
    answer: &Answer<'_>,
    qname: &[u8],
    out: &mut [u8],
    start: usize,
    end: usize,
) -> Written {
    let mut starts = [false; 256];
    let mut at = 0usize;
    while let Some(&len) = qname.get(at) {
        starts[at] = true;
        if len == 0 {
            break;
        }
        at += usize::from(len) + 1;
    }
    let mut emit = Emit {
        out,
        len: start,
        end,
        qname,
        starts,
        counts: [0; 3],
        truncated: false,
    };
    emit.sections(zone, answer);
    Written {
        len: emit.len,
        counts: emit.counts,
        truncated: emit.truncated,
    }
}

/// A response body being written.
struct Emit<'o> {
    out: &'o mut [u8],
    len: usize,
    end: usize,
    qname: &'o [u8],
    /// Where the labels of the question name start.
    starts: [bool; 256],
    counts: [u16; 3],
    truncated: bool,
}

/// The sections, by their index in the header's counts.
const ANSWER: usize = 0;
const AUTHORITY: usize = 1;
const ADDITIONAL: usize = 2;

impl Emit<'_> {
    fn sections(&mut self, zone: &Zone, answer: &Answer<'_>) {
        for (owner, set) in answer.answer() {
            if !self.set(ANSWER, owner, set, None) {
                self.truncated = true;
                return;
            }
        }
        let required = match answer.authority {
            Authority::None => true,
            Authority::Soa => match zone.apex(TYPE_SOA) {
                Some(soa) => {
                    let owner = Owner::Name(zone.origin());
                    self.set(AUTHORITY, owner, soa, Some(zone.negative_ttl()))
                }
                None => true,
            },
            Authority::Cut(cut, ns) => self.set(AUTHORITY, Owner::Name(cut), ns, None),
            // Optional: left out when it does not fit (and so is what would follow).
            Authority::ApexNs => match zone.apex(TYPE_NS) {
                Some(ns) if !self.set(AUTHORITY, Owner::Name(zone.origin()), ns, None) => return,
                _ => true,
            },
        };
        if !required {
            self.truncated = true;
            return;
        }
        if let Some(additional) = answer.additional {
            let glue = answer.kind == Kind::Referral;
            if !self.addresses(zone, additional) && glue {
                self.truncated = true;
            }
        }
    }

    /// The A and AAAA records of the names `additional` points to; false when one did not fit.
    fn addresses(&mut self, zone: &Zone, additional: Additional<'_>) -> bool {
        let records = &additional.set.records;
        for (index, rr) in records.iter().enumerate() {
            let rtype = additional.set.rtype;
            let Some(name) = target(rtype, &rr.rdata) else {
                continue;
            };
            let seen = (records[..index].iter())
                .any(|earlier| target(rtype, &earlier.rdata) == Some(name));
            if seen || !is_subdomain(name, additional.under) {
                continue;
            }
            for rtype in [TYPE_A, TYPE_AAAA] {
                if let Some(set) = zone.exact(name, rtype) {
                    if !self.set(ADDITIONAL, Owner::Name(name), set, None) {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Every record of `set` in `section`; false when one did not fit (those before it stay).
    fn set(&mut self, section: usize, owner: Owner<'_>, set: &RrSet, ttl: Option<u32>) -> bool {
        for rr in set.records.iter() {
            let ttl = ttl.unwrap_or(rr.ttl);
            if !self.record(owner, set.rtype, ttl, &rr.rdata) {
                return false;
            }
            self.counts[section] += 1;
        }
        true
    }

    /// One record, whole or not at all.
    fn record(&mut self, owner: Owner<'_>, rtype: u16, ttl: u32, rdata: &[u8]) -> bool {
        let start = self.len;
        let written = (|| {
            match owner {
                Owner::Question => self.bytes(&[0xC0, 12])?,
                Owner::Name(name) => self.name(name)?,
            }
            self.bytes(&rtype.to_be_bytes())?;
            self.bytes(&CLASS_IN.to_be_bytes())?;
            self.bytes(&ttl.to_be_bytes())?;
            let length_at = self.len;
            self.bytes(&[0, 0])?;
            match rtype {
                TYPE_NS | TYPE_CNAME | TYPE_PTR => self.name(rdata)?,
                TYPE_MX => {
                    self.bytes(rdata.get(..2)?)?;
                    self.name(rdata.get(2..)?)?;
                }
                TYPE_SOA => {
                    let mname = name_len(rdata)?;
                    let rname = name_len(rdata.get(mname..)?)?;
                    self.name(&rdata[..mname])?;
                    self.name(&rdata[mname..mname + rname])?;
                    self.bytes(rdata.get(mname + rname..)?)?;
                }
                _ => self.bytes(rdata)?,
            }
            let length = u16::try_from(self.len - length_at - 2).ok()?;
            self.out[length_at..length_at + 2].copy_from_slice(&length.to_be_bytes());
            Some(())
        })();
        if written.is_none() {
            self.len = start;
        }
        written.is_some()
    }

    /// `name` (lowercase wire format), its longest suffix that is a suffix of the question's
    /// name written as a pointer to it.
    fn name(&mut self, name: &[u8]) -> Option<()> {
        let mut at = 0usize;
        loop {
            let suffix = name.get(at..)?;
            if suffix.len() > 1 && suffix.len() <= self.qname.len() {
                let q = self.qname.len() - suffix.len();
                if self.starts[q] && &self.qname[q..] == suffix {
                    self.bytes(&name[..at])?;
                    let pointer = 0xC000 | (12 + q) as u16;
                    return self.bytes(&pointer.to_be_bytes());
                }
            }
            let len = usize::from(*name.get(at)?);
            if len == 0 {
                return self.bytes(name.get(..=at)?);
            }
            at += len + 1;
        }
    }

    fn bytes(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.len.checked_add(bytes.len())?;
        if end > self.end {
            return None;
        }
        self.out.get_mut(self.len..end)?.copy_from_slice(bytes);
        self.len = end;
        Some(())
    }
}

/// The length of the wire-format name at the start of `bytes`.
fn name_len(bytes: &[u8]) -> Option<usize> {
    let mut at = 0usize;
    loop {
        let len = usize::from(*bytes.get(at)?);
        at += 1 + len;
        if len == 0 {
            return Some(at);
        }
    }
}

/// The name an NS, MX or SRV record points to.
fn target(rtype: u16, rdata: &[u8]) -> Option<&[u8]> {
    let at = match rtype {
        TYPE_NS => 0,
        TYPE_MX => 2,
        TYPE_SRV => 6,
        _ => return None,
    };
    let name = rdata.get(at..)?;
    name.get(..name_len(name)?)
}
