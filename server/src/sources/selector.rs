//! Kubernetes label selectors (CoreDNS `kubernetes { labels }` and `namespace_labels`): the
//! text grammar the API server's `labelSelector` parameter and `kubectl -l` take, parsed once
//! when the configuration is read, matched against an object's labels when a manifest is
//! read, and written back canonically for the API's list and watch requests.
//!
//! The grammar (apimachinery's `labels.Parse`): requirements separated by `,`, each one of
//!
//! | text | matches when |
//! | --- | --- |
//! | `key=value`, `key==value` | the label is there with that value |
//! | `key!=value` | the label is missing or has another value |
//! | `key in (v1,v2)` | the label is there with one of the values |
//! | `key notin (v1,v2)` | the label is missing or has none of the values |
//! | `key` | the label is there |
//! | `!key` | the label is missing |
//!
//! Spaces between words are ignored; a value may be empty (`key=`, `key in (,a)`). A key is a
//! qualified name (`[prefix/]name`: the prefix a DNS subdomain, the name 1 to 63 letters,
//! digits, `-`, `_` and `.`, starting and ending with a letter or digit); a value is at most
//! 63 of the same, empty or starting and ending alike. The empty selector matches everything.
//!
//! CoreDNS parses with `ParseToLabelSelector`, which also refuses `>` and `<` (as here), and
//! `!=`, which kubectl and the API server take; clusterdns takes `!=` too (as `notin` of one
//! value), so every Corefile CoreDNS takes is taken.

use std::collections::BTreeMap;
use std::fmt;

/// A parsed label selector: every requirement must hold (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// The requirements, sorted by key (stable: the order written among one key's).
    requirements: Vec<Requirement>,
}

/// One requirement on one label.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Requirement {
    key: String,
    operator: Operator,
    /// Sorted and distinct; one or more for `In` and `NotIn`, none otherwise.
    values: Vec<String>,
}

/// What a requirement asks of its label (`=`/`==` are `In` one value, `!=` is `NotIn` one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// Why a selector's text is not one, quoting what was found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(String);

impl LabelSelector {
    /// Parses `text` (see the module docs).
    pub fn parse(text: &str) -> Result<LabelSelector, SelectorError> {
        let tokens = lex(text);
        let mut parser = Parser { tokens, at: 0 };
        let mut requirements = parser.requirements()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// Whether the selector has no requirement, and so matches every object.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object whose label `key` is `label(key)` matches.
    pub fn matches<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements.iter().all(|requirement| {
            let value = label(&requirement.key);
            let listed = || value.is_some_and(|v| requirement.values.iter().any(|x| x == v));
            match requirement.operator {
                Operator::In => listed(),
                Operator::NotIn => !listed(),
                Operator::Exists => value.is_some(),
                Operator::DoesNotExist => value.is_none(),
            }
        })
    }

    /// Whether an object with `labels` (`metadata.labels`, `None` when it has none) matches.
    pub fn matches_labels(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        self.matches(|key| labels.and_then(|l| l.get(key)).map(String::as_str))
    }
}

/// The canonical text, as the API server reads it: requirements by key, values sorted
/// (`application=nginx,environment in (production,qa,staging)`).
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let key = &requirement.key;
            let values = requirement.values.join(",");
            match (requirement.operator, requirement.values.len()) {
                (Operator::In, 1) => write!(f, "{key}={values}")?,
                (Operator::NotIn, 1) => write!(f, "{key}!={values}")?,
                (Operator::In, _) => write!(f, "{key} in ({values})")?,
                (Operator::NotIn, _) => write!(f, "{key} notin ({values})")?,
                (Operator::Exists, _) => write!(f, "{key}")?,
                (Operator::DoesNotExist, _) => write!(f, "!{key}")?,
            }
        }
        Ok(())
    }
}

/// A word of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// A key or a value (`in` and `notin` included: which they are depends on the place).
    Word(String),
    Bang,
    Equals,
    DoubleEquals,
    NotEquals,
    Greater,
    Less,
    Open,
    Close,
    Comma,
}

impl Token {
    /// The token as written, for messages.
    fn text(&self) -> &str {
        match self {
            Token::Word(word) => word,
            Token::Bang => "!",
            Token::Equals => "=",
            Token::DoubleEquals => "==",
            Token::NotEquals => "!=",
            Token::Greater => ">",
            Token::Less => "<",
            Token::Open => "(",
            Token::Close => ")",
            Token::Comma => ",",
        }
    }
}

/// The tokens of `text`: whitespace separates, and each of `!=(),<>` ends a word.
fn lex(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let token = match c {
            c if c.is_whitespace() => continue,
            '!' if chars.peek() == Some(&'=') => {
                chars.next();
                Token::NotEquals
            }
            '!' => Token::Bang,
            '=' if chars.peek() == Some(&'=') => {
                chars.next();
                Token::DoubleEquals
            }
            '=' => Token::Equals,
            '>' => Token::Greater,
            '<' => Token::Less,
            '(' => Token::Open,
            ')' => Token::Close,
            ',' => Token::Comma,
            first => {
                let mut word = String::from(first);
                while let Some(&next) = chars.peek() {
                    if next.is_whitespace() || "!=<>(),".contains(next) {
                        break;
                    }
                    word.push(next);
                    chars.next();
                }
                Token::Word(word)
            }
        };
        tokens.push(token);
    }
    tokens
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

