//! Pre-encoding of the fixed names' answers at build time (the apex NS, `ns.dns`, `dns-version`,
//! ExternalName CNAMEs, verified pod names). An [`EntryWriter`] lays out the records of one
//! response body (answer and additional sections after the question) exactly as they will be
//! sent, with name compression resolved to absolute offsets: the question always starts at
//! offset 12 and has the owner name's length, so a body is valid for every spelling (case) of
//! that name. Records owned by the question name point at it (`0xC00C`), echoing the client's
//! case. Other names are lowercase except their cluster-zone suffix, which points at the zone
//! part of the question (so it echoes the client's case, as CoreDNS does).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::wire::{CLASS_IN, HEADER_LEN};

/// Where a record goes in the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// The answer section.
    Answer = 0,
    /// The additional section.
    Additional = 2,
}

/// The owner of a record: the question name, or another (lowercase, wire-format) name.
#[derive(Clone, Copy, Debug)]
pub enum Owner<'a> {
    /// The question's name, written as a pointer to offset 12.
    Question,
    /// Any other name.
    Name(&'a [u8]),
}

/// The data of a record to encode.
#[derive(Clone, Copy, Debug)]
pub enum RData<'a> {
    /// An A record.
    A(Ipv4Addr),
    /// An AAAA record.
    Aaaa(Ipv6Addr),
    /// A CNAME record's target.
    Cname(&'a [u8]),
    /// An NS record's target.
    Ns(&'a [u8]),
    /// A TXT record with one character string.
    Txt(&'a str),
}

impl RData<'_> {
    /// The record type code.
    pub fn rtype(&self) -> u16 {
        match self {
            RData::A(_) => crate::wire::TYPE_A,
            RData::Aaaa(_) => crate::wire::TYPE_AAAA,
            RData::Cname(_) => crate::wire::TYPE_CNAME,
            RData::Ns(_) => crate::wire::TYPE_NS,
            RData::Txt(_) => crate::wire::TYPE_TXT,
        }
    }
}

/// Size kept free at the end of a TCP message for our OPT record.
const OPT_RESERVE: usize = 11;

/// Builds the pre-encoded body of one answer (see the module docs).
pub struct EntryWriter {
    base: usize,
    body: Vec<u8>,
    ends: Vec<u16>,
    counts: [u16; 3],
    last_section: Section,
    /// Compression targets: a name suffix in wire format and its absolute offset.
    suffixes: Vec<(Vec<u8>, u16)>,
}

impl EntryWriter {
    /// A writer for the body that follows the question `qname` (lowercase wire format); `zone`
    /// is the cluster zone, whose spelling in the question later names reuse when `qname` is in it.
    pub fn new(qname: &[u8], zone: &[u8]) -> Self {
        let mut suffixes = Vec::new();
        let in_zone = crate::name::is_subdomain(qname, zone);
        if in_zone {
            suffixes.push((
                zone.to_vec(),
                (HEADER_LEN + qname.len() - zone.len()) as u16,
            ));
        }
        EntryWriter {
            base: HEADER_LEN + qname.len() + 4,
            body: Vec::new(),
            ends: Vec::new(),
            counts: [0; 3],
            last_section: Section::Answer,
            suffixes,
        }
    }

    /// A writer whose names are all written lowercase, whatever the client's spelling (for
    /// CNAME chains, which CoreDNS answers as the ExternalName spells them).
    pub fn lowercase(qname: &[u8]) -> Self {
        Self::new(qname, &[])
    }

    /// Appends a record; records must be added in section order. A record that would not fit in
    /// a 64 KiB message is left out (the answer is then as much as TCP can carry).
    pub fn record(&mut self, section: Section, owner: Owner<'_>, ttl: u32, rdata: RData<'_>) {
        debug_assert!(section as u8 >= self.last_section as u8);
        self.last_section = section;
        let start = self.body.len();
        match owner {
            Owner::Question => self.body.extend_from_slice(&[0xC0, HEADER_LEN as u8]),
            Owner::Name(name) => self.write_name(name),
        }
        self.body.extend_from_slice(&rdata.rtype().to_be_bytes());
        self.body.extend_from_slice(&CLASS_IN.to_be_bytes());
        self.body.extend_from_slice(&ttl.to_be_bytes());
        let rdlen_at = self.body.len();
        self.body.extend_from_slice(&[0, 0]);
        match rdata {
            RData::A(ip) => self.body.extend_from_slice(&ip.octets()),
            RData::Aaaa(ip) => self.body.extend_from_slice(&ip.octets()),
            RData::Cname(name) | RData::Ns(name) => self.write_name(name),
            RData::Txt(text) => {
                let bytes = &text.as_bytes()[..text.len().min(255)];
                self.body.push(bytes.len() as u8);
                self.body.extend_from_slice(bytes);
            }
        }
        let rdlen = (self.body.len() - rdlen_at - 2) as u16;
        self.body[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
        if self.base + self.body.len() + OPT_RESERVE > usize::from(u16::MAX) {
            self.body.truncate(start);
            self.suffixes
                .retain(|(_, offset)| usize::from(*offset) < self.base + start);
            return;
        }
        self.ends.push(self.body.len() as u16);
        self.counts[section as usize] += 1;
    }

    /// Writes a name, compressed against the names already written in this body.
    fn write_name(&mut self, name: &[u8]) {
        let mut pos = 0usize;
        while pos < name.len() && name[pos] != 0 {
            let suffix = &name[pos..];
            if let Some((_, offset)) = self.suffixes.iter().find(|(s, _)| s == suffix) {
                self.body
                    .extend_from_slice(&(0xC000 | offset).to_be_bytes());
                return;
            }
            let absolute = self.base + self.body.len();
            if absolute < 0x4000 {
                self.suffixes.push((suffix.to_vec(), absolute as u16));
            }
            let len = usize::from(name[pos]);
            self.body.extend_from_slice(&name[pos..pos + 1 + len]);
            pos += 1 + len;
        }
        self.body.push(0);
    }

    /// Whether no record has been written.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The finished entry in the layout [`crate::node::Entry`] reads.
    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.ends.len() * 2 + self.body.len());
        for count in self.counts {
            out.extend_from_slice(&count.to_le_bytes());
        }
        out.extend_from_slice(&(self.ends.len() as u16).to_le_bytes());
        for offset in &self.ends {
            out.extend_from_slice(&offset.to_le_bytes());
        }
        out.extend_from_slice(&self.body);
        out
    }
}
