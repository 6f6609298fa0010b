//! The published zone: an immutable [`Snapshot`] of four sharded tables that readers get from
//! an `ArcSwap` and never wait on:
//!
//! ```text
//!  services  <svc>.<ns> ──▶ ServiceRecord   every name under a ClusterIP or headless Service,
//!                                            derived at query time (see `derived`)
//!  reverse   address ──▶ owning Services     PTR, derived at query time
//!  clients   Pod address ──▶ namespace       the namespace a query's client is in
//!  nodes     name ──▶ pre-encoded node       the few fixed names: apex, `ns.dns`, `dns-version`,
//!                                            empty non-terminals, namespaces, ExternalName
//!                                            Services, verified pod names
//! ```
//!
//! [`Snapshot::lookup`] classifies a question: which of these answers it, or which negative
//! answer it gets.

use std::net::IpAddr;
use std::sync::Arc;

use crate::clients::Clients;
use crate::derived::Derived;
use crate::external::ExternalIndex;
use crate::name::{parse_dashed_ip, parse_reverse, WireName};
use crate::node::{key_of, Entry, Node, NodeBlob, ANY_TYPE_ENTRY};
use crate::record::{Label, ServiceRecord};
use crate::reverse::Reverse;
use crate::table::{Keyed, Sharded};
use crate::wire::{skip_name, HEADER_LEN, TYPE_SOA, TYPE_SRV, TYPE_TXT};
use crate::wire::{TYPE_A, TYPE_AAAA, TYPE_ANY, TYPE_AXFR, TYPE_IXFR, TYPE_PTR};

/// How names under `pod.<zone>` are answered (CoreDNS's `pods` option).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodsMode {
    /// No pod records: NXDOMAIN below `pod.<zone>`.
    Disabled,
    /// Any `a-b-c-d.<ns>.pod.<zone>` answers the address it spells (kubeadm's default).
    Insecure,
    /// Only addresses of Pods that exist in that namespace.
    Verified,
}

/// What a zone is built with; fixed for the life of a builder.
#[derive(Clone, Debug)]
pub struct ZoneConfig {
    /// The cluster domain (default `cluster.local`).
    pub domain: WireName,
    /// TTL of every record (default 5, as CoreDNS).
    pub ttl: u32,
    /// Pod record mode.
    pub pods: PodsMode,
    /// A ClusterIP Service without a ready endpoint is answered as if it did not exist:
    /// NXDOMAIN for its name and every name below it, so a client's search path goes on
    /// (CoreDNS `ignore empty_service`). Its PTR stays, as in CoreDNS.
    pub ignore_empty_service: bool,
    /// Only namespaces with a Namespace object are served: a Service of another namespace is
    /// kept, hidden (no name, no reverse name), and appears when its Namespace does. The server
    /// sets it for CoreDNS `namespace_labels`, whose source reports only the Namespaces the
    /// selector matches (see the `builder` module docs).
    pub namespace_objects_only: bool,
}

impl Default for ZoneConfig {
    fn default() -> Self {
        ZoneConfig {
            domain: WireName::from_dotted("cluster.local").unwrap_or_else(WireName::root),
            ttl: 5,
            pods: PodsMode::Insecure,
            ignore_empty_service: false,
            namespace_objects_only: false,
        }
    }
}

/// Length of the SOA record of negative answers (owner pointer, header, compressed rdata).
pub const SOA_RECORD_LEN: usize = 54;

impl Keyed for NodeBlob {
    type Key = [u8];
    fn key(&self) -> &[u8] {
        key_of(self)
    }
}

impl Keyed for Arc<ServiceRecord> {
    type Key = [u8];
    fn key(&self) -> &[u8] {
        &self.key
    }
}

