//! The published zone: an immutable [`Snapshot`] of pre-encoded nodes, split into shards so that
//! the builder can publish a change by copying only the shards it touched. Readers get a
//! snapshot from an `ArcSwap` and never wait for the writer.

use std::net::IpAddr;
use std::sync::Arc;

use foldhash::fast::FixedState;
use hashbrown::HashTable;
use std::hash::BuildHasher;

use crate::name::WireName;
use crate::node::{key_of, Entry, Node, NodeBlob, ANY_TYPE_ENTRY, FLAG_REVERSE};
use crate::wire::{HEADER_LEN, TYPE_SRV, TYPE_TXT};
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
}

impl Default for ZoneConfig {
    fn default() -> Self {
        ZoneConfig {
            domain: WireName::from_dotted("cluster.local").unwrap_or_else(WireName::root),
            ttl: 5,
            pods: PodsMode::Insecure,
        }
    }
}

/// Length of the SOA record of negative answers (owner pointer, header, compressed rdata).
pub const SOA_RECORD_LEN: usize = 54;

/// One shard of the name table.
pub(crate) type Shard = HashTable<NodeBlob>;

/// log2 of the number of shards: 4096 keeps a shard small (a few hundred names at a million
/// names) so a publish copies little.
const SHARD_BITS: u32 = 12;

/// The name table: lowercase wire name → node, sharded (see the module docs).
#[derive(Clone)]
pub(crate) struct Tables {
    hasher: FixedState,
    shards: Vec<Arc<Shard>>,
}

impl Tables {
    pub(crate) fn new(seed: u64) -> Self {
        Tables {
            hasher: FixedState::with_seed(seed),
            shards: (0..1usize << SHARD_BITS)
                .map(|_| Arc::new(Shard::new()))
                .collect(),
        }
    }

    fn locate(&self, key: &[u8]) -> (u64, usize) {
        let hash = self.hasher.hash_one(key);
        // The middle bits pick the shard; hashbrown uses the low bits for the slot and the top
        // seven for its tag, so a shard's entries still spread over both.
        let shard = ((hash >> 32) as usize) & ((1 << SHARD_BITS) - 1);
        (hash, shard)
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<&NodeBlob> {
        let (hash, shard) = self.locate(key);
        self.shards[shard].find(hash, |blob| key_of(blob) == key)
    }

    /// Inserts or replaces the node for the blob's key.
    pub(crate) fn insert(&mut self, blob: NodeBlob) {
        let (hash, shard) = self.locate(key_of(&blob));
        let hasher = self.hasher.clone();
        let table = Arc::make_mut(&mut self.shards[shard]);
        match table.entry(
            hash,
            |stored| key_of(stored) == key_of(&blob),
            |stored| hasher.hash_one(key_of(stored)),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut slot) => *slot.get_mut() = blob,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(blob);
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &[u8]) {
        let (hash, shard) = self.locate(key);
        if self.shards[shard]
            .find(hash, |blob| key_of(blob) == key)
            .is_none()
        {
            return;
        }
        let table = Arc::make_mut(&mut self.shards[shard]);
        if let Ok(slot) = table.find_entry(hash, |blob| key_of(blob) == key) {
            slot.remove();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.len()).sum()
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

/// The result of looking a name up in a snapshot.
#[derive(Clone, Copy, Debug)]
pub enum Lookup<'a> {
    /// A pre-encoded answer (positive, or a CNAME with what follows it).
    Answer(Entry<'a>),
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

    /// Writes the SOA record for the authority section of a negative answer to a question whose
    /// name is `qname_len` bytes long and inside the zone: owner, mname and rname point at the
    /// zone part of the question, so they echo the client's spelling (as CoreDNS does). Returns
    /// the length written (at most [`SOA_RECORD_LEN`]), 0 before the first sync.
    pub fn write_soa(&self, qname_len: usize, out: &mut [u8; SOA_RECORD_LEN]) -> usize {
        let Some(zone_at) =
            (HEADER_LEN + qname_len).checked_sub(self.config.domain.as_bytes().len())
        else {
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

    /// Looks up the lowercase wire name `qname` for `qtype` (see [`Lookup`]).
    pub fn lookup(&self, qname: &[u8], qtype: u16) -> Lookup<'_> {
        if let Some(blob) = self.tables.get(qname) {
            let node = Node::new(blob);
            if node.flags() & FLAG_REVERSE != 0 {
                // Only PTR is ours on reverse names; other types go where unknown names go.
                return match node.entry(TYPE_PTR) {
                    Some(entry) if qtype == TYPE_PTR => Lookup::Answer(entry),
                    _ => Lookup::Outside,
                };
            }
            if !self.synced {
                return Lookup::NotSynced;
            }
            if qtype == TYPE_AXFR || qtype == TYPE_IXFR {
                return Lookup::TransferRefused;
            }
            return match answer_entry(node, qtype) {
                Some(entry) => Lookup::Answer(entry),
                None => Lookup::NoData,
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
        self.tables.get(rest)?;
        parse_dashed_ip(&qname[1..1 + first])
    }

    /// The lowercase wire names of every node, for tests and tools.
    pub fn names(&self) -> Vec<WireName> {
        let mut out: Vec<WireName> = Vec::new();
        for shard in &self.tables.shards {
            for blob in shard.iter() {
                if let Some(name) = WireName::from_wire(key_of(blob)) {
                    out.push(name);
                }
            }
        }
        out.sort();
        out
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

/// Parses a pod label: four dash-separated decimal octets, else an IPv6 address with `-` for
/// `:` (CoreDNS's rule: exactly three dashes and no `--` means IPv4). No allocation.
pub fn parse_dashed_ip(label: &[u8]) -> Option<IpAddr> {
    if label.len() > 45 {
        return None;
    }
    let dashes = label.iter().filter(|&&b| b == b'-').count();
    let doubled = label.windows(2).any(|w| w == b"--");
    let mut text = [0u8; 45];
    let separator = if dashes == 3 && !doubled { b'.' } else { b':' };
    for (dst, &src) in text.iter_mut().zip(label) {
        *dst = if src == b'-' { separator } else { src };
    }
    let text = std::str::from_utf8(&text[..label.len()]).ok()?;
    text.parse().ok()
}
