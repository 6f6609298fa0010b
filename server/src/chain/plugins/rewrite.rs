//! CoreDNS's `rewrite` plugin (plugin/rewrite): rules that change a query before the rest of the
//! chain sees it, and the response before it leaves.
//!
//! | rule | the query | the response |
//! | --- | --- | --- |
//! | `name` ([`name`]) | the question name | the question put back; names reverted (`answer ...`) |
//! | `type`, `class` | the question type or class | the question put back |
//! | `edns0` ([`edns0`]) | EDNS0 options sent upstream | — |
//! | `ttl` ([`ttl`]) | — | every record's TTL, set or bounded |
//! | `rcode` ([`rcode`]) | — | the response code |
//! | `cname` ([`cname`]) | — | a CNAME target, and the records after it |
//!
//! Rules are checked in the order written ([`rewrite_request`]), each against the question as
//! the rules before it left it. A rule that applies ends the list unless its mode is
//! [`Processing::Continue`] (the default is [`Processing::Stop`]). What "applies" means is
//! CoreDNS's: a `name`, `type` or `class` rule whose FROM matches; a `ttl` or `rcode` rule
//! whose name matches; an `edns0` rule that changed the options, and every `unset` one; and a
//! `cname` rule always (it looks at the response only). A name that is no longer a domain name
//! after a rule is a SERVFAIL.
//!
//! The response to the rewritten query ([`Applied::restore_response`], in `answer.rs`) gets the
//! client's question back, and the response rules of the rules that applied, the last one
//! first: names reverted, TTLs bounded, the answer cut after a rewritten CNAME, the rcode
//! changed.
//!
//! Names are handled dotted, lowercase and fully qualified, as CoreDNS's `state.Name()`. FROM
//! and TO of a non-regex match are lowercased and get a trailing dot
//! (`plugin.Name.Normalize`), so `prefix foo bar` matches `foo.` at the start of the name.
//!
//! Where clusterdns differs from CoreDNS, on purpose:
//! - the client's question is always put back, also when only `continue` rules without
//!   response rewrites applied (CoreDNS then answers with the rewritten question, which
//!   clients reject);
//! - EDNS0 options an `edns0` rule sets go to the upstream only: the response the client gets
//!   carries its own EDNS state, never the rewritten options (CoreDNS echoes them back unless
//!   the rule says `revert`, which is accepted here and changes nothing); `append` never adds a
//!   second option of a code already there, as the README says (CoreDNS's fixed-data `local`
//!   and `nsid` rules do);
//! - a `ttl` rule leaves the OPT record alone (CoreDNS overwrites the EDNS flags it holds,
//!   RFC 6891 §6.1.3); the `rcode` rules are applied once, the last one first;
//! - metadata labels (`{plugin/label}`) in `edns0 local` are refused: there is no `metadata`
//!   plugin to fill them.
//!
//! Where the chain around it differs: CoreDNS's `cache` runs before `rewrite`, so it stores
//! answers as the rules left them; here the block's cache stores the upstream's answer to the
//! rewritten query (keyed with the EDNS0 options sent, so an answer fetched with an option is
//! never served without it) and the response rules run on every answer as it leaves. A `ttl`
//! rule therefore sets the TTLs clients see, but not how long the cache keeps the answer (the
//! upstream's TTL, within `cache`'s bounds). A query a rule applied to is not walked by
//! `autopath`.

use std::net::{Ipv4Addr, SocketAddr};

use clusterdns_zone::answer::Query;
use clusterdns_zone::name::dotted;
use clusterdns_zone::wire::{read_u16, skip_name, HEADER_LEN, TYPE_OPT};
use clusterdns_zone::{Transport, WireName};
use regex::Regex;

pub mod answer;
pub mod cname;
pub mod edns0;
pub mod name;
pub mod rcode;
pub mod ttl;

pub use answer::{Lookup, Restored};
pub use cname::CnameRule;
pub use edns0::{Edns0Action, Edns0Rule};
pub use name::{AnswerRewrite, NameRule, RegexRewrite};
pub use rcode::RcodeRule;
pub use ttl::TtlRule;

use edns0::{Context, EdnsOptions};

/// Longest regex CoreDNS compiles (`maxRegexpLen`).
const MAX_REGEX_LEN: usize = 10_000;

/// What happens after a rule applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Processing {
    /// The last rule applied (`stop`, the default).
    #[default]
    Stop,
    /// The next rules apply to the query as this one left it (`continue`).
    Continue,
}

/// One `rewrite` rule: what it does, and whether the rules after it still apply.
#[derive(Clone, Debug)]
pub struct Rule {
    mode: Processing,
    action: Action,
}