/// The tables a snapshot reads and the builder edits (see the module docs).
#[derive(Clone)]
pub(crate) struct Tables {
    pub(crate) services: Sharded<Arc<ServiceRecord>>,
    pub(crate) reverse: Reverse,
    pub(crate) nodes: Sharded<NodeBlob>,
    /// Client address → namespace (`clients`).
    pub(crate) clients: Clients,
    /// External address → the Services that have it (`external`).
    pub(crate) external: ExternalIndex,
}

impl Tables {
    pub(crate) fn new(seed: u64) -> Self {
        Tables {
            services: Sharded::new(seed),
            reverse: Reverse::new(seed.rotate_left(17)),
            nodes: Sharded::new(seed.rotate_left(41)),
            clients: Clients::new(seed.rotate_left(53)),
            external: ExternalIndex::default(),
        }
    }

    /// The Service record whose key hashes to `owner`.
    pub(crate) fn owner(&self, owner: u64) -> Option<&ServiceRecord> {
        self.services.find(owner, |r| r.hash == owner).map(|r| &**r)
    }

    /// The records owning `ip`'s reverse name.
    pub(crate) fn owners(&self, ip: IpAddr) -> impl Iterator<Item = &ServiceRecord> {
        self.reverse
            .owners(ip)
            .filter_map(|owner| self.owner(owner))
    }
}

/// Counts describing a snapshot, for the startup log line and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZoneStats {
    /// Namespaces that exist (as objects or by holding a Service).
    pub namespaces: usize,
    /// Services.
    pub services: usize,
    /// Endpoints over all EndpointSlices.
    pub endpoints: usize,
    /// Owner names in the zone (including reverse names).
    pub names: usize,
}

/// An immutable, published zone.
pub struct Snapshot {
    pub(crate) config: Arc<ZoneConfig>,
    /// The SOA record of negative answers, without its owner (see [`Snapshot::write_soa`]).
    pub(crate) soa: Box<[u8]>,
    pub(crate) serial: u32,
    pub(crate) synced: bool,
    pub(crate) tables: Tables,
    pub(crate) stats: ZoneStats,
}

/// What answers a question (see [`Lookup::Answer`]).
#[derive(Clone, Copy)]
pub struct Found<'a> {
    pub(crate) snapshot: &'a Snapshot,
    pub(crate) what: Derived<'a>,
}

impl std::fmt::Debug for Found<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Found").field(&self.what).finish()
    }
}

/// The result of looking a name up in a snapshot.
#[derive(Clone, Copy, Debug)]
pub enum Lookup<'a> {
    /// Records to write: a pre-encoded node's, or ones derived from a Service (see
    /// [`Found::write`]).
    Answer(Found<'a>),
    /// The name exists but has no record of the asked type.
    NoData,
    /// The name does not exist in the zone.
    NxDomain,
    /// A pod name (`pods insecure`): the address it spells, of the asked family.
    PodAddress(IpAddr),
    /// The zone has not been synced yet: SERVFAIL.
    NotSynced,
    /// A zone transfer: REFUSED.
    TransferRefused,
    /// The name is outside the zones this snapshot answers for.
    Outside,
}

impl Snapshot {
    /// A snapshot that answers SERVFAIL for the cluster zone until the first sync.
    pub fn unsynced(config: ZoneConfig) -> Self {
        Snapshot {
            soa: Box::new([]),
            config: Arc::new(config),
            serial: 0,
            synced: false,
            tables: Tables::new(0),
            stats: ZoneStats::default(),
        }
    }

    /// The configuration this snapshot was built with.
    pub fn config(&self) -> &ZoneConfig {
        &self.config
    }

    /// The SOA serial.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// Whether the source had synced when this snapshot was built.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Counts describing the zone.
    pub fn stats(&self) -> ZoneStats {
        self.stats
    }

