//! Resource records as the plugins produce them: a [`Record`] with its RDATA already in wire
//! format, the zone-file parser for the records CoreDNS's `template` answers are written as
//! ([`parse_record`], after miekg/dns's `NewRR`), and the mnemonics of classes and types both
//! plugins read and print.

use std::net::{Ipv4Addr, Ipv6Addr};

use clusterdns_zone::wire::{
    TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_MX, TYPE_NS, TYPE_PTR, TYPE_SOA, TYPE_SRV, TYPE_TXT,
};
use clusterdns_zone::WireName;

/// The TTL of a record whose text gives none (miekg/dns's `defaultTtl`).
pub const DEFAULT_TTL: u32 = 3600;

/// The class mnemonics (miekg/dns's `ClassToString`).
const CLASSES: &[(&str, u16)] = &[
    ("IN", 1),
    ("CS", 2),
    ("CH", 3),
    ("HS", 4),
    ("NONE", 254),
    ("ANY", 255),
];

/// The type mnemonics (IANA's registry, as miekg/dns spells them).
const TYPES: &[(&str, u16)] = &[
    ("A", 1),
    ("NS", 2),
    ("MD", 3),
    ("MF", 4),
    ("CNAME", 5),
    ("SOA", 6),
    ("MB", 7),
    ("MG", 8),
    ("MR", 9),
    ("NULL", 10),
    ("PTR", 12),
    ("HINFO", 13),
    ("MINFO", 14),
    ("MX", 15),
    ("TXT", 16),
    ("RP", 17),
    ("AFSDB", 18),
    ("X25", 19),
    ("ISDN", 20),
    ("RT", 21),
    ("NSAPPTR", 23),
    ("SIG", 24),
    ("KEY", 25),
    ("PX", 26),
    ("GPOS", 27),
    ("AAAA", 28),
    ("LOC", 29),
    ("NXT", 30),
    ("EID", 31),
    ("NIMLOC", 32),
    ("SRV", 33),
    ("ATMA", 34),
    ("NAPTR", 35),
    ("KX", 36),
    ("CERT", 37),
    ("DNAME", 39),
    ("OPT", 41),
    ("APL", 42),
    ("DS", 43),
    ("SSHFP", 44),
    ("IPSECKEY", 45),
    ("RRSIG", 46),
    ("NSEC", 47),
    ("DNSKEY", 48),
    ("DHCID", 49),
    ("NSEC3", 50),
    ("NSEC3PARAM", 51),
    ("TLSA", 52),
    ("SMIMEA", 53),
    ("HIP", 55),
    ("NINFO", 56),
    ("RKEY", 57),
    ("TALINK", 58),
    ("CDS", 59),
    ("CDNSKEY", 60),
    ("OPENPGPKEY", 61),
    ("CSYNC", 62),
    ("ZONEMD", 63),
    ("SVCB", 64),
    ("HTTPS", 65),
    ("SPF", 99),
    ("UINFO", 100),
    ("UID", 101),
    ("GID", 102),
    ("UNSPEC", 103),
    ("NID", 104),
    ("L32", 105),
    ("L64", 106),
    ("LP", 107),
    ("EUI48", 108),
    ("EUI64", 109),
    ("NXNAME", 128),
    ("TKEY", 249),
    ("TSIG", 250),
    ("IXFR", 251),
    ("AXFR", 252),
    ("MAILB", 253),
    ("MAILA", 254),
    ("ANY", 255),
    ("URI", 256),
    ("CAA", 257),
    ("AVC", 258),
    ("AMTRELAY", 260),
    ("RESINFO", 261),
    ("TA", 32768),
    ("DLV", 32769),
];

/// The class a mnemonic names (`IN`, `CH`, ..., `ANY`; exact case, as CoreDNS reads them).
pub fn class_code(mnemonic: &str) -> Option<u16> {
    CLASSES
        .iter()
        .find(|(m, _)| *m == mnemonic)
        .map(|(_, c)| *c)
}

/// The mnemonic of a class, when it has one.
pub fn class_name(code: u16) -> Option<&'static str> {
    CLASSES.iter().find(|(_, c)| *c == code).map(|(m, _)| *m)
}

