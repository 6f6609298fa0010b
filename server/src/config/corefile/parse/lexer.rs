//! The Corefile lexer: text to tokens (words, braces), with comments, quotes and
//! environment references resolved, each token knowing its file and line.

use super::*;

/// What a word is to the grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Word,
    Open,
    Close,
}

/// A token as the lexer read it.
#[derive(Clone, Debug)]
pub(super) struct Lexeme {
    /// The word and where it was read.
    pub(super) token: Token,
    /// What the word is to the grammar.
    pub(super) kind: Kind,
    /// Whether no earlier token of its source ends on its line.
    pub(super) line_start: bool,
}

/// The tokens of `text`, read from `file`.
pub(super) fn lex(file: &Arc<Path>, text: &str, env: Env) -> Result<Vec<Lexeme>, CorefileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut chars = text.chars().peekable();
    let mut line: u32 = 1;
    let mut previous_end: Option<u32> = None;
    let mut lexemes = Vec::new();
    while let Some(first) = chars.next() {
        match first {
            '\n' => line = line.saturating_add(1),
            '#' => while chars.next_if(|&c| c != '\n').is_some() {},
            c if c.is_whitespace() => {}
            _ => {
                let start = line;
                let (raw, kind) = if first == '"' {
                    let word = quoted_word(&mut chars, &mut line).ok_or_else(|| CorefileError {
                        file: file.to_path_buf(),
                        line: start,
                        message:
                            "unterminated quoted word: no closing '\"' before the end of the file"
                                .to_owned(),
                    })?;
                    (word, Kind::Word)
                } else {
                    let word = bare_word(first, &mut chars);
                    let kind = match word.as_str() {
                        "{" => Kind::Open,
                        "}" => Kind::Close,
                        _ => Kind::Word,
                    };
                    (word, kind)
                };
                lexemes.push(Lexeme {
                    token: Token {
                        text: substitute_env(&raw, env),
                        at: Position {
                            file: file.clone(),
                            line: start,
                        },
                    },
                    kind,
                    line_start: previous_end.is_none_or(|end| start > end),
                });
                previous_end = Some(line);
            }
        }
    }
    Ok(lexemes)
}

/// An unquoted word from `first` up to whitespace or `#`; a `\r` inside is dropped, as Caddy does.
pub(super) fn bare_word(first: char, chars: &mut Peekable<Chars>) -> String {
    let mut word = String::from(first);
    while let Some(c) = chars.next_if(|&c| c == '\r' || !(c.is_whitespace() || c == '#')) {
        if c != '\r' {
            word.push(c);
        }
    }
    word
}

/// A quoted word after its opening `"`, counting the newlines it spans; `None` if unterminated.
pub(super) fn quoted_word(chars: &mut Peekable<Chars>, line: &mut u32) -> Option<String> {
    let mut word = String::new();
    let mut escaped = false;
    for c in chars.by_ref() {
        if !escaped {
            match c {
                '\\' => {
                    escaped = true;
                    continue;
                }
                '"' => return Some(word),
                _ => {}
            }
        }
        if c == '\n' {
            *line = line.saturating_add(1);
        }
        if escaped && c != '"' {
            word.push('\\');
        }
        word.push(c);
        escaped = false;
    }
    None
}

/// `raw` with `{%NAME%}`, then `{$NAME}`, replaced by the variables' values.
pub(super) fn substitute_env(raw: &str, env: Env) -> String {
    if !raw.contains('{') {
        return raw.to_owned();
    }
    let windows_style = replace_references(raw, "{%", "%}", env);
    replace_references(&windows_style, "{$", "}", env)
}

/// `text` with each `open NAME close` replaced by NAME's value; like Caddy, an empty name
/// (`{$}`) stops the replacing.
pub(super) fn replace_references(text: &str, open: &str, close: &str, env: Env) -> String {
    let mut replaced = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(open) {
        let Some(end) = rest[start..].find(close).map(|end| start + end) else {
            break;
        };
        if end <= start + open.len() {
            break;
        }
        replaced.push_str(&rest[..start]);
        replaced.push_str(&env(&rest[start + open.len()..end]).unwrap_or_default());
        rest = &rest[end + close.len()..];
    }
    replaced.push_str(rest);
    replaced
}
