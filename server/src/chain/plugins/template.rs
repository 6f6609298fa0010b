//! CoreDNS's `template` plugin (plugin/template): responses built from a regex match of the
//! question name, in its common forms:
//!
//! ```text
//! template CLASS TYPE [ZONE...] {
//!     match REGEX...
//!     answer RR        additional RR        authority RR
//!     rcode CODE
//!     fallthrough [ZONE...]
//! }
//! ```
//!
//! RRs are Go templates; the actions supported are `{{ .Name }}`, `{{ .Zone }}`,
//! `{{ .Class }}`, `{{ .Type }}`, `{{ .Remote }}`, `{{ index .Match N }}` and
//! `{{ .Group.NAME }}` (whitespace inside the braces optional); any other action is refused
//! when the template is built. `var`, `expr`, `ederror`, `.Meta`, `.Message`, `.Question` and
//! `parseInt` are not supported. The filled-in text is read as a zone-file record
//! ([`parse_record`]).
//!
//! The router reproduces two things this module cannot do: for A and AAAA questions CoreDNS
//! looks up the target of a CNAME in the answer through its own server (the `upstream` every
//! template has) and appends what comes back (copying the TC bit), which chain/chase.rs does
//! through the block's chain; and a template's SERVFAIL is CoreDNS's plain SERVFAIL response,
//! not an authoritative one.

use std::net::IpAddr;

use clusterdns_zone::name::dotted;
use clusterdns_zone::wire::TYPE_ANY;
use clusterdns_zone::Rcode;
use regex::{Captures, Regex};

use super::records::Record;
use super::records::{class_code, class_name, encode_all, parse_record, type_code, type_name};
use super::Zones;

/// Class ANY (`*`).
const CLASS_ANY: u16 = 255;
/// Longest regex CoreDNS compiles (`maxRegexpLen`).
const MAX_REGEX_LEN: usize = 10_000;

/// The pieces of one `template` block, as the Corefile gives them.
#[derive(Clone, Debug, Default)]
pub struct TemplateConfig {
    /// CLASS: `IN`, `CH`, `HS`, `CS`, `NONE` or `ANY` (exact case).
    pub class: String,
    /// TYPE: a type mnemonic (`A`, `PTR`, ...) or `ANY` (exact case).
    pub rtype: String,
    /// ZONE... (dotted); the server block's zones when the line names none.
    pub zones: Vec<String>,
    /// The `match` regexes; none means `.*`.
    pub matches: Vec<String>,
    /// The `answer` RR templates.
    pub answer: Vec<String>,
    /// The `additional` RR templates.
    pub additional: Vec<String>,
    /// The `authority` RR templates.
    pub authority: Vec<String>,
    /// The `rcode` mnemonic; NOERROR when absent.
    pub rcode: Option<String>,
    /// `fallthrough [ZONE...]`: `None` without the option, an empty list for every name.
    pub fallthrough: Option<Vec<String>>,
}

/// A piece of an RR template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    /// Text copied as it is.
    Text(String),
    /// `.Name`: the question name (lowercase, with a trailing dot).
    Name,
    /// `.Zone`: the template's zone the name is in.
    Zone,
    /// `.Class`: the question class, or the template's when the question asks for ANY.
    Class,
    /// `.Type`: the question type, or the template's when the question asks for ANY.
    Type,
    /// `.Remote`: the client's address.
    Remote,
    /// `index .Match N`: group N of the regex match (0 is the whole match).
    Match(usize),
    /// `.Group.NAME`: the named group.
    Group(String),
}

/// One `template` block, validated.
#[derive(Clone, Debug)]
pub struct Template {
    class: u16,
    rtype: u16,
    zones: Zones,
    regexes: Vec<Regex>,
    answer: Vec<Vec<Piece>>,
    additional: Vec<Vec<Piece>>,
    authority: Vec<Vec<Piece>>,
    rcode: Rcode,
    fallthrough: Option<Zones>,
}

/// What a template makes of a question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateResult {
    /// Not this template's question (zone, class or type differ, or no regex matched and
    /// `fallthrough` covers the name): the next template decides, then the next plugin.
    Skip,
    /// SERVFAIL, and no other template or plugin is asked: no regex matched and `fallthrough`
    /// does not cover the name, the template's rcode is SERVFAIL, or a filled-in RR is not a
    /// record (CoreDNS's template execution and `NewRR` errors).
    ServFail,
    /// An authoritative response.
    Answer(TemplateAnswer),
}

