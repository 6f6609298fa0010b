//! One zone read from a master file, held immutably, and the lookup that says what a question
//! gets from it: RFC 1034 §4.3.2's algorithm as CoreDNS's `file` plugin answers it, with
//! RFC 4592's wildcards and RFC 2308's negative answers.
//!
//! The names are a hash map from the lowercase wire-format owner to its RRsets; every name
//! between an owner and the apex is there too, empty (an empty non-terminal, so "exists" is
//! one lookup). A lookup borrows from the zone and allocates nothing: it walks the labels of
//! the question from the apex down for a zone cut (only when the zone has one), then takes the
//! name, else the wildcard of its closest encloser, following CNAMEs inside the zone.

use std::collections::HashMap;

use clusterdns_zone::name::is_subdomain;
use clusterdns_zone::wire::{
    TYPE_ANY, TYPE_AXFR, TYPE_CNAME, TYPE_IXFR, TYPE_MX, TYPE_NS, TYPE_SOA, TYPE_SRV,
};
use clusterdns_zone::Rcode;
use foldhash::fast::RandomState;

use super::load::{LoadError, Source};

/// The DS type: answered from the parent side of a zone cut (RFC 4035 §3.1.4.1).
const TYPE_DS: u16 = 43;
/// CNAMEs followed in one answer, as CoreDNS follows them (then the answer stops there).
pub const MAX_CHAIN: usize = 8;

/// One record's TTL and RDATA (wire format, names uncompressed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rr {
    /// The TTL.
    pub ttl: u32,
    /// The RDATA.
    pub rdata: Box<[u8]>,
}

/// The records of one type at one name, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RrSet {
    /// The type code.
    pub rtype: u16,
    /// The records.
    pub records: Box<[Rr]>,
}

/// A name of the zone: its RRsets in file order (none: an empty non-terminal).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Node {
    sets: Box<[RrSet]>,
}

impl Node {
    fn set(&self, rtype: u16) -> Option<&RrSet> {
        self.sets.iter().find(|s| s.rtype == rtype)
    }
}

/// A zone read from a master file (see the module docs).
#[derive(Clone, Debug)]
pub struct Zone {
    origin: Box<[u8]>,
    nodes: HashMap<Box<[u8]>, Node, RandomState>,
    serial: u32,
    /// The TTL of the SOA in negative answers: the smaller of its TTL and its MINIMUM
    /// (RFC 2308 §3).
    negative_ttl: u32,
    has_cuts: bool,
    has_wildcards: bool,
}

/// An RRset being read: its type, records and where it first appears.
struct Pending {
    rtype: u16,
    records: Vec<Rr>,
    at: (usize, u32),
}

/// Something about a zone file worth a warning that does not stop it being served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The file, line and what.
    pub at: LoadError,
}

/// The owner of an answer record: the question's name (written as a pointer to it), or a name
/// of the zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner<'z> {
    /// The question name (also for records a wildcard made for it).
    Question,
    /// A name in lowercase wire format.
    Name(&'z [u8]),
}

/// What goes in the authority section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authority<'z> {
    /// Nothing.
    None,
    /// The apex NS RRset, as CoreDNS puts it under every positive answer.
    ApexNs,
    /// The apex SOA with the negative TTL (NXDOMAIN, NODATA).
    Soa,
    /// A zone cut's NS RRset: its owner and the set.
    Cut(&'z [u8], &'z RrSet),
}

/// What goes in the additional section: the A and AAAA records of the names the NS, MX or SRV
/// records of `set` point to, when they are at or under `under` (the apex for answers, the cut
/// for referrals).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Additional<'z> {
    /// The RRset whose targets are looked up.
    pub set: &'z RrSet,
    /// The name the targets must be at or under.
    pub under: &'z [u8],
}

/// What kind of answer a lookup made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Records of the asked type (perhaps after CNAMEs).
    Positive,
    /// The name exists without records of that type (RFC 2308 §2.2).
    NoData,
    /// The name is an empty non-terminal: NODATA too, but `fallthrough` passes it on, as
    /// CoreDNS does.
    Empty,
    /// The name does not exist (RFC 2308 §2.1).
    NxDomain,
    /// The name is at or below a zone cut: a referral, not authoritative (RFC 1034 §4.3.2).
    Referral,
    /// A zone transfer, which the plugin refuses (CoreDNS without `transfer`).
    Refused,
}

