//! `rewrite cname` (CoreDNS's plugin/rewrite/cname_target.go): a CNAME target in the answer
//! rewritten, and what followed it replaced by the answer for the new target.
//!
//! CoreDNS keeps the CNAME records of the answer up to the first one whose target matches,
//! rewrites that target, drops every answer record after it, and appends the answer of a
//! lookup of the new target (with the question's type) through the server itself. Here that
//! is three steps, without I/O: [`find_target`] finds the CNAME and the new target,
//! [`rewrite_target`] (or the response rebuild of `answer.rs`, which does it together with the
//! other response rules) writes the response cut after it, and
//! [`crate::chain::plugins::message::append_answers`] adds a lookup's answer records to it.
//! The authority and additional sections stay as they are, as in CoreDNS.
//!
//! FROM and TO are lowercased; an `exact` FROM and TO get a trailing dot, and the others are
//! matched as written against the target (dotted, lowercase, with its trailing dot), so
//! `regex (.*)\.cdn\.example\.net\. {1}.other.cdn.com.` is how the README writes one. A new
//! target without a trailing dot is taken as fully qualified; one that is not a domain name
//! makes the response a SERVFAIL.

use clusterdns_zone::name::dotted;
use clusterdns_zone::wire::{read_u16, HEADER_LEN, TYPE_CNAME};
use clusterdns_zone::WireName;
use regex::Regex;

use super::{compile, expand, normalize, Lookup};
use crate::chain::plugins::message::{read_name, rebuild_with, Edit, NameRole, RecordAt, Section};

/// How a `cname` rule matches a target.
#[derive(Clone, Debug)]
enum TargetPattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Substring(String),
    Regex(Regex),
}

/// One `rewrite cname [exact|prefix|suffix|substring|regex] FROM TO` rule.
#[derive(Clone, Debug)]
pub struct CnameRule {
    matcher: TargetPattern,
    to: String,
}

impl CnameRule {
    /// A rule of match `kind` (`exact`, ...; any case) rewriting targets FROM to TO. Errors:
    /// an unknown kind, a bad or too long regex.
    pub fn new(kind: &str, from: &str, to: &str) -> Result<Self, String> {
        let (from, to) = (from.to_lowercase(), to.to_lowercase());
        let (matcher, to) = match kind.to_ascii_lowercase().as_str() {
            "exact" => (TargetPattern::Exact(normalize(&from)), normalize(&to)),
            "prefix" => (TargetPattern::Prefix(from), to),
            "suffix" => (TargetPattern::Suffix(from), to),
            "substring" => (TargetPattern::Substring(from), to),
            "regex" => (TargetPattern::Regex(compile(&from, "")?), to),
            other => return Err(format!("unknown cname rewrite type: {other}")),
        };
        Ok(CnameRule { matcher, to })
    }

    /// The new target for `target` (dotted, lowercase, fully qualified) when the rule matches
    /// it, as the rule writes it.
    pub fn rewrite_target(&self, target: &str) -> Option<String> {
        let to = self.to.as_str();
        match &self.matcher {
            TargetPattern::Exact(from) => (target == from).then(|| to.to_owned()),
            TargetPattern::Prefix(prefix) => target
                .strip_prefix(prefix.as_str())
                .map(|rest| format!("{to}{rest}")),
            TargetPattern::Suffix(suffix) => target
                .strip_suffix(suffix.as_str())
                .map(|head| format!("{head}{to}")),
            TargetPattern::Substring(part) => target
                .contains(part.as_str())
                .then(|| target.replace(part.as_str(), to)),
            TargetPattern::Regex(pattern) => expand(pattern, to, target),
        }
    }
}

/// A CNAME of the answer whose target a rule rewrites.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CnameTarget {
    /// Its index in the answer section.
    pub index: u16,
    /// The new target (wire format, lowercase).
    pub target: WireName,
}

/// The first CNAME in the answer section of `response` whose target one of `rules` rewrites
/// (the rules tried last first, as CoreDNS applies response rules), and its new target.
/// `Some(None)` when none does; `None` when `response` is malformed or the new target is not a
/// domain name.
pub fn find_target(rules: &[&CnameRule], response: &[u8]) -> Option<Option<CnameTarget>> {
    let mut at = HEADER_LEN;
    for _ in 0..read_u16(response, 4)? {
        at = read_name(response, at)?.1 + 4;
    }
    for index in 0..read_u16(response, 6)? {
        at = read_name(response, at)?.1;
        let rtype = read_u16(response, at)?;
        let rdata = at + 10;
        at = rdata + usize::from(read_u16(response, at + 8)?);
        if rtype != TYPE_CNAME {
            continue;
        }
        let target = dotted(&read_name(response, rdata)?.0).to_ascii_lowercase();
        let new = rules.iter().rev().find_map(|r| r.rewrite_target(&target));
        if let Some(new) = new {
            let target = WireName::from_dotted(&new)?;
            return Some(Some(CnameTarget { index, target }));
        }
    }
    Some(None)
}

/// The [`Edit`] that cuts the answer at a rewritten CNAME: the CNAME records before it are
/// kept, it gets its new target, the other answer records are dropped.
pub(super) struct CutAt<'a>(pub &'a CnameTarget);

impl<'a> CutAt<'a> {
    /// Whether the record stays.
    pub(super) fn keep(&self, at: RecordAt) -> bool {
        at.section != Section::Answer || (at.index <= self.0.index && at.rtype == TYPE_CNAME)
    }

    /// The new target, for the value of the CNAME that matched.
    pub(super) fn value(&self, at: RecordAt, role: NameRole) -> Option<&'a WireName> {
        let matched = at.section == Section::Answer && at.index == self.0.index;
        (matched && role == NameRole::Value).then_some(&self.0.target)
    }
}

impl Edit for CutAt<'_> {
    fn keep(&self, at: RecordAt) -> bool {
        CutAt::keep(self, at)
    }

    fn rename(&self, at: RecordAt, name: Vec<u8>, role: NameRole) -> Option<Vec<u8>> {
        Some(match self.value(at, role) {
            Some(target) => target.as_bytes().to_vec(),
            None => name,
        })
    }
}

/// Writes into `out` `response` with its answer cut at the first CNAME `rules` rewrite (see
/// [`find_target`]), and returns what to look up to complete it: the new target, with the
/// type of `response`'s question. `Some(None)` when no CNAME matches (`out` is left empty);
/// `None` when `response` is malformed or the new target is not a name.
pub fn rewrite_target(
    rules: &[&CnameRule],
    response: &[u8],
    out: &mut Vec<u8>,
) -> Option<Option<Lookup>> {
    out.clear();
    let Some(matched) = find_target(rules, response)? else {
        return Some(None);
    };
    let (qname, next) = read_name(response, HEADER_LEN)?;
    let mut question = qname;
    question.extend_from_slice(response.get(next..next + 4)?);
    let id = read_u16(response, 0)?;
    rebuild_with(response, id, &question, out, false, &CutAt(&matched))?;
    Some(Some(Lookup {
        name: matched.target,
        qtype: read_u16(response, next)?,
    }))
}
