//! The `debug` directive: no arguments (as CoreDNS's setup reads it). As in CoreDNS, for the
//! whole process when any server block says it: a panic while answering a query is no longer
//! recovered as SERVFAIL but ends the process with its backtrace ([`crate::ops::panics`]), and
//! clusterdns's own messages are logged at debug level, unless RUST_LOG chooses the levels
//! ([`crate::ops::logging`]).

use super::*;

/// Checks a `debug` line.
pub(super) fn debug(d: &Directive) -> Result<(), CorefileError> {
    no_args(d)?;
    no_block(d)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{plan_text, refused};

    #[test]
    fn debug_in_any_block_is_for_the_process() {
        // The README's example, and CoreDNS's debug_test.go.
        let on = plan_text(".:1053 {\n    debug\n}\n").expect("accepted");
        assert!(on.debug);
        let off = plan_text(".:1053 {\n    errors\n}\n").expect("accepted");
        assert!(!off.debug);
        let second = plan_text(".:1053 {\n    errors\n}\nexample.org:1054 {\n    debug\n}\n")
            .expect("accepted");
        assert!(second.debug);
        refused("debug off", "\"off\"");
    }
}
