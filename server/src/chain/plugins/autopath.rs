//! CoreDNS's `autopath`: server-side search-path completion. A pod's resolver with the default
//! `ndots:5` tries `<name>.<its namespace>.svc.<zone>` first, then the rest of its search path,
//! one round trip each, before the name as written. When a query is that first expansion,
//! clusterdns walks the rest of the search path itself and answers with what the resolver would
//! have ended up with: a CNAME from the asked name to the name that exists, then its records
//! (NXDOMAIN only when every expansion fails).
//!
//! This module owns the search path: which queries are a first expansion, and the names to try
//! after it. With `@kubernetes` the path is the client's: its namespace comes from its address
//! (the zone's Pod address index), then `svc.<zone>`, `<zone>`, the search domains of a
//! resolv.conf, and the name as written. With a resolv.conf alone the path is that file's
//! search list, the same for every client.

use clusterdns_zone::WireName;

/// The search path of a server block's `autopath`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchPath {
    /// With `@kubernetes`: the cluster zone (lowercase wire format), after the client's
    /// `<namespace>.svc.` and `svc.`.
    pub cluster_zone: Option<WireName>,
    /// The search domains after the cluster's (lowercase wire format), from a resolv.conf.
    pub domains: Vec<WireName>,
}

/// A query that is the first element of its client's search path: the labels before it, and
/// (with `@kubernetes`) the `svc.<zone>` suffix it ends with. Found without allocating.
#[derive(Clone, Copy, Debug)]
pub struct FirstExpansion<'q> {
    base: &'q [u8],
    svc_zone: Option<&'q [u8]>,
}

impl SearchPath {
    /// Whether `qname` (lowercase wire format) is the first element of the search path with
    /// something before it; `namespace` is the client's (one label, lowercase), known only for
    /// a Pod's address. Allocates nothing: most queries are not.
    pub fn first_expansion<'q>(
        &self,
        qname: &'q [u8],
        namespace: Option<&[u8]>,
    ) -> Option<FirstExpansion<'q>> {
        match &self.cluster_zone {
            Some(zone) => {
                let namespace = namespace?;
                let zone = zone.as_bytes();
                let label = [u8::try_from(namespace.len()).ok()?];
                let base = strip_suffix(qname, &[&label, namespace, SVC, zone])?;
                let svc_zone = &qname[qname.len() - SVC.len() - zone.len()..];
                Some(FirstExpansion {
                    base,
                    svc_zone: Some(svc_zone),
                })
            }
            None => {
                let first = self.domains.first()?;
                let base = strip_suffix(qname, &[first.as_bytes()])?;
                Some(FirstExpansion {
                    base,
                    svc_zone: None,
                })
            }
        }
    }

    /// The names to try after the first expansion, in order, ending with the name as written.
    pub fn expansions(&self, first: FirstExpansion) -> Vec<WireName> {
        let mut suffixes: Vec<&[u8]> = Vec::with_capacity(self.domains.len() + 3);
        match (first.svc_zone, &self.cluster_zone) {
            (Some(svc_zone), Some(zone)) => {
                suffixes.push(svc_zone);
                suffixes.push(zone.as_bytes());
                suffixes.extend(self.domains.iter().map(|d| d.as_bytes()));
            }
            _ => suffixes.extend(self.domains.iter().skip(1).map(|d| d.as_bytes())),
        }
        suffixes.push(b"\0");
        suffixes
            .iter()
            .filter_map(|suffix| WireName::from_wire(&[first.base, suffix].concat()))
            .collect()
    }
}

/// The `svc` label in wire format.
const SVC: &[u8] = b"\x03svc";