/// A lookup's answer, borrowed from the zone.
#[derive(Clone, Copy, Debug)]
pub struct Answer<'z> {
    /// What kind of answer.
    pub kind: Kind,
    answer: [Option<(Owner<'z>, &'z RrSet)>; MAX_CHAIN + 1],
    /// The authority section.
    pub authority: Authority<'z>,
    /// The additional section.
    pub additional: Option<Additional<'z>>,
    /// Whether the answer ends with a CNAME to a name outside the zone.
    pub leaves_zone: bool,
}

impl<'z> Answer<'z> {
    fn new(kind: Kind) -> Self {
        Answer {
            kind,
            answer: [None; MAX_CHAIN + 1],
            authority: Authority::None,
            additional: None,
            leaves_zone: false,
        }
    }

    /// The answer section's RRsets with their owners, in order.
    pub fn answer(&self) -> impl Iterator<Item = (Owner<'z>, &'z RrSet)> + '_ {
        self.answer.iter().map_while(|a| *a)
    }

    /// The response code.
    pub fn rcode(&self) -> Rcode {
        match self.kind {
            Kind::NxDomain => Rcode::NxDomain,
            Kind::Refused => Rcode::Refused,
            _ => Rcode::NoError,
        }
    }

    /// Whether the AA bit is set: everything but a bare referral (and a refusal).
    pub fn authoritative(&self) -> bool {
        match self.kind {
            Kind::Referral => self.answer[0].is_some(),
            Kind::Refused => false,
            _ => true,
        }
    }

    /// Whether `fallthrough` may pass this answer on: a name the zone has nothing for (CoreDNS
    /// passes on NXDOMAIN and empty non-terminals, never NODATA).
    pub fn is_miss(&self) -> bool {
        self.answer[0].is_none() && matches!(self.kind, Kind::NxDomain | Kind::Empty)
    }

    fn push(&mut self, owner: Owner<'z>, set: &'z RrSet) {
        if let Some(slot) = self.answer.iter_mut().find(|a| a.is_none()) {
            *slot = Some((owner, set));
        }
    }
}