/// What a rule rewrites.
#[derive(Clone, Debug)]
pub enum Action {
    /// `name`: the question name.
    Name(NameRule),
    /// `type FROM TO`: the question type.
    Type(QuestionRule),
    /// `class FROM TO`: the question class.
    Class(QuestionRule),
    /// `edns0`: the EDNS0 options of the query.
    Edns0(Edns0Rule),
    /// `ttl`: the TTLs of the response.
    Ttl(TtlRule),
    /// `rcode`: the response code.
    Rcode(RcodeRule),
    /// `cname`: a CNAME target in the response.
    Cname(CnameRule),
}

impl Rule {
    /// A rule doing `action`, in `mode`.
    pub fn new(mode: Processing, action: Action) -> Self {
        Rule { mode, action }
    }

    /// Whether the rules after it apply once it did.
    pub fn mode(&self) -> Processing {
        self.mode
    }

    /// What it rewrites.
    pub fn action(&self) -> &Action {
        &self.action
    }

    /// Whether it rewrites the question class, so that queries of other classes than IN must
    /// reach it before they are refused.
    pub fn rewrites_class(&self) -> bool {
        matches!(self.action, Action::Class(_))
    }
}

/// A `type` or `class` rule: FROM becomes TO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuestionRule {
    from: u16,
    to: u16,
}

impl QuestionRule {
    /// `type FROM TO`, by mnemonic (any case; CoreDNS's `dns.StringToType`).
    pub fn types(from: &str, to: &str) -> Result<Self, String> {
        let code = |text: &str| {
            let upper = text.to_ascii_uppercase();
            super::records::type_code(&upper).ok_or_else(|| format!("invalid type {upper:?}"))
        };
        Ok(QuestionRule {
            from: code(from)?,
            to: code(to)?,
        })
    }

    /// `class FROM TO`, by mnemonic (any case: `IN`, `CH`, `HS`, `CS`, `NONE`, `ANY`).
    pub fn classes(from: &str, to: &str) -> Result<Self, String> {
        let code = |text: &str| {
            let upper = text.to_ascii_uppercase();
            super::records::class_code(&upper).ok_or_else(|| format!("invalid class {upper:?}"))
        };
        Ok(QuestionRule {
            from: code(from)?,
            to: code(to)?,
        })
    }

    /// What `value` becomes, when the rule applies to it.
    fn apply(&self, value: u16) -> Option<u16> {
        (value == self.from).then_some(self.to)
    }
}

/// How a `ttl` or `rcode` rule (and a `name` rule's question) matches a name.
#[derive(Clone, Debug)]
pub enum Matcher {
    /// The whole name.
    Exact(String),
    /// The start of the name.
    Prefix(String),
    /// The end of the name.
    Suffix(String),
    /// Anywhere in the name.
    Substring(String),
    /// A regular expression, anywhere in the name unless anchored.
    Regex(Regex),
}

impl Matcher {
    /// The match of `kind` (`exact`, `prefix`, `suffix`, `substring` or `regex`, any case)
    /// for FROM, in a rule of type `rule` (for errors): FROM normalized, or compiled.
    pub fn new(rule: &str, kind: &str, from: &str) -> Result<Self, String> {
        Ok(match kind.to_ascii_lowercase().as_str() {
            "exact" => Matcher::Exact(normalize(from)),
            "prefix" => Matcher::Prefix(normalize(from)),
            "suffix" => Matcher::Suffix(normalize(from)),
            "substring" => Matcher::Substring(normalize(from)),
            "regex" => Matcher::Regex(compile(from, "")?),
            other => {
                return Err(format!(
                    "{rule} rule supports only exact, prefix, suffix, substring, and regex name \
                     matching, received: {other}"
                ))
            }
        })
    }

    /// Whether `name` (dotted, lowercase, fully qualified) matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Matcher::Exact(from) => name == from,
            Matcher::Prefix(prefix) => name.starts_with(prefix.as_str()),
            Matcher::Suffix(suffix) => name.ends_with(suffix.as_str()),
            Matcher::Substring(part) => name.contains(part.as_str()),
            Matcher::Regex(pattern) => pattern.is_match(name),
        }
    }
}

