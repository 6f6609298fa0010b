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

mod imports;
mod keys;
mod lexer;
mod patterns;

pub(crate) use keys::reverse_zones;
use keys::{check_duplicates, parse_key};
use lexer::{lex, Kind, Lexeme};
use patterns::{glob, identity};

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

#[cfg(test)]
mod tests;
