//! CoreDNS's `hosts` plugin: a table built from an /etc/hosts style file and the entries inlined
//! in the Corefile, answering A, AAAA and PTR questions (plugin/hosts as of CoreDNS 1.14.7, with
//! the wildcard entries 1.14.5 added).
//!
//! Lines are `ADDRESS NAME [ALIAS...]`; `#` starts a comment; lines with fewer than two fields
//! or an address that does not parse are skipped. An IPv6 zone index (`fe80::1%eth0`) is cut
//! off; an IPv4-mapped address (`::ffff:10.0.0.1`) counts as IPv4. Names are lowercased and
//! fully qualified; names outside the plugin's zones are skipped. `*.example.org` matches one
//! label below `example.org` when the name itself has no address of that family. Unless
//! `no_reverse`, every (address, non-wildcard name) pair also answers the address's PTR
//! question, with every name the address has.
//!
//! The file and the inline entries are kept apart and both consulted, file first: answers list
//! the file's addresses (or names) and then the inline ones, as CoreDNS does.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use clusterdns_zone::name::parse_reverse;
use clusterdns_zone::wire::{CLASS_IN, TYPE_A, TYPE_AAAA, TYPE_PTR};
use clusterdns_zone::WireName;
use foldhash::fast::RandomState;

use super::records::Record;
use super::Zones;

/// What the table says about a question.
///
/// CoreDNS's `ServeDNS` (plugin/hosts/hosts.go), which the caller reproduces:
/// - [`HostsAnswer::Records`]: an authoritative NOERROR response with these answers.
/// - [`HostsAnswer::NoData`]: an authoritative NOERROR response with no records (and no SOA:
///   hosts data has none). Under `fallthrough_unsupported`, CoreDNS first passes questions of
///   types other than A, AAAA and PTR on to the next plugin when `fallthrough` covers the name,
///   before ever looking the name up; the caller checks that before calling [`HostsTable::lookup`].
/// - [`HostsAnswer::NotFound`]: the name has no address at all. CoreDNS passes the query to the
///   next plugin when `fallthrough` covers the name, and otherwise answers SERVFAIL ("we want to
///   send an NXDOMAIN, but because of /etc/hosts' setup we don't have a SOA").
/// - [`HostsAnswer::Pass`]: the next plugin answers, whatever `fallthrough` says (SERVFAIL when
///   there is none): the name is outside the zones (for any type but PTR), or a PTR question
///   the table has no name for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostsAnswer {
    /// A, AAAA or PTR records owned by the question name, with the configured TTL.
    Records(Vec<Record>),
    /// The name has an address, but none of this type.
    NoData,
    /// The name (in the zones) has no address.
    NotFound,
    /// Not this plugin's question.
    Pass,
}

/// A name's addresses, in file order.
#[derive(Clone, Debug, Default)]
struct Addresses {
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
}

/// The entries of one source (the file, or the inline lines).
#[derive(Clone, Debug, Default)]
struct Entries {
    /// Owner (wire format) → addresses.
    names: HashMap<Box<[u8]>, Addresses, RandomState>,
    /// Wildcard owner `*.<suffix>`, keyed by the suffix (wire format) → addresses.
    wildcards: HashMap<Box<[u8]>, Addresses, RandomState>,
    /// Address → the names it has, for PTR answers.
    reverse: HashMap<IpAddr, Vec<WireName>, RandomState>,
}

