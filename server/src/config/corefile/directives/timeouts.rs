//! The `timeouts` directive (CoreDNS 1.13): `timeouts { read D; write D; idle D }`, the TCP
//! timeouts of the server. clusterdns has one TCP configuration for the whole process, so the
//! blocks that give `timeouts` must agree; what a block leaves out keeps its flag's value
//! (`--tcp-read-timeout`, `--tcp-idle-timeout`; writes wait at most the write timeout, else the
//! idle one). `maxtcpqueries` is refused: connections are not closed after a number of queries.

use super::*;
use crate::config::plan::Timeouts;

/// The `timeouts` directive.
pub(super) fn timeouts(d: &Directive) -> Result<Timeouts, CorefileError> {
    no_args(d)?;
    if d.block.is_empty() {
        return Err(CorefileError::at(
            &d.name,
            "timeouts: at least one of read, write and idle is needed",
        ));
    }
    let mut out = Timeouts::default();
    for option in &d.block {
        let value = || {
            let value = duration(one_arg(d, option)?)?;
            if value.is_zero() || value > Duration::from_secs(86_400) {
                return Err(CorefileError::at(
                    &option.args[0],
                    format!("timeouts {}: between 1s and 24h", option.name.text),
                ));
            }
            Ok(Some(value))
        };
        match option.name.text.as_str() {
            "read" => out.read = value()?,
            "write" => out.write = value()?,
            "idle" => out.idle = value()?,
            "maxtcpqueries" => {
                return Err(CorefileError::at(
                    &option.name,
                    "timeouts maxtcpqueries: not supported (connections are not closed after a \
                     number of queries)",
                ))
            }
            _ => return Err(unknown_option(d, option)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::corefile::parse::parse;
    use std::path::Path;

    fn read(text: &str) -> Result<Timeouts, CorefileError> {
        let corefile = parse(Path::new("Corefile"), text, &|_| None).expect("parses");
        timeouts(&corefile.blocks[0].directives[0])
    }

    /// The README's example, and what its setup refuses.
    #[test]
    fn reads_the_readme_example_and_refuses_the_rest() {
        let t = read(". {\n timeouts {\n  read 10s\n  write 20s\n  idle 60s\n }\n}\n").expect("ok");
        assert_eq!(
            (t.read, t.write, t.idle),
            (
                Some(Duration::from_secs(10)),
                Some(Duration::from_secs(20)),
                Some(Duration::from_secs(60))
            )
        );
        let t = read(". {\n timeouts {\n  idle 1m\n }\n}\n").expect("ok");
        assert_eq!((t.read, t.idle), (None, Some(Duration::from_secs(60))));
        for (text, line) in [
            (". {\n timeouts\n}\n", 2),
            (". {\n timeouts 5s\n}\n", 2),
            (". {\n timeouts {\n  read\n }\n}\n", 3),
            (". {\n timeouts {\n  read 0s\n }\n}\n", 3),
            (". {\n timeouts {\n  read abc\n }\n}\n", 3),
            (". {\n timeouts {\n  tls 5s\n }\n}\n", 3),
            (". {\n timeouts {\n  maxtcpqueries 128\n }\n}\n", 3),
        ] {
            let error = read(text).expect_err(text);
            assert_eq!(error.line, line, "{text}: {error}");
        }
    }
}