    /// The namespace of the Pod that holds `client` (lowercase, as a DNS label), for a query
    /// from that address: no lock, no allocation (see the crate's `clients` module). `None`
    /// for an address no Pod holds, a host-network Pod's (the node's) among them, and always
    /// unless the source reports client addresses ([`crate::Change::PodAddressUpsert`]). An
    /// IPv4-mapped IPv6 address is looked up as its IPv4 address.
    pub fn client_namespace(&self, client: IpAddr) -> Option<&str> {
        self.tables.clients.namespace(client)
    }

    /// Every client address and its namespace, in no particular order, for tests and tools.
    pub fn client_addresses(&self) -> impl Iterator<Item = (IpAddr, &str)> + '_ {
        self.tables.clients.iter()
    }

    /// Writes the SOA record for the authority section of a negative answer to a question whose
    /// name is `qname_len` bytes long and inside the zone: owner, mname and rname point at the
    /// zone part of the question, so they echo the client's spelling (as CoreDNS does). Returns
    /// the length written (at most [`SOA_RECORD_LEN`]), 0 before the first sync.
    pub fn write_soa(&self, qname_len: usize, out: &mut [u8; SOA_RECORD_LEN]) -> usize {
        self.write_soa_of(qname_len, self.config.domain.as_bytes().len(), out)
    }

    /// [`Snapshot::write_soa`] for another zone the cluster is authoritative for (a reverse zone
    /// such as `in-addr.arpa.`), `zone_len` bytes long and a suffix of the question name: the
    /// same record, owned by that zone.
    pub fn write_soa_of(
        &self,
        qname_len: usize,
        zone_len: usize,
        out: &mut [u8; SOA_RECORD_LEN],
    ) -> usize {
        let Some(zone_at) = (HEADER_LEN + qname_len).checked_sub(zone_len) else {
            return 0;
        };
        if self.soa.len() + 2 != SOA_RECORD_LEN {
            return 0;
        }
        let pointer = (0xC000 | zone_at as u16).to_be_bytes();
        out[..2].copy_from_slice(&pointer);
        out[2..].copy_from_slice(&self.soa);
        // mname `ns.dns.` and rname `hostmaster.` end in pointers (template offsets 17 and 30).
        out[2 + 17..2 + 19].copy_from_slice(&pointer);
        out[2 + 30..2 + 32].copy_from_slice(&pointer);
        SOA_RECORD_LEN
    }

    /// Whether the lowercase wire name `qname` is the cluster domain or below it.
    pub fn in_zone(&self, qname: &[u8]) -> bool {
        crate::name::is_subdomain(qname, self.config.domain.as_bytes())
    }

    fn found<'a>(&'a self, what: Derived<'a>) -> Lookup<'a> {
        Lookup::Answer(Found {
            snapshot: self,
            what,
        })
    }

    /// Looks up the lowercase wire name `qname` for `qtype` (see [`Lookup`]).
    pub fn lookup<'a>(&'a self, qname: &'a [u8], qtype: u16) -> Lookup<'a> {
        if let Some(ip) = parse_reverse(qname) {
            // Only PTR is ours on reverse names; other types go where unknown names go.
            return match self.tables.owners(ip).next() {
                Some(_) if qtype == TYPE_PTR => self.found(Derived::Ptr(ip)),
                _ => Lookup::Outside,
            };
        }
        if !self.in_zone(qname) {
            return Lookup::Outside;
        }
        if !self.synced {
            return Lookup::NotSynced;
        }
        if qtype == TYPE_AXFR || qtype == TYPE_IXFR {
            return Lookup::TransferRefused;
        }
        if let Some(lookup) = self.lookup_service_name(qname, qtype) {
            return lookup;
        }
        if qtype == TYPE_SOA && qname == self.config.domain.as_bytes() {
            // The apex SOA is the record negative answers carry, owned by the question.
            return self.found(Derived::Soa);
        }
        if let Some(blob) = self.tables.nodes.get(qname) {
            return match answer_entry(Node::new(blob), qtype) {
                Some(entry) => self.found(Derived::Entry(entry)),
                None => Lookup::NoData,
            };
        }
        if self.config.pods == PodsMode::Insecure {
            if let Some(ip) = self.insecure_pod_address(qname) {
                return match (ip, qtype) {
                    (IpAddr::V4(_), TYPE_A) | (IpAddr::V6(_), TYPE_AAAA) => Lookup::PodAddress(ip),
                    (_, TYPE_ANY) => Lookup::PodAddress(ip),
                    _ => Lookup::NoData,
                };
            }
        }
        Lookup::NxDomain
    }

    /// Names under a ClusterIP or headless Service: `<svc>.<ns>.svc`, `<ep>.<svc>.<ns>.svc`,
    /// `_<proto>.<svc>.<ns>.svc` and `_<port>._<proto>.<svc>.<ns>.svc` in the zone. `None` when
    /// the name is not of that shape or is an ExternalName Service's (the nodes table decides).
    fn lookup_service_name<'a>(&'a self, qname: &'a [u8], qtype: u16) -> Option<Lookup<'a>> {
        let labels = match self.service_name(qname) {
            ServiceShape::Other => return None,
            ServiceShape::TooDeep => return Some(Lookup::NxDomain),
            ServiceShape::Name(labels) => labels,
        };
        // Every Service, ExternalName ones included, has a record: without one, nothing under
        // `svc` this deep exists (the fixed names stop at `<ns>.svc`).
        let Some(record) = self.tables.services.get(labels.key()) else {
            return Some(Lookup::NxDomain);
        };
        if !record.answers_below() {
            // An ExternalName Service's own name is a pre-encoded node; nothing is below it.
            return (labels.count > 3).then_some(Lookup::NxDomain);
        }
        if self.config.ignore_empty_service && record.is_empty_cluster_ip() {
            // `ignore empty_service`: the Service and every name below it do not exist.
            return Some(Lookup::NxDomain);
        }
        let exists = |found: bool| {
            if found {
                Lookup::NoData
            } else {
                Lookup::NxDomain
            }
        };
        let lookup = match labels.count {
            3 => {
                if !record.base_exists() {
                    return Some(Lookup::NxDomain);
                }
                self.typed(qtype, &[TYPE_A, TYPE_AAAA, TYPE_SRV], |t| match t {
                    TYPE_SRV => Derived::srv(record, None),
                    family => Derived::base_addresses(record, family),
                })
            }
            4 => match labels.label(0) {
                [b'_', protocol @ ..] => exists(record.has_protocol(protocol)),
                endpoint => {
                    let endpoint = Label::new(endpoint);
                    if !record.endpoints().any(|(e, _)| e.has_label(&endpoint)) {
                        return Some(Lookup::NxDomain);
                    }
                    self.typed(qtype, &[TYPE_A, TYPE_AAAA], |family| {
                        Derived::endpoint_addresses(record, endpoint, family)
                    })
                }
            },
            5 => match (labels.label(0), labels.label(1)) {
                ([b'_', name @ ..], [b'_', protocol @ ..]) if record.has_port(name, protocol) => {
                    self.typed(qtype, &[TYPE_SRV], |_| {
                        Derived::srv(record, Some((name, protocol)))
                    })
                }
                _ => Lookup::NxDomain,
            },
            _ => Lookup::NxDomain,
        };
        Some(lookup)
    }

    /// The labels of `qname`, a wire name in the zone, when it is at least `<svc>.<ns>.svc`.
    fn service_name<'q>(&self, qname: &'q [u8]) -> ServiceShape<'q> {
        let prefix = &qname[..qname.len() - self.config.domain.as_bytes().len()];
        if !prefix.ends_with(b"\x03svc") {
            return ServiceShape::Other;
        }
        let mut name = ServiceName {
            prefix,
            starts: [0; 6],
            count: 0,
        };
        let (mut at, mut last) = (0, 0);
        while at < prefix.len() {
            if let Some(start) = name.starts.get_mut(name.count) {
                *start = at;
            }
            last = at;
            name.count += 1;
            at += 1 + usize::from(prefix[at]);
        }
        if last + 4 != prefix.len() {
            // The bytes `\x03svc` end a longer label (`a\x03svc`): not `svc` itself.
            ServiceShape::Other
        } else if name.count > name.starts.len() {
            ServiceShape::TooDeep
        } else if name.count < 3 {
            ServiceShape::Other
        } else {
            ServiceShape::Name(name)
        }
    }

    /// Starts loading, without waiting, the Service records that answering the questions of
    /// `packets` will read (by name under `svc.<zone>`, or as the owner of a reverse name), so
    /// that a listener holding a batch of queries has their cache misses overlap instead of
    /// follow one another. Only a hint: it reads the raw question name (a differently-cased
    /// name is a wasted prefetch) and answers nothing; a packet that is no question, or a name
    /// of another shape, costs a few comparisons. At most [`PREFETCH_BATCH`] packets are looked
    /// at.
    pub fn prefetch<'p>(&self, packets: impl IntoIterator<Item = &'p [u8]>) {
        let (services, reverse) = (&self.tables.services, &self.tables.reverse);
        // The Service keys' hashes, then the owners of the reverse names as they are found.
        let mut hashes = [0u64; PREFETCH_BATCH];
        let mut keys = 0;
        let mut addresses = [IpAddr::from([0u8; 4]); PREFETCH_BATCH];
        let mut reversed = 0;
        for packet in packets.into_iter().take(PREFETCH_BATCH) {
            let Some(qname) =
                skip_name(packet, HEADER_LEN).and_then(|end| packet.get(HEADER_LEN..end))
            else {
                continue;
            };
            // In the order `lookup` takes them: a reverse name, else a name in the zone.
            if let Some(ip) = parse_reverse(qname) {
                reverse.prefetch_pointer(ip);
                addresses[reversed] = ip;
                reversed += 1;
            } else if self.in_zone(qname) {
                if let ServiceShape::Name(name) = self.service_name(qname) {
                    let hash = services.hash(name.key());
                    services.prefetch_pointer(hash);
                    hashes[keys] = hash;
                    keys += 1;
                }
            }
        }
        // Every load is started at least one pass before it is read, so a batch's loads overlap.
        for &ip in &addresses[..reversed] {
            reverse.prefetch_shard(ip);
        }
        self.prefetch_records(&hashes[..keys]);
        // A PTR answer comes from the address's owners' records: the first owner's, in turn.
        let mut owners = keys;
        for &ip in &addresses[..reversed] {
            if let Some(owner) = reverse.owners(ip).next() {
                services.prefetch_pointer(owner);
                hashes[owners] = owner;
                owners += 1;
            }
        }
        self.prefetch_records(&hashes[keys..owners]);
    }

    /// The last two passes of [`Snapshot::prefetch`] for the Service records with these key
    /// hashes, whose shard pointers are on their way: the shard tables' headers, then a probe of
    /// each table that starts loading the records.
    fn prefetch_records(&self, hashes: &[u64]) {
        let services = &self.tables.services;
        for &hash in hashes {
            services.prefetch_shard(hash);
        }
        for &hash in hashes {
            services.prefetch_values(hash, RECORD_LINES, |r| Arc::as_ptr(r).cast());
        }
    }

    /// The answer for `qtype` among the types a name has (`types`, in RFC 8482 order for ANY):
    /// `derive` gives what each type would answer, `None` when the name has none of it.
    fn typed<'a>(
        &'a self,
        qtype: u16,
        types: &[u16],
        derive: impl Fn(u16) -> Option<Derived<'a>>,
    ) -> Lookup<'a> {
        let found = if qtype == TYPE_ANY {
            types.iter().find_map(|&t| derive(t))
        } else if types.contains(&qtype) {
            derive(qtype)
        } else {
            None
        };
        match found {
            Some(what) => self.found(what),
            None => Lookup::NoData,
        }
    }

    /// `a-b-c-d.<ns>.pod.<zone>` where `<ns>` exists: the address the first label spells.
    fn insecure_pod_address(&self, qname: &[u8]) -> Option<IpAddr> {
        let first = usize::from(*qname.first()?);
        let rest = qname.get(1 + first..)?;
        let ns_len = usize::from(*rest.first()?);
        let after_ns = rest.get(1 + ns_len..)?;
        if after_ns.get(..4)? != b"\x03pod" || &after_ns[4..] != self.config.domain.as_bytes() {
            return None;
        }
        // `<ns>.pod.<zone>` is in the table exactly when the namespace exists.
        self.tables.nodes.get(rest)?;
        parse_dashed_ip(&qname[1..1 + first])
    }

    /// The lowercase wire names of every name the zone answers for, for tests and tools.
    pub fn names(&self) -> Vec<WireName> {
        let zone = &self.config.domain;
        let mut out: Vec<WireName> = Vec::new();
        for blob in self.tables.nodes.iter() {
            out.extend(WireName::from_wire(key_of(blob)));
        }
        for record in self.tables.services.iter() {
            if self.config.ignore_empty_service && record.is_empty_cluster_ip() {
                continue;
            }
            crate::derived::record_names(record, zone, &mut out);
        }
        for ip in self.tables.reverse.addresses() {
            out.push(crate::name::reverse_name(ip));
        }
        out.sort();
        out.dedup();
        out
    }
}

