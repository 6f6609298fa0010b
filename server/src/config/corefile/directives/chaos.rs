//! The `chaos` directive: `chaos [VERSION] [AUTHORS...]`, no options.

use super::*;
use crate::chain::plugins::chaos::Chaos;
#[cfg(test)]
use std::path::Path;

/// Where the host name is read (CoreDNS asks the OS; a Pod's is its name).
const HOSTNAME: &str = "/proc/sys/kernel/hostname";

/// The `chaos` directive.
pub(super) fn chaos(d: &Directive) -> Result<Chaos, CorefileError> {
    no_block(d)?;
    let args: Vec<&str> = d.args.iter().map(|a| a.text.as_str()).collect();
    // CoreDNS falls back to "localhost" when the host name cannot be had.
    let hostname = std::fs::read_to_string(HOSTNAME).unwrap_or_else(|_| "localhost".into());
    Ok(Chaos::new(&args, hostname.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::corefile::parse::parse;

    fn block(text: &str) -> Result<Chaos, CorefileError> {
        let corefile = parse(Path::new("Corefile"), text, &|_| None).expect("parses");
        chaos(&corefile.blocks[0].directives[0])
    }

    #[test]
    fn reads_the_readme_examples_and_refuses_options() {
        let chaos = block(". {\n chaos CoreDNS-001 info@coredns.io\n}\n").expect("accepted");
        let version = WireName::from_dotted("version.bind").expect("name");
        assert_eq!(chaos.answer(version.as_bytes()), Some(vec!["CoreDNS-001"]));
        block("version.bind version.server authors.bind hostname.bind id.server {\n chaos\n}\n")
            .expect("accepted");
        let refused = block(". {\n chaos {\n  version x\n }\n}\n").expect_err("an option");
        assert_eq!(refused.line, 3);
    }
}