/// The response a template made: authoritative, with this rcode and these records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateAnswer {
    /// The response code.
    pub rcode: Rcode,
    /// The answer section.
    pub answer: Vec<Record>,
    /// The authority section.
    pub authority: Vec<Record>,
    /// The additional section.
    pub additional: Vec<Record>,
}

impl TemplateAnswer {
    /// Appends the sections in order, uncompressed; returns their counts (the arguments of
    /// `respond_records`).
    pub fn encode(&self, out: &mut Vec<u8>) -> [u16; 3] {
        [&self.answer, &self.authority, &self.additional].map(|records| encode_all(records, out))
    }
}

impl Template {
    /// Validates a `template` block; an error says what is wrong (an unknown class, type or
    /// rcode, a bad or too long regex, a template action not supported, a bad zone).
    pub fn new(config: &TemplateConfig) -> Result<Self, String> {
        let class = class_code(&config.class)
            .ok_or_else(|| format!("invalid query class {}", config.class))?;
        let rtype =
            type_code(&config.rtype).ok_or_else(|| format!("invalid RR type {}", config.rtype))?;
        let zones = Zones::parse(&config.zones)?;
        if zones.is_empty() {
            return Err("template needs at least one zone".into());
        }
        let mut regexes = Vec::with_capacity(config.matches.len().max(1));
        for pattern in &config.matches {
            if pattern.len() > MAX_REGEX_LEN {
                return Err(format!(
                    "regex pattern too long: {} > {MAX_REGEX_LEN}",
                    pattern.len()
                ));
            }
            let regex = Regex::new(pattern)
                .map_err(|e| format!("could not parse regex: {pattern}, {e}"))?;
            regexes.push(regex);
        }
        if regexes.is_empty() {
            regexes.push(Regex::new(".*").map_err(|e| e.to_string())?);
        }
        let parse_all = |texts: &[String]| -> Result<Vec<Vec<Piece>>, String> {
            texts.iter().map(|t| parse_template(t)).collect()
        };
        let rcode = match &config.rcode {
            Some(name) => parse_rcode(name)?,
            None => Rcode::NoError,
        };
        let fallthrough = match &config.fallthrough {
            None => None,
            Some(zones) if zones.is_empty() => Some(Zones::root()),
            Some(zones) => Some(Zones::parse(zones)?),
        };
        Ok(Template {
            class,
            rtype,
            zones,
            regexes,
            answer: parse_all(&config.answer)?,
            additional: parse_all(&config.additional)?,
            authority: parse_all(&config.authority)?,
            rcode,
            fallthrough,
        })
    }

    /// Answers a question: `qname` in lowercase wire format, its class and type, and the
    /// client's address. The first regex that matches the name wins (CoreDNS's `match`).
    pub fn answer(&self, qname: &[u8], qclass: u16, qtype: u16, remote: IpAddr) -> TemplateResult {
        let Some(zone) = self.zones.matches(qname) else {
            return TemplateResult::Skip;
        };
        if self.class != CLASS_ANY && qclass != CLASS_ANY && qclass != self.class {
            return TemplateResult::Skip;
        }
        if self.rtype != TYPE_ANY && qtype != TYPE_ANY && qtype != self.rtype {
            return TemplateResult::Skip;
        }
        let name = dotted(qname);
        let Some((regex, groups)) = (self.regexes.iter())
            .find_map(|regex| regex.captures(&name).map(|groups| (regex, groups)))
        else {
            let falls = (self.fallthrough.as_ref()).is_some_and(|f| f.matches(qname).is_some());
            return if falls {
                TemplateResult::Skip
            } else {
                TemplateResult::ServFail
            };
        };
        if self.rcode == Rcode::ServFail {
            return TemplateResult::ServFail;
        }
        let class = if qclass == CLASS_ANY {
            self.class
        } else {
            qclass
        };
        let rtype = if qtype == TYPE_ANY { self.rtype } else { qtype };
        let data = Data {
            name: &name,
            zone: zone.to_dotted(),
            class: class_name(class).unwrap_or_default(),
            rtype: type_name(rtype).unwrap_or_default(),
            remote: remote.to_canonical().to_string(),
            regex,
            groups,
        };
        let records = |templates: &[Vec<Piece>]| -> Option<Vec<Record>> {
            (templates.iter())
                .map(|pieces| parse_record(&data.fill(pieces)?).ok())
                .collect()
        };
        let (Some(answer), Some(additional), Some(authority)) = (
            records(&self.answer),
            records(&self.additional),
            records(&self.authority),
        ) else {
            return TemplateResult::ServFail;
        };
        TemplateResult::Answer(TemplateAnswer {
            rcode: self.rcode,
            answer,
            authority,
            additional,
        })
    }
}