impl Entries {
    /// Parses hosts-file lines, keeping the names in `zones`.
    fn parse<'a>(lines: impl Iterator<Item = &'a str>, zones: &Zones, reverse: bool) -> Self {
        let mut entries = Entries::default();
        for line in lines {
            let line = line.split('#').next().unwrap_or_default();
            let mut fields = line.split_whitespace();
            let (Some(address), Some(_)) = (fields.next(), fields.clone().next()) else {
                continue;
            };
            let address = address.split('%').next().unwrap_or_default();
            let Ok(ip) = address.parse::<IpAddr>() else {
                continue;
            };
            let ip = ip.to_canonical();
            for name in fields {
                let Some(owner) = WireName::from_dotted(name) else {
                    continue;
                };
                if zones.matches(owner.as_bytes()).is_none() {
                    continue;
                }
                if let Some(suffix) = owner.as_bytes().strip_prefix(b"\x01*") {
                    entries.wildcards.entry(suffix.into()).or_default().add(ip);
                    continue;
                }
                let key: Box<[u8]> = owner.as_bytes().into();
                entries.names.entry(key).or_default().add(ip);
                if reverse {
                    entries.reverse.entry(ip).or_default().push(owner);
                }
            }
        }
        entries
    }

    /// The addresses of one family `name` has: its own, else its wildcard's (CoreDNS's
    /// `lookupStaticHostLocked`).
    fn family<T>(&self, name: &[u8], pick: impl Fn(&Addresses) -> &[T]) -> &[T] {
        if let Some(own) = self.names.get(name).map(&pick).filter(|a| !a.is_empty()) {
            return own;
        }
        // The wildcard `*.<suffix>` covers a name of one more label (never a single label).
        let first = usize::from(name.first().copied().unwrap_or(0));
        match name.get(1 + first..) {
            Some(suffix) if first > 0 && suffix != [0] => {
                self.wildcards.get(suffix).map(pick).unwrap_or_default()
            }
            _ => &[],
        }
    }
}

impl Addresses {
    fn add(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) => self.v4.push(v4),
            IpAddr::V6(v6) => self.v6.push(v6),
        }
    }
}

/// The hosts table of one `hosts` plugin instance (see the module docs).
#[derive(Clone, Debug)]
pub struct HostsTable {
    zones: Zones,
    ttl: u32,
    file: Entries,
    inline: Entries,
}

impl HostsTable {
    /// Builds the table from the file's text (when it could be read), the inline lines of the
    /// Corefile block, the plugin's zones (dotted), the TTL of its answers and `no_reverse`.
    /// An error names a zone that is not a domain name.
    pub fn new<S: AsRef<str>>(
        file: Option<&str>,
        inline: &[String],
        zones: impl IntoIterator<Item = S>,
        ttl: u32,
        no_reverse: bool,
    ) -> Result<Self, String> {
        let zones = Zones::parse(zones)?;
        let file = Entries::parse(file.unwrap_or_default().lines(), &zones, !no_reverse);
        let inline = Entries::parse(inline.iter().map(String::as_str), &zones, !no_reverse);
        Ok(HostsTable {
            zones,
            ttl,
            file,
            inline,
        })
    }

    /// Answers a question about `qname` (lowercase wire format) of type `qtype`.
    pub fn lookup(&self, qname: &[u8], qtype: u16) -> HostsAnswer {
        let Some(owner) = WireName::from_wire(qname) else {
            return HostsAnswer::Pass;
        };
        // PTR questions need not be in the zones.
        if qtype == TYPE_PTR {
            let ip = parse_reverse(owner.as_bytes()).map(|ip| ip.to_canonical());
            let names: Vec<&WireName> = (ip.iter())
                .flat_map(|ip| [&self.file, &self.inline].map(|e| e.reverse.get(ip)))
                .flatten()
                .flatten()
                .collect();
            if names.is_empty() {
                return HostsAnswer::Pass;
            }
            let records = names
                .into_iter()
                .map(|name| self.record(&owner, TYPE_PTR, name.as_bytes().to_vec()))
                .collect();
            return HostsAnswer::Records(records);
        }
        if self.zones.matches(owner.as_bytes()).is_none() {
            return HostsAnswer::Pass;
        }
        let name = owner.as_bytes();
        let sources = [&self.file, &self.inline];
        let v4 = sources.map(|entries| entries.family(name, |a| &a.v4));
        let v6 = sources.map(|entries| entries.family(name, |a| &a.v6));
        let records: Vec<Record> = match qtype {
            TYPE_A => (v4.iter().flat_map(|ips| ips.iter()))
                .map(|ip| self.record(&owner, TYPE_A, ip.octets().to_vec()))
                .collect(),
            TYPE_AAAA => (v6.iter().flat_map(|ips| ips.iter()))
                .map(|ip| self.record(&owner, TYPE_AAAA, ip.octets().to_vec()))
                .collect(),
            _ => Vec::new(),
        };
        let known = v4.iter().any(|ips| !ips.is_empty()) || v6.iter().any(|ips| !ips.is_empty());
        if !records.is_empty() {
            HostsAnswer::Records(records)
        } else if known {
            HostsAnswer::NoData
        } else {
            HostsAnswer::NotFound
        }
    }