/// The type a mnemonic names (`A`, `MX`, ..., `ANY`; exact case, as CoreDNS reads them).
pub fn type_code(mnemonic: &str) -> Option<u16> {
    TYPES.iter().find(|(m, _)| *m == mnemonic).map(|(_, c)| *c)
}

/// The mnemonic of a type, when it has one.
pub fn type_name(code: u16) -> Option<&'static str> {
    TYPES.iter().find(|(_, c)| *c == code).map(|(m, _)| *m)
}

/// One resource record: owner, type, class, TTL and RDATA in wire format (names uncompressed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The owner name (lowercase wire format).
    pub name: WireName,
    /// The record type.
    pub rtype: u16,
    /// The record class.
    pub class: u16,
    /// The TTL in seconds.
    pub ttl: u32,
    /// The RDATA, at most 65535 bytes.
    pub rdata: Vec<u8>,
}

impl Record {
    /// Appends the record in wire format, uncompressed.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.name.as_bytes());
        out.extend_from_slice(&self.rtype.to_be_bytes());
        out.extend_from_slice(&self.class.to_be_bytes());
        out.extend_from_slice(&self.ttl.to_be_bytes());
        let rdata = self
            .rdata
            .get(..usize::from(u16::MAX))
            .unwrap_or(&self.rdata);
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(rdata);
    }
}

/// Appends `records` uncompressed (the body [`respond_records`] takes); returns how many.
///
/// [`respond_records`]: clusterdns_zone::answer::respond_records
pub fn encode_all(records: &[Record], out: &mut Vec<u8>) -> u16 {
    for record in records {
        record.encode(out);
    }
    u16::try_from(records.len()).unwrap_or(u16::MAX)
}

/// A token of record text: its bytes as written (escapes kept) and whether it was quoted.
#[derive(Clone, Copy, Debug)]
struct Token<'a> {
    text: &'a str,
    quoted: bool,
}

/// Splits record text into tokens the way a zone file is read: blanks and newlines separate,
/// `;` starts a comment, parentheses only group, `"..."` is one token, `\` escapes a character.
fn tokenize<'a>(text: &'a str) -> Result<Vec<Token<'a>>, String> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut depth = 0usize;
    let mut at = 0usize;
    let mut start: Option<usize> = None;
    let end_token = |start: &mut Option<usize>, at: usize, tokens: &mut Vec<Token<'a>>| {
        if let Some(from) = start.take() {
            tokens.push(Token {
                text: text.get(from..at).unwrap_or_default(),
                quoted: false,
            });
        }
    };
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b' ' | b'\t' | b'\r' | b'\n' => end_token(&mut start, at, &mut tokens),
            b';' => {
                end_token(&mut start, at, &mut tokens);
                while bytes.get(at).is_some_and(|&b| b != b'\n') {
                    at += 1;
                }
                continue;
            }
            b'(' => {
                end_token(&mut start, at, &mut tokens);
                depth += 1;
            }
            b')' => {
                end_token(&mut start, at, &mut tokens);
                depth = depth
                    .checked_sub(1)
                    .ok_or("unbalanced parentheses in record")?;
            }
            b'"' => {
                end_token(&mut start, at, &mut tokens);
                let from = at + 1;
                at = from;
                loop {
                    match bytes.get(at) {
                        None => return Err("unterminated quoted string in record".into()),
                        Some(b'"') => break,
                        Some(b'\\') => at += 2,
                        Some(_) => at += 1,
                    }
                }
                tokens.push(Token {
                    text: text.get(from..at).unwrap_or_default(),
                    quoted: true,
                });
            }
            b'\\' => {
                start.get_or_insert(at);
                // The escaped character belongs to the token whatever it is.
                at += 1;
                if at >= bytes.len() {
                    return Err("record ends with a lone backslash".into());
                }
            }
            _ => {
                start.get_or_insert(at);
            }
        }
        at += 1;
    }
    end_token(&mut start, bytes.len(), &mut tokens);
    if depth != 0 {
        return Err("unbalanced parentheses in record".into());
    }
    Ok(tokens)
}

