//! The `bufsize [SIZE]` directive: the ceiling on the EDNS payload size of the block's
//! queries, 1232 by default, 512-4096, one argument at most (as CoreDNS's setup reads it).

use super::*;
use crate::chain::plugins::bufsize::{DEFAULT, MAX, MIN};

/// The ceiling `bufsize` sets.
pub(super) fn bufsize(d: &Directive) -> Result<u16, CorefileError> {
    no_block(d)?;
    max_args(d, 1)?;
    let Some(arg) = d.args.first() else {
        return Ok(DEFAULT);
    };
    let size: u16 = number(arg, "bufsize")?;
    if !(MIN..=MAX).contains(&size) {
        return Err(CorefileError::at(
            arg,
            format!("bufsize {size}: the size must be {MIN} to {MAX}"),
        ));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{block_of, refused};

    #[test]
    fn sizes_as_coredns_reads_them() {
        // CoreDNS's setup_test.go, and the README's examples.
        assert_eq!(block_of("bufsize").bufsize, Some(1232));
        assert_eq!(block_of("bufsize \"1220\"").bufsize, Some(1220));
        assert_eq!(block_of("bufsize 1100").bufsize, Some(1100));
        assert_eq!(block_of("bufsize 512").bufsize, Some(512));
        assert_eq!(block_of("bufsize 4096").bufsize, Some(4096));
        assert_eq!(block_of("errors").bufsize, None);
    }

    #[test]
    fn the_forwarders_queries_advertise_no_more() {
        let payload = |text: &str| {
            let block = block_of(text);
            block.forward.expect("forward planned").config.edns_payload
        };
        assert_eq!(payload("forward . 192.0.2.53"), 1232);
        assert_eq!(payload("bufsize 1100\n    forward . 192.0.2.53"), 1100);
        // Never raised past our own 1232.
        assert_eq!(payload("bufsize 4096\n    forward . 192.0.2.53"), 1232);
    }

    #[test]
    fn malformed_sizes_are_refused_naming_the_token() {
        refused("bufsize 5000", "5000");
        refused("bufsize 511", "511");
        refused("bufsize abc123", "abc123");
        refused("bufsize \"512 512\"", "512 512");
        refused("bufsize 512 512", "unexpected argument \"512\"");
        refused("bufsize {\n        size 1232\n    }", "\"size\"");
    }
}
