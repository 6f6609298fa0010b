//! Corefile text → [`Corefile`], with CoreDNS 1.13's grammar (its fork of Caddy v1's
//! caddyfile lexer and parser, plus the server-block key rules of CoreDNS's `dnsserver`).
//!
//! - Words are separated by whitespace; a newline ends a line. `#` outside quotes starts a
//!   comment to the end of the line, also in the middle of a word (`a#b` is `a`). A `"`
//!   at the start of a word quotes it up to the next unescaped `"`: spaces and newlines are
//!   kept, `\"` is a quote, any other `\` stays. A quoted word is never a brace.
//! - `{%NAME%}`, then `{$NAME}`, in a word become the variable's value (empty when unset);
//!   the word stays one word whatever the value holds, and a `{$NAME}` value is not expanded.
//! - A server block is keys (`[dns://]zone[:port]`, by spaces, or by a trailing comma that
//!   continues the list onto the next line), then `{` ending its line, directive lines, `}`.
//!   Without `{` the rest of the file is the block's lines. A line is `name args...`, ending
//!   in `{` when option lines follow up to a `}` on its own line.
//! - `(name) { ... }` at the top defines a snippet. A line `import X` pastes snippet `X`, or
//!   the files pattern `X` names (relative to the file the line is in; at most one `*` and
//!   one `?`, no `[...]`, as CoreDNS allows). A pattern with a wildcard may match nothing; a
//!   plain path must exist. Snippet recursion and import cycles are errors.
//! - A zone is lowercased and fully qualified; a CIDR gives its reverse zones, split on
//!   octet (IPv4) or nibble (IPv6) boundaries as CoreDNS does. The same zone and port in two
//!   keys is an error, except in blocks with `bind` or `view`, where the listen addresses or
//!   the view decide (CoreDNS allows those overlaps; their reader checks them).
//!
//! Stricter than CoreDNS: a zone may hold only letters, digits, `-` and `_`; a `,` inside a
//! key, an unterminated quote and anything after a block's `{` or an option block's `}` on
//! the same line are errors, where CoreDNS would read something nobody meant.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::iter::Peekable;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::str::Chars;
use std::sync::Arc;

/// Where a token was read: the file (after imports, the imported file) and its 1-based line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    /// The file the token was read from.
    pub file: Arc<Path>,
    /// The line the token starts on, from 1.
    pub line: u32,
}

/// One word of the file, after quote removal and {$ENV} substitution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The word.
    pub text: String,
    /// Where the word was read.
    pub at: Position,
}

/// A directive line, or an option line inside a directive's block: `name args... [{ lines }]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    /// The first word of the line.
    pub name: Token,
    /// The other words of the line, without a block's `{`.
    pub args: Vec<Token>,
    /// The lines between `{` and `}`; empty without a block.
    pub block: Vec<Directive>,
}

/// One zone:port a server block is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockKey {
    /// The key as written (without the comma that continued a list).
    pub token: Token,
    /// Lowercase, fully qualified zones ("." for the root); a CIDR gives its reverse zone(s).
    pub zones: Vec<String>,
    /// The port, 53 unless given.
    pub port: u16,
}

/// One server block: its keys and its directives in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerBlock {
    /// The zones and ports the block serves, in the order written.
    pub keys: Vec<BlockKey>,
    /// The directive lines, imports and snippets pasted in.
    pub directives: Vec<Directive>,
}

/// A parsed Corefile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corefile {
    /// The server blocks in file order (snippet definitions are not blocks).
    pub blocks: Vec<ServerBlock>,
    /// The Corefile and every file imported, each once, for the reload watcher.
    pub files: Vec<PathBuf>,
}

/// Why a Corefile cannot be read: always names file:line and the offending token.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct CorefileError {
    /// The file the error is in.
    pub file: PathBuf,
    /// The line of the offending token; 0 when the file as a whole could not be read.
    pub line: u32,
    /// What is wrong, quoting the token.
    pub message: String,
}