/// The bytes a token stands for: `\DDD` is a decimal byte, `\X` is `X`.
fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0usize;
    while let Some(&byte) = bytes.get(at) {
        if byte != b'\\' {
            out.push(byte);
            at += 1;
            continue;
        }
        let digits = bytes.get(at + 1..at + 4);
        match digits {
            Some(d) if d.iter().all(u8::is_ascii_digit) => {
                let value = d
                    .iter()
                    .fold(0u16, |v, &digit| v * 10 + u16::from(digit - b'0'));
                out.push(u8::try_from(value).map_err(|_| format!("bad escape in {text:?}"))?);
                at += 4;
            }
            _ => {
                out.push(*bytes.get(at + 1).ok_or("lone backslash")?);
                at += 2;
            }
        }
    }
    Ok(out)
}

/// A domain name token: `@` is the origin (the root, as in `NewRR`), a relative name is
/// relative to the root. Escapes in names are not supported.
fn parse_name(token: Token<'_>) -> Result<WireName, String> {
    if token.quoted || token.text.contains('\\') {
        return Err(format!("unsupported name {:?}", token.text));
    }
    if token.text == "@" {
        return Ok(WireName::root());
    }
    WireName::from_dotted(token.text).ok_or_else(|| format!("bad name {:?}", token.text))
}

/// A TTL: seconds, or a duration with units (`1h30m`), as miekg/dns's `stringToTTL` reads it.
pub fn parse_ttl(text: &str) -> Option<u32> {
    let mut total = 0u64;
    let mut value = 0u64;
    for c in text.chars() {
        let unit = match c {
            's' | 'S' => 1,
            'm' | 'M' => 60,
            'h' | 'H' => 3600,
            'd' | 'D' => 86_400,
            'w' | 'W' => 604_800,
            '0'..='9' => {
                value = value
                    .checked_mul(10)?
                    .checked_add(u64::from(c as u8 - b'0'))?;
                continue;
            }
            _ => return None,
        };
        total = total.checked_add(value.checked_mul(unit)?)?;
        value = 0;
    }
    u32::try_from(total.checked_add(value)?).ok()
}

/// A decimal number that fits `T`, digits only.
fn parse_number<T: TryFrom<u64>>(token: Token<'_>, what: &str) -> Result<T, String> {
    let bad = || format!("bad {what} {:?}", token.text);
    if token.quoted || token.text.is_empty() || !token.text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let value: u64 = token.text.parse().map_err(|_| bad())?;
    T::try_from(value).map_err(|_| bad())
}

/// The RDATA tokens of one record, consumed in order.
struct Fields<'a, 'b> {
    tokens: std::slice::Iter<'b, Token<'a>>,
    rtype: &'static str,
}

impl<'a> Fields<'a, '_> {
    fn next(&mut self, what: &str) -> Result<Token<'a>, String> {
        self.tokens
            .next()
            .copied()
            .ok_or_else(|| format!("{} record: missing {what}", self.rtype))
    }

    fn name(&mut self, what: &str, out: &mut Vec<u8>) -> Result<(), String> {
        out.extend_from_slice(parse_name(self.next(what)?)?.as_bytes());
        Ok(())
    }

    fn u16(&mut self, what: &str, out: &mut Vec<u8>) -> Result<(), String> {
        let value: u16 = parse_number(self.next(what)?, what)?;
        out.extend_from_slice(&value.to_be_bytes());
        Ok(())
    }

    fn end(mut self) -> Result<(), String> {
        match self.tokens.next() {
            None => Ok(()),
            Some(extra) => Err(format!(
                "{} record: unexpected {:?} after the data",
                self.rtype, extra.text
            )),
        }
    }
}

