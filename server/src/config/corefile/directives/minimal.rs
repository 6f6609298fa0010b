//! The `minimal` directive: no arguments, no options (as CoreDNS's setup reads it).

use super::*;

/// Checks a `minimal` line.
pub(super) fn minimal(d: &Directive) -> Result<(), CorefileError> {
    no_args(d)?;
    no_block(d)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{block_of, refused};

    // The README's example and CoreDNS's setup_test.go.
    #[test]
    fn minimal_takes_nothing() {
        assert!(block_of("minimal").extra.minimal);
        assert!(!block_of("errors").extra.minimal);
        refused("minimal example.org", "\"example.org\"");
        refused("minimal {\n        all\n    }", "\"all\"");
    }
}