impl CorefileError {
    /// An error at a token.
    pub fn at(token: &Token, message: impl Into<String>) -> Self {
        Self {
            file: token.at.file.to_path_buf(),
            line: token.at.line,
            message: message.into(),
        }
    }
}

/// Reads and parses the Corefile at `path` (imports relative to its directory), with `env` for {$VAR} substitution.
pub fn read(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Corefile, CorefileError> {
    let text = read_text(path).map_err(|(line, message)| CorefileError {
        file: path.to_path_buf(),
        line,
        message: format!("cannot read the Corefile: {message}"),
    })?;
    parse(path, &text, env)
}

/// Parses Corefile text as if read from `path` (imports resolved relative to path's directory).
pub fn parse(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Corefile, CorefileError> {
    let lexemes = lex(&Arc::from(path), text, env)?;
    let mut parser = Parser {
        env,
        sources: Vec::new(),
        snippets: HashMap::new(),
        files: vec![path.to_path_buf()],
        spliced: 0,
    };
    parser.push(lexemes, vec![Origin::File(identity(path))]);
    let blocks = parser.server_blocks()?;
    check_duplicates(&blocks)?;
    Ok(Corefile {
        blocks,
        files: parser.files,
    })
}

/// The port of a key that names none.
const DEFAULT_PORT: u16 = 53;
/// How deep blocks may nest inside a server block (deeper input is an error, not a stack overflow).
const MAX_DEPTH: usize = 64;
/// How deep imports (of files and snippets) may nest.
const MAX_IMPORT_DEPTH: usize = 100;
/// How many words imports and snippets may paste in all (snippets importing each other twice
/// per level would otherwise grow exponentially).
const MAX_SPLICED: usize = 1_000_000;
/// Directives whose blocks may share a zone and port with other blocks (see the module doc).
const OVERLAP_DIRECTIVES: [&str; 2] = ["bind", "view"];

/// The environment lookup `{$NAME}` uses.
type Env<'e> = &'e dyn Fn(&str) -> Option<String>;

/// A file's text, or the line (0: the whole file) and reason it cannot be had.
fn read_text(path: &Path) -> Result<String, (u32, String)> {
    let bytes = std::fs::read(path).map_err(|error| (0, error.to_string()))?;
    String::from_utf8(bytes).map_err(|error| {
        let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
        let newlines = valid.iter().filter(|&&byte| byte == b'\n').count();
        let line = u32::try_from(newlines)
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        (line, "not UTF-8 text".to_owned())
    })
}

/// What a word is to the grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Word,
    Open,
    Close,
}

/// A token as the lexer read it.
#[derive(Clone, Debug)]
struct Lexeme {
    token: Token,
    kind: Kind,
    /// Whether no earlier token of its source ends on its line.
    line_start: bool,
}

/// The tokens of `text`, read from `file`.
fn lex(file: &Arc<Path>, text: &str, env: Env) -> Result<Vec<Lexeme>, CorefileError> {
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
fn bare_word(first: char, chars: &mut Peekable<Chars>) -> String {
    let mut word = String::from(first);
    while let Some(c) = chars.next_if(|&c| c == '\r' || !(c.is_whitespace() || c == '#')) {
        if c != '\r' {
            word.push(c);
        }
    }
    word
}

/// A quoted word after its opening `"`, counting the newlines it spans; `None` if unterminated.
fn quoted_word(chars: &mut Peekable<Chars>, line: &mut u32) -> Option<String> {
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
fn substitute_env(raw: &str, env: Env) -> String {
    if !raw.contains('{') {
        return raw.to_owned();
    }
    let windows_style = replace_references(raw, "{%", "%}", env);
    replace_references(&windows_style, "{$", "}", env)
}

/// `text` with each `open NAME close` replaced by NAME's value; like Caddy, an empty name
/// (`{$}`) stops the replacing.
fn replace_references(text: &str, open: &str, close: &str, env: Env) -> String {
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

/// What a stream of tokens was pasted from, for finding import cycles.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Origin {
    /// A file, by its canonical path.
    File(PathBuf),
    /// A snippet, by name.
    Snippet(String),
}

/// The file or snippet tokens are being read from.
struct Source {
    /// The tokens not yet read, the next one last.
    pending: Vec<Lexeme>,
    /// Whether a token was read (the first one starts a line wherever it was written).
    started: bool,
    /// The files and snippets this one was pasted into, outermost first, itself last.
    ancestry: Vec<Origin>,
}

/// An imported file's tokens and the ancestry they are pasted with.
type Imported = (Vec<Lexeme>, Vec<Origin>);

/// A snippet definition.
struct Snippet {
    body: Vec<Lexeme>,
    at: Position,
}

/// The token stream (a stack of files and snippets being read) and what reading it defined.
struct Parser<'e> {
    env: Env<'e>,
    sources: Vec<Source>,
    snippets: HashMap<String, Snippet>,
    files: Vec<PathBuf>,
    /// Tokens pasted by imports so far.
    spliced: usize,
}

impl Parser<'_> {
    /// Pastes `lexemes` in before the rest of the stream.
    fn push(&mut self, mut lexemes: Vec<Lexeme>, ancestry: Vec<Origin>) {
        lexemes.reverse();
        self.sources.push(Source {
            pending: lexemes,
            started: false,
            ancestry,
        });
    }

    /// Drops the sources read to the end.
    fn drop_finished(&mut self) {
        while self
            .sources
            .last()
            .is_some_and(|source| source.pending.is_empty())
        {
            self.sources.pop();
        }
    }

    /// The next token and whether it starts a line, as written (no import expanded).
    fn peek_raw(&mut self) -> Option<(&Lexeme, bool)> {
        self.drop_finished();
        let source = self.sources.last()?;
        let lexeme = source.pending.last()?;
        Some((lexeme, lexeme.line_start || !source.started))
    }

    /// Takes the next token as written, its `line_start` saying whether it starts a line here.
    fn next_raw(&mut self) -> Option<Lexeme> {
        self.drop_finished();
        let source = self.sources.last_mut()?;
        let mut lexeme = source.pending.pop()?;
        lexeme.line_start |= !source.started;
        source.started = true;
        Some(lexeme)
    }

    /// Expands `import` lines until the next token is something else; its kind and whether it
    /// starts a line.
    fn peek(&mut self) -> Result<Option<(Kind, bool)>, CorefileError> {
        loop {
            let Some((lexeme, line_start)) = self.peek_raw() else {
                return Ok(None);
            };
            let found = (lexeme.kind, line_start);
            if !(line_start && lexeme.kind == Kind::Word && lexeme.token.text == "import") {
                return Ok(Some(found));
            }
            self.import()?;
        }
    }

    /// The next token, after expanding imports.
    fn next(&mut self) -> Result<Option<Lexeme>, CorefileError> {
        self.peek()?;
        Ok(self.next_raw())
    }

    /// The next token (after expanding imports) if `wanted(kind, line_start)`.
    fn next_if(
        &mut self,
        wanted: impl Fn(Kind, bool) -> bool,
    ) -> Result<Option<Lexeme>, CorefileError> {
        match self.peek()? {
            Some((kind, line_start)) if wanted(kind, line_start) => Ok(self.next_raw()),
            _ => Ok(None),
        }
    }

    /// Replaces the `import X` line next in the stream with snippet X or the files X names.
    fn import(&mut self) -> Result<(), CorefileError> {
        let Some(keyword) = self.next_raw() else {
            return Ok(());
        };
        let ancestry = self
            .sources
            .last()
            .map(|source| source.ancestry.clone())
            .unwrap_or_default();
        let has_argument =
            matches!(self.peek_raw(), Some((next, false)) if next.kind == Kind::Word);
        let Some(argument) = has_argument.then(|| self.next_raw()).flatten() else {
            return Err(CorefileError::at(
                &keyword.token,
                "'import' needs a file, a glob pattern or a snippet name",
            ));
        };
        let argument = argument.token;
        if let Some((extra, false)) = self.peek_raw() {
            return Err(CorefileError::at(
                &extra.token,
                format!(
                    "unexpected {:?}: 'import' takes one argument",
                    extra.token.text
                ),
            ));
        }
        if argument.text.is_empty() {
            return Err(CorefileError::at(
                &argument,
                "'import' needs a non-empty file path",
            ));
        }
        if ancestry.len() > MAX_IMPORT_DEPTH {
            return Err(CorefileError::at(
                &argument,
                format!("imports nested more than {MAX_IMPORT_DEPTH} deep"),
            ));
        }
        if let Some(snippet) = self.snippets.get(&argument.text) {
            let origin = Origin::Snippet(argument.text.clone());
            if ancestry.contains(&origin) {
                return Err(CorefileError::at(
                    &argument,
                    format!(
                        "snippet {:?} imports itself: {}",
                        argument.text,
                        cycle(&ancestry, &origin)
                    ),
                ));
            }
            let body = snippet.body.clone();
            let mut ancestry = ancestry;
            ancestry.push(origin);
            return self.splice(&argument, body, ancestry);
        }
        let files = self.import_files(&argument, &ancestry)?;
        for (lexemes, ancestry) in files.into_iter().rev() {
            self.splice(&argument, lexemes, ancestry)?;
        }
        Ok(())
    }

    /// Pastes what `import` (its argument `argument`) brought in, within the budget.
    fn splice(
        &mut self,
        argument: &Token,
        lexemes: Vec<Lexeme>,
        ancestry: Vec<Origin>,
    ) -> Result<(), CorefileError> {
        self.spliced = self.spliced.saturating_add(lexemes.len().max(1));
        if self.spliced > MAX_SPLICED {
            return Err(CorefileError::at(
                argument,
                format!("imports paste in more than {MAX_SPLICED} words"),
            ));
        }
        self.push(lexemes, ancestry);
        Ok(())
    }

    /// The tokens of each file `argument` names, in order, with their ancestry.
    fn import_files(
        &mut self,
        argument: &Token,
        ancestry: &[Origin],
    ) -> Result<Vec<Imported>, CorefileError> {
        let base = argument.at.file.parent().unwrap_or(Path::new(""));
        let pattern = base.join(&argument.text);
        let shown = pattern.to_string_lossy();
        if shown.matches('*').count() > 1
            || shown.matches('?').count() > 1
            || (shown.contains('[') && shown.contains(']'))
        {
            return Err(CorefileError::at(
                argument,
                format!(
                    "import pattern {shown:?} may hold one '*' and one '?' at most and no '[...]'"
                ),
            ));
        }
        let matches = glob(&pattern).map_err(|problem| {
            CorefileError::at(argument, format!("import pattern {shown:?}: {problem}"))
        })?;
        if matches.is_empty() && !shown.contains(['*', '?', '[', ']']) {
            return Err(CorefileError::at(
                argument,
                format!("cannot import {:?}: {shown} does not exist", argument.text),
            ));
        }
        let mut imported = Vec::with_capacity(matches.len());
        for path in matches {
            let origin = Origin::File(identity(&path));
            if ancestry.contains(&origin) {
                return Err(CorefileError::at(
                    argument,
                    format!("import cycle: {}", cycle(ancestry, &origin)),
                ));
            }
            if path.is_dir() {
                return Err(CorefileError::at(
                    argument,
                    format!("cannot import {}: it is a directory", path.display()),
                ));
            }
            let text = read_text(&path).map_err(|(line, problem)| {
                let place = if line == 0 {
                    String::new()
                } else {
                    format!(" (line {line})")
                };
                CorefileError::at(
                    argument,
                    format!("cannot import {}{place}: {problem}", path.display()),
                )
            })?;
            let lexemes = lex(&Arc::from(path.as_path()), &text, self.env)?;
            if !self.files.contains(&path) {
                self.files.push(path);
            }
            let mut chain = ancestry.to_vec();
            chain.push(origin);
            imported.push((lexemes, chain));
        }
        Ok(imported)
    }

    /// Reads the stream to its end as server blocks, defining snippets on the way.
    fn server_blocks(&mut self) -> Result<Vec<ServerBlock>, CorefileError> {
        let mut blocks = Vec::new();
        while let Some(first) = self.next()? {
            match first.kind {
                Kind::Word => {}
                Kind::Open => {
                    return Err(CorefileError::at(
                        &first.token,
                        "unexpected '{': a server block needs a key (zone[:port]) before '{'",
                    ))
                }
                Kind::Close => {
                    return Err(CorefileError::at(
                        &first.token,
                        "unexpected '}': no block is open",
                    ))
                }
            }
            let keys = self.key_tokens(first)?;
            if let [only] = keys.as_slice() {
                if let Some(name) = snippet_name(&only.text) {
                    self.define_snippet(only, name)?;
                    continue;
                }
            }
            let keys = keys
                .into_iter()
                .map(parse_key)
                .collect::<Result<Vec<_>, _>>()?;
            let directives = if let Some(open) = self.next_if(|kind, _| kind == Kind::Open)? {
                self.block(&open.token, 0)?
            } else if let Some(close) =
                self.next_if(|kind, line_start| kind == Kind::Close && !line_start)?
            {
                return Err(CorefileError::at(
                    &close.token,
                    "unexpected '}': no block is open",
                ));
            } else {
                // No braces: the rest of the file is this block's (Caddy allows it).
                self.lines(None, 0)?
            };
            blocks.push(ServerBlock { keys, directives });
        }
        Ok(blocks)
    }

    /// The keys of a server block, from `first`: the words on its line, and on the next lines
    /// while a key ends with a comma.
    fn key_tokens(&mut self, first: Lexeme) -> Result<Vec<Token>, CorefileError> {
        let mut keys = Vec::new();
        let mut current = first;
        loop {
            let mut token = current.token;
            let continued = token.text.ends_with(',');
            if continued {
                token.text.pop();
            }
            if token.text.is_empty() {
                return Err(CorefileError::at(&token, "empty server block key"));
            }
            let next =
                self.next_if(|kind, line_start| kind == Kind::Word && (continued || !line_start))?;
            match next {
                Some(next) => current = next,
                None if continued => {
                    return Err(CorefileError::at(
                        &token,
                        format!("expected another server block key after '{},'", token.text),
                    ))
                }
                None => {
                    keys.push(token);
                    return Ok(keys);
                }
            }
            keys.push(token);
        }
    }

    /// Stores the snippet `key` (`(name)`) defines: its tokens between braces, unexpanded.
    fn define_snippet(&mut self, key: &Token, name: String) -> Result<(), CorefileError> {
        if let Some(first) = self.snippets.get(&name) {
            return Err(CorefileError::at(
                key,
                format!(
                    "snippet {name:?} is defined again (first at {})",
                    describe(&first.at)
                ),
            ));
        }
        let Some(open) = self.next_if(|kind, _| kind == Kind::Open)? else {
            return Err(CorefileError::at(
                key,
                format!(
                    "snippet {:?} needs its body between '{{' and '}}'",
                    key.text
                ),
            ));
        };
        let mut depth = 0usize;
        let mut body = Vec::new();
        loop {
            let Some(lexeme) = self.next_raw() else {
                return Err(CorefileError::at(
                    &open.token,
                    format!("unclosed '{{' of snippet {:?}: no matching '}}'", key.text),
                ));
            };
            match lexeme.kind {
                Kind::Open => depth += 1,
                Kind::Close if depth == 0 => break,
                Kind::Close => depth -= 1,
                Kind::Word => {}
            }
            body.push(lexeme);
        }
        self.snippets.insert(
            name,
            Snippet {
                body,
                at: key.at.clone(),
            },
        );
        Ok(())
    }

    /// The lines of the block `open` (just read) opens, through its `}`.
    fn block(&mut self, open: &Token, depth: usize) -> Result<Vec<Directive>, CorefileError> {
        if depth >= MAX_DEPTH {
            return Err(CorefileError::at(
                open,
                format!("blocks nested more than {MAX_DEPTH} deep"),
            ));
        }
        if let Some(next) = self.next_if(|_, line_start| !line_start)? {
            if next.kind == Kind::Close {
                return Ok(Vec::new());
            }
            return Err(CorefileError::at(
                &next.token,
                format!(
                    "unexpected {:?} after '{{': a block's lines start on the next line",
                    next.token.text
                ),
            ));
        }
        self.lines(Some(open), depth)
    }

    /// Directive lines up to the `}` closing `open`, or to the end of the stream without one.
    fn lines(
        &mut self,
        open: Option<&Token>,
        depth: usize,
    ) -> Result<Vec<Directive>, CorefileError> {
        let mut directives = Vec::new();
        loop {
            let Some(first) = self.next()? else {
                return match open {
                    Some(open) => Err(CorefileError::at(
                        open,
                        "unclosed '{': no matching '}' before the end of the file",
                    )),
                    None => Ok(directives),
                };
            };
            match (first.kind, open) {
                (Kind::Word, _) => {}
                (Kind::Close, Some(_)) => return Ok(directives),
                (Kind::Close, None) => {
                    return Err(CorefileError::at(
                        &first.token,
                        "unexpected '}': no block is open",
                    ))
                }
                (Kind::Open, _) => {
                    return Err(CorefileError::at(
                        &first.token,
                        "unexpected '{': a block opens at the end of its directive's line",
                    ))
                }
            }
            let mut directive = Directive {
                name: first.token,
                args: Vec::new(),
                block: Vec::new(),
            };
            while let Some(next) = self.next_if(|_, line_start| !line_start)? {
                match next.kind {
                    Kind::Word => directive.args.push(next.token),
                    Kind::Open => {
                        directive.block = self.block(&next.token, depth + 1)?;
                        if let Some(extra) = self.next_if(|_, line_start| !line_start)? {
                            return Err(CorefileError::at(
                                &extra.token,
                                format!(
                                    "unexpected {:?} after '}}': a block's '}}' ends its line",
                                    extra.token.text
                                ),
                            ));
                        }
                        break;
                    }
                    Kind::Close => {
                        return Err(CorefileError::at(
                            &next.token,
                            "unexpected '}': a block's closing '}' goes on a line of its own",
                        ))
                    }
                }
            }
            directives.push(directive);
        }
    }
}

/// The name snippet key `(name)` defines, if `key` is one.
fn snippet_name(key: &str) -> Option<String> {
    key.strip_prefix('(')?.strip_suffix(')').map(str::to_owned)
}

/// `file:line`.
fn describe(at: &Position) -> String {
    format!("{}:{}", at.file.display(), at.line)
}

/// The chain from `again`'s first appearance in `ancestry` back to `again`: `a → b → a`.
fn cycle(ancestry: &[Origin], again: &Origin) -> String {
    let first = ancestry
        .iter()
        .position(|origin| origin == again)
        .unwrap_or(0);
    ancestry[first..]
        .iter()
        .chain([again])
        .map(|origin| match origin {
            Origin::File(path) => path.display().to_string(),
            Origin::Snippet(name) => name.clone(),
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

/// The path import cycles compare: canonical if it can be had.
fn identity(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The paths `pattern` names, as Go's `filepath.Glob` (CoreDNS's) finds them: `*` and `?`
/// match within one component (`*` any run, `?` one character, dot files included), `\`
/// escapes; names sorted within each directory. A pattern without those names the path
/// itself, if it exists. Unreadable directories are skipped.
fn glob(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    let mut found = vec![PathBuf::new()];
    for component in pattern.components() {
        let wildcard = match component {
            Component::Normal(part) => part
                .to_str()
                .filter(|text| text.contains(['*', '?', '[', '\\'])),
            _ => None,
        };
        let Some(wildcard) = wildcard else {
            for path in &mut found {
                path.push(component);
            }
            continue;
        };
        let glyphs = compile(wildcard)?;
        let mut next = Vec::new();
        for directory in &found {
            let listed = if directory.as_os_str().is_empty() {
                Path::new(".")
            } else {
                directory
            };
            let Ok(entries) = std::fs::read_dir(listed) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                .filter(|name| glyphs_match(&glyphs, name))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|name| directory.join(name)));
        }
        found = next;
    }
    found.retain(|path| std::fs::symlink_metadata(path).is_ok());
    Ok(found)
}

/// One element of a compiled path-component pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Glyph {
    /// `?`: one character.
    One,
    /// `*`: any run of characters.
    Run,
    /// This character.
    Char(char),
}

/// The glyphs of one path component's pattern; `[` (a class never closed here) and a trailing
/// `\` are errors, as in Go.
fn compile(pattern: &str) -> Result<Vec<Glyph>, String> {
    let mut glyphs = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        glyphs.push(match c {
            '*' => Glyph::Run,
            '?' => Glyph::One,
            '[' => return Err("'[' without a closing ']'".to_owned()),
            '\\' => Glyph::Char(chars.next().ok_or("'\\' at the end of a path component")?),
            c => Glyph::Char(c),
        });
    }
    Ok(glyphs)
}

