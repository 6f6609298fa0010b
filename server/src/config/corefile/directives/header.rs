//! The `header { SELECTOR ACTION FLAGS... }` directive, as CoreDNS's setup reads it: at least
//! one rule; a selector `query` or `response`, an action `set` or `clear`, and one or more of
//! the flags `aa`, `ra`, `rd` (any case).

use super::*;
use crate::chain::plugins::header::{Flag, Header, Selector};

/// The `header` directive.
pub(super) fn header(d: &Directive) -> Result<Header, CorefileError> {
    no_args(d)?;
    let mut rules = Vec::new();
    for line in &d.block {
        no_block(line)?;
        let selector = match line.name.text.to_ascii_lowercase().as_str() {
            "query" => Selector::Query,
            "response" => Selector::Response,
            other => {
                return Err(CorefileError::at(
                    &line.name,
                    format!("header: invalid selector {other:?}, should be query or response"),
                ))
            }
        };
        let Some((action, flags)) = line.args.split_first() else {
            return Err(CorefileError::at(
                &line.name,
                "header: no flag action provided",
            ));
        };
        let set = match action.text.to_ascii_lowercase().as_str() {
            "set" => true,
            "clear" => false,
            other => {
                return Err(CorefileError::at(
                    action,
                    format!("header: unknown flag action {other:?}, should be set or clear"),
                ))
            }
        };
        if flags.is_empty() {
            return Err(CorefileError::at(
                action,
                "header: at least one flag (aa, ra, rd) should be provided",
            ));
        }
        for flag in flags {
            let parsed = Flag::parse(&flag.text).ok_or_else(|| {
                CorefileError::at(
                    flag,
                    format!(
                        "header: unknown or unsupported flag {:?} (aa, ra, rd)",
                        flag.text
                    ),
                )
            })?;
            rules.push((selector, parsed, set));
        }
    }
    if rules.is_empty() {
        return Err(CorefileError::at(
            &d.name,
            "header: a block with at least one rule is needed",
        ));
    }
    Ok(Header::new(&rules))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{block_of, refused};
    use super::*;

    fn header_of(text: &str) -> Header {
        block_of(text).extra.header.expect("planned")
    }

    // The README's examples and CoreDNS's setup_test.go.
    #[test]
    fn header_as_coredns_reads_it() {
        use Flag::*;
        use Selector::*;
        assert_eq!(
            header_of("header {\n        response set ra\n    }"),
            Header::new(&[(Response, Ra, true)])
        );
        assert_eq!(
            header_of("header {\n        response set ra aa\n        response clear rd\n    }"),
            Header::new(&[
                (Response, Ra, true),
                (Response, Aa, true),
                (Response, Rd, false)
            ])
        );
        assert_eq!(
            header_of("header {\n        query set rd\n    }"),
            Header::new(&[(Query, Rd, true)])
        );
        assert_eq!(
            header_of("header {\n        RESPONSE SET RA\n    }"),
            Header::new(&[(Response, Ra, true)])
        );
        assert!(block_of("errors").extra.header.is_none());
        refused("header", "at least one rule");
        refused("header {\n    }", "at least one rule");
        refused("header {\n        resp set ra\n    }", "\"resp\"");
        refused("header {\n        response\n    }", "no flag action");
        refused("header {\n        response set\n    }", "at least one flag");
        refused("header {\n        response toggle ra\n    }", "\"toggle\"");
        refused("header {\n        response set cd\n    }", "\"cd\"");
        refused("header x {\n        response set ra\n    }", "\"x\"");
    }
}
