//! CoreDNS's `rewrite name` rules (plugin/rewrite/name.go, rewrite.go, reverter.go): rewriting
//! the question name before the query goes on down the chain, and putting the response back
//! in terms of the client's question.
//!
//! Names are handled dotted, lowercase and fully qualified, as CoreDNS's `state.Name()`. A
//! rule's FROM and TO are lowercased and get a trailing dot (`plugin.Name.Normalize`), so
//! `prefix foo bar` matches `foo.` at the start of the name, and a `regex` TO gets a trailing
//! dot; a `regex` FROM is used as written.
//!
//! Rules apply in order ([`rewrite_request`]): a rule that matches rewrites the name the next
//! rule sees, and ends the list unless its mode is [`Processing::Continue`] (the default is
//! [`Processing::Stop`]). A name that is no longer a domain name after a rule is a SERVFAIL.
//!
//! The response ([`Rewritten::restore_response`]) gets the client's question back, and each
//! owner name and "value" name (the target of CNAME, DNAME, NS, PTR, MX, SRV and NAPTR, the
//! primary server of SOA) in every section is reverted by the rules that matched, the last one
//! first, each applying its `answer` options in reverse order:
//! - `answer auto`, and always for `exact` rules: a name equal to the rewritten question, or
//!   below it, has that part replaced by the question before the rule (`lb.b.example.` becomes
//!   `lb.a.example.` after `exact a.example. b.example.`). For `suffix` rules, `answer auto`
//!   instead swaps TO back for FROM at the end of any name, on no label boundary.
//! - `answer name FROM TO` (owner names) and `answer value FROM TO` (value names): the whole
//!   name becomes TO when the regex FROM matches, `{N}` standing for group N.
//!
//! Response names are matched lowercased (CoreDNS matches them as spelled, which for names
//! derived from the rewritten question is lowercase anyway); names no rule changes keep their
//! spelling. Two CoreDNS quirks are not reproduced: when only `continue` rules matched and none
//! has response rewrites, CoreDNS leaves the rewritten question in the response (clients reject
//! it; here it is always put back), and an `exact` rule's TO must compile as a regex there.

use std::borrow::Cow;

use clusterdns_zone::answer::Query;
use clusterdns_zone::name::dotted;
use clusterdns_zone::WireName;
use regex::Regex;

use super::message::{rebuild, NameRole};

mod answer;

/// Longest regex CoreDNS compiles (`maxRegexpLen`).
const MAX_REGEX_LEN: usize = 10_000;

/// What happens after a rule matched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Processing {
    /// The last rule applied (`stop`, the default).
    #[default]
    Stop,
    /// The next rules apply to the rewritten name (`continue`).
    Continue,
}

/// How a rule matches the question name (FROM, normalized).
#[derive(Clone, Debug)]
pub enum NameMatch {
    /// The whole name.
    Exact(String),
    /// The start of the name.
    Prefix(String),
    /// The end of the name.
    Suffix(String),
    /// Anywhere in the name (every occurrence is replaced).
    Substring(String),
    /// A regular expression; TO refers to its groups as `{1}`, `{2}`, ...
    Regex(Regex),
}

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

/// One `rewrite [continue|stop] name ...` rule.
#[derive(Clone, Debug)]
pub struct NameRule {
    mode: Processing,
    matcher: NameMatch,
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
        mode: Processing,
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
            "exact" => (NameMatch::Exact(normalize(from)), true),
            "prefix" => (NameMatch::Prefix(normalize(from)), auto),
            "suffix" => (NameMatch::Suffix(normalize(from)), auto),
            "substring" => (NameMatch::Substring(normalize(from)), auto),
            "regex" => (NameMatch::Regex(compile(from, to)?), auto),
            other => {
                return Err(format!(
                    "name rule supports only exact, prefix, suffix, substring, and regex name \
                     matching, received: {other}"
                ))
            }
        };
        Ok(NameRule {
            mode,
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
            NameMatch::Exact(from) => (qname == from).then(|| to.to_owned()),
            NameMatch::Prefix(prefix) => qname
                .strip_prefix(prefix.as_str())
                .map(|r| to.to_owned() + r),
            NameMatch::Suffix(suffix) => {
                (qname.strip_suffix(suffix.as_str())).map(|head| format!("{head}{to}"))
            }
            NameMatch::Substring(part) => qname
                .contains(part.as_str())
                .then(|| qname.replace(part.as_str(), to)),
            NameMatch::Regex(pattern) => expand(pattern, to, qname),
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
    fn rewrites_answers(&self) -> bool {
        self.auto || !self.answers.is_empty()
    }

    /// The explicit `answer` options last first, then the automatic revert (CoreDNS applies a
    /// rule's response rules `[auto name, auto value, options...]` in reverse).
    fn revert(
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
                NameMatch::Suffix(from) => {
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

/// CoreDNS's `plugin.Name(name).Normalize()`: lowercase, with a trailing dot.
fn normalize(name: &str) -> String {
    let mut out = name.to_lowercase();
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// Compiles a FROM regex, checking that TO uses no more groups than it has.
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

/// What the rules did to a question.
#[derive(Debug)]
pub enum RequestRewrite<'r> {
    /// No rule matched: the query goes on as it is.
    Unchanged,
    /// The query goes on with a new name; its response is put back with
    /// [`Rewritten::restore_response`].
    Rewritten(Rewritten<'r>),
    /// A rule made this, which is not a domain name: CoreDNS answers SERVFAIL.
    Invalid(String),
}

/// One rule that matched: the name before and after it.
#[derive(Debug)]
struct Step<'r> {
    rule: &'r NameRule,
    original: String,
    rewritten: String,
}

/// A question rewritten by one or more rules.
#[derive(Debug)]
pub struct Rewritten<'r> {
    qname: WireName,
    steps: Vec<Step<'r>>,
}

/// Applies `rules` in order to the question name `qname` (lowercase wire format).
pub fn rewrite_request<'r>(rules: &'r [NameRule], qname: &[u8]) -> RequestRewrite<'r> {
    let mut current = dotted(qname);
    let mut steps = Vec::new();
    let mut wire = None;
    for rule in rules {
        let Some(next) = rule.rewrite_question(&current) else {
            continue;
        };
        let Some(name) = WireName::from_dotted(&next) else {
            return RequestRewrite::Invalid(next);
        };
        wire = Some(name);
        let original = std::mem::replace(&mut current, next.clone());
        steps.push(Step {
            rule,
            original,
            rewritten: next,
        });
        if rule.mode == Processing::Stop {
            break;
        }
    }
    match wire {
        Some(qname) => RequestRewrite::Rewritten(Rewritten { qname, steps }),
        None => RequestRewrite::Unchanged,
    }
}

#[cfg(test)]
mod tests;
