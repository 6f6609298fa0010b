//! CoreDNS's `dns64`: AAAA records synthesized from A records (RFC 6147), for IPv6-only
//! clients behind a NAT64. This module owns the decisions and the synthesis, on bytes, without
//! I/O; the chain (`chain/dns64.rs`) runs the lookups they need.
//!
//! ```text
//!  query ─ intercepts? ── no ──▶ the rest of the chain, as without dns64
//!            │ AAAA, class IN, from an IPv6 client (any client with allow_ipv4)
//!            ▼
//!  the AAAA response from the rest of the chain ─ needs_synthesis? ── no ──▶ sent as it is
//!            │ no AAAA in its answer (or translate_all), not NXDOMAIN, not truncated
//!            ▼
//!  the A response for the same name ─ synthesize ─▶ its records, each A an AAAA under the
//!                                                   prefix (RFC 6052 §2.2)
//! ```
//!
//! Where CoreDNS's behaviour and RFC 6147 differ, this follows CoreDNS (the reference for what
//! a Corefile means) except where noted: the synthesized response is NOERROR with the
//! A response's authority and additional sections and TC bit, neither AA nor RA set (a reply
//! to the client's query made afresh); records other than A in the A response's answer (its
//! CNAMEs) are kept (RFC 6147 §5.3.3); each AAAA's TTL is the smaller of the A record's and
//! the TTL of the SOA in the AAAA response's authority section, 600 s when it has none (§5.1.7;
//! CoreDNS takes the SOA record's TTL, which RFC 2308 §3 makes the negative-caching time). An
//! NXDOMAIN is passed on whether or not it carries an SOA (§5.1.2; CoreDNS passes it only with
//! one), and so is a truncated response: in clusterdns it was already cut to the client's size
//! and may have dropped AAAA records, which the client's retry over TCP will see.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use clusterdns_zone::wire::{
    read_u16, read_u32, skip_name, CLASS_IN, FLAG_TC, HEADER_LEN, TYPE_A, TYPE_AAAA, TYPE_SOA,
};

use super::message::{sections, OwnedRecord};

/// The TTL used for the SOA when the AAAA response has none (RFC 6147 §5.1.7).
const NO_SOA_TTL: u32 = 600;

/// An IPv6 prefix addresses are synthesized under (RFC 6052 §2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    /// The prefix's address, bits past `len` cleared.
    addr: Ipv6Addr,
    /// Its length: 32, 40, 48, 56, 64 or 96.
    len: u8,
}

impl Prefix {
    /// The well-known prefix `64:ff9b::/96` (RFC 6052 §2.1), the default.
    pub const WELL_KNOWN: Prefix = Prefix {
        addr: Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0),
        len: 96,
    };

    /// Reads `ADDR/LEN`. The length must be one RFC 6052 §2.2 defines an address format for
    /// (32, 40, 48, 56, 64, 96); bits past it are cleared, as Go's `ParseCIDR` does.
    pub fn parse(text: &str) -> Result<Prefix, String> {
        let (addr, len) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not an IPv6 prefix like 64:ff9b::/96"))?;
        let addr: Ipv6Addr = addr
            .parse()
            .map_err(|_| format!("{text:?}: {addr:?} is not an IPv6 address"))?;
        let len: u8 = (len.parse().ok())
            .filter(|l| *l <= 128)
            .ok_or_else(|| format!("{text:?}: {len:?} is not a prefix length"))?;
        if ![32, 40, 48, 56, 64, 96].contains(&len) {
            return Err(format!(
                "{text:?}: the prefix length must be 32, 40, 48, 56, 64 or 96 (RFC 6052 §2.2)"
            ));
        }
        let mask = u128::MAX << (128 - u32::from(len));
        Ok(Prefix {
            addr: Ipv6Addr::from(u128::from(addr) & mask),
            len,
        })
    }

    /// `v4` embedded under this prefix (RFC 6052 §2.2): the prefix's bytes, then the four
    /// bytes of `v4` around byte 8 (bits 64-71, the "u" octet, stay zero), then zeros.
    pub fn embed(&self, v4: Ipv4Addr) -> Ipv6Addr {
        let mut out = [0u8; 16];
        let prefix_len = usize::from(self.len / 8);
        out[..prefix_len].copy_from_slice(&self.addr.octets()[..prefix_len]);
        let slots = (prefix_len..16).filter(|&i| i != 8);
        for (slot, byte) in slots.zip(v4.octets()) {
            out[slot] = byte;
        }
        Ipv6Addr::from(out)
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// A server block's `dns64`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dns64 {
    /// Where addresses are synthesized.
    pub prefix: Prefix,
    /// Synthesize even when the AAAA response has AAAA records (CoreDNS `translate_all`).
    pub translate_all: bool,
    /// Synthesize for IPv4 clients too (CoreDNS `allow_ipv4`); else IPv6 clients only.
    pub allow_ipv4: bool,
}

