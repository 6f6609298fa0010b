//! The `rewrite` directive, read as CoreDNS 1.13's plugin/rewrite/setup.go and its rule
//! constructors read it: one rule per directive, in one of two forms.
//!
//! - On its line: `rewrite [continue|stop] TYPE ARGS...`.
//! - In a block, when the line has fewer than two words after `rewrite` (`rewrite stop {`,
//!   `rewrite continue {`, `rewrite {`, `rewrite name {`): the words of the block's lines are
//!   the rule's words, in order, as if on one line. So a block holds one rule: a `name` rule
//!   and its `answer` options (the form AKS, Gardener and kubespray write), or a `ttl`,
//!   `rcode`... rule. A second `name` line in the block is read as CoreDNS reads it: as an
//!   answer rule with its `answer` left out.
//!
//! A block after a line of two words or more is refused, as CoreDNS refuses it. Every error
//! names the word that is wrong; the messages are CoreDNS's, with what was expected.

use super::*;
use crate::chain::plugins::rewrite::{
    Action, AnswerRewrite, CnameRule, Edns0Action, Edns0Rule, NameRule, Processing, QuestionRule,
    RcodeRule, RegexRewrite, Rule, TtlRule,
};

/// The rule types, for messages.
const TYPES: &str = "name, type, class, edns0, ttl, rcode, cname";
/// The match kinds of `name`, `ttl`, `rcode` and `cname` rules.
const KINDS: [&str; 5] = ["exact", "prefix", "suffix", "substring", "regex"];

/// One `rewrite` directive: its rule.
pub(super) fn rewrite(d: &Directive) -> Result<Rule, CorefileError> {
    let words = words(d)?;
    let Some((&first, rest)) = words.split_first() else {
        return Err(CorefileError::at(
            &d.name,
            format!("rewrite: no rule type specified; one of {TYPES}"),
        ));
    };
    let (mode, kind, args) = match first.text.to_ascii_lowercase().as_str() {
        flow @ ("continue" | "stop") => {
            let Some((&kind, args)) = rest.split_first() else {
                return Err(CorefileError::at(
                    first,
                    format!("rewrite {flow}: {flow} rule must begin with a rule type ({TYPES})"),
                ));
            };
            let mode = match flow {
                "continue" => Processing::Continue,
                _ => Processing::Stop,
            };
            (mode, kind, args)
        }
        _ => (Processing::Stop, first, rest),
    };
    let action = match kind.text.to_ascii_lowercase().as_str() {
        "answer" => {
            return Err(CorefileError::at(
                kind,
                "rewrite: response rewrites must begin with a name rule",
            ))
        }
        "name" => name(kind, args)?,
        "type" => Action::Type(question(kind, args, QuestionRule::types)?),
        "class" => Action::Class(question(kind, args, QuestionRule::classes)?),
        "edns0" => Action::Edns0(edns0(kind, args)?),
        "ttl" => Action::Ttl(ttl(kind, args)?),
        "rcode" => Action::Rcode(rcode(kind, args)?),
        "cname" => Action::Cname(cname(kind, args)?),
        _ => {
            return Err(CorefileError::at(
                kind,
                format!(
                    "rewrite: invalid rule type {:?}; supported: {TYPES}",
                    kind.text
                ),
            ))
        }
    };
    Ok(Rule::new(mode, action))
}

/// The words of the rule: the line's, then, when the line has fewer than two, the block's.
fn words(d: &Directive) -> Result<Vec<&Token>, CorefileError> {
    let mut words: Vec<&Token> = d.args.iter().collect();
    let Some(line) = d.block.first() else {
        return Ok(words);
    };
    if d.args.len() >= 2 {
        return Err(CorefileError::at(
            &line.name,
            "rewrite: a block follows only `rewrite`, `rewrite stop`, `rewrite continue` or a \
             rule type alone (its lines are the rule's words); this rule is on the line already",
        ));
    }
    for line in &d.block {
        if let Some(inner) = line.block.first() {
            return Err(CorefileError::at(
                &inner.name,
                "rewrite: no block inside a rewrite block",
            ));
        }
        words.push(&line.name);
        words.extend(line.args.iter());
    }
    Ok(words)
}