/// The most packets [`Snapshot::prefetch`] looks at in one call (a listener's batch).
pub const PREFETCH_BATCH: usize = 64;

/// The cache lines of a Service record a prefetch loads: the fields every lookup reads, up to
/// the cluster IPs (see `ServiceRecord`).
pub(crate) const RECORD_LINES: usize = 3;

/// What a name in the zone is, for the services table (see [`Snapshot::service_name`]).
enum ServiceShape<'q> {
    /// Not under `svc.<zone>`, or not deep enough to name a Service.
    Other,
    /// Deeper than any name a Service has, and no fixed name is this deep.
    TooDeep,
    /// A name a Service may answer.
    Name(ServiceName<'q>),
}

/// The labels of a name under `svc.<zone>`: three to six of them, `svc` the last.
struct ServiceName<'q> {
    /// The name without `.<zone>`.
    prefix: &'q [u8],
    /// Where each label of `prefix` starts.
    starts: [usize; 6],
    /// How many labels `prefix` has.
    count: usize,
}

impl<'q> ServiceName<'q> {
    /// The services table's key: `<svc>.<ns>`, the two labels above `svc`.
    fn key(&self) -> &'q [u8] {
        &self.prefix[self.starts[self.count - 3]..self.starts[self.count - 1]]
    }

    /// The bytes of label `i` (not the last), without its length.
    fn label(&self, i: usize) -> &'q [u8] {
        &self.prefix[self.starts[i] + 1..self.starts[i + 1]]
    }
}