/// Whether `name` matches `glyphs`.
fn glyphs_match(glyphs: &[Glyph], name: &str) -> bool {
    let name: Vec<char> = name.chars().collect();
    let (mut g, mut n) = (0, 0);
    // Where the last `*` is and how much of the name it takes so far.
    let mut run: Option<(usize, usize)> = None;
    while let Some(&c) = name.get(n) {
        match glyphs.get(g) {
            Some(Glyph::Run) => {
                run = Some((g, n));
                g += 1;
            }
            Some(Glyph::One) => (g, n) = (g + 1, n + 1),
            Some(Glyph::Char(wanted)) if *wanted == c => (g, n) = (g + 1, n + 1),
            _ => match run {
                Some((run_glyph, run_start)) => {
                    run = Some((run_glyph, run_start + 1));
                    (g, n) = (run_glyph + 1, run_start + 1);
                }
                None => return false,
            },
        }
    }
    glyphs.iter().skip(g).all(|glyph| *glyph == Glyph::Run)
}

/// The key `token` writes: `[dns://]zone[:port]`, the zone a name or a CIDR.
fn parse_key(token: Token) -> Result<BlockKey, CorefileError> {
    let written = token.text.as_str();
    let address = match written.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("dns") => rest,
        Some((scheme, _)) => {
            return Err(CorefileError::at(
                &token,
                format!(
                    "unknown scheme {:?} in server block key {written:?}: only dns:// is supported \
                     (tls://, https://, https3://, grpc:// and quic:// are not)",
                    format!("{scheme}://")
                ),
            ))
        }
        None => written,
    };
    if address.contains(',') {
        return Err(CorefileError::at(
            &token,
            format!(
                "server block key {written:?} holds a ',': separate keys with \", \" or spaces"
            ),
        ));
    }
    let (host, port) = match address.rsplit_once(':') {
        Some((_, "")) => {
            return Err(CorefileError::at(
                &token,
                format!("server block key {written:?} ends in ':' without a port"),
            ))
        }
        Some((host, port)) if port.bytes().all(|byte| byte.is_ascii_digit()) => {
            match port.parse::<u16>() {
                Ok(number) if number > 0 => (host, number),
                _ => {
                    return Err(CorefileError::at(
                        &token,
                        format!("port {port:?} in server block key {written:?} is not 1 to 65535"),
                    ))
                }
            }
        }
        _ => (address, DEFAULT_PORT),
    };
    if host.is_empty() {
        return Err(CorefileError::at(
            &token,
            format!(
                "server block key {written:?} names no zone (the root zone is \".\": \".:{port}\")"
            ),
        ));
    }
    let zones = if host.contains('/') {
        reverse_zones(host).ok_or_else(|| {
            CorefileError::at(
                &token,
                format!("{host:?} in server block key {written:?} is not a valid CIDR"),
            )
        })?
    } else {
        vec![zone_name(host).ok_or_else(|| {
            CorefileError::at(
                &token,
                format!("{host:?} in server block key {written:?} is not a valid zone name"),
            )
        })?]
    };
    Ok(BlockKey { token, zones, port })
}