/// An error of a rule of type `rule` at `token`.
fn error(rule: &Token, token: &Token, message: impl std::fmt::Display) -> CorefileError {
    CorefileError::at(token, format!("rewrite {}: {message}", rule.text))
}

/// Where a regex error belongs: TO when it uses groups FROM lacks, else FROM.
fn regex_token<'a>(message: &str, from: &'a Token, to: &'a Token) -> &'a Token {
    match message.contains("subexpressions") {
        true => to,
        false => from,
    }
}

/// Refuses a match kind other than `exact`, `prefix`, `suffix`, `substring` and `regex`.
fn check_kind(rule: &Token, kind: &Token) -> Result<(), CorefileError> {
    match KINDS.contains(&kind.text.to_ascii_lowercase().as_str()) {
        true => Ok(()),
        false => Err(error(
            rule,
            kind,
            format!(
                "{} rule supports only exact, prefix, suffix, substring, and regex name \
                 matching, received: {}",
                rule.text, kind.text
            ),
        )),
    }
}

/// `name [exact|prefix|suffix|substring|regex] FROM TO [answer ...]`: two words are an exact
/// FROM and TO; with more, the first is the match kind (CoreDNS's `newNameRule`).
fn name(rule: &Token, args: &[&Token]) -> Result<Action, CorefileError> {
    let (kind, from, to, answers) = match args {
        [] | [_] => {
            return Err(error(
                rule,
                args.first().copied().unwrap_or(rule),
                "too few arguments for a name rule: [exact|prefix|suffix|substring|regex] \
                 FROM TO [answer ...]",
            ))
        }
        [from, to] => ("exact", *from, *to, &[][..]),
        [kind, from, to, answers @ ..] => {
            check_kind(rule, kind)?;
            (kind.text.as_str(), *from, *to, answers)
        }
    };
    let answers = match answers.is_empty() {
        true => Vec::new(),
        false => answer_rules(rule, kind, answers)?,
    };
    NameRule::new(kind, &from.text, &to.text, answers)
        .map(Action::Name)
        .map_err(|message| error(rule, regex_token(&message, from, to), message))
}

/// The `answer auto`, `answer name FROM TO` and `answer value FROM TO` options after a name
/// rule's FROM TO, `answer` optional after the first (CoreDNS's `parseAnswerRules`).
fn answer_rules(
    rule: &Token,
    kind: &str,
    words: &[&Token],
) -> Result<Vec<AnswerRewrite>, CorefileError> {
    let expected = "`answer auto`, `answer name FROM TO` or `answer value FROM TO`";
    if words.len() < 2 {
        return Err(error(
            rule,
            words[0],
            format!("invalid arguments for {kind} rule: {expected} after FROM TO"),
        ));
    }
    let mut out = Vec::new();
    let mut auto = None;
    let mut explicit_name = None;
    let mut at = 0;
    while let Some(&word) = words.get(at) {
        if at == 0 && word.text != "answer" {
            return Err(error(
                rule,
                word,
                format!(
                    "exceeded the number of arguments for a non-answer rule argument for {kind} \
                     rule: {expected} after FROM TO"
                ),
            ));
        }
        if word.text == "answer" {
            at += 1;
        }
        let Some(&option) = words.get(at) else {
            return Err(error(
                rule,
                word,
                format!("type missing for answer rule for {kind} rule: {expected}"),
            ));
        };
        at += 1;
        match option.text.as_str() {
            "auto" => {
                auto.get_or_insert(option);
                out.push(AnswerRewrite::Auto);
            }
            "name" | "value" => {
                let (Some(&from), Some(&to)) = (words.get(at), words.get(at + 1)) else {
                    return Err(error(
                        rule,
                        option,
                        format!(
                            "{} answer rule for {kind} rule: 2 arguments required",
                            option.text
                        ),
                    ));
                };
                let rewrite = RegexRewrite::new(&from.text, &to.text).map_err(|message| {
                    error(
                        rule,
                        regex_token(&message, from, to),
                        format!("{} answer rule for {kind} rule: {message}", option.text),
                    )
                })?;
                out.push(match option.text.as_str() {
                    "name" => {
                        explicit_name.get_or_insert(option);
                        AnswerRewrite::Name(rewrite)
                    }
                    _ => AnswerRewrite::Value(rewrite),
                });
                at += 2;
            }
            other => {
                return Err(error(
                    rule,
                    option,
                    format!("invalid type {other:?} for answer rule for {kind} rule: {expected}"),
                ))
            }
        }
    }
    if let (Some(_), Some(name)) = (auto, explicit_name) {
        return Err(error(
            rule,
            name,
            "auto name answer rule cannot be combined with explicit name answer rules",
        ));
    }
    Ok(out)
}

