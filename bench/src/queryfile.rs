//! Reading dnsperf-format query files (`name TYPE` a line) into wire-format queries laid end to
//! end in one buffer, so that a load generator sends them without allocating or encoding per
//! query: it patches the ID and points at the bytes.

use std::fmt;

use clusterdns_zone::wire::{CLASS_IN, FLAG_RD};
use clusterdns_zone::WireName;

/// Why a query file cannot be read: the line (1-based) and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// The code of a query type mnemonic (`A`, `aaaa`, `TYPE65`...), as dnsperf accepts them.
pub fn qtype_code(mnemonic: &str) -> Option<u16> {
    let code = match mnemonic.to_ascii_uppercase().as_str() {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "SOA" => 6,
        "PTR" => 12,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        "SRV" => 33,
        "NAPTR" => 35,
        "DS" => 43,
        "DNSKEY" => 48,
        "HTTPS" => 65,
        "CAA" => 257,
        "AXFR" => 252,
        "ANY" => 255,
        other => return other.strip_prefix("TYPE")?.parse().ok(),
    };
    Some(code)
}

/// Wire-format queries (header with RD set and ID 0, one question, no EDNS) laid end to end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryFile {
    bytes: Vec<u8>,
    /// Start of each query in `bytes`, and one past the last.
    bounds: Vec<u32>,
}

impl QueryFile {
    /// Parses a query file: one `name TYPE` a line; blank lines and lines starting with `#`
    /// (or `;`) are skipped; the type defaults to A when missing, as in dnsperf.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut file = QueryFile {
            bytes: Vec::with_capacity(text.len() + text.len() / 2),
            bounds: vec![0],
        };
        for (index, line) in text.lines().enumerate() {
            let error = |message: String| ParseError {
                line: index + 1,
                message,
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let mut words = line.split_whitespace();
            let name = words.next().unwrap_or_default();
            let qtype = match words.next() {
                Some(mnemonic) => qtype_code(mnemonic)
                    .ok_or_else(|| error(format!("unknown type {mnemonic:?}")))?,
                None => 1,
            };
            if let Some(extra) = words.next() {
                return Err(error(format!("unexpected {extra:?} after the type")));
            }
            let wire = WireName::from_dotted(name)
                .ok_or_else(|| error(format!("{name:?} is not a valid domain name")))?;
            file.push(wire.as_bytes(), qtype);
            if file.bytes.len() > u32::MAX as usize {
                return Err(error("query file larger than 4 GiB".into()));
            }
        }
        Ok(file)
    }

    /// Appends one query for the wire name `name` and `qtype`.
    fn push(&mut self, name: &[u8], qtype: u16) {
        self.bytes.extend_from_slice(&0u16.to_be_bytes());
        self.bytes.extend_from_slice(&FLAG_RD.to_be_bytes());
        for count in [1u16, 0, 0, 0] {
            self.bytes.extend_from_slice(&count.to_be_bytes());
        }
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(&qtype.to_be_bytes());
        self.bytes.extend_from_slice(&CLASS_IN.to_be_bytes());
        self.bounds.push(self.bytes.len() as u32);
    }

    /// Number of queries.
    pub fn len(&self) -> usize {
        self.bounds.len() - 1
    }

    /// Whether the file holds no query.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Query `index` (`0..len()`), with ID 0.
    pub fn query(&self, index: usize) -> &[u8] {
        &self.bytes[self.bounds[index] as usize..self.bounds[index + 1] as usize]
    }

    /// Query `index` without its ID: everything after the first two bytes.
    pub fn after_id(&self, index: usize) -> &[u8] {
        &self.query(index)[2..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_types_and_skips_comments() {
        let text = "# comment\nweb.ns.svc.cluster.local A\n\n  x.y AAAA  \n_http._tcp.a.b srv\n\
                    2.0.96.10.in-addr.arpa PTR\nbare.name\nt.example TYPE65\n";
        let file = QueryFile::parse(text).expect("parses");
        assert_eq!(file.len(), 6);
        assert_eq!(
            file.query(1),
            [0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'x', 1, b'y', 0, 0, 28, 0, 1]
        );
        let qtype = |i: usize| {
            let q = file.query(i);
            u16::from_be_bytes([q[q.len() - 4], q[q.len() - 3]])
        };
        assert_eq!(
            (0..6).map(qtype).collect::<Vec<_>>(),
            [1, 28, 33, 12, 1, 65]
        );
        assert_eq!(file.after_id(1), &file.query(1)[2..]);
        assert_eq!(
            crate::packet::query_packet(0, "web.ns.svc.cluster.local", 1, None).as_deref(),
            Some(file.query(0))
        );
    }

    #[test]
    fn errors_name_the_line() {
        let error = QueryFile::parse("a.b A\nc.d BOGUS\n").expect_err("bad type");
        assert_eq!(error.line, 2);
        assert!(error.to_string().contains("BOGUS"), "{error}");
        let error = QueryFile::parse("a..b A\n").expect_err("bad name");
        assert_eq!(
            error.to_string(),
            "line 1: \"a..b\" is not a valid domain name"
        );
        assert_eq!(QueryFile::parse("a A extra").expect_err("extra").line, 1);
        assert!(QueryFile::parse("").expect("empty").is_empty());
    }

    #[test]
    fn generated_files_parse() {
        let cluster = crate::generate(&crate::Spec::new(50)).expect("generate");
        let lines = crate::service_mix(&cluster, "cluster.local", 200, 1);
        let mut text = Vec::new();
        crate::write_queries(&mut text, &lines).expect("write");
        let file = QueryFile::parse(&String::from_utf8(text).expect("utf-8")).expect("parses");
        assert_eq!(file.len(), 200);
    }
}