fn error(message: impl Into<String>) -> SelectorError {
    SelectorError(message.into())
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += usize::from(token.is_some());
        token
    }

    /// `found 'X'` for a message, `end of string` at the end.
    fn found(token: Option<&Token>) -> String {
        match token {
            Some(token) => format!("found '{}'", token.text()),
            None => "found end of string".to_owned(),
        }
    }

    fn requirements(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut out = Vec::new();
        if self.peek().is_none() {
            return Ok(out);
        }
        loop {
            out.push(self.requirement()?);
            match self.next() {
                None => return Ok(out),
                Some(Token::Comma) if self.peek().is_some() => {}
                Some(Token::Comma) => {
                    return Err(error(
                        "found end of string, expected: a requirement after ','",
                    ))
                }
                other => {
                    return Err(error(format!(
                        "{}, expected: ',' or end of string",
                        Self::found(other.as_ref())
                    )))
                }
            }
        }
    }

    /// A key (`in` and `notin` may be keys: only after a key are they operators).
    fn key(&mut self) -> Result<String, SelectorError> {
        match self.next() {
            Some(Token::Word(word)) => {
                check_key(&word)?;
                Ok(word)
            }
            other => Err(error(format!(
                "{}, expected: a label key",
                Self::found(other.as_ref())
            ))),
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        if self.peek() == Some(&Token::Bang) {
            self.next();
            let key = self.key()?;
            return match self.peek() {
                None | Some(Token::Comma) => Ok(Requirement {
                    key,
                    operator: Operator::DoesNotExist,
                    values: Vec::new(),
                }),
                other => Err(error(format!(
                    "{}, expected: ',' or end of string after '!{key}'",
                    Self::found(other)
                ))),
            };
        }
        let key = self.key()?;
        let (operator, values) = match self.peek() {
            None | Some(Token::Comma) => (Operator::Exists, Vec::new()),
            Some(Token::Word(word)) if word == "in" || word == "notin" => {
                let operator = if word == "in" {
                    Operator::In
                } else {
                    Operator::NotIn
                };
                self.next();
                (operator, self.set()?)
            }
            Some(Token::Equals | Token::DoubleEquals) => {
                self.next();
                (Operator::In, vec![self.exact()?])
            }
            Some(Token::NotEquals) => {
                self.next();
                (Operator::NotIn, vec![self.exact()?])
            }
            Some(token @ (Token::Greater | Token::Less)) => {
                return Err(error(format!(
                    "'{}' isn't supported in label selectors",
                    token.text()
                )))
            }
            other => {
                return Err(error(format!(
                    "{}, expected: in, notin, =, ==, !=",
                    Self::found(other)
                )))
            }
        };
        for value in &values {
            check_value(value)?;
        }
        let mut values = values;
        values.sort();
        values.dedup();
        Ok(Requirement {
            key,
            operator,
            values,
        })
    }

    /// The value after `=`, `==` or `!=`: a word, or empty before `,` or the end.
    fn exact(&mut self) -> Result<String, SelectorError> {
        match self.peek() {
            None | Some(Token::Comma) => Ok(String::new()),
            Some(Token::Word(word)) => {
                let word = word.clone();
                self.at += 1;
                Ok(word)
            }
            other => Err(error(format!(
                "{}, expected: a label value",
                Self::found(other)
            ))),
        }
    }

    /// `(v1,v2)`: words and commas up to `)`; an empty place between them is the empty value
    /// (`()` is the empty value alone), as the API server reads it.
    fn set(&mut self) -> Result<Vec<String>, SelectorError> {
        match self.next() {
            Some(Token::Open) => {}
            other => {
                return Err(error(format!(
                    "{}, expected: '('",
                    Self::found(other.as_ref())
                )))
            }
        }
        let mut values = Vec::new();
        // Whether a value may come next (after '(' or ','), else ',' or ')' must.
        let mut want_value = true;
        loop {
            match self.next() {
                Some(Token::Word(word)) if want_value => {
                    values.push(word);
                    want_value = false;
                }
                Some(Token::Comma) => {
                    if want_value {
                        values.push(String::new());
                    }
                    want_value = true;
                }
                Some(Token::Close) => {
                    if want_value {
                        values.push(String::new());
                    }
                    return Ok(values);
                }
                other => {
                    return Err(error(format!(
                        "{}, expected: ',' or ')' in a set of values",
                        Self::found(other.as_ref())
                    )))
                }
            }
        }
    }
}

/// Letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit, at most 63
/// (a label's name and a label value); `what` names it in the message.
fn check_name(text: &str, what: &str) -> Result<(), SelectorError> {
    let bytes = text.as_bytes();
    let inner = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    let valid = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(inner)
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric();
    if valid {
        Ok(())
    } else {
        Err(error(format!(
            "{what} {text:?}: at most 63 letters, digits, '-', '_' or '.', starting and \
             ending with a letter or digit"
        )))
    }
}

/// A label key: `[prefix/]name`, the prefix a lowercase DNS subdomain of at most 253.
fn check_key(key: &str) -> Result<(), SelectorError> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            let valid = !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|label| {
                    let bytes = label.as_bytes();
                    !bytes.is_empty()
                        && bytes.len() <= 63
                        && bytes
                            .iter()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
                        && bytes[0] != b'-'
                        && bytes[bytes.len() - 1] != b'-'
                });
            if !valid {
                return Err(error(format!(
                    "label key {key:?}: the prefix {prefix:?} is not a lowercase DNS subdomain"
                )));
            }
            name
        }
        None => key,
    };
    check_name(name, "label key")
}

/// A label value: empty, or as a key's name.
fn check_value(value: &str) -> Result<(), SelectorError> {
    if value.is_empty() {
        return Ok(());
    }
    check_name(value, "label value")
}

#[cfg(test)]
mod tests;