/// Where a name lands in the zone.
enum Found<'z> {
    /// At or below a zone cut: its owner and NS RRset.
    Cut(&'z [u8], &'z RrSet),
    /// The name itself, with data.
    Node(&'z Node),
    /// The wildcard of its closest encloser (RFC 4592 §3.3.1).
    Wildcard(&'z Node),
    /// An empty non-terminal.
    Empty,
    /// Nowhere.
    NxDomain,
}

impl Zone {
    /// The zone `origin` (lowercase wire format) from the records of `source`. Records outside
    /// the zone are left out with a warning; a zone without an SOA at its apex, or with two, is
    /// an error naming the line.
    pub fn build(origin: &[u8], source: &Source) -> Result<(Zone, Vec<Warning>), LoadError> {
        let at = |(file, line): (usize, u32), message: String| LoadError {
            file: source.files.get(file).cloned().unwrap_or_default(),
            line,
            message,
        };
        let mut warnings = Vec::new();
        let mut sets: HashMap<Box<[u8]>, Vec<Pending>, RandomState> = HashMap::default();
        let mut soa: Option<(u32, &[u8], (usize, u32))> = None;
        let zone = clusterdns_zone::name::dotted(origin);
        for record in &source.records {
            let owner = record.owner.as_slice();
            if !is_subdomain(owner, origin) {
                let name = clusterdns_zone::name::dotted(owner);
                warnings.push(Warning {
                    at: at(
                        record.at,
                        format!("{name} is outside the zone {zone}; left out"),
                    ),
                });
                continue;
            }
            if record.rtype == TYPE_SOA {
                if owner != origin {
                    return Err(at(
                        record.at,
                        format!("SOA record not at the apex of {zone}"),
                    ));
                }
                if let Some((_, _, first)) = soa {
                    return Err(at(
                        record.at,
                        format!(
                            "a second SOA record for {zone} (the first is on line {})",
                            first.1
                        ),
                    ));
                }
                soa = Some((record.ttl, &record.rdata, record.at));
            }
            let node = sets.entry(owner.into()).or_default();
            let rr = Rr {
                ttl: record.ttl,
                rdata: record.rdata.as_slice().into(),
            };
            match node.iter_mut().find(|p| p.rtype == record.rtype) {
                // RFC 2181 §5: an RRset holds each record once.
                Some(set) if set.records.iter().any(|r| r.rdata == rr.rdata) => {}
                Some(set) => set.records.push(rr),
                None => node.push(Pending {
                    rtype: record.rtype,
                    records: vec![rr],
                    at: record.at,
                }),
            }
        }
        let Some((soa_ttl, soa_rdata, _)) = soa else {
            return Err(LoadError {
                file: source.files.first().cloned().unwrap_or_default(),
                line: 0,
                message: format!("no SOA record for the zone {zone}"),
            });
        };
        let (serial, minimum) = soa_numbers(soa_rdata).unwrap_or((0, soa_ttl));
        for (owner, node) in &sets {
            let cname = node.iter().find(|p| p.rtype == TYPE_CNAME);
            if let (Some(cname), true) = (cname, node.len() > 1) {
                let name = clusterdns_zone::name::dotted(owner);
                let message = format!(
                    "{name} has a CNAME and other records (RFC 1034 §3.6.2 forbids it); the \
                     CNAME is answered"
                );
                warnings.push(Warning {
                    at: at(cname.at, message),
                });
            }
        }
        let mut nodes: HashMap<Box<[u8]>, Node, RandomState> = HashMap::default();
        let (mut has_cuts, mut has_wildcards) = (false, false);
        for (owner, node) in sets {
            has_cuts |= &*owner != origin && node.iter().any(|p| p.rtype == TYPE_NS);
            has_wildcards |= owner.starts_with(b"\x01*");
            // The names between the owner and the apex exist, empty unless they have data.
            let mut at = usize::from(owner[0]) + 1;
            while owner.len() - at > origin.len() {
                nodes.entry(owner[at..].into()).or_default();
                at += usize::from(owner[at]) + 1;
            }
            let sets = node.into_iter().map(|p| RrSet {
                rtype: p.rtype,
                records: p.records.into(),
            });
            nodes.insert(
                owner,
                Node {
                    sets: sets.collect(),
                },
            );
        }
        // The warnings in file order.
        warnings.sort_by_key(|w| (w.at.file.clone(), w.at.line));
        Ok((
            Zone {
                origin: origin.into(),
                nodes,
                serial,
                negative_ttl: soa_ttl.min(minimum),
                has_cuts,
                has_wildcards,
            },
            warnings,
        ))
    }

    /// The zone's origin, lowercase wire format.
    pub fn origin(&self) -> &[u8] {
        &self.origin
    }

    /// The SOA serial.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// The TTL the SOA carries in negative answers.
    pub fn negative_ttl(&self) -> u32 {
        self.negative_ttl
    }

    /// The apex's RRset of `rtype`.
    pub fn apex(&self, rtype: u16) -> Option<&RrSet> {
        self.nodes.get(&*self.origin)?.set(rtype)
    }

    /// The RRset of `rtype` at exactly `name` (for additional-section addresses).
    pub fn exact(&self, name: &[u8], rtype: u16) -> Option<&RrSet> {
        self.nodes.get(name)?.set(rtype)
    }

    /// Answers `qtype` at `qname` (lowercase wire format, at or under the origin).
    pub fn lookup(&self, qname: &[u8], qtype: u16) -> Answer<'_> {
        if matches!(qtype, TYPE_IXFR | TYPE_AXFR) {
            return Answer::new(Kind::Refused);
        }
        let mut answer = Answer::new(Kind::Positive);
        let mut name = qname;
        let mut owner = Owner::Question;
        for _ in 0..=MAX_CHAIN {
            let node = match self.find(name, qtype) {
                Found::Cut(cut, ns) => {
                    answer.kind = Kind::Referral;
                    answer.authority = Authority::Cut(cut, ns);
                    answer.additional = Some(Additional {
                        set: ns,
                        under: cut,
                    });
                    return answer;
                }
                Found::Node(node) | Found::Wildcard(node) => node,
                Found::Empty => return self.negative(answer, Kind::Empty),
                Found::NxDomain => return self.negative(answer, Kind::NxDomain),
            };
            if qtype != TYPE_CNAME && qtype != TYPE_ANY {
                if let Some(cname) = node.set(TYPE_CNAME) {
                    answer.push(owner, cname);
                    let Some(target) = cname.records.first().map(|r| &*r.rdata) else {
                        return answer;
                    };
                    if !is_subdomain(target, &self.origin) {
                        // Outside the zone: the chain ends here (see the plugin's docs).
                        answer.authority = Authority::ApexNs;
                        answer.leaves_zone = true;
                        return answer;
                    }
                    name = target;
                    owner = Owner::Name(target);
                    continue;
                }
            }
            // RFC 8482 §4.2: ANY gets one RRset, the one of the lowest type, as Knot picks it.
            let set = match qtype {
                TYPE_ANY => node.sets.iter().min_by_key(|s| s.rtype),
                _ => node.set(qtype),
            };
            let Some(set) = set else {
                return self.negative(answer, Kind::NoData);
            };
            answer.push(owner, set);
            let apex_ns = name == &*self.origin && set.rtype == TYPE_NS;
            answer.authority = if apex_ns {
                Authority::None
            } else {
                Authority::ApexNs
            };
            if matches!(set.rtype, TYPE_NS | TYPE_MX | TYPE_SRV) {
                answer.additional = Some(Additional {
                    set,
                    under: &self.origin,
                });
            }
            return answer;
        }
        // Too long a chain: what was followed, as CoreDNS stops.
        answer.authority = Authority::ApexNs;
        answer
    }

    /// A negative answer after what `answer` holds (a CNAME chain, perhaps).
    fn negative<'z>(&'z self, mut answer: Answer<'z>, kind: Kind) -> Answer<'z> {
        answer.kind = kind;
        answer.authority = Authority::Soa;
        answer
    }

    /// Where `name` lands (see [`Found`]); a cut at `name` itself is not one for DS.
    fn find(&self, name: &[u8], qtype: u16) -> Found<'_> {
        if self.has_cuts {
            if let Some((cut, ns)) = self.cut_above(name, qtype) {
                return Found::Cut(cut, ns);
            }
        }
        if let Some(node) = self.nodes.get(name) {
            return match node.sets.is_empty() {
                true => Found::Empty,
                false => Found::Node(node),
            };
        }
        if self.has_wildcards {
            // The closest encloser: the longest existing ancestor (RFC 4592 §3.3.1).
            let mut at = usize::from(name[0]) + 1;
            while at < name.len() && name.len() - at >= self.origin.len() {
                let ancestor = &name[at..];
                if self.nodes.contains_key(ancestor) {
                    let mut wild = [0u8; clusterdns_zone::name::MAX_NAME_LEN + 2];
                    wild[..2].copy_from_slice(b"\x01*");
                    wild[2..2 + ancestor.len()].copy_from_slice(ancestor);
                    return match self.nodes.get(&wild[..2 + ancestor.len()]) {
                        Some(node) if !node.sets.is_empty() => Found::Wildcard(node),
                        _ => Found::NxDomain,
                    };
                }
                at += usize::from(name[at]) + 1;
            }
        }
        Found::NxDomain
    }

    /// The highest zone cut at or above `name` (below the apex), if any.
    fn cut_above(&self, name: &[u8], qtype: u16) -> Option<(&[u8], &RrSet)> {
        // The label starts of `name`, then tried from the one just below the apex down.
        let mut starts = [0u8; 128];
        let (mut count, mut at) = (0usize, 0usize);
        while name.len() - at > self.origin.len() {
            starts[count] = at as u8;
            count += 1;
            at += usize::from(name[at]) + 1;
        }
        for &start in starts[..count].iter().rev() {
            let start = usize::from(start);
            let Some((key, node)) = self.nodes.get_key_value(&name[start..]) else {
                continue;
            };
            let Some(ns) = node.set(TYPE_NS) else {
                continue;
            };
            // The parent answers DS at the cut itself.
            if start == 0 && qtype == TYPE_DS {
                return None;
            }
            return Some((key, ns));
        }
        None
    }
}

/// The serial and MINIMUM of an SOA's RDATA (after its two names).
fn soa_numbers(rdata: &[u8]) -> Option<(u32, u32)> {
    let mut at = 0;
    for _ in 0..2 {
        loop {
            let len = usize::from(*rdata.get(at)?);
            at += 1 + len;
            if len == 0 {
                break;
            }
        }
    }
    let number = |at: usize| Some(u32::from_be_bytes(rdata.get(at..at + 4)?.try_into().ok()?));
    Some((number(at)?, number(at + 16)?))
}