impl Default for Dns64 {
    fn default() -> Self {
        Dns64 {
            prefix: Prefix::WELL_KNOWN,
            translate_all: false,
            allow_ipv4: false,
        }
    }
}

/// The records of a synthesized response, to write after the client's question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Synthesized {
    /// The records, uncompressed wire format.
    pub records: Vec<u8>,
    /// How many are answer, authority and additional records.
    pub counts: [u16; 3],
    /// Whether the A response was truncated (its TC bit is kept).
    pub truncated: bool,
}

impl Dns64 {
    /// Whether a query of `qtype` and `qclass` from `client` may get synthesized records: AAAA
    /// of class IN (RFC 6147 §5.1), from an IPv6 client unless `allow_ipv4`. An IPv4 address
    /// mapped into IPv6 is an IPv4 client, as CoreDNS's `Family` reads it.
    pub fn intercepts(&self, qtype: u16, qclass: u16, client: IpAddr) -> bool {
        qtype == TYPE_AAAA
            && qclass == CLASS_IN
            && (self.allow_ipv4 || client.to_canonical().is_ipv6())
    }

    /// Whether the response to an intercepted AAAA query is replaced by a synthesized one: not
    /// NXDOMAIN (RFC 6147 §5.1.2) and not truncated (see the module doc), and with no AAAA
    /// record in its answer section unless `translate_all` (§5.1.1). Any other rcode counts as
    /// an empty answer (§5.1.3), as does a response that cannot be read.
    pub fn needs_synthesis(&self, response: &[u8]) -> bool {
        let Some(flags) = read_u16(response, 2) else {
            return false;
        };
        if flags & 0x000F == 3 || flags & FLAG_TC != 0 {
            return false;
        }
        self.translate_all || !has_aaaa_answer(response).unwrap_or(false)
    }

    /// The records replacing the AAAA response `aaaa` (answering the same question), made from
    /// `a`, the response to the A query for the same name; `None` when either is malformed.
    pub fn synthesize(&self, aaaa: &[u8], a: &[u8]) -> Option<Synthesized> {
        let soa_ttl = sections(aaaa)?[1]
            .iter()
            .rev()
            .find(|r| r.rtype == TYPE_SOA)
            .map_or(NO_SOA_TTL, |soa| soa.ttl);
        let [answer, authority, additional] = sections(a)?;
        let mut records = Vec::new();
        for record in &answer {
            match <[u8; 4]>::try_from(record.rdata.as_slice()) {
                Ok(v4) if record.rtype == TYPE_A => OwnedRecord {
                    owner: record.owner.clone(),
                    rtype: TYPE_AAAA,
                    class: record.class,
                    ttl: record.ttl.min(soa_ttl),
                    rdata: self.prefix.embed(Ipv4Addr::from(v4)).octets().to_vec(),
                }
                .write(&mut records)?,
                // RFC 6147 §5.3.3: every other record is passed as it is.
                _ => record.write(&mut records)?,
            }
        }
        for record in authority.iter().chain(&additional) {
            record.write(&mut records)?;
        }
        let count = |list: &Vec<OwnedRecord>| u16::try_from(list.len()).ok();
        Some(Synthesized {
            records,
            counts: [count(&answer)?, count(&authority)?, count(&additional)?],
            truncated: read_u16(a, 2)? & FLAG_TC != 0,
        })
    }
}

/// Whether the answer section of `response` holds an AAAA record; `None` when malformed.
fn has_aaaa_answer(response: &[u8]) -> Option<bool> {
    let mut at = HEADER_LEN;
    for _ in 0..read_u16(response, 4)? {
        at = skip_name(response, at)? + 4;
    }
    for _ in 0..read_u16(response, 6)? {
        at = skip_name(response, at)?;
        if read_u16(response, at)? == TYPE_AAAA {
            return Some(true);
        }
        // Type, class, TTL, then RDLENGTH and the RDATA.
        read_u32(response, at + 4)?;
        at += 10 + usize::from(read_u16(response, at + 8)?);
    }
    Some(false)
}

#[cfg(test)]
mod tests;
