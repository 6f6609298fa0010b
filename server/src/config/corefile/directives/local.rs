//! The `local` directive: no arguments; `localhost_prefix on|off` in its block (as CoreDNS's
//! setup reads it).

use super::*;
use crate::chain::plugins::local::Local;

/// The `local` directive.
pub(super) fn local(d: &Directive) -> Result<Local, CorefileError> {
    no_args(d)?;
    let mut out = Local::default();
    for option in &d.block {
        match option.name.text.as_str() {
            "localhost_prefix" => {
                let value = one_arg(d, option)?;
                out.localhost_prefix = match value.text.as_str() {
                    "on" => true,
                    "off" => false,
                    other => {
                        return Err(CorefileError::at(
                            value,
                            format!("local: localhost_prefix expects 'on' or 'off', got {other:?}"),
                        ))
                    }
                };
            }
            _ => return Err(unknown_option(d, option)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{block_of, refused};
    use super::*;

    // The README's examples and CoreDNS's setup_test.go.
    #[test]
    fn local_as_coredns_reads_it() {
        assert_eq!(block_of("local").extra.local, Some(Local::default()));
        let off = block_of("local {\n        localhost_prefix off\n    }")
            .extra
            .local;
        assert_eq!(
            off,
            Some(Local {
                localhost_prefix: false
            })
        );
        let on = block_of("local {\n        localhost_prefix on\n    }")
            .extra
            .local;
        assert_eq!(on, Some(Local::default()));
        assert!(block_of("errors").extra.local.is_none());
        refused("local example.org", "\"example.org\"");
        refused(
            "local {\n        localhost_prefix maybe\n    }",
            "\"maybe\"",
        );
        refused(
            "local {\n        localhost_prefix\n    }",
            "exactly one value",
        );
        refused(
            "local {\n        localhost_prefix on off\n    }",
            "exactly one value",
        );
        refused("local {\n        other\n    }", "\"other\"");
    }
}