/// CoreDNS's `plugin.Name(name).Normalize()`: lowercase, with a trailing dot.
fn normalize(name: &str) -> String {
    let mut out = name.to_lowercase();
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// Compiles a FROM regex, checking that TO uses no more groups than it has (CoreDNS's
/// `isValidRegexPattern`).
fn compile(from: &str, to: &str) -> Result<Regex, String> {
    if from.len() > MAX_REGEX_LEN {
        return Err(format!(
            "regex pattern too long: {} > {MAX_REGEX_LEN}",
            from.len()
        ));
    }
    let pattern =
        Regex::new(from).map_err(|e| format!("invalid regex matching pattern {from:?}: {e}"))?;
    let used = (0..=100)
        .filter(|i| to.contains(&format!("{{{i}}}")))
        .count();
    if used > pattern.captures_len().saturating_sub(1) {
        return Err(format!(
            "the rewrite regex pattern ({to}) uses more subexpressions than its corresponding \
             matching regex pattern ({from})"
        ));
    }
    Ok(pattern)
}

/// `replacement` with `{N}` replaced by group N of the first match in `name` (group 0 first,
/// each in turn, as CoreDNS does); `None` when the regex does not match.
fn expand(pattern: &Regex, replacement: &str, name: &str) -> Option<String> {
    let groups = pattern.captures(name)?;
    let mut out = replacement.to_owned();
    for (i, group) in groups.iter().enumerate() {
        out = out.replace(&format!("{{{i}}}"), group.map_or("", |m| m.as_str()));
    }
    Some(out)
}

/// The query as the rules see it.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The question name, lowercase wire format.
    pub qname: &'a [u8],
    /// The question name as the client spelled it, wire format (`{qname}` of `edns0 local`).
    pub spelled: &'a [u8],
    /// The question type.
    pub qtype: u16,
    /// The question class.
    pub qclass: u16,
    /// The RDATA of the client's OPT record (its options); empty without one.
    pub options: &'a [u8],
    /// The client's address and port.
    pub client: SocketAddr,
    /// The address and port the query came to, as the listening socket is bound.
    pub server: SocketAddr,
    /// Whether the query came over TCP (else UDP).
    pub tcp: bool,
}

impl<'a> Request<'a> {
    /// The request of `query` (parsed from `packet`) from `client`, received on a socket of a
    /// block listening on `listen` over `transport`.
    pub fn of(
        query: &'a Query,
        packet: &'a [u8],
        client: SocketAddr,
        listen: &[SocketAddr],
        transport: Transport,
    ) -> Self {
        let name_end = query.question_end() - 4;
        Request {
            qname: query.qname(),
            spelled: packet.get(HEADER_LEN..name_end).unwrap_or_default(),
            qtype: query.qtype,
            qclass: query.qclass,
            options: opt_rdata(query, packet).unwrap_or_default(),
            client,
            server: server_address(listen, client),
            tcp: matches!(transport, Transport::Tcp),
        }
    }
}

/// The address a query from `client` came to, as far as a block listening on `listen` knows:
/// its listen address of the client's family, which is the socket's own (the unspecified
/// address when bound to every interface, as CoreDNS reports it too).
fn server_address(listen: &[SocketAddr], client: SocketAddr) -> SocketAddr {
    let v4 = client.ip().to_canonical().is_ipv4();
    (listen.iter().find(|a| a.is_ipv4() == v4))
        .or(listen.first())
        .copied()
        .unwrap_or_else(|| SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0))
}

/// The RDATA of the OPT record of `query`'s `packet` (its EDNS0 options), if it has one.
fn opt_rdata<'a>(query: &Query, packet: &'a [u8]) -> Option<&'a [u8]> {
    query.edns?;
    let mut at = query.question_end();
    let records = [6, 8, 10]
        .into_iter()
        .map(|i| read_u16(packet, i).map(usize::from))
        .sum::<Option<usize>>()?;
    for _ in 0..records {
        at = skip_name(packet, at)?;
        let rdata = at + 10;
        let end = rdata + usize::from(read_u16(packet, at + 8)?);
        if read_u16(packet, at)? == TYPE_OPT {
            return packet.get(rdata..end);
        }
        at = end;
    }
    None
}

/// What the rules did to a query.
#[derive(Debug)]
pub enum RequestRewrite {
    /// No rule applied: the query goes on as it is.
    Unchanged,
    /// The query goes on as [`Applied`] says; its response is put back with
    /// [`Applied::restore_response`].
    Rewritten(Applied),
    /// A rule made this name, which is not a domain name: CoreDNS answers SERVFAIL.
    Invalid(String),
}

/// What the rules that applied did to a query, and what they will do to its response. Owned
/// (rules are named by their index in the block's list), so that it can wait with a forwarded
/// query.
#[derive(Debug)]
pub struct Applied {
    /// The question name when a `name` rule changed it.
    qname: Option<WireName>,
    qtype: u16,
    qclass: u16,
    /// Whether a `name`, `type` or `class` rule applied.
    question_changed: bool,
    /// The EDNS0 options to send upstream (OPT RDATA).
    upstream_options: Vec<u8>,
    /// The response rules, in the order their rules applied.
    steps: Vec<ResponseStep>,
}

/// One response rule of a rule that applied.
#[derive(Debug)]
enum ResponseStep {
    /// A `name` rule (its index) rewrote `original` to `rewritten`.
    Name {
        rule: usize,
        original: String,
        rewritten: String,
    },
    /// A `ttl` rule's bounds.
    Ttl { min: u32, max: u32 },
    /// An `rcode` rule's FROM and TO.
    Rcode { from: u16, to: u16 },
    /// A `cname` rule (its index).
    Cname(usize),
}

