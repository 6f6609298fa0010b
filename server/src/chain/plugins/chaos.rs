//! CoreDNS's `chaos` plugin: TXT answers in the CH class about the server itself, asked as
//! `dig CH TXT version.bind`. OpenShift's dns-operator puts it in every cluster's Corefile
//! (`hostname.bind:5353 { chaos }`).
//!
//! | name | answer |
//! | --- | --- |
//! | `version.bind`, `version.server` | the version (default `clusterdns-<version>`) |
//! | `authors.bind` | one TXT record per author |
//! | `hostname.bind`, `id.server` | the host name (the Pod's name in a cluster) |
//!
//! Records have TTL 0 and the CH class; the response is not authoritative, as CoreDNS writes
//! it. Other names, other types and other classes go on down the chain.

/// The `chaos` plugin's answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chaos {
    version: String,
    authors: Vec<String>,
    hostname: String,
}

/// The longest character string a TXT record holds (RFC 1035 §3.3).
const MAX_TEXT: usize = 255;

impl Chaos {
    /// `chaos [VERSION] [AUTHORS...]` as CoreDNS reads it: no argument gives the default
    /// version; one gives the version; more give the version and the authors (each once,
    /// sorted). `hostname` answers `hostname.bind` and `id.server`.
    pub fn new(args: &[&str], hostname: &str) -> Chaos {
        let (version, authors) = match args {
            [] => (concat!("clusterdns-", env!("CARGO_PKG_VERSION")), &[][..]),
            [version, authors @ ..] => (*version, authors),
        };
        let mut authors: Vec<String> = authors.iter().map(|a| trim(a)).collect();
        authors.sort();
        authors.dedup();
        if authors.is_empty() {
            authors.push("clusterdns".into());
        }
        Chaos {
            version: trim(version),
            authors,
            hostname: trim(hostname),
        }
    }

    /// The TXT strings answering `qname` (lowercase wire format), or `None` when the name is
    /// not one the plugin answers.
    pub fn answer(&self, qname: &[u8]) -> Option<Vec<&str>> {
        match qname {
            b"\x07version\x04bind\x00" | b"\x07version\x06server\x00" => {
                Some(vec![self.version.as_str()])
            }
            b"\x07authors\x04bind\x00" => Some(self.authors.iter().map(String::as_str).collect()),
            b"\x08hostname\x04bind\x00" | b"\x02id\x06server\x00" => {
                Some(vec![self.hostname.as_str()])
            }
            _ => None,
        }
    }
}

/// `text` cut to what one TXT string holds, on a character boundary.
fn trim(text: &str) -> String {
    let mut end = text.len().min(MAX_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clusterdns_zone::WireName;

    fn wire(name: &str) -> WireName {
        WireName::from_dotted(name).expect("a name")
    }

    /// The cases of CoreDNS's README and tests: `chaos CoreDNS-001 info@coredns.io`.
    #[test]
    fn answers_as_the_readme_says() {
        let chaos = Chaos::new(&["CoreDNS-001", "info@coredns.io"], "pod-1");
        let table: [(&str, Option<Vec<&str>>); 7] = [
            ("version.bind", Some(vec!["CoreDNS-001"])),
            ("version.server", Some(vec!["CoreDNS-001"])),
            ("authors.bind", Some(vec!["info@coredns.io"])),
            ("hostname.bind", Some(vec!["pod-1"])),
            ("id.server", Some(vec!["pod-1"])),
            ("example.org", None),
            ("bind", None),
        ];
        for (name, expected) in table {
            assert_eq!(chaos.answer(wire(name).as_bytes()), expected, "{name}");
        }
    }

    #[test]
    fn arguments_as_coredns_reads_them() {
        let default = Chaos::new(&[], "h");
        let version = default.answer(wire("version.bind").as_bytes());
        assert_eq!(version.map(|v| v[0].starts_with("clusterdns-")), Some(true));
        let one = Chaos::new(&["v1"], "h");
        assert_eq!(
            one.answer(wire("version.bind").as_bytes()),
            Some(vec!["v1"])
        );
        let many = Chaos::new(&["v1", "b", "a", "b"], "h");
        let authors = many.answer(wire("authors.bind").as_bytes());
        assert_eq!(authors, Some(vec!["a", "b"]));
        let long = Chaos::new(&[&"x".repeat(300)], "h");
        let version = long.answer(wire("version.bind").as_bytes());
        assert_eq!(version.map(|v| v[0].len()), Some(255));
    }
}
