//! The `whoami` directive: no arguments, no options (as CoreDNS's setup reads it).

use super::*;

/// Checks a `whoami` line.
pub(super) fn whoami(d: &Directive) -> Result<(), CorefileError> {
    no_args(d)?;
    no_block(d)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{block_of, refused};

    #[test]
    fn whoami_takes_nothing() {
        // The README's example, and CoreDNS's setup_test.go.
        assert!(block_of("whoami").whoami);
        assert!(!block_of("errors").whoami);
        refused("whoami example.org", "\"example.org\"");
        refused("whoami {\n        verbose\n    }", "\"verbose\"");
    }
}
