//! The Corefile, CoreDNS's configuration file, read into a syntax tree.
//!
//! [`parse`](mod@parse) owns the grammar CoreDNS 1.13 reads (Caddy v1's caddyfile as CoreDNS
//! forks it): words, quotes, comments, `{$ENV}` substitution, server-block keys and the zones
//! they name, blocks, snippets and `import`. What a directive means is left to its reader.

pub mod parse;

pub use parse::{
    parse, read, Corefile, CorefileError, Directive, Key, Position, ServerBlock, Token,
};
