//! CoreDNS's `file` plugin: authoritative answers from zones read from RFC 1035 master files
//! (plugin/file as of CoreDNS 1.13, with 1.14's `reload_by_mtime`).
//!
//! | module | owns |
//! | --- | --- |
//! | [`load`] | reading a master file into records, each with its file and line |
//! | [`zone`] | the immutable zone and the lookup (cuts, CNAMEs, wildcards, negative answers) |
//! | [`write`] | encoding a lookup's answer into the response, record by record |
//!
//! What a question gets, as CoreDNS answers it:
//!
//! - records of its type: AA, the apex NS RRset in the authority section (not under the apex
//!   NS itself), and the addresses of the in-zone names NS, MX and SRV records point to in the
//!   additional section;
//! - the apex SOA: with the apex NS in the authority section;
//! - a CNAME (for any type but CNAME and ANY): the CNAME, then the target's answer, followed
//!   inside the zone (at most [`zone::MAX_CHAIN`] links); a target outside the zone ends the
//!   zone's chain, and the block's chain looks it up (`chain/chase.rs`, as CoreDNS looks it up
//!   through the server);
//! - a name at or below a zone cut: a referral, AA clear, the cut's NS records in the authority
//!   section and the addresses of the servers under the cut as glue (DS at the cut itself is
//!   the parent's to answer, RFC 4035 §3.1.4.1);
//! - a name that exists without the type, or an empty non-terminal: NODATA; a name that does
//!   not exist: NXDOMAIN; both with the apex SOA in the authority section;
//! - a name that does not exist under a wildcard's closest encloser: the wildcard's records,
//!   owned by the question name (RFC 4592);
//! - AXFR and IXFR: REFUSED (CoreDNS without its `transfer` plugin);
//! - with `fallthrough` covering the name, an NXDOMAIN or an empty non-terminal (never NODATA)
//!   goes on to the next plugin instead.
//!
//! Where clusterdns differs, each RFC-backed: a CNAME chain that ends in NODATA or NXDOMAIN
//! carries the SOA (RFC 2308 §2.1-2.2; CoreDNS sends the apex NS); the SOA of negative answers
//! has the TTL RFC 2308 §3 gives it, the smaller of its TTL and MINIMUM (CoreDNS sends its
//! TTL); a wildcard stops at an empty non-terminal closest encloser (RFC 4592 §3.3.1; CoreDNS
//! looks past it); a CNAME chain is followed through wildcards and cuts as any lookup is
//! (CoreDNS only through exact names, handing the rest to a lookup of its own); MX and SRV
//! addresses come with wildcard answers too, once per name; ANY gets the name's RRset of the
//! lowest type (RFC 8482 §4.2, as Knot; CoreDNS answers NODATA); an RRset holds each record
//! once (RFC 2181 §5).
//! DNSSEC is not served: a zone with DNSSEC records is refused when read.

pub mod load;
pub mod write;
pub mod zone;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clusterdns_zone::answer::respond_with;
use clusterdns_zone::name::is_subdomain;
use clusterdns_zone::{Answered, Query, Transport, WireName};

use crate::config::plan::Fallthrough;
use load::{LoadError, ReadFile};
use zone::{Warning, Zone};

/// One zone of a `file` directive, as configured and first read.
#[derive(Clone, Debug)]
pub struct ZoneFile {
    /// The zone's origin.
    pub origin: WireName,
    /// The master file (after `root`).
    pub path: PathBuf,
    /// How often the file is checked for changes (zero: never).
    pub reload: Duration,
    /// Whether a changed file is reloaded whatever its SOA serial says (CoreDNS 1.14's
    /// `reload_by_mtime`); otherwise only a new serial is, as CoreDNS does.
    pub reload_by_mtime: bool,
    /// The zone as read with the configuration; `None` when the file could not be read then
    /// (CoreDNS starts anyway when it will retry, and answers SERVFAIL until it can).
    pub zone: Option<Arc<Zone>>,
    /// The files that zone was read from (the master file and its `$INCLUDE`s).
    pub files: Vec<PathBuf>,
}

/// The `file` plugin of one server block: its zones and where a miss goes.
#[derive(Clone, Debug, Default)]
pub struct FilePlan {
    /// The zones, in the order written.
    pub zones: Vec<ZoneFile>,
    /// The names whose miss (NXDOMAIN, empty non-terminal) goes on down the chain.
    pub fallthrough: Fallthrough,
}

impl FilePlan {
    /// The zone of `qname` (lowercase wire format): the longest of the plugin's origins it is
    /// at or under.
    pub fn zone_of(&self, qname: &[u8]) -> Option<usize> {
        (self.zones.iter().enumerate())
            .filter(|(_, z)| is_subdomain(qname, z.origin.as_bytes()))
            .max_by_key(|(_, z)| z.origin.as_bytes().len())
            .map(|(index, _)| index)
    }
}

/// A zone read from its master file, with what is worth a warning.
#[derive(Debug)]
pub struct Loaded {
    /// The zone.
    pub zone: Zone,
    /// The files it was read from.
    pub files: Vec<PathBuf>,
    /// Records left out, CNAMEs beside other data.
    pub warnings: Vec<Warning>,
}

/// Reads the zone `origin` from the master file at `path` through `read`.
pub fn read(
    origin: &WireName,
    path: &std::path::Path,
    read: ReadFile<'_>,
) -> Result<Loaded, LoadError> {
    let source = load::read_zone(path, &origin.to_dotted(), read)?;
    let (zone, warnings) = Zone::build(origin.as_bytes(), &source)?;
    Ok(Loaded {
        zone,
        files: source.files,
        warnings,
    })
}

/// What the plugin does with a question of its zone `zone`.
pub enum Step {
    /// The response is in the output buffer.
    Answered(Answered),
    /// A miss `fallthrough` passes on to the next plugin.
    Next,
}

/// Answers `query` (its name at or under `zone`'s origin) into `out`, or passes a miss on when
/// `fallthrough` covers the name.
pub fn answer(
    zone: &Zone,
    fallthrough: &Fallthrough,
    query: &Query,
    packet: &[u8],
    out: &mut [u8],
    transport: Transport,
) -> Step {
    let qname = query.qname();
    let found = zone.lookup(qname, query.qtype);
    if found.is_miss() && fallthrough.covers(qname) {
        return Step::Next;
    }
    let flags = (found.rcode(), found.authoritative());
    Step::Answered(respond_with(
        query,
        packet,
        out,
        transport,
        flags,
        |out, start, end| write::write(zone, &found, qname, out, start, end),
    ))
}

#[cfg(test)]
mod tests;
