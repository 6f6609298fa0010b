//! CoreDNS's `log` plugin: one line per answered query on standard output, in CoreDNS's format
//! and with its placeholders, for the names and response classes the block selects. Logging is
//! opt-in per block and off the path of blocks without it.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Instant;

use clusterdns_zone::name::{dotted, is_subdomain};
use clusterdns_zone::wire::{read_u16, Rcode};
use clusterdns_zone::{Query, Transport};

use crate::config::plan::{LogClasses, LogPlan};

/// CoreDNS's `{common}` format, the default.
pub const COMMON_FORMAT: &str = "{remote}:{port} - {>id} \"{type} {class} {name} {proto} {size} {>do} {>bufsize}\" {rcode} {>rflags} {rsize} {duration}";
/// CoreDNS's `{combined}` format: `{common}` and the opcode.
pub const COMBINED_FORMAT: &str = "{remote}:{port} - {>id} \"{type} {class} {name} {proto} {size} {>do} {>bufsize}\" {rcode} {>rflags} {rsize} {duration} \"{>opcode}\"";
/// The placeholders a format may use.
pub const PLACEHOLDERS: [&str; 15] = [
    "{remote}",
    "{port}",
    "{>id}",
    "{type}",
    "{class}",
    "{name}",
    "{proto}",
    "{size}",
    "{>do}",
    "{>bufsize}",
    "{rcode}",
    "{>rflags}",
    "{rsize}",
    "{duration}",
    "{>opcode}",
];

/// A block's query log.
#[derive(Debug)]
pub struct QueryLog {
    plan: LogPlan,
}

impl QueryLog {
    /// A log as `plan` says.
    pub fn new(plan: LogPlan) -> Self {
        QueryLog { plan }
    }

    /// Logs `response` to `query` (whose bytes are `packet`) if its name and class are selected.
    pub fn write(
        &self,
        query: &Query,
        packet: &[u8],
        response: &[u8],
        client: SocketAddr,
        transport: Transport,
        received_at: Instant,
    ) {
        let qname = query.qname();
        if !self
            .plan
            .names
            .iter()
            .any(|n| is_subdomain(qname, n.as_bytes()))
        {
            return;
        }
        let rcode = response.get(3).map_or(0, |b| b & 0x0F);
        let answers = read_u16(response, 6).unwrap_or(0);
        if !selected(self.plan.classes, rcode, answers) {
            return;
        }
        let line = render(
            &self.plan.format,
            &Fields {
                query,
                packet,
                response,
                client,
                transport,
                seconds: received_at.elapsed().as_secs_f64(),
            },
        );
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "[INFO] {line}");
    }
}

/// Whether a response of `rcode` with `answers` records is of a selected class.
fn selected(classes: LogClasses, rcode: u8, answers: u16) -> bool {
    match rcode {
        0 if answers > 0 => classes.success,
        0 | 3 => classes.denial,
        _ => classes.error,
    }
}

/// What a log line is made of.
struct Fields<'a> {
    query: &'a Query,
    packet: &'a [u8],
    response: &'a [u8],
    client: SocketAddr,
    transport: Transport,
    seconds: f64,
}

/// `format` with its placeholders filled in.
fn render(format: &str, fields: &Fields) -> String {
    let mut line = String::with_capacity(format.len() + 64);
    let mut rest = format;
    while let Some(open) = rest.find('{') {
        line.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let placeholder = &rest[open..open + close + 1];
        if !fill(&mut line, placeholder, fields) {
            line.push_str(placeholder);
        }
        rest = &rest[open + close + 1..];
    }
    line.push_str(rest);
    line
}

