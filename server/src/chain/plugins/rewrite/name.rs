//! `rewrite name` (CoreDNS's plugin/rewrite/name.go): the question name rewritten by an exact,
//! prefix, suffix, substring or regex match, and the names of the response put back.
//!
//! A regex FROM is used as written; its TO, and every other FROM and TO, is normalized (see
//! the module above). The response's names are reverted by the rules that applied, the last
//! one first, each applying its `answer` options in reverse order:
//! - `answer auto`, and always for `exact` rules: a name equal to the rewritten question, or
//!   below it, has that part replaced by the question before the rule (`lb.b.example.` becomes
//!   `lb.a.example.` after `exact a.example. b.example.`). For `suffix` rules, `answer auto`
//!   instead swaps TO back for FROM at the end of any name, on no label boundary.
//! - `answer name FROM TO` (owner names) and `answer value FROM TO` (value names: the target of
//!   CNAME, DNAME, NS, PTR, MX, SRV and NAPTR, the primary server of SOA): the whole name
//!   becomes TO when the regex FROM matches, `{N}` standing for group N.
//!
//! Response names are matched lowercased (CoreDNS matches them as spelled, which for names
//! derived from the rewritten question is lowercase anyway); names no rule changes keep their
//! spelling. CoreDNS's check that an `exact` rule's TO compiles as a regex is not reproduced.

use std::borrow::Cow;

use regex::Regex;

use super::{compile, expand, normalize, Matcher};
use crate::chain::plugins::message::NameRole;

/// A regex and what a matching name becomes (`answer name|value FROM TO`).
#[derive(Clone, Debug)]
pub struct RegexRewrite {
    pattern: Regex,
    replacement: String,
}

impl RegexRewrite {
    /// Compiles FROM and normalizes TO; an error says what is wrong with them.
    pub fn new(from: &str, to: &str) -> Result<Self, String> {
        Ok(RegexRewrite {
            pattern: compile(from, to)?,
            replacement: normalize(to),
        })
    }
}

/// One `answer` option of a rule.
#[derive(Clone, Debug)]
pub enum AnswerRewrite {
    /// `answer auto`: revert the question's rewrite in the response.
    Auto,
    /// `answer name FROM TO`: rewrite owner names.
    Name(RegexRewrite),
    /// `answer value FROM TO`: rewrite the names records point to.
    Value(RegexRewrite),
}

/// One `rewrite name ...` rule.
#[derive(Clone, Debug)]
pub struct NameRule {
    matcher: Matcher,
    to: String,
    /// Whether the rule reverts its own rewrite in responses.
    auto: bool,
    /// The `answer name` and `answer value` options, in order.
    answers: Vec<AnswerRewrite>,
}

impl NameRule {
    /// A rule of match `kind` (`exact`, `prefix`, `suffix`, `substring` or `regex`, any case)
    /// rewriting FROM to TO, with its `answer` options. Errors, with CoreDNS's reasons: an
    /// unknown kind, a bad or too long regex, a TO using more groups than FROM has, and `answer
    /// auto` together with `answer name`.
    pub fn new(
        kind: &str,
        from: &str,
        to: &str,
        answers: Vec<AnswerRewrite>,
    ) -> Result<Self, String> {
        let is_auto = |a: &AnswerRewrite| matches!(a, AnswerRewrite::Auto);
        let auto = answers.iter().any(is_auto);
        if auto && (answers.iter()).any(|a| matches!(a, AnswerRewrite::Name(_))) {
            return Err(
                "auto name answer rule cannot be combined with explicit name answer rules".into(),
            );
        }
        let answers = answers.into_iter().filter(|a| !is_auto(a)).collect();
        let (matcher, auto) = match kind.to_ascii_lowercase().as_str() {
            // Exact rules always revert their rewrite.
            "exact" => (Matcher::Exact(normalize(from)), true),
            "regex" => (Matcher::Regex(compile(from, to)?), auto),
            _ => (Matcher::new("name", kind, from)?, auto),
        };
        Ok(NameRule {
            matcher,
            to: normalize(to),
            auto,
            answers,
        })
    }

    /// The question name (dotted, lowercase, fully qualified) this rule rewrites `qname` to,
    /// when it matches.
    pub fn rewrite_question(&self, qname: &str) -> Option<String> {
        let to = self.to.as_str();
        match &self.matcher {
            Matcher::Exact(from) => (qname == from).then(|| to.to_owned()),
            Matcher::Prefix(prefix) => qname
                .strip_prefix(prefix.as_str())
                .map(|r| to.to_owned() + r),
            Matcher::Suffix(suffix) => {
                (qname.strip_suffix(suffix.as_str())).map(|head| format!("{head}{to}"))
            }
            Matcher::Substring(part) => qname
                .contains(part.as_str())
                .then(|| qname.replace(part.as_str(), to)),
            Matcher::Regex(pattern) => expand(pattern, to, qname),
        }
    }

    /// What an owner name in the response becomes after this rule rewrote the question from
    /// `original` to `rewritten`; `None` when it stays (all dotted, lowercase).
    pub fn rewrite_answer_name(
        &self,
        original: &str,
        rewritten: &str,
        owner: &str,
    ) -> Option<String> {
        self.revert(original, rewritten, owner, NameRole::Owner)
    }

    /// What a value name (a CNAME target, ...) in the response becomes, as
    /// [`rewrite_answer_name`](Self::rewrite_answer_name) for owner names.
    pub fn rewrite_answer_value(
        &self,
        original: &str,
        rewritten: &str,
        value: &str,
    ) -> Option<String> {
        self.revert(original, rewritten, value, NameRole::Value)
    }

    /// Whether the rule changes names in responses at all.
    pub(super) fn rewrites_answers(&self) -> bool {
        self.auto || !self.answers.is_empty()
    }

    /// The explicit `answer` options last first, then the automatic revert (CoreDNS applies a
    /// rule's response rules `[auto name, auto value, options...]` in reverse).
    pub(super) fn revert(
        &self,
        original: &str,
        rewritten: &str,
        name: &str,
        target: NameRole,
    ) -> Option<String> {
        let mut current = Cow::Borrowed(name);
        for answer in self.answers.iter().rev() {
            let rule = match (answer, target) {
                (AnswerRewrite::Name(rule), NameRole::Owner) => rule,
                (AnswerRewrite::Value(rule), NameRole::Value) => rule,
                _ => continue,
            };
            if let Some(new) = expand(&rule.pattern, &rule.replacement, &current) {
                current = Cow::Owned(new);
            }
        }
        if self.auto {
            let reverted = match &self.matcher {
                Matcher::Suffix(from) => {
                    (current.strip_suffix(self.to.as_str())).map(|head| format!("{head}{from}"))
                }
                _ => remap(&current, rewritten, original),
            };
            if let Some(new) = reverted {
                current = Cow::Owned(new);
            }
        }
        (*current != *name).then(|| current.into_owned())
    }
}

/// `name` with `from`, when it is `name` or its label-aligned end, replaced by `to` (CoreDNS's
/// `remapStringRewriter`).
fn remap(name: &str, from: &str, to: &str) -> Option<String> {
    if name == from {
        return Some(to.to_owned());
    }
    (name.strip_suffix(from))
        .filter(|head| head.ends_with('.'))
        .map(|head| format!("{head}{to}"))
}
