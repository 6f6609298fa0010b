//! The `dns64 [PREFIX] { prefix PREFIX; translate_all; allow_ipv4 }` directive, as CoreDNS's
//! setup reads it: the well-known prefix `64:ff9b::/96` unless one is given (the last one
//! given wins), IPv6 clients only unless `allow_ipv4`.
//!
//! Where this differs from CoreDNS: a prefix of length 72, 80 or 88 is refused (CoreDNS takes
//! any multiple of 8 from 32 to 96, but RFC 6052 §2.2 defines no address format for those, and
//! CoreDNS writes them in a format of its own); and the options of a block that follows a
//! PREFIX argument are applied (CoreDNS's setup skips such a block without a word).

use super::*;
use crate::chain::plugins::dns64::{Dns64, Prefix};

/// The `dns64` directive.
pub(super) fn dns64(d: &Directive) -> Result<Dns64, CorefileError> {
    max_args(d, 1)?;
    let mut out = Dns64::default();
    if let Some(arg) = d.args.first() {
        out.prefix = prefix(arg)?;
    }
    for option in &d.block {
        match option.name.text.as_str() {
            "prefix" => out.prefix = prefix(one_arg(d, option)?)?,
            "translate_all" => {
                no_args(option)?;
                no_block(option)?;
                out.translate_all = true;
            }
            "allow_ipv4" => {
                no_args(option)?;
                no_block(option)?;
                out.allow_ipv4 = true;
            }
            _ => return Err(unknown_option(d, option)),
        }
    }
    Ok(out)
}

fn prefix(token: &Token) -> Result<Prefix, CorefileError> {
    Prefix::parse(&token.text)
        .map_err(|message| CorefileError::at(token, format!("dns64: {message}")))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{block_of, refused};
    use super::*;

    fn dns64_of(text: &str) -> Dns64 {
        block_of(text).dns64.expect("dns64 planned")
    }

    fn with_prefix(text: &str) -> Dns64 {
        Dns64 {
            prefix: Prefix::parse(text).unwrap(),
            ..Dns64::default()
        }
    }

    #[test]
    fn readme_examples() {
        assert_eq!(dns64_of("dns64"), Dns64::default());
        assert_eq!(dns64_of("dns64 64:1337::/96"), with_prefix("64:1337::/96"));
        assert_eq!(
            dns64_of("dns64 {\n        prefix 64:1337::/96\n    }"),
            with_prefix("64:1337::/96")
        );
        let all = dns64_of("dns64 {\n        translate_all\n    }");
        assert!(all.translate_all && !all.allow_ipv4);
        assert_eq!(all.prefix, Prefix::WELL_KNOWN);
        let v4 = dns64_of("dns64 {\n        allow_ipv4\n    }");
        assert!(v4.allow_ipv4 && !v4.translate_all);
        assert!(block_of("errors").dns64.is_none());
    }

    #[test]
    fn coredns_setup_cases() {
        for (text, want) in [
            ("dns64 64:dead::/96", "64:dead::/96"),
            (
                "dns64 {\n        prefix 64:ff9b::/32\n    }",
                "64:ff9b::/32",
            ),
            (
                "dns64 {\n        prefix 2002:ac12:b083::/96\n    }",
                "2002:ac12:b083::/96",
            ),
            (
                "dns64 {\n        prefix 2002:c0a8:a88a::/48\n    }",
                "2002:c0a8:a88a::/48",
            ),
        ] {
            assert_eq!(dns64_of(text).prefix.to_string(), want, "{text}");
        }
        // An argument and a block: both apply; the last prefix given wins.
        let both =
            dns64_of("dns64 64:1::/96 {\n        prefix 64:2::/96\n        translate_all\n    }");
        assert_eq!(both.prefix.to_string(), "64:2::/96");
        assert!(both.translate_all);
    }

    #[test]
    fn malformed_lines_are_refused_naming_the_token() {
        refused(
            "dns64 {\n        prefix 64:ff9b::/52\n    }",
            "64:ff9b::/52",
        );
        refused(
            "dns64 {\n        prefix 64:ff9b::/104\n    }",
            "64:ff9b::/104",
        );
        refused("dns64 {\n        prefix 8.8.8.8/24\n    }", "8.8.8.8/24");
        refused("dns64 64:ff9b::/80", "RFC 6052");
        refused("dns64 foobar", "foobar");
        refused(
            "dns64 foobar {\n        prefix 64:ff9b::/96\n    }",
            "foobar",
        );
        refused("dns64 64:ff9b::/96 64:ff9c::/96", "unexpected argument");
        refused("dns64 {\n        foobar\n    }", "\"foobar\"");
        refused("dns64 {\n        prefix\n    }", "exactly one value");
        refused("dns64 {\n        translate_all yes\n    }", "\"yes\"");
    }
}