impl Applied {
    /// The question name to ask instead (lowercase wire format), when a `name` rule changed it.
    pub fn qname(&self) -> Option<&WireName> {
        self.qname.as_ref()
    }

    /// The question type to ask.
    pub fn qtype(&self) -> u16 {
        self.qtype
    }

    /// The question class to ask.
    pub fn qclass(&self) -> u16 {
        self.qclass
    }

    /// The EDNS0 options (OPT RDATA: code, length, data...) the `edns0` rules set, for the
    /// query sent upstream; empty when they set none.
    pub fn upstream_options(&self) -> &[u8] {
        &self.upstream_options
    }

    /// Whether the response must be rebuilt: the question was changed, or a rule changes
    /// responses.
    pub fn rewrites_response(&self) -> bool {
        self.question_changed || !self.steps.is_empty()
    }

    /// The client's `query` (parsed from `packet`) with the question the rules made, for the
    /// rest of the chain. Its OPT record stays the client's: the options the `edns0` rules set
    /// go upstream only ([`Applied::upstream_options`]).
    pub fn query_packet(&self, query: &Query, packet: &[u8]) -> Vec<u8> {
        let (name_end, question_end) = (query.question_end() - 4, query.question_end());
        let name = (self.qname.as_ref()).map_or(&packet[HEADER_LEN..name_end], |n| n.as_bytes());
        let mut out = Vec::with_capacity(packet.len() + name.len());
        out.extend_from_slice(&packet[..HEADER_LEN]);
        out.extend_from_slice(name);
        out.extend_from_slice(&self.qtype.to_be_bytes());
        out.extend_from_slice(&self.qclass.to_be_bytes());
        out.extend_from_slice(&packet[question_end..]);
        out
    }
}

/// Applies `rules` in order to `request`.
pub fn rewrite_request(rules: &[Rule], request: &Request) -> RequestRewrite {
    let mut name = dotted(request.qname);
    let mut qname = None;
    let (mut qtype, mut qclass) = (request.qtype, request.qclass);
    let mut options: Option<EdnsOptions> = None;
    let mut steps = Vec::new();
    let mut question_changed = false;
    let mut any = false;
    for (index, rule) in rules.iter().enumerate() {
        let applied = match &rule.action {
            Action::Name(rule) => match rule.rewrite_question(&name) {
                Some(next) => {
                    let Some(wire) = WireName::from_dotted(&next) else {
                        return RequestRewrite::Invalid(next);
                    };
                    qname = Some(wire);
                    let original = std::mem::replace(&mut name, next.clone());
                    steps.push(ResponseStep::Name {
                        rule: index,
                        original,
                        rewritten: next,
                    });
                    true
                }
                None => false,
            },
            Action::Type(rule) => rule.apply(qtype).map(|to| qtype = to).is_some(),
            Action::Class(rule) => rule.apply(qclass).map(|to| qclass = to).is_some(),
            Action::Edns0(rule) => {
                // `{qname}` is the question as the query now has it: as the client spelled
                // it until a `name` rule changed it.
                let spelled = match &qname {
                    Some(_) => name.clone(),
                    None => dotted(request.spelled),
                };
                let context = Context {
                    qname: &spelled,
                    qtype,
                    client: request.client,
                    server: request.server,
                    tcp: request.tcp,
                };
                let options = options.get_or_insert_with(|| EdnsOptions::parse(request.options));
                rule.apply(options, &context)
            }
            Action::Ttl(rule) => {
                let matched = rule.matches(&name);
                if matched {
                    let (min, max) = rule.bounds();
                    steps.push(ResponseStep::Ttl { min, max });
                }
                matched
            }
            Action::Rcode(rule) => {
                let matched = rule.matches(&name);
                if matched {
                    let (from, to) = rule.codes();
                    steps.push(ResponseStep::Rcode { from, to });
                }
                matched
            }
            Action::Cname(_) => {
                steps.push(ResponseStep::Cname(index));
                true
            }
        };
        if !applied {
            continue;
        }
        any = true;
        question_changed |= matches!(
            rule.action,
            Action::Name(_) | Action::Type(_) | Action::Class(_)
        );
        if rule.mode == Processing::Stop {
            break;
        }
    }
    if !any {
        return RequestRewrite::Unchanged;
    }
    RequestRewrite::Rewritten(Applied {
        qname,
        qtype,
        qclass,
        question_changed,
        upstream_options: options.map_or_else(Vec::new, |o| o.upstream()),
        steps,
    })
}

#[cfg(test)]
mod tests;