/// `type FROM TO` or `class FROM TO`: exactly two mnemonics.
fn question(
    rule: &Token,
    args: &[&Token],
    make: fn(&str, &str) -> Result<QuestionRule, String>,
) -> Result<QuestionRule, CorefileError> {
    let [from, to] = args else {
        return Err(error(
            rule,
            args.get(2).copied().unwrap_or(rule),
            format!(
                "{} rules must have exactly two arguments, FROM TO",
                rule.text
            ),
        ));
    };
    // Check each word alone, so that the error names the one that is wrong.
    make(&from.text, &from.text).map_err(|message| error(rule, from, message))?;
    make(&to.text, &to.text).map_err(|message| error(rule, to, message))?;
    make(&from.text, &to.text).map_err(|message| error(rule, from, message))
}

/// `edns0 local|nsid|subnet set|append|replace|unset ... [revert]` (CoreDNS's `newEdns0Rule`).
fn edns0(rule: &Token, args: &[&Token]) -> Result<Edns0Rule, CorefileError> {
    let [option, action_word, rest @ ..] = args else {
        return Err(error(
            rule,
            args.first().copied().unwrap_or(rule),
            "too few arguments for an EDNS0 rule: local|nsid|subnet set|append|replace|unset ...",
        ));
    };
    let Some(action) = Edns0Action::parse(&action_word.text) else {
        return Err(error(
            rule,
            action_word,
            format!(
                "invalid action: {:?}; expected set, append, replace or unset",
                action_word.text.to_ascii_lowercase()
            ),
        ));
    };
    let kind = option.text.to_ascii_lowercase();
    // `revert` (the response without the option) is what clusterdns always does: the option
    // goes to the upstream only. Accepted as the last word, except after `unset`.
    let rest = match (action, rest.split_last()) {
        (Edns0Action::Unset, _) => rest,
        (_, Some((last, before))) if last.text == "revert" => before,
        _ => rest,
    };
    let extra = |expected: usize, usage: &str| match rest.get(expected) {
        Some(extra) => Err(error(
            rule,
            extra,
            format!("unexpected argument {:?}; {usage}", extra.text),
        )),
        None => Ok(()),
    };
    match kind.as_str() {
        "local" => {
            let usage = match action {
                Edns0Action::Unset => "local unset CODE",
                _ => "local set|append|replace CODE DATA [revert]",
            };
            let needed = usize::from(action != Edns0Action::Unset) + 1;
            if rest.len() < needed {
                return Err(error(
                    rule,
                    action_word,
                    format!("EDNS0 local rules require a code and data: {usage}"),
                ));
            }
            extra(needed, usage)?;
            let data = rest.get(1).map_or("", |d| d.text.as_str());
            Edns0Rule::local(action, &rest[0].text, data).map_err(|message| {
                let token = match message.contains("code") {
                    true => rest[0],
                    false => rest.get(1).copied().unwrap_or(rest[0]),
                };
                error(rule, token, message)
            })
        }
        "nsid" => {
            extra(0, "nsid set|append|replace|unset [revert]")?;
            Ok(Edns0Rule::nsid(action))
        }
        "subnet" => {
            if action == Edns0Action::Unset {
                extra(0, "subnet unset")?;
                return Edns0Rule::subnet(action, "0", "0").map_err(|m| error(rule, option, m));
            }
            let usage = "subnet set|append|replace IPV4-BITS IPV6-BITS [revert]";
            let [v4, v6, ..] = rest else {
                return Err(error(
                    rule,
                    action_word,
                    format!("EDNS0 subnet rules require two prefix lengths: {usage}"),
                ));
            };
            extra(2, usage)?;
            Edns0Rule::subnet(action, &v4.text, &v6.text).map_err(|message| {
                let token = match message.contains("IPv4") {
                    true => v4,
                    false => v6,
                };
                error(rule, token, message)
            })
        }
        _ => Err(error(
            rule,
            option,
            format!(
                "invalid rule type {:?}; expected local, nsid or subnet",
                option.text
            ),
        )),
    }
}