/// Parses one record written as in a zone file: `name [ttl] [class] type rdata...` (TTL and
/// class in either order; defaults 3600 and IN), as CoreDNS's `template` reads its output with
/// miekg/dns's `NewRR`. Names are fully qualified whether or not they end with a dot (`NewRR`'s
/// origin is the root), and come out lowercase. Types: A, AAAA, CNAME, NS, PTR, MX, SRV, SOA
/// and TXT; any other is an error naming it.
pub fn parse_record(text: &str) -> Result<Record, String> {
    if text.starts_with([' ', '\t']) {
        return Err("a record must start with its owner name".into());
    }
    let tokens = tokenize(text)?;
    let mut tokens = tokens.iter();
    let name = parse_name(*tokens.next().ok_or("empty record")?)?;
    let (mut ttl, mut class) = (None, None);
    let rtype = loop {
        let token = tokens.next().ok_or("record has no type")?;
        let text = token.text;
        if token.quoted {
            return Err(format!("expected a type, TTL or class, found {text:?}"));
        }
        let upper = text.to_ascii_uppercase();
        if let Some(code) = class_code(&upper).filter(|_| class.is_none()) {
            class = Some(code);
        } else if let Some(code) = type_code(&upper) {
            break (code, type_name(code).unwrap_or_default());
        } else if let Some(seconds) = parse_ttl(text).filter(|_| ttl.is_none()) {
            ttl = Some(seconds);
        } else {
            return Err(format!("expected a type, TTL or class, found {text:?}"));
        }
    };
    let (code, mnemonic) = rtype;
    let mut fields = Fields {
        tokens,
        rtype: mnemonic,
    };
    let mut rdata = Vec::new();
    match code {
        TYPE_A => {
            let token = fields.next("address")?;
            let ip: Ipv4Addr = (token.text.parse().ok())
                .filter(|_| !token.quoted)
                .ok_or_else(|| format!("bad A address {:?}", token.text))?;
            rdata.extend_from_slice(&ip.octets());
        }
        TYPE_AAAA => {
            let token = fields.next("address")?;
            let ip: Ipv6Addr = (token.text.parse().ok())
                .filter(|_| !token.quoted)
                .ok_or_else(|| format!("bad AAAA address {:?}", token.text))?;
            rdata.extend_from_slice(&ip.octets());
        }
        TYPE_CNAME | TYPE_NS | TYPE_PTR => fields.name("target", &mut rdata)?,
        TYPE_MX => {
            fields.u16("preference", &mut rdata)?;
            fields.name("exchange", &mut rdata)?;
        }
        TYPE_SRV => {
            fields.u16("priority", &mut rdata)?;
            fields.u16("weight", &mut rdata)?;
            fields.u16("port", &mut rdata)?;
            fields.name("target", &mut rdata)?;
        }
        TYPE_SOA => {
            fields.name("primary name server", &mut rdata)?;
            fields.name("mailbox", &mut rdata)?;
            let serial: u32 = parse_number(fields.next("serial")?, "SOA serial")?;
            rdata.extend_from_slice(&serial.to_be_bytes());
            for what in ["refresh", "retry", "expire", "minimum"] {
                let token = fields.next(what)?;
                let value = (parse_ttl(token.text).filter(|_| !token.quoted))
                    .ok_or_else(|| format!("bad SOA {what} {:?}", token.text))?;
                rdata.extend_from_slice(&value.to_be_bytes());
            }
        }
        TYPE_TXT => {
            for token in fields.tokens.by_ref() {
                let bytes = unescape(token.text)?;
                if bytes.is_empty() {
                    rdata.push(0);
                }
                // Longer strings are split into 255-byte ones, as miekg/dns does.
                for chunk in bytes.chunks(255) {
                    rdata.push(chunk.len() as u8);
                    rdata.extend_from_slice(chunk);
                }
            }
        }
        _ => return Err(format!("record type {mnemonic} is not supported")),
    }
    fields.end()?;
    if rdata.len() > usize::from(u16::MAX) {
        return Err(format!("{mnemonic} record data is too long"));
    }
    Ok(Record {
        name,
        rtype: code,
        class: class.unwrap_or(clusterdns_zone::wire::CLASS_IN),
        ttl: ttl.unwrap_or(DEFAULT_TTL),
        rdata,
    })
}

#[cfg(test)]
mod tests;
