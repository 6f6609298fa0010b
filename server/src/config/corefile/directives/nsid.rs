//! The `nsid [DATA...]` directive: the identifier is the arguments joined by spaces, else the
//! host name (as CoreDNS's setup reads it); no options.

use super::*;
use crate::chain::plugins::nsid::Nsid;

/// Where the host name is read (CoreDNS asks the OS; a Pod's is its name).
const HOSTNAME: &str = "/proc/sys/kernel/hostname";

/// The `nsid` directive.
pub(super) fn nsid(d: &Directive) -> Result<Nsid, CorefileError> {
    no_block(d)?;
    let args: Vec<&str> = d.args.iter().map(|a| a.text.as_str()).collect();
    // CoreDNS falls back to "localhost" when the host name cannot be had.
    let hostname = std::fs::read_to_string(HOSTNAME).unwrap_or_else(|_| "localhost".into());
    Ok(Nsid::new(&args, hostname.trim()))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{block_of, refused};

    // The README's example and CoreDNS's setup_test.go.
    #[test]
    fn nsid_as_coredns_reads_it() {
        let nsid = block_of("nsid Use The Force").extra.nsid.expect("planned");
        assert_eq!(nsid.data(), b"Use The Force");
        let host = block_of("nsid").extra.nsid.expect("planned");
        assert!(!host.data().is_empty(), "the host name");
        assert!(block_of("errors").extra.nsid.is_none());
        refused("nsid ps0\n    nsid ps1", "given twice");
        refused("nsid {\n        data x\n    }", "\"data\"");
    }
}
