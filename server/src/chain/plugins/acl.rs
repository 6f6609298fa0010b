//! CoreDNS's `acl`: rules on the client's source address and the question's type, per zone,
//! that block (REFUSED), filter (NOERROR, nothing), drop (no response) or allow a query.
//!
//! A block may hold several `acl` directives, each a [`Rule`] for its zones with its policies
//! in order. The rules are tried in order; a rule whose zones do not hold the name is skipped;
//! in a rule, the first policy whose types and networks match decides. `allow` ends the search
//! and lets the query on; a rule where no policy matches leaves the decision to the next rule;
//! when no rule decides, the query goes on.
//!
//! The refusal and the empty answer carry an Extended DNS Error (RFC 8914 §4.16 "Blocked",
//! §4.18 "Filtered"), as CoreDNS writes them, when the query has EDNS: see the directive's
//! module for where that differs from CoreDNS.

use std::net::IpAddr;

use clusterdns_zone::WireName;

use super::Zones;

/// The Extended DNS Error code CoreDNS's `block` answers with (RFC 8914 §4.16, "Blocked").
pub const EDE_BLOCKED: u16 = 15;
/// The Extended DNS Error code CoreDNS's `filter` answers with (RFC 8914 §4.18, "Filtered").
pub const EDE_FILTERED: u16 = 17;

/// What a policy does with a query it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Let the query on; no later rule is asked.
    Allow,
    /// REFUSED.
    Block,
    /// NOERROR with no records.
    Filter,
    /// No response at all.
    Drop,
}

/// A network: an address and a prefix length, the address's bits past the prefix cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    address: IpAddr,
    prefix: u8,
}

impl Net {
    /// A CIDR (`192.168.0.0/16`, `2001:db8::/32`) or a single address (a /32 or /128), as
    /// CoreDNS reads them; an error says why `text` is neither. Host bits are allowed and
    /// cleared (`192.168.1.7/24` is `192.168.1.0/24`), as Go's `ParseCIDR` does.
    pub fn parse(text: &str) -> Result<Net, String> {
        let bad = || format!("illegal CIDR notation {text:?}");
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().map_err(|_| bad())?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            // Go's ParseCIDR takes decimal digits only.
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
        };
        Ok(Net {
            address: masked(address, prefix),
            prefix,
        })
    }

    /// Every address of one family: `0.0.0.0/0` or `::/0`.
    fn all(v4: bool) -> Net {
        let address = match v4 {
            true => IpAddr::from([0u8; 4]),
            false => IpAddr::from([0u8; 16]),
        };
        Net { address, prefix: 0 }
    }

    /// Whether `ip` is in this network (an IPv4 network never holds an IPv6 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.address.is_ipv4() && masked(ip, self.prefix) == self.address
    }
}

/// `ip` with its bits past `prefix` cleared.
fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::from((u32::from(v4) & mask).to_be_bytes())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::from((u128::from(v6) & mask).to_be_bytes())
        }
    }
}

/// One line of an `acl` block: `ACTION [type QTYPE...] [net SOURCE...]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// What it does with a query it matches.
    pub action: Action,
    /// The query types it matches; `None`: every type (`type *`, or no `type`).
    pub types: Option<Vec<u16>>,
    /// The source networks it matches.
    pub nets: Vec<Net>,
}

impl Policy {
    /// A policy matching every type and, without `nets`, every source (`net *`).
    pub fn new(action: Action, types: Option<Vec<u16>>, nets: Option<Vec<Net>>) -> Policy {
        Policy {
            action,
            types,
            nets: nets.unwrap_or_else(|| vec![Net::all(true), Net::all(false)]),
        }
    }

    fn matches(&self, qtype: u16, client: IpAddr) -> bool {
        self.types.as_ref().is_none_or(|t| t.contains(&qtype))
            && self.nets.iter().any(|net| net.contains(client))
    }
}

/// One `acl` directive: its zones and its policies, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The zones it applies to.
    pub zones: Zones,
    /// Its policies, in order.
    pub policies: Vec<Policy>,
}

