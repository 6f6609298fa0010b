//! The Corefile, CoreDNS's configuration file: read into a syntax tree, then into a
//! [`Plan`](crate::config::plan::Plan).
//!
//! [`parse`](mod@parse) owns the grammar CoreDNS 1.13 reads (Caddy v1's caddyfile as CoreDNS
//! forks it): words, quotes, comments, `{$ENV}` substitution, server-block keys and the zones
//! they name, blocks, snippets and `import`. [`directives`] owns what each directive and option
//! means, and refuses what clusterdns does not do with the file, line and token.

pub mod directives;
pub mod parse;

use std::path::Path;

pub use directives::{hosts_table, plan, SUPPORTED};
pub use parse::{
    parse, BlockKey, Corefile, CorefileError, Directive, Position, ServerBlock, Token,
};

use crate::config::plan::Plan;

/// Reads the Corefile at `path` and its imports, `{$VAR}` taken from the process environment.
pub fn read(path: &Path) -> Result<Corefile, CorefileError> {
    parse::read(path, &|name| std::env::var(name).ok())
}

/// Reads the Corefile at `path` into a validated plan.
pub fn load(path: &Path) -> Result<Plan, CorefileError> {
    plan(&read(path)?)
}