/// `host` lowercased and fully qualified, if it is a domain name of letters, digits, `-` and `_`
/// (labels of 1 to 63, 255 octets in all).
fn zone_name(host: &str) -> Option<String> {
    if host == "." {
        return Some(".".to_owned());
    }
    let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let valid = name.len() + 2 <= 255
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        });
    valid.then(|| name + ".")
}

/// The reverse zones of CIDR `cidr`, as CoreDNS's `cidr.Split` and `cidr.Reverse` make them: a
/// prefix off an octet (IPv4) or nibble (IPv6) boundary becomes every zone one boundary down.
fn reverse_zones(cidr: &str) -> Option<Vec<String>> {
    // CoreDNS refuses IPv6 written from "::" or with a leading zero (IPv4-mapped forms).
    if cidr.starts_with(':') || (cidr.starts_with('0') && cidr.contains(':')) {
        return None;
    }
    let (address, length) = cidr.split_once('/')?;
    if length.is_empty() || !length.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let length: u32 = length.parse().ok()?;
    let (value, width, digit, suffix) = match address.parse::<IpAddr>().ok()? {
        IpAddr::V4(ip) => (u128::from(u32::from(ip)), 32, 8, "in-addr.arpa."),
        IpAddr::V6(ip) => (u128::from(ip), 128, 4, "ip6.arpa."),
    };
    if length > width {
        return None;
    }
    let all = u128::MAX >> (128 - width);
    let network = if length == 0 {
        0
    } else {
        value & (all >> (width - length) << (width - length))
    };
    let rounded = length.div_ceil(digit) * digit;
    let step = if rounded == 0 {
        0
    } else {
        1u128 << (width - rounded)
    };
    let count = 1u128 << (rounded - length);
    let digits = rounded / digit;
    Some(
        (0..count)
            .map(|index| {
                let subnet = network | (index * step);
                let mut zone = String::new();
                for position in (0..digits).rev() {
                    let value = (subnet >> (width - digit * (position + 1))) & ((1 << digit) - 1);
                    zone.push_str(&if digit == 8 {
                        format!("{value}.")
                    } else {
                        format!("{value:x}.")
                    });
                }
                zone + suffix
            })
            .collect(),
    )
}

/// Fails on a zone and port served twice, naming the second key; blocks with a directive of
/// [`OVERLAP_DIRECTIVES`] are left to that directive's reader.
fn check_duplicates(blocks: &[ServerBlock]) -> Result<(), CorefileError> {
    let mut seen: HashMap<(&str, u16), &Position> = HashMap::new();
    let checked = blocks.iter().filter(|block| {
        !block
            .directives
            .iter()
            .any(|directive| OVERLAP_DIRECTIVES.contains(&directive.name.text.as_str()))
    });
    for key in checked.flat_map(|block| &block.keys) {
        for zone in &key.zones {
            match seen.entry((zone, key.port)) {
                Entry::Occupied(first) => {
                    return Err(CorefileError::at(
                        &key.token,
                        format!(
                            "zone {zone}:{} defined more than once (first at {})",
                            key.port,
                            describe(first.get())
                        ),
                    ))
                }
                Entry::Vacant(slot) => {
                    slot.insert(&key.token.at);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
