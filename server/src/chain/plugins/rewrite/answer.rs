//! Rewriting the answer back: the question restored to the name the client asked, and the
//! owner names and RDATA names of the records renamed as the rule says (`answer auto`,
//! `answer name`, `answer value`), through [`crate::chain::plugins::message::rebuild`].

use super::*;

impl Rewritten<'_> {
    /// The name to ask instead (lowercase wire format).
    pub fn qname(&self) -> &WireName {
        &self.qname
    }

    /// Writes into `out` the response to the client's `query` (parsed from `query_packet`)
    /// made from `response`, the response to the rewritten query: the client's ID and question,
    /// the response's flags, and its records with their names reverted (see the module docs).
    /// `None` when `response` is malformed or a rule makes a name that is not a domain name
    /// (SERVFAIL, as CoreDNS fails to pack it).
    pub fn restore_response(
        &self,
        response: &[u8],
        query: &Query,
        query_packet: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<()> {
        rebuild(response, query, query_packet, out, false, &|name, role| {
            self.revert(name, role)
        })
    }

    /// `name` (wire format, as the response spells it) after the matched rules' response
    /// rewrites, last rule first; unchanged names keep their spelling. `None` when a rule
    /// makes something that is not a domain name.
    pub(super) fn revert(&self, name: Vec<u8>, target: NameRole) -> Option<Vec<u8>> {
        if !self.steps.iter().any(|step| step.rule.rewrites_answers()) {
            return Some(name);
        }
        let before = WireName::from_wire(&name)?.to_dotted();
        let mut current = Cow::Borrowed(before.as_str());
        for step in self.steps.iter().rev() {
            let new = (step.rule).revert(&step.original, &step.rewritten, &current, target);
            if let Some(new) = new {
                current = Cow::Owned(new);
            }
        }
        if *current == *before {
            return Some(name);
        }
        Some(WireName::from_dotted(&current)?.as_bytes().to_vec())
    }
}