/// What `rules` decide for `qname` (lowercase wire format) of type `qtype` from `client`:
/// `Block`, `Filter` or `Drop` with the zone of the rule that decided (the `zone` label of
/// CoreDNS's counters), or `None` to let the query on (allowed, or no rule decided).
pub fn decide<'a>(
    rules: &'a [Rule],
    qname: &[u8],
    qtype: u16,
    client: IpAddr,
) -> Option<(Action, &'a WireName)> {
    // A client reached over an IPv6 socket with a mapped IPv4 address is that IPv4 client.
    let client = client.to_canonical();
    for rule in rules {
        let Some(zone) = rule.zones.matches(qname) else {
            continue;
        };
        let action = (rule.policies.iter())
            .find(|p| p.matches(qtype, client))
            .map(|p| p.action);
        match action {
            Some(Action::Allow) => return None,
            Some(action) => return Some((action, zone)),
            None => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use clusterdns_zone::wire::{TYPE_A, TYPE_AAAA};

    fn net(text: &str) -> Net {
        Net::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn rule(zones: &[&str], policies: Vec<Policy>) -> Rule {
        Rule {
            zones: Zones::parse(zones).expect("zones"),
            policies,
        }
    }

    fn policy(action: Action, types: Option<&[u16]>, nets: Option<&[&str]>) -> Policy {
        Policy::new(
            action,
            types.map(<[u16]>::to_vec),
            nets.map(|n| n.iter().map(|t| net(t)).collect()),
        )
    }

    fn decided(rules: &[Rule], name: &str, qtype: u16, client: &str) -> Option<Action> {
        let name = WireName::from_dotted(name).expect("name");
        let decided = decide(rules, name.as_bytes(), qtype, client.parse().expect("ip"));
        decided.map(|(action, _)| action)
    }

    #[test]
    fn networks_as_go_parses_them() {
        assert!(net("192.168.0.0/16").contains("192.168.200.1".parse().unwrap()));
        assert!(!net("192.168.0.0/16").contains("192.169.0.1".parse().unwrap()));
        assert_eq!(net("192.168.1.7/24"), net("192.168.1.0/24"));
        assert!(net("10.0.0.1").contains("10.0.0.1".parse().unwrap()));
        assert!(!net("10.0.0.1").contains("10.0.0.2".parse().unwrap()));
        assert!(net("2001:db8::/32").contains("2001:db8:1::1".parse().unwrap()));
        assert!(!net("2001:db8::/32").contains("10.0.0.1".parse().unwrap()));
        assert!(net("::1").contains("::1".parse().unwrap()));
        assert!(net("0.0.0.0/0").contains("203.0.113.9".parse().unwrap()));
        for bad in [
            "192.168.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0/8",
            "x",
            "10.0.0.0/+8",
        ] {
            assert!(Net::parse(bad).is_err(), "{bad}");
        }
    }

    /// The README's examples, and the cases of CoreDNS's acl_test.go they stand for.
    #[test]
    fn readme_examples() {
        let a = Some(&[TYPE_A][..]);
        // Block all DNS queries with record type A from 192.168.0.0/16.
        let block_a = [rule(
            &["."],
            vec![policy(Action::Block, a, Some(&["192.168.0.0/16"]))],
        )];
        assert_eq!(
            decided(&block_a, "www.example.org", TYPE_A, "192.168.0.2"),
            Some(Action::Block)
        );
        assert_eq!(
            decided(&block_a, "www.example.org", TYPE_AAAA, "192.168.0.2"),
            None
        );
        assert_eq!(
            decided(&block_a, "www.example.org", TYPE_A, "10.1.0.2"),
            None
        );
        // Filter the same.
        let filter_a = [rule(
            &["."],
            vec![policy(Action::Filter, a, Some(&["192.168.0.0/16"]))],
        )];
        assert_eq!(
            decided(&filter_a, "www.example.org", TYPE_A, "192.168.1.2"),
            Some(Action::Filter)
        );
        // Block 192.168.0.0/16 except 192.168.1.0/24: the first matching policy wins.
        let except = [rule(
            &["."],
            vec![
                policy(Action::Allow, None, Some(&["192.168.1.0/24"])),
                policy(Action::Block, None, Some(&["192.168.0.0/16"])),
            ],
        )];
        assert_eq!(
            decided(&except, "www.example.org", TYPE_A, "192.168.1.2"),
            None
        );
        assert_eq!(
            decided(&except, "www.example.org", TYPE_A, "192.168.2.2"),
            Some(Action::Block)
        );
        assert_eq!(
            decided(&except, "www.example.org", TYPE_A, "10.0.0.2"),
            None
        );
        // Allow only 192.168.0.0/24 and 192.168.1.0/24.
        let only = [rule(
            &["."],
            vec![
                policy(
                    Action::Allow,
                    None,
                    Some(&["192.168.0.0/24", "192.168.1.0/24"]),
                ),
                policy(Action::Block, None, None),
            ],
        )];
        assert_eq!(
            decided(&only, "www.example.org", TYPE_A, "192.168.0.9"),
            None
        );
        assert_eq!(
            decided(&only, "www.example.org", TYPE_A, "192.168.1.9"),
            None
        );
        assert_eq!(
            decided(&only, "www.example.org", TYPE_A, "192.168.2.9"),
            Some(Action::Block)
        );
        assert_eq!(
            decided(&only, "www.example.org", TYPE_A, "2001:db8::1"),
            Some(Action::Block)
        );
        // Block 192.168.1.0/24 towards a.example.org only.
        let zone = [rule(
            &["a.example.org"],
            vec![policy(Action::Block, None, Some(&["192.168.1.0/24"]))],
        )];
        assert_eq!(
            decided(&zone, "a.example.org", TYPE_A, "192.168.1.2"),
            Some(Action::Block)
        );
        assert_eq!(
            decided(&zone, "www.a.example.org", TYPE_A, "192.168.1.2"),
            Some(Action::Block)
        );
        assert_eq!(decided(&zone, "b.example.org", TYPE_A, "192.168.1.2"), None);
        // Drop 192.0.2.0/24.
        let drop = [rule(
            &["."],
            vec![policy(Action::Drop, None, Some(&["192.0.2.0/24"]))],
        )];
        assert_eq!(
            decided(&drop, "www.example.org", TYPE_A, "192.0.2.1"),
            Some(Action::Drop)
        );
    }

    #[test]
    fn rules_in_order_and_mapped_clients() {
        // The first rule decides nothing for this client; the second does.
        let rules = [
            rule(
                &["example.org"],
                vec![policy(Action::Block, None, Some(&["10.0.0.0/8"]))],
            ),
            rule(
                &["."],
                vec![policy(Action::Filter, None, Some(&["192.168.0.0/16"]))],
            ),
        ];
        assert_eq!(
            decided(&rules, "www.example.org", TYPE_A, "192.168.0.1"),
            Some(Action::Filter)
        );
        assert_eq!(
            decided(&rules, "www.example.org", TYPE_A, "10.0.0.1"),
            Some(Action::Block)
        );
        // An allow in the first rule ends the search.
        let allowed = [
            rule(
                &["."],
                vec![policy(Action::Allow, None, Some(&["10.0.0.0/8"]))],
            ),
            rule(&["."], vec![policy(Action::Block, None, None)]),
        ];
        assert_eq!(decided(&allowed, "x.org", TYPE_A, "10.0.0.1"), None);
        assert_eq!(
            decided(&allowed, "x.org", TYPE_A, "11.0.0.1"),
            Some(Action::Block)
        );
        // The zone of the rule that decided, for the counters' `zone` label.
        let name = WireName::from_dotted("www.example.org").unwrap();
        let zone = decide(&rules, name.as_bytes(), TYPE_A, "10.0.0.1".parse().unwrap());
        assert_eq!(
            zone.map(|(_, z)| z.to_dotted()),
            Some("example.org.".into())
        );
        // An IPv4 client seen on an IPv6 socket.
        assert_eq!(
            decided(&rules, "www.example.org", TYPE_A, "::ffff:10.1.2.3"),
            Some(Action::Block)
        );
    }
}
