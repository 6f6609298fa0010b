//! DNS wire-format constants shared by the encoder and the answer path (RFC 1035, 6891).

/// Length of the DNS header.
pub const HEADER_LEN: usize = 12;
/// Class IN.
pub const CLASS_IN: u16 = 1;
/// Type A.
pub const TYPE_A: u16 = 1;
/// Type NS.
pub const TYPE_NS: u16 = 2;
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
