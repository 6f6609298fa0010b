//! The response to a rewritten query put back for the client (CoreDNS's reverter.go): the
//! client's question, then the response rules of the rules that applied, the last one first,
//! through [`crate::chain::plugins::message::rebuild_with`]: on each record, a `cname` rule's
//! new target (the answer cut after it), the `name` rules' reverts and the `ttl` rules' bounds;
//! then, once, the `rcode` rules.
//!
//! A `cname` rule is applied before the `name` rules' reverts whatever the order of the rules
//! (CoreDNS interleaves them per record, in reverse rule order; the two differ only when a
//! `name` rule written after the `cname` rule rewrites the same target).

use clusterdns_zone::answer::Query;
use clusterdns_zone::wire::HEADER_LEN;

use super::cname::{find_target, CnameTarget, CutAt};
use super::rcode::rewrite_rcode;
use super::ttl::clamp;
use super::*;
use crate::chain::plugins::message::{rebuild_with, Edit, NameRole, RecordAt};
use std::borrow::Cow;

/// A name to look up to complete a response whose CNAME target a `cname` rule rewrote: the new
/// target, with the type of the question asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup {
    /// The new target.
    pub name: WireName,
    /// The type to ask it for.
    pub qtype: u16,
}

/// What a restored response still needs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// The answer was cut at a rewritten CNAME: its target's answer records belong after it
    /// ([`crate::chain::plugins::message::append_answers`]).
    pub lookup: Option<Lookup>,
}

impl Applied {
    /// Writes into `out` the response to the client's `query` (parsed from `query_packet`)
    /// made from `response`, the response to the rewritten query: the client's ID and
    /// question, the response's flags, and its records as the rules that applied say (the
    /// module docs above). `rules` is the list [`rewrite_request`] was given. `None` when
    /// `response` is malformed, a rule makes a name that is not a domain name, or an rcode
    /// that cannot be written (SERVFAIL, as CoreDNS fails to write the message).
    pub fn restore_response(
        &self,
        rules: &[Rule],
        response: &[u8],
        query: &Query,
        query_packet: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<Restored> {
        let cname_rules: Vec<&CnameRule> = (self.steps.iter())
            .filter_map(|step| match step {
                ResponseStep::Cname(index) => match rules.get(*index).map(Rule::action) {
                    Some(Action::Cname(rule)) => Some(rule),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        let cut = match cname_rules.is_empty() {
            true => None,
            false => find_target(&cname_rules, response)?,
        };
        let edit = Restore {
            applied: self,
            rules,
            cut: cut.as_ref(),
        };
        let question = query_packet.get(HEADER_LEN..query.question_end())?;
        rebuild_with(response, query.id, question, out, false, &edit)?;
        let rcodes: Vec<(u16, u16)> = (self.steps.iter())
            .filter_map(|step| match *step {
                ResponseStep::Rcode { from, to } => Some((from, to)),
                _ => None,
            })
            .collect();
        if !rcodes.is_empty() {
            rewrite_rcode(out, &rcodes)?;
        }
        Some(Restored {
            lookup: cut.map(|cut| Lookup {
                name: cut.target,
                qtype: self.qtype,
            }),
        })
    }

    /// `name` (wire format, as the response spells it) after the `name` rules' response
    /// rewrites, last rule first; unchanged names keep their spelling. `None` when a rule
    /// makes something that is not a domain name.
    fn revert(&self, rules: &[Rule], name: Vec<u8>, role: NameRole) -> Option<Vec<u8>> {
        let steps = || {
            (self.steps.iter()).filter_map(|step| match step {
                ResponseStep::Name {
                    rule,
                    original,
                    rewritten,
                } => match rules.get(*rule).map(Rule::action) {
                    Some(Action::Name(rule)) => Some((rule, original, rewritten)),
                    _ => None,
                },
                _ => None,
            })
        };
        if !steps().any(|(rule, _, _)| rule.rewrites_answers()) {
            return Some(name);
        }
        let before = WireName::from_wire(&name)?.to_dotted();
        let mut current = Cow::Borrowed(before.as_str());
        let steps: Vec<_> = steps().collect();
        for (rule, original, rewritten) in steps.into_iter().rev() {
            if let Some(new) = rule.revert(original, rewritten, &current, role) {
                current = Cow::Owned(new);
            }
        }
        if *current == *before {
            return Some(name);
        }
        Some(WireName::from_dotted(&current)?.as_bytes().to_vec())
    }
}

/// The response rules of an [`Applied`], record by record.
struct Restore<'a> {
    applied: &'a Applied,
    rules: &'a [Rule],
    cut: Option<&'a CnameTarget>,
}

impl Edit for Restore<'_> {
    fn keep(&self, at: RecordAt) -> bool {
        self.cut.is_none_or(|cut| CutAt(cut).keep(at))
    }

    fn rename(&self, at: RecordAt, name: Vec<u8>, role: NameRole) -> Option<Vec<u8>> {
        let name = match self.cut.and_then(|cut| CutAt(cut).value(at, role)) {
            Some(target) => target.as_bytes().to_vec(),
            None => name,
        };
        self.applied.revert(self.rules, name, role)
    }

    fn ttl(&self, _at: RecordAt, ttl: u32) -> u32 {
        (self.applied.steps.iter().rev()).fold(ttl, |ttl, step| match *step {
            ResponseStep::Ttl { min, max } => clamp(ttl, (min, max)),
            _ => ttl,
        })
    }
}