/// `ttl [exact|prefix|suffix|substring|regex] NAME TTL|MIN-MAX` (CoreDNS's `newTTLRule`).
fn ttl(rule: &Token, args: &[&Token]) -> Result<TtlRule, CorefileError> {
    let (kind, name, value) = match args {
        [name, value] => ("exact", *name, *value),
        [kind, name, value] => {
            check_kind(rule, kind)?;
            (kind.text.as_str(), *name, *value)
        }
        _ => {
            return Err(error(
                rule,
                args.get(3).copied().unwrap_or(rule),
                format!(
                    "{} arguments for a ttl rule: [exact|prefix|suffix|substring|regex] NAME \
                     TTL|MIN-MAX",
                    if args.len() > 3 {
                        "too many"
                    } else {
                        "too few"
                    }
                ),
            ))
        }
    };
    TtlRule::new(kind, &name.text, &value.text).map_err(|message| {
        let token = match message.contains("TTL") {
            true => value,
            false => name,
        };
        error(rule, token, message)
    })
}

/// `rcode [exact|prefix|suffix|substring|regex] NAME FROM TO` (CoreDNS's `newRCodeRule`).
fn rcode(rule: &Token, args: &[&Token]) -> Result<RcodeRule, CorefileError> {
    let (kind, name, from, to) =
        match args {
            [name, from, to] => ("exact", *name, *from, *to),
            [kind, name, from, to] => {
                check_kind(rule, kind)?;
                (kind.text.as_str(), *name, *from, *to)
            }
            _ => {
                return Err(error(
                    rule,
                    args.get(4).copied().unwrap_or(rule),
                    format!(
                    "{} arguments for a rcode rule: [exact|prefix|suffix|substring|regex] NAME \
                     FROM TO",
                    if args.len() > 4 { "too many" } else { "too few" }
                ),
                ))
            }
        };
    RcodeRule::new(kind, &name.text, &from.text, &to.text).map_err(|message| {
        let token = if message.contains("matching RCODE") {
            from
        } else if message.contains("replacement RCODE") {
            to
        } else {
            name
        };
        error(rule, token, message)
    })
}

/// `cname [exact|prefix|suffix|substring|regex] FROM TO` (CoreDNS's `newCNAMERule`).
fn cname(rule: &Token, args: &[&Token]) -> Result<CnameRule, CorefileError> {
    let (kind, from, to) =
        match args {
            [from, to] => ("exact", *from, *to),
            [kind, from, to] => (kind.text.as_str(), *from, *to),
            _ => {
                return Err(error(
                    rule,
                    args.get(3).copied().unwrap_or(rule),
                    format!(
                    "{} arguments for a cname rule: [exact|prefix|suffix|substring|regex] FROM TO",
                    if args.len() > 3 { "too many" } else { "too few" }
                ),
                ))
            }
        };
    CnameRule::new(kind, &from.text, &to.text).map_err(|message| {
        let token = match message.contains("unknown cname rewrite type") {
            true => args[0],
            false => from,
        };
        error(rule, token, message)
    })
}

#[cfg(test)]
mod tests;