/// Appends the value of `placeholder`; false when it is not one.
fn fill(line: &mut String, placeholder: &str, f: &Fields) -> bool {
    let query = f.query;
    let _ = match placeholder {
        "{remote}" => match f.client.ip() {
            std::net::IpAddr::V6(ip) => write!(line, "[{ip}]"),
            ip => write!(line, "{ip}"),
        },
        "{port}" => write!(line, "{}", f.client.port()),
        "{>id}" => write!(line, "{}", query.id),
        "{type}" => write!(line, "{}", type_name(query.qtype)),
        "{class}" => match query.qclass {
            1 => write!(line, "IN"),
            3 => write!(line, "CH"),
            class => write!(line, "CLASS{class}"),
        },
        "{name}" => write!(line, "{}", dotted(query.qname())),
        "{proto}" => write!(
            line,
            "{}",
            match f.transport {
                Transport::Udp { .. } => "udp",
                Transport::Tcp => "tcp",
            }
        ),
        "{size}" => write!(line, "{}", f.packet.len()),
        "{>do}" => write!(line, "{}", query.edns.is_some_and(|e| e.dnssec_ok)),
        "{>bufsize}" => write!(line, "{}", query.edns.map_or(512, |e| e.payload)),
        "{rcode}" => write!(line, "{}", rcode_name(f.response)),
        "{>rflags}" => write!(line, "{}", flags(f.response)),
        "{rsize}" => write!(line, "{}", f.response.len()),
        "{duration}" => write!(line, "{:.9}s", f.seconds),
        "{>opcode}" => write!(line, "QUERY"),
        "{common}" => write!(line, "{}", render(COMMON_FORMAT, f)),
        "{combined}" => write!(line, "{}", render(COMBINED_FORMAT, f)),
        _ => return false,
    };
    true
}

fn type_name(qtype: u16) -> String {
    const NAMES: [(u16, &str); 16] = [
        (1, "A"),
        (2, "NS"),
        (5, "CNAME"),
        (6, "SOA"),
        (12, "PTR"),
        (13, "HINFO"),
        (15, "MX"),
        (16, "TXT"),
        (28, "AAAA"),
        (33, "SRV"),
        (35, "NAPTR"),
        (64, "SVCB"),
        (65, "HTTPS"),
        (252, "AXFR"),
        (251, "IXFR"),
        (255, "ANY"),
    ];
    NAMES
        .iter()
        .find(|(t, _)| *t == qtype)
        .map_or_else(|| format!("TYPE{qtype}"), |(_, n)| (*n).to_owned())
}

fn rcode_name(response: &[u8]) -> &'static str {
    match response.get(3).map_or(0, |b| b & 0x0F) {
        0 => Rcode::NoError.label(),
        1 => Rcode::FormErr.label(),
        2 => Rcode::ServFail.label(),
        3 => Rcode::NxDomain.label(),
        4 => Rcode::NotImp.label(),
        5 => Rcode::Refused.label(),
        _ => "RCODE",
    }
}

/// The response's header flags as CoreDNS lists them (`qr,aa,rd,ra`).
fn flags(response: &[u8]) -> String {
    let word = read_u16(response, 2).unwrap_or(0);
    let names = [
        (0x8000, "qr"),
        (0x0400, "aa"),
        (0x0200, "tc"),
        (0x0100, "rd"),
        (0x0080, "ra"),
        (0x0020, "ad"),
        (0x0010, "cd"),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| word & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    set.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clusterdns_zone::answer::parse_query;

    #[test]
    fn common_format_as_coredns_writes_it() {
        let mut packet = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        packet.extend_from_slice(b"\x03web\x07example\x00\x00\x01\x00\x01");
        let query = parse_query(&packet).unwrap();
        let mut response = packet.clone();
        response[2] = 0x85;
        response[3] = 0x83;
        let fields = Fields {
            query: &query,
            packet: &packet,
            response: &response,
            client: "10.0.0.7:5353".parse().unwrap(),
            transport: Transport::Udp { max_payload: 4096 },
            seconds: 0.000_25,
        };
        assert_eq!(
            render(COMMON_FORMAT, &fields),
            "10.0.0.7:5353 - 4660 \"A IN web.example. udp 29 false 512\" NXDOMAIN qr,aa,rd,ra 29 0.000250000s"
        );
        assert_eq!(
            render("{name} {unknown}", &fields),
            "web.example. {unknown}"
        );
    }

    #[test]
    fn classes_select_responses() {
        let only_denial = LogClasses {
            success: false,
            denial: true,
            error: false,
        };
        assert!(selected(only_denial, 3, 0));
        assert!(selected(only_denial, 0, 0));
        assert!(!selected(only_denial, 0, 1));
        assert!(!selected(only_denial, 2, 0));
    }
}