    /// A record owned by the question name, with the table's TTL.
    fn record(&self, owner: &WireName, rtype: u16, rdata: Vec<u8>) -> Record {
        Record {
            name: owner.clone(),
            rtype,
            class: CLASS_IN,
            ttl: self.ttl,
            rdata,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A NodeHosts file as k3s and kind write it into the coredns ConfigMap, plus the usual
    /// shapes of /etc/hosts.
    const FILE: &str = "\
# NodeHosts
172.18.0.2 node1
172.18.0.3 node2 node2.local   # an alias
172.18.0.4 multi
172.18.0.5 multi
fd00::2 node1
fe80::1%eth0 linklocal
::ffff:10.9.0.1 mapped

bogus-address ignored
10.0.0.9
10.0.0.10 outside.example.net.
10.1.0.1 *.apps.example.org
10.1.0.2 www.apps.example.org
";

    fn name(text: &str) -> Vec<u8> {
        WireName::from_dotted(text).unwrap().as_bytes().to_vec()
    }

    fn table(file: Option<&str>, inline: &[&str], zones: &[&str], no_reverse: bool) -> HostsTable {
        let inline: Vec<String> = inline.iter().map(|l| l.to_string()).collect();
        HostsTable::new(file, &inline, zones, 60, no_reverse).unwrap()
    }

    /// The RDATA of the answers, or what kind of non-answer it was.
    fn rdata(table: &HostsTable, qname: &str, qtype: u16) -> Result<Vec<Vec<u8>>, HostsAnswer> {
        match table.lookup(&name(qname), qtype) {
            HostsAnswer::Records(records) => {
                for r in &records {
                    assert_eq!(
                        (r.name.to_dotted(), r.rtype, r.ttl),
                        (qname.into(), qtype, 60)
                    );
                }
                Ok(records.into_iter().map(|r| r.rdata).collect())
            }
            other => Err(other),
        }
    }

    #[test]
    fn answers_addresses_from_a_node_hosts_file() {
        let t = table(Some(FILE), &[], &["."], false);
        assert_eq!(rdata(&t, "node1.", TYPE_A), Ok(vec![vec![172, 18, 0, 2]]));
        assert_eq!(
            rdata(&t, "node2.local.", TYPE_A),
            Ok(vec![vec![172, 18, 0, 3]])
        );
        assert_eq!(
            rdata(&t, "multi.", TYPE_A),
            Ok(vec![vec![172, 18, 0, 4], vec![172, 18, 0, 5]])
        );
        let fd00_2: Ipv6Addr = "fd00::2".parse().unwrap();
        assert_eq!(
            rdata(&t, "node1.", TYPE_AAAA),
            Ok(vec![fd00_2.octets().to_vec()])
        );
        let fe80_1: Ipv6Addr = "fe80::1".parse().unwrap();
        assert_eq!(
            rdata(&t, "linklocal.", TYPE_AAAA),
            Ok(vec![fe80_1.octets().to_vec()])
        );
        assert_eq!(rdata(&t, "mapped.", TYPE_A), Ok(vec![vec![10, 9, 0, 1]]));
        assert_eq!(
            rdata(&t, "ignored.", TYPE_A).err(),
            Some(HostsAnswer::NotFound)
        );
        assert_eq!(
            rdata(&t, "10.0.0.9.", TYPE_A).err(),
            Some(HostsAnswer::NotFound)
        );
    }

    #[test]
    fn no_data_for_a_known_name_without_that_type() {
        let t = table(Some(FILE), &[], &["."], false);
        assert_eq!(
            rdata(&t, "node2.", TYPE_AAAA).err(),
            Some(HostsAnswer::NoData)
        );
        assert_eq!(rdata(&t, "node1.", 15).err(), Some(HostsAnswer::NoData));
        assert_eq!(rdata(&t, "nowhere.", 15).err(), Some(HostsAnswer::NotFound));
    }

    #[test]
    fn answers_ptr_with_every_name_of_the_address() {
        let t = table(Some(FILE), &["172.18.0.3 inline-name"], &["."], false);
        assert_eq!(
            rdata(&t, "3.0.18.172.in-addr.arpa.", TYPE_PTR),
            Ok(vec![
                name("node2."),
                name("node2.local."),
                name("inline-name.")
            ])
        );
        let v6 = "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.";
        assert_eq!(rdata(&t, v6, TYPE_PTR), Ok(vec![name("node1.")]));
        // Unknown addresses and wildcards give no PTR, and that is never this plugin's answer.
        for unknown in ["9.9.9.9.in-addr.arpa.", "1.0.1.10.in-addr.arpa.", "node1."] {
            assert_eq!(rdata(&t, unknown, TYPE_PTR).err(), Some(HostsAnswer::Pass));
        }
        let t = table(Some(FILE), &[], &["."], true);
        assert_eq!(
            rdata(&t, "3.0.18.172.in-addr.arpa.", TYPE_PTR).err(),
            Some(HostsAnswer::Pass)
        );
        assert_eq!(rdata(&t, "node2.", TYPE_A), Ok(vec![vec![172, 18, 0, 3]]));
    }

    #[test]
    fn lists_the_file_before_the_inline_entries() {
        let t = table(
            Some(FILE),
            &["10.0.0.1 node1", "10.0.0.2 extra"],
            &["."],
            false,
        );
        assert_eq!(
            rdata(&t, "node1.", TYPE_A),
            Ok(vec![vec![172, 18, 0, 2], vec![10, 0, 0, 1]])
        );
        assert_eq!(rdata(&t, "extra.", TYPE_A), Ok(vec![vec![10, 0, 0, 2]]));
        let inline_only = table(None, &["10.0.0.1 a.example.org # comment"], &["."], false);
        assert_eq!(
            rdata(&inline_only, "a.example.org.", TYPE_A),
            Ok(vec![vec![10, 0, 0, 1]])
        );
    }

    #[test]
    fn keeps_to_its_zones() {
        let t = table(
            Some(FILE),
            &["10.0.0.1 in.example.org"],
            &["example.org."],
            false,
        );
        assert_eq!(
            rdata(&t, "in.example.org.", TYPE_A),
            Ok(vec![vec![10, 0, 0, 1]])
        );
        // An entry outside the zones is dropped; a question outside them is not ours.
        assert_eq!(rdata(&t, "node1.", TYPE_A).err(), Some(HostsAnswer::Pass));
        assert_eq!(
            rdata(&t, "missing.example.org.", TYPE_A).err(),
            Some(HostsAnswer::NotFound)
        );
        assert_eq!(
            rdata(&t, "2.0.18.172.in-addr.arpa.", TYPE_PTR).err(),
            Some(HostsAnswer::Pass)
        );
        // PTR questions are answered outside the zones.
        assert_eq!(
            rdata(&t, "1.0.0.10.in-addr.arpa.", TYPE_PTR),
            Ok(vec![name("in.example.org.")])
        );
        assert!(HostsTable::new(None, &[], ["bad..zone"], 60, false).is_err());
    }

    #[test]
    fn wildcards_cover_one_label_below_unless_the_name_has_its_own() {
        let t = table(Some(FILE), &[], &["example.org."], false);
        let wild = vec![vec![10, 1, 0, 1]];
        assert_eq!(rdata(&t, "foo.apps.example.org.", TYPE_A), Ok(wild));
        assert_eq!(
            rdata(&t, "www.apps.example.org.", TYPE_A),
            Ok(vec![vec![10, 1, 0, 2]])
        );
        assert_eq!(
            rdata(&t, "apps.example.org.", TYPE_A).err(),
            Some(HostsAnswer::NotFound)
        );
        assert_eq!(
            rdata(&t, "a.b.apps.example.org.", TYPE_A).err(),
            Some(HostsAnswer::NotFound)
        );
        assert_eq!(
            rdata(&t, "foo.apps.example.org.", TYPE_AAAA).err(),
            Some(HostsAnswer::NoData)
        );
    }

    #[test]
    fn builds_a_large_file_quickly() {
        let file: String = (0..20_000)
            .map(|i| {
                format!(
                    "10.{}.{}.{} node-{i} alias-{i}\n",
                    i >> 16,
                    (i >> 8) & 255,
                    i & 255
                )
            })
            .collect();
        let start = std::time::Instant::now();
        let t = table(Some(&file), &[], &["."], false);
        assert_eq!(
            rdata(&t, "alias-19999.", TYPE_A),
            Ok(vec![vec![10, 0, 78, 31]])
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }
}
