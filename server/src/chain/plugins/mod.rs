//! The logic of the CoreDNS plugins a Corefile can put in front of the cluster zone, without I/O:
//! each takes a question (lowercase wire-format name, type, class) and says what to answer, or
//! that the query goes on down the plugin chain. Reading files, parsing the Corefile and routing
//! queries between plugins are the caller's.
//!
//! | module | owns |
//! | --- | --- |
//! | [`chaos`] | the `chaos` plugin: CH TXT answers about the server (`version.bind`, ...) |
//! | [`hosts`] | the `hosts` plugin: an /etc/hosts table and its A, AAAA and PTR answers |
//! | [`rewrite`] | the `rewrite` rules: the query as they change it, and the response they change back |
//! | [`template`] | the `template` plugin: answers built from regex matches of the name |
//! | [`records`] | the records they produce, and the zone-file syntax templates write them in |
//! | [`bufsize`] | the `bufsize` plugin: the ceiling on a query's EDNS payload size |
//! | [`whoami`] | the `whoami` plugin: the client's address, port and transport as records |
//! | [`dns64`] | the `dns64` plugin: AAAA records synthesized from A records (RFC 6147) |
//! | [`file`] | the `file` plugin: zones read from master files, answered authoritatively |
//! | [`k8s_external`] | the `k8s_external` plugin: Services' external addresses in another zone |
//! | [`body`] | the records of a response a plugin writes itself, in wire format |
//! | [`acl`] | the `acl` plugin: which queries are blocked, filtered or dropped, by source and type |
//! | [`local`] | the `local` plugin: `localhost.` and the loopback reverse zones |
//! | [`nsid`] | the `nsid` plugin: the server's identifier in answers that ask for it (RFC 5001) |
//! | [`minimal`] | the `minimal` plugin: positive answers without authority and additional records |
//! | [`header`] | the `header` plugin: the AA, RA and RD flags of answers |
//! | [`edns`] | EDNS options in queries and responses (NSID, Extended DNS Errors) |
//!
//! [`Zones`] is the zone list every plugin is scoped by (and `fallthrough` is limited to).

pub mod acl;
pub mod autopath;
pub mod body;
pub mod bufsize;
pub mod chaos;
pub mod dns64;
pub mod edns;
pub mod file;
pub mod header;
pub mod hosts;
pub mod k8s_external;
pub mod local;
pub mod message;
pub mod minimal;
pub mod nsid;
pub mod records;
pub mod rewrite;
pub mod template;
pub mod whoami;

use clusterdns_zone::name::is_subdomain;
use clusterdns_zone::WireName;

/// A list of zones; a name belongs to the longest one it is in (CoreDNS's `plugin.Zones`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zones(Vec<WireName>);

impl Zones {
    /// The zones named in `zones` (dotted, a trailing dot optional, any case); an error names
    /// the first one that is not a domain name.
    pub fn parse<S: AsRef<str>>(zones: impl IntoIterator<Item = S>) -> Result<Self, String> {
        let parsed = zones
            .into_iter()
            .map(|zone| {
                let zone = zone.as_ref();
                WireName::from_dotted(zone).ok_or_else(|| format!("invalid zone {zone:?}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Zones(parsed))
    }

    /// The root zone alone: every name (what `fallthrough` without zones covers).
    pub fn root() -> Self {
        Zones(vec![WireName::root()])
    }

    /// The longest zone `name` (lowercase wire format) is in, if any.
    pub fn matches(&self, name: &[u8]) -> Option<&WireName> {
        (self.0.iter())
            .filter(|zone| is_subdomain(name, zone.as_bytes()))
            .max_by_key(|zone| zone.as_bytes().len())
    }

    /// The zones, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &WireName> {
        self.0.iter()
    }

    /// Whether there are no zones.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_longest_zone() {
        let zones = Zones::parse(["example.org", "Sub.Example.Org.", "."]).unwrap();
        let name = WireName::from_dotted("a.sub.example.org.").unwrap();
        let sub = WireName::from_dotted("sub.example.org.").unwrap();
        assert_eq!(zones.matches(name.as_bytes()), Some(&sub));
        let other = WireName::from_dotted("example.net.").unwrap();
        assert_eq!(zones.matches(other.as_bytes()), Some(&WireName::root()));
        let only = Zones::parse(["example.org."]).unwrap();
        let lookalike = WireName::from_dotted("notexample.org.").unwrap();
        assert_eq!(only.matches(lookalike.as_bytes()), None);
        assert!(Zones::parse(["a..b"]).is_err());
    }
}