/// The labels of `qname` before a suffix made of `parts` (wire format, ending with the root),
/// when that suffix is a whole number of labels and something comes before it.
fn strip_suffix<'q>(qname: &'q [u8], parts: &[&[u8]]) -> Option<&'q [u8]> {
    let suffix_len: usize = parts.iter().map(|p| p.len()).sum();
    let start = qname.len().checked_sub(suffix_len).filter(|&s| s > 0)?;
    let mut at = 0;
    while at < start {
        at += 1 + usize::from(*qname.get(at)?);
    }
    if at != start {
        return None;
    }
    let mut tail = &qname[start..];
    for part in parts {
        tail = tail.strip_prefix(*part)?;
    }
    tail.is_empty().then_some(&qname[..start])
}

/// The `search` domains of a resolv.conf's text, in order (the last `search` or `domain` line
/// wins, as the C library reads it); names that are not domain names are left out.
pub fn search_domains(resolv_conf: &str) -> Vec<WireName> {
    let mut domains = Vec::new();
    for line in resolv_conf.lines() {
        let mut words = line.split_whitespace();
        if let Some("search" | "domain") = words.next() {
            domains = words
                .filter_map(|word| WireName::from_dotted(&word.to_ascii_lowercase()))
                .filter(|name| name.as_bytes() != b"\0")
                .collect();
        }
    }
    domains
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(dotted: &str) -> WireName {
        WireName::from_dotted(dotted).unwrap()
    }

    fn dotted(names: &[WireName]) -> Vec<String> {
        names.iter().map(WireName::to_dotted).collect()
    }

    fn kubernetes(domains: &[&str]) -> SearchPath {
        SearchPath {
            cluster_zone: Some(wire("cluster.local")),
            domains: domains.iter().map(|d| wire(d)).collect(),
        }
    }

    #[test]
    fn the_first_expansion_gets_the_rest_of_the_clients_search_path() {
        let path = kubernetes(&["ec2.internal"]);
        let qname = wire("api.example.com.apps.svc.cluster.local");
        let first = path
            .first_expansion(qname.as_bytes(), Some(b"apps"))
            .unwrap();
        let names = path.expansions(first);
        assert_eq!(
            dotted(&names),
            [
                "api.example.com.svc.cluster.local.",
                "api.example.com.cluster.local.",
                "api.example.com.ec2.internal.",
                "api.example.com.",
            ]
        );
    }

    #[test]
    fn other_queries_are_left_alone() {
        let path = kubernetes(&[]);
        let other_namespace = wire("web.apps.svc.cluster.local");
        assert!(path
            .first_expansion(other_namespace.as_bytes(), Some(b"db"))
            .is_none());
        // The element itself has nothing before it.
        let bare = wire("apps.svc.cluster.local");
        assert!(path
            .first_expansion(bare.as_bytes(), Some(b"apps"))
            .is_none());
        // The namespace label must be a whole label.
        let longer = wire("web.xapps.svc.cluster.local");
        assert!(path
            .first_expansion(longer.as_bytes(), Some(b"apps"))
            .is_none());
        // An unknown or hostNetwork client has no namespace.
        let asked = wire("web.apps.svc.cluster.local");
        assert!(path.first_expansion(asked.as_bytes(), None).is_none());
    }

    #[test]
    fn a_resolv_conf_search_list_is_the_same_for_every_client() {
        let path = SearchPath {
            cluster_zone: None,
            domains: search_domains("nameserver 10.0.0.2\nsearch corp.example lab.example\n"),
        };
        let qname = wire("wiki.corp.example");
        let first = path.first_expansion(qname.as_bytes(), None).unwrap();
        let names = path.expansions(first);
        assert_eq!(dotted(&names), ["wiki.lab.example.", "wiki."]);
    }

    #[test]
    fn search_lines_as_the_c_library_reads_them() {
        let read = |text| dotted(&search_domains(text));
        assert_eq!(
            read("search a.example B.example\n"),
            ["a.example.", "b.example."]
        );
        assert_eq!(read("search a.example\ndomain c.example\n"), ["c.example."]);
        assert!(read("nameserver 1.1.1.1\n").is_empty());
    }
}
