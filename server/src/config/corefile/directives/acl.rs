//! The `acl [ZONES...] { ACTION [type QTYPE...] [net SOURCE...] }` directive, as CoreDNS's
//! setup reads it: one rule per directive (a block may hold several), for its zones or the
//! block's; one policy per line, `allow`, `block`, `filter` or `drop`, matching every type
//! without `type` and every source without `net`; `*` is every type or every source; a type is
//! an upper-case mnemonic (`A`, `AAAA`, `ANY`); a source is a CIDR or an address.
//!
//! Where this differs from CoreDNS: the Extended DNS Error of `block` and `filter` answers
//! goes in the OPT record of clients that sent one; CoreDNS adds an OPT record (with the DO
//! bit set) to every such answer, which RFC 6891 §7 forbids for a client without EDNS.

use super::*;
use crate::chain::plugins::acl::{Action, Net, Policy, Rule};
use crate::chain::plugins::records::type_code;
use crate::chain::plugins::Zones;

/// An `acl` directive.
pub(super) fn acl(d: &Directive, block_zones: &[String]) -> Result<Rule, CorefileError> {
    let zones = zones_or_block(&d.args, block_zones)?;
    let zones =
        Zones::parse(&zones).map_err(|e| CorefileError::at(&d.name, format!("acl: {e}")))?;
    let policies = d.block.iter().map(policy).collect::<Result<_, _>>()?;
    Ok(Rule { zones, policies })
}

/// One line of the block.
fn policy(line: &Directive) -> Result<Policy, CorefileError> {
    no_block(line)?;
    let action = match line.name.text.to_ascii_lowercase().as_str() {
        "allow" => Action::Allow,
        "block" => Action::Block,
        "filter" => Action::Filter,
        "drop" => Action::Drop,
        _ => {
            return Err(CorefileError::at(
                &line.name,
                format!(
                    "acl: unexpected token {:?}; expect 'allow', 'block', 'filter' or 'drop'",
                    line.name.text
                ),
            ))
        }
    };
    let section = |token: &Token| {
        let text = token.text.to_ascii_lowercase();
        (text == "type" || text == "net").then_some(text)
    };
    let mut types: Option<Option<Vec<u16>>> = None;
    let mut nets: Option<Option<Vec<Net>>> = None;
    let mut args = line.args.iter().peekable();
    while let Some(token) = args.next() {
        let Some(name) = section(token) else {
            return Err(CorefileError::at(
                token,
                format!(
                    "acl: unexpected token {:?}; expect 'type | net'",
                    token.text
                ),
            ));
        };
        let mut values = Vec::new();
        while let Some(value) = args.next_if(|t| section(t).is_none()) {
            values.push(value);
        }
        if values.is_empty() {
            return Err(CorefileError::at(
                token,
                format!("acl: no token specified in {name:?} section"),
            ));
        }
        if name == "type" {
            let types = types.get_or_insert_with(|| Some(Vec::new()));
            for value in values {
                // `*` is every type; CoreDNS reads nothing after it.
                if value.text == "*" {
                    *types = None;
                    break;
                }
                let code = type_code(&value.text).ok_or_else(|| {
                    CorefileError::at(
                        value,
                        format!("acl: unexpected token {:?}; expect legal QTYPE", value.text),
                    )
                })?;
                if let Some(types) = types {
                    types.push(code);
                }
            }
        } else {
            let nets = nets.get_or_insert_with(|| Some(Vec::new()));
            for value in values {
                if value.text == "*" {
                    *nets = None;
                    break;
                }
                let net = Net::parse(&value.text)
                    .map_err(|e| CorefileError::at(value, format!("acl: {e}")))?;
                if let Some(nets) = nets {
                    nets.push(net);
                }
            }
        }
    }
    Ok(Policy::new(action, types.flatten(), nets.flatten()))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{block_of, refused};
    use super::*;
    use clusterdns_zone::wire::{TYPE_A, TYPE_ANY, TYPE_CNAME, TYPE_TXT};

    fn rules(text: &str) -> Vec<Rule> {
        block_of(text).extra.acl
    }

    fn net(text: &str) -> Net {
        Net::parse(text).expect("a network")
    }

    /// The accepted cases of CoreDNS's setup_test.go.
    #[test]
    fn coredns_setup_cases() {
        let one = rules("acl {\n        block type A net 192.168.0.0/16\n    }");
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].zones, Zones::parse(["."]).unwrap());
        assert_eq!(
            one[0].policies,
            [Policy::new(
                Action::Block,
                Some(vec![TYPE_A]),
                Some(vec![net("192.168.0.0/16")])
            )]
        );
        let all = rules("acl {\n        block type * net *\n    }");
        assert_eq!(all[0].policies, [Policy::new(Action::Block, None, None)]);
        let bare = rules("acl {\n        block\n    }");
        assert_eq!(bare[0].policies, [Policy::new(Action::Block, None, None)]);
        let two = rules(
            "acl a.example.org {\n        block type * net 192.168.1.0/24\n    }\n    \
             acl b.example.org {\n        block type * net 192.168.2.0/24\n    }",
        );
        assert_eq!(two.len(), 2);
        assert_eq!(two[1].zones, Zones::parse(["b.example.org"]).unwrap());
        let nets = rules(
            "acl example.org {\n        block type * net 192.168.1.0/24 192.168.3.0/24\n    }",
        );
        assert_eq!(nets[0].policies[0].nets.len(), 2);
        let types =
            rules("acl example.org {\n        block type TXT ANY CNAME net 192.168.3.0/24\n    }");
        assert_eq!(
            types[0].policies[0].types,
            Some(vec![TYPE_TXT, TYPE_ANY, TYPE_CNAME])
        );
        let v6 = rules(
            "acl {\n        allow net 2001:db8:abcd:0012::0/64\n        \
             block net 2001:db8:abcd:0012::0/48\n        filter type A net 2001:0db8:85a3:0000:0000:8a2e:0370:7334\n        \
             drop net 2001:db8:abcd:0012::0/64\n    }",
        );
        let actions: Vec<Action> = v6[0].policies.iter().map(|p| p.action).collect();
        assert_eq!(
            actions,
            [Action::Allow, Action::Block, Action::Filter, Action::Drop]
        );
        // The sections in either order, and case-insensitive keywords.
        let swapped = rules("acl {\n        BLOCK NET 10.0.0.0/8 TYPE A\n    }");
        assert_eq!(
            swapped[0].policies,
            [Policy::new(
                Action::Block,
                Some(vec![TYPE_A]),
                Some(vec![net("10.0.0.0/8")])
            )]
        );
        assert!(block_of("errors").extra.acl.is_empty());
    }

    /// The refused cases of CoreDNS's setup_test.go, naming the token.
    #[test]
    fn malformed_lines_are_refused_naming_the_token() {
        refused("acl {\n        block A net 192.168.0.0/16\n    }", "\"A\"");
        refused(
            "acl {\n        block type net 192.168.0.0/16\n    }",
            "\"type\" section",
        );
        refused(
            "acl {\n        block type ABC net 192.168.0.0/16\n    }",
            "\"ABC\"",
        );
        refused(
            "acl {\n        blck type A net 192.168.0.0/16\n    }",
            "\"blck\"",
        );
        refused(
            "acl {\n        block type A net 192.168.0/16\n    }",
            "192.168.0/16",
        );
        refused(
            "acl {\n        block type A net 192.168.0.0/33\n    }",
            "192.168.0.0/33",
        );
        refused("acl {\n        block type a\n    }", "\"a\"");
        refused(
            "acl {\n        block {\n            net *\n        }\n    }",
            "\"net\"",
        );
    }
}
