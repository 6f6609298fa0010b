//! DNS wire format shared by every crate that reads or writes packets (the answer path, the
//! forwarder, the benches): record types and classes, header flags, and the readers of big-endian
//! fields (RFC 1035 §4.1, RFC 6891).

/// Length of the DNS header.
pub const HEADER_LEN: usize = 12;
/// Class IN.
pub const CLASS_IN: u16 = 1;
/// Type A.
pub const TYPE_A: u16 = 1;
/// Type NS.
pub const TYPE_NS: u16 = 2;
/// Type HINFO (the type of CoreDNS's `loop` probe).
pub const TYPE_HINFO: u16 = 13;
/// Type MX, whose data holds a name.
pub const TYPE_MX: u16 = 15;
/// Type DNAME (RFC 6672), whose data holds a name.
pub const TYPE_DNAME: u16 = 39;
/// Type CNAME.
pub const TYPE_CNAME: u16 = 5;
/// Type SOA.
pub const TYPE_SOA: u16 = 6;
/// Type PTR.
pub const TYPE_PTR: u16 = 12;
/// Type TXT.
pub const TYPE_TXT: u16 = 16;
/// Type AAAA.
pub const TYPE_AAAA: u16 = 28;
/// Type SRV.
pub const TYPE_SRV: u16 = 33;
/// Type OPT (EDNS0 pseudo-record).
pub const TYPE_OPT: u16 = 41;
/// Type IXFR.
pub const TYPE_IXFR: u16 = 251;
/// Type AXFR.
pub const TYPE_AXFR: u16 = 252;
/// Type ANY (`*`).
pub const TYPE_ANY: u16 = 255;
/// The UDP payload size a DNS message without EDNS may have (RFC 1035 §4.2.1).
pub const CLASSIC_UDP_PAYLOAD: usize = 512;

/// Header flag QR: a response.
pub const FLAG_QR: u16 = 0x8000;
/// Header flag AA: an authoritative answer.
pub const FLAG_AA: u16 = 0x0400;
/// Header flag TC: truncated.
pub const FLAG_TC: u16 = 0x0200;
/// Header flag RD: recursion desired.
pub const FLAG_RD: u16 = 0x0100;
/// Header flag RA: recursion available.
pub const FLAG_RA: u16 = 0x0080;
/// Header flag AD: authentic data (RFC 4035 §3.2.3).
pub const FLAG_AD: u16 = 0x0020;
/// Header flag CD: checking disabled.
pub const FLAG_CD: u16 = 0x0010;
/// The opcode bits of the header flags word.
pub const OPCODE_MASK: u16 = 0x7800;

/// The big-endian `u16` at `at`, when the packet holds it.
pub fn read_u16(packet: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]))
}

/// The big-endian `u32` at `at`, when the packet holds it.
pub fn read_u32(packet: &[u8], at: usize) -> Option<u32> {
    let bytes = packet.get(at..at + 4)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Response codes, with the label metrics use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Rcode {
    /// No error.
    NoError = 0,
    /// Format error.
    FormErr = 1,
    /// Server failure.
    ServFail = 2,
    /// The name does not exist.
    NxDomain = 3,
    /// Not implemented.
    NotImp = 4,
    /// Refused.
    Refused = 5,
    /// Bad EDNS version (extended rcode 16, RFC 6891 §6.1.3).
    BadVers = 16,
}

impl Rcode {
    /// The rcode's mnemonic, as CoreDNS labels it in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Rcode::NoError => "NOERROR",
            Rcode::FormErr => "FORMERR",
            Rcode::ServFail => "SERVFAIL",
            Rcode::NxDomain => "NXDOMAIN",
            Rcode::NotImp => "NOTIMP",
            Rcode::Refused => "REFUSED",
            Rcode::BadVers => "BADVERS",
        }
    }
}

/// The offset after a possibly compressed name at `at` in `packet` (a pointer ends it);
/// `None` when the name runs past the end or uses a reserved label type.
pub fn skip_name(packet: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *packet.get(at)?;
        match len & 0xC0 {
            0x00 if len == 0 => return Some(at + 1),
            0x00 => at += 1 + usize::from(len),
            0xC0 => return (at + 2 <= packet.len()).then_some(at + 2),
            _ => return None,
        }
    }
}