/// The templates of a server block in order, as CoreDNS's handler goes through them: the first
/// that does not [`Skip`](TemplateResult::Skip) decides; `Skip` from all means the next plugin.
pub fn lookup(
    templates: &[Template],
    qname: &[u8],
    qclass: u16,
    qtype: u16,
    remote: IpAddr,
) -> TemplateResult {
    (templates.iter())
        .map(|t| t.answer(qname, qclass, qtype, remote))
        .find(|result| *result != TemplateResult::Skip)
        .unwrap_or(TemplateResult::Skip)
}

/// What the template actions of one matched question stand for.
struct Data<'a> {
    name: &'a str,
    zone: String,
    class: &'a str,
    rtype: &'a str,
    remote: String,
    regex: &'a Regex,
    groups: Captures<'a>,
}

impl Data<'_> {
    /// The template filled in; `None` when `index .Match N` is past the last group (an
    /// execution error in Go).
    fn fill(&self, pieces: &[Piece]) -> Option<String> {
        let mut out = String::new();
        for piece in pieces {
            out.push_str(match piece {
                Piece::Text(text) => text,
                Piece::Name => self.name,
                Piece::Zone => &self.zone,
                Piece::Class => self.class,
                Piece::Type => self.rtype,
                Piece::Remote => &self.remote,
                Piece::Match(n) if *n < self.groups.len() => {
                    self.groups.get(*n).map_or("", |m| m.as_str())
                }
                Piece::Match(_) => return None,
                Piece::Group(name) if (self.regex.capture_names()).any(|n| n == Some(name)) => {
                    self.groups.name(name).map_or("", |m| m.as_str())
                }
                // Go prints a missing map key so.
                Piece::Group(_) => "<no value>",
            });
        }
        Some(out)
    }
}

/// Splits an RR template into text and the actions it supports.
fn parse_template(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let (before, after) = rest.split_at(open);
        if !before.is_empty() {
            pieces.push(Piece::Text(before.to_owned()));
        }
        let inner = after.get(2..).unwrap_or_default();
        let close = (inner.find("}}"))
            .ok_or_else(|| format!("could not compile template: {text:?}: unclosed action"))?;
        let (action, after) = inner.split_at(close);
        pieces.push(parse_action(action)?);
        rest = after.get(2..).unwrap_or_default();
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(pieces)
}

/// One action (the text between `{{` and `}}`).
fn parse_action(action: &str) -> Result<Piece, String> {
    let words: Vec<&str> = action.split_whitespace().collect();
    let identifier = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    Ok(match words.as_slice() {
        [".Name"] => Piece::Name,
        [".Zone"] => Piece::Zone,
        [".Class"] => Piece::Class,
        [".Type"] => Piece::Type,
        [".Remote"] => Piece::Remote,
        ["index", ".Match", n] if n.bytes().all(|b| b.is_ascii_digit()) => Piece::Match(
            n.parse()
                .map_err(|_| format!("bad index in {{{{{action}}}}}"))?,
        ),
        [field] if field.strip_prefix(".Group.").is_some_and(identifier) => {
            Piece::Group(field.get(".Group.".len()..).unwrap_or_default().to_owned())
        }
        _ => return Err(format!("unsupported template action {{{{{action}}}}}")),
    })
}

/// The rcode a mnemonic names (miekg/dns's `StringToRcode`, exact case); those beyond the
/// basic six have no place in a template's response here.
fn parse_rcode(name: &str) -> Result<Rcode, String> {
    Ok(match name {
        "NOERROR" => Rcode::NoError,
        "FORMERR" => Rcode::FormErr,
        "SERVFAIL" => Rcode::ServFail,
        "NXDOMAIN" => Rcode::NxDomain,
        "NOTIMP" => Rcode::NotImp,
        "REFUSED" => Rcode::Refused,
        "YXDOMAIN" | "YXRRSET" | "NXRRSET" | "NOTAUTH" | "NOTZONE" | "BADSIG" | "BADVERS"
        | "BADKEY" | "BADTIME" | "BADMODE" | "BADNAME" | "BADALG" | "BADTRUNC" | "BADCOOKIE" => {
            return Err(format!("rcode {name} is not supported"))
        }
        _ => return Err(format!("unknown rcode {name}")),
    })
}

#[cfg(test)]
mod tests;