/// The entry answering `qtype` at a node: its own, the catch-all CNAME, or for ANY the first
/// RRset of A, AAAA, CNAME, SRV, PTR, TXT (RFC 8482 §4.2: one RRset is enough).
fn answer_entry(node: Node<'_>, qtype: u16) -> Option<Entry<'_>> {
    if qtype == TYPE_ANY {
        return [
            TYPE_A,
            TYPE_AAAA,
            ANY_TYPE_ENTRY,
            TYPE_SRV,
            TYPE_PTR,
            TYPE_TXT,
        ]
        .into_iter()
        .find_map(|t| node.entry(t));
    }
    node.entry(qtype).or_else(|| node.entry(ANY_TYPE_ENTRY))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{answer, Change, Service, ServiceKind, Transport, ZoneBuilder};
    use clusterdns_testkit::dns::query;

    /// The response to `packet` (empty when there is none).
    fn response(snapshot: &Snapshot, packet: &[u8]) -> Vec<u8> {
        let mut out = [0u8; 4096];
        match answer(
            snapshot,
            packet,
            &mut out,
            Transport::Udp { max_payload: 1232 },
        ) {
            crate::Answered::Response { len, .. } => out[..len].to_vec(),
            _ => Vec::new(),
        }
    }

    /// A zone with one ClusterIP Service, `web.apps` at 10.0.0.1.
    fn web_apps() -> Snapshot {
        let mut builder = ZoneBuilder::new(ZoneConfig::default());
        builder.apply(Change::ServiceUpsert(Service {
            namespace: "apps".into(),
            name: "web".into(),
            kind: ServiceKind::ClusterIp(vec![IpAddr::from([10, 0, 0, 1])]),
            ports: Vec::new(),
            external: Vec::new(),
        }));
        builder.set_synced();
        builder.publish()
    }

    #[test]
    fn a_label_that_ends_in_the_bytes_of_svc_is_not_svc() {
        let snapshot = web_apps();
        let question = |name: &[u8]| {
            let header = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
            [
                &header[..],
                name,
                b"\x07cluster\x05local\x00\x00\x01\x00\x01",
            ]
            .concat()
        };
        let rcode = |name: &[u8]| response(&snapshot, &question(name))[3] & 0x0F;
        assert_eq!(rcode(b"\x03web\x04apps\x03svc"), 0);
        // `web.apps.a\003svc`, and one label deeper than any Service name goes.
        assert_eq!(rcode(b"\x03web\x04apps\x05a\x03svc"), 3);
        assert_eq!(rcode(b"\x01x\x01y\x01z\x03web\x04apps\x05a\x03svc"), 3);
    }

    #[test]
    fn a_prefetch_takes_any_bytes_and_changes_no_answer() {
        let snapshot = web_apps();
        let questions = [
            ("web.apps.svc.cluster.local", TYPE_A),
            ("WEB.Apps.svc.cluster.local", TYPE_A),
            ("missing.apps.svc.cluster.local", TYPE_A),
            ("a.b.c.d.web.apps.svc.cluster.local", TYPE_A),
            ("apps.svc.cluster.local", TYPE_A),
            ("example.com", TYPE_A),
            ("1.0.0.10.in-addr.arpa", TYPE_PTR),
            ("2.0.0.10.in-addr.arpa", TYPE_PTR),
            ("1.0.0.10.IN-ADDR.ARPA", TYPE_PTR),
        ];
        let mut packets: Vec<Vec<u8>> = (questions.iter())
            .map(|&(name, qtype)| query(1, name, qtype, None))
            .collect();
        // A question name that ends in a compression pointer, and labels longer than allowed.
        let mut pointer = query(2, "web.apps", 1, None);
        pointer.splice(12 + 9..12 + 10, [0xC0, 0x0C]);
        packets.push(pointer);
        packets.push(
            [
                &[0u8; 12][..],
                &[0xFF; 40],
                b"\x03svc\x07cluster\x05local\x00",
            ]
            .concat(),
        );
        packets.push(Vec::new());
        let before: Vec<_> = packets.iter().map(|p| response(&snapshot, p)).collect();
        for packet in &packets {
            for end in 0..=packet.len() {
                snapshot.prefetch([&packet[..end]]);
            }
        }
        // More packets than a batch holds: the rest are not looked at.
        snapshot.prefetch(
            packets
                .iter()
                .cycle()
                .take(3 * PREFETCH_BATCH)
                .map(Vec::as_slice),
        );
        let after: Vec<_> = packets.iter().map(|p| response(&snapshot, p)).collect();
        assert_eq!(before, after);
        assert!(!after[0].is_empty(), "web.apps answers");
        assert!(!after[6].is_empty(), "10.0.0.1 has a PTR");
    }
}
