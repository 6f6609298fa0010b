//! The compact form of one Service: its spec, and the ready endpoints of each of its
//! EndpointSlices. One [`ServiceRecord`] is both what the builder edits (it replaces a record
//! when the Service or one of its slices changes) and what the answer path reads: every name
//! under the Service (`<svc>.<ns>.svc`, `<ep>.<svc>...`, `_<port>._<proto>.<svc>...`) is
//! derived from it at query time instead of being stored.
//!
//! Endpoints are kept in slice-name order, each with bits saying whether an earlier endpoint of
//! the Service already has its address, its label, or both, so the answer path can skip
//! duplicates without remembering what it wrote.

use foldhash::{HashSet, HashSetExt};
use std::net::IpAddr;

use smallvec::SmallVec;

use crate::model::{EndpointSlice, ExternalAddress, Port, Protocol, Service, ServiceKind};
use crate::name::{parse_dashed_ip, write_dashed, MAX_DASHED_LEN};
use crate::table::Keyed;

/// Endpoint flag: an earlier endpoint of the Service has the same address.
pub(crate) const DUP_ADDRESS: u8 = 1;
/// Endpoint flag: an earlier endpoint of the Service has the same label.
pub(crate) const DUP_LABEL: u8 = 2;
/// Endpoint flag: an earlier endpoint of the Service has the same label and address.
pub(crate) const DUP_PAIR: u8 = 4;

/// One ready address of an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `hostname` (lowercase), which names the endpoint instead of its dashed address.
    pub(crate) hostname: Option<Box<str>>,
    /// The address.
    pub(crate) ip: IpAddr,
    /// `DUP_*` bits, set when the record is built.
    pub(crate) flags: u8,
}

/// How an endpoint's label compares: a hostname, or an address (a dashed hostname counts as the
/// address it spells, since the two names are the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum LabelKey<'a> {
    Host(&'a str),
    Address(IpAddr),
}

impl Endpoint {
    fn label_key(&self) -> LabelKey<'_> {
        match &self.hostname {
            None => LabelKey::Address(self.ip),
            Some(host) => match parse_dashed_ip(host.as_bytes()) {
                Some(ip) if Label::is_canonical(host.as_bytes(), ip) => LabelKey::Address(ip),
                _ => LabelKey::Host(host),
            },
        }
    }

    /// Whether this endpoint's label is `label`.
    pub(crate) fn has_label(&self, label: &Label<'_>) -> bool {
        match &self.hostname {
            Some(host) => host.as_bytes() == label.text,
            None => label.address == Some(self.ip),
        }
    }

    /// Writes the endpoint's label into `out`; returns its length.
    pub(crate) fn write_label(&self, out: &mut [u8; 63]) -> usize {
        match &self.hostname {
            Some(host) => {
                let len = host.len().min(63);
                out[..len].copy_from_slice(&host.as_bytes()[..len]);
                len
            }
            None => {
                let mut dashed = [0u8; MAX_DASHED_LEN];
                let len = write_dashed(self.ip, &mut dashed);
                out[..len].copy_from_slice(&dashed[..len]);
                len
            }
        }
    }
}

/// A label asked for under a Service, with the address it spells when it is one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Label<'a> {
    text: &'a [u8],
    address: Option<IpAddr>,
}

impl<'a> Label<'a> {
    /// The lowercase label `text`.
    pub(crate) fn new(text: &'a [u8]) -> Self {
        let address = parse_dashed_ip(text).filter(|&ip| Self::is_canonical(text, ip));
        Label { text, address }
    }

    /// Whether `text` is exactly how `ip` is dashed (so `10-0-0-01` names nothing).
    fn is_canonical(text: &[u8], ip: IpAddr) -> bool {
        let mut dashed = [0u8; MAX_DASHED_LEN];
        let len = write_dashed(ip, &mut dashed);
        dashed[..len].eq_ignore_ascii_case(text)
    }
}

/// One EndpointSlice of a Service: its ports and its ready endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Slice {
    /// `metadata.name`.
    pub(crate) name: Box<str>,
    /// `ports`.
    pub(crate) ports: Box<[Port]>,
    /// The ready addresses, in the slice's order.
    pub(crate) endpoints: Box<[Endpoint]>,
    /// Endpoints in the slice, ready or not (for the zone's counts).
    pub(crate) total: u32,
}

impl Slice {
    /// The compact form of a model slice: ready addresses only.
    pub(crate) fn from_model(slice: EndpointSlice) -> Self {
        let total = slice.endpoints.len() as u32;
        let mut endpoints = Vec::new();
        for endpoint in slice.endpoints.into_iter().filter(|e| e.ready) {
            let hostname = endpoint.hostname.map(|h| h.to_ascii_lowercase().into());
            for ip in endpoint.addresses {
                endpoints.push(Endpoint {
                    hostname: hostname.clone(),
                    ip,
                    flags: 0,
                });
            }
        }
        // Fresh copies of what the slice keeps, allocated by the builder's thread rather than
        // left among the source's transient memory (see `ZoneBuilder::apply`).
        Slice {
            name: slice.name.as_ref().into(),
            ports: slice.ports.iter().cloned().collect(),
            endpoints: endpoints.into(),
            total,
        }
    }
}

/// What a record answers as: the part of its spec every lookup reads, kept beside the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// Slices without their Service (yet): nothing is answered.
    Absent,
    /// A ClusterIP Service.
    ClusterIp,
    /// A headless Service.
    Headless,
    /// An ExternalName Service (answered from its pre-encoded node).
    ExternalName,
    /// A Service of a namespace that is not served (`ZoneConfig::namespace_objects_only`):
    /// kept, so it appears when its namespace does, but answered as if absent.
    Hidden,
}

/// A Service and its slices (see the module docs). The fields every lookup reads (hash, key,
/// shape, cluster IPs) come first and inline, so that finding and answering a ClusterIP Service
/// touches one or two cache lines of the record; the spec and the slices follow.
#[derive(Clone, Debug)]
#[repr(C)]
pub(crate) struct ServiceRecord {
    /// The key's hash in the services table, which the reverse index names owners by.
    pub(crate) hash: u64,
    /// `<svc>.<ns>` as two wire-format labels: the lookup key.
    pub(crate) key: RecordKey,
    shape: Shape,
    /// Its cluster IPs when it is a ClusterIP Service (the most asked-for answer).
    cluster: SmallVec<[IpAddr; 2]>,
    /// Its slices, sorted by name.
    pub(crate) slices: Box<[Slice]>,
    /// Owner names the record answers for (for the zone's counts).
    pub(crate) names: u32,
    /// The Service, or `None` while only its slices exist.
    pub(crate) spec: Option<Service>,
}

impl Keyed for ServiceRecord {
    type Key = [u8];
    fn key(&self) -> &[u8] {
        &self.key
    }
}

/// A record key: most fit inline.
pub(crate) type RecordKey = SmallVec<[u8; 40]>;

/// The record key of a Service: `<name>.<namespace>` in wire format, lowercase; `None` when a
/// label is empty or too long.
pub(crate) fn record_key(namespace: &str, name: &str) -> Option<RecordKey> {
    let mut key = RecordKey::new();
    for label in [name, namespace] {
        if label.is_empty() || label.len() > crate::name::MAX_LABEL_LEN {
            return None;
        }
        key.push(label.len() as u8);
        key.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    Some(key)
}

impl ServiceRecord {
    /// A record from its parts: sets the endpoints' duplicate bits and counts the names. A
    /// `hidden` Service (its namespace is not served) answers nothing until it is rebuilt
    /// shown.
    pub(crate) fn new(
        key: RecordKey,
        hash: u64,
        spec: Option<Service>,
        mut slices: Vec<Slice>,
        hidden: bool,
    ) -> Self {
        slices.sort_by(|a, b| a.name.cmp(&b.name));
        let mut addresses = HashSet::new();
        let mut pairs = HashSet::new();
        let mut labels: HashSet<LabelKey<'_>> = HashSet::new();
        let mut flags = Vec::new();
        for endpoint in slices.iter().flat_map(|s| s.endpoints.iter()) {
            let label = endpoint.label_key();
            let mut bits = 0;
            if !addresses.insert(endpoint.ip) {
                bits |= DUP_ADDRESS;
            }
            if !labels.insert(label) {
                bits |= DUP_LABEL;
            }
            if !pairs.insert((label, endpoint.ip)) {
                bits |= DUP_PAIR;
            }
            flags.push(bits);
        }
        let distinct_labels = labels.len();
        drop((labels, pairs, addresses));
        let mut bits = flags.into_iter();
        for slice in &mut slices {
            for endpoint in slice.endpoints.iter_mut() {
                endpoint.flags = bits.next().unwrap_or(0);
            }
        }
        let (shape, cluster) = match spec.as_ref().map(|s| &s.kind) {
            None => (Shape::Absent, SmallVec::new()),
            Some(_) if hidden => (Shape::Hidden, SmallVec::new()),
            Some(ServiceKind::ClusterIp(ips)) => (Shape::ClusterIp, ips.iter().copied().collect()),
            Some(ServiceKind::Headless) => (Shape::Headless, SmallVec::new()),
            Some(ServiceKind::ExternalName(_)) => (Shape::ExternalName, SmallVec::new()),
        };
        let mut record = ServiceRecord {
            key,
            hash,
            shape,
            cluster,
            spec,
            slices: slices.into(),
            names: 0,
        };
        record.names = record.count_names(distinct_labels);
        record
    }

    fn count_names(&self, distinct_labels: usize) -> u32 {
        if !self.answers_below() {
            return 0;
        }
        let base = u32::from(self.base_exists());
        let mut named: Vec<(&str, Protocol)> = Vec::new();
        self.for_each_named_port(|port| {
            if !named.contains(&(&port.name, port.protocol)) {
                named.push((&port.name, port.protocol));
            }
        });
        let mut protocols: Vec<Protocol> = named.iter().map(|(_, p)| *p).collect();
        protocols.sort();
        protocols.dedup();
        base + (distinct_labels + named.len() + protocols.len()) as u32
    }

    /// The Service's cluster IPs, when it has them.
    pub(crate) fn cluster_ips(&self) -> Option<&[IpAddr]> {
        (self.shape == Shape::ClusterIp).then_some(&self.cluster[..])
    }

    /// Whether the Service is headless.
    pub(crate) fn is_headless(&self) -> bool {
        self.shape == Shape::Headless
    }

    /// Whether the record is a Service of a namespace that is not served.
    pub(crate) fn is_hidden(&self) -> bool {
        self.shape == Shape::Hidden
    }

    /// Whether the record is a served ExternalName Service (answered from its node).
    pub(crate) fn is_alias(&self) -> bool {
        self.shape == Shape::ExternalName
    }

    /// Whether the record is a served Service (not hidden, not slices alone).
    pub(crate) fn is_served(&self) -> bool {
        !matches!(self.shape, Shape::Absent | Shape::Hidden)
    }

    /// Whether `ignore empty_service` makes the Service absent: a ClusterIP Service without a
    /// ready endpoint (headless ones without are absent anyway; ExternalName ones have none).
    pub(crate) fn is_empty_cluster_ip(&self) -> bool {
        self.shape == Shape::ClusterIp && !self.has_endpoints()
    }

    /// Whether names below the Service are answered from this record (ClusterIP and headless
    /// Services; an ExternalName is answered from its pre-encoded node).
    pub(crate) fn answers_below(&self) -> bool {
        self.cluster_ips().is_some() || self.is_headless()
    }

    /// Whether `<svc>.<ns>.svc.<zone>` exists: always for a ClusterIP Service, for a headless one
    /// only while it has a ready endpoint.
    pub(crate) fn base_exists(&self) -> bool {
        self.cluster_ips().is_some() || (self.is_headless() && self.has_endpoints())
    }

    /// Whether the Service has a ready endpoint.
    pub(crate) fn has_endpoints(&self) -> bool {
        self.slices.iter().any(|s| !s.endpoints.is_empty())
    }

    /// Every ready endpoint with its slice, in order.
    pub(crate) fn endpoints(&self) -> impl Iterator<Item = (&Endpoint, &Slice)> {
        self.slices
            .iter()
            .flat_map(|slice| slice.endpoints.iter().map(move |e| (e, slice)))
    }

    /// Calls `f` with every named port the Service answers SRV for: the Service's own ports for
    /// a ClusterIP Service, its ready endpoints' slice ports for a headless one (duplicates
    /// included).
    pub(crate) fn for_each_named_port<'a>(&'a self, mut f: impl FnMut(&'a Port)) {
        if self.cluster_ips().is_some() {
            let ports = self.spec.as_ref().map_or(&[][..], |s| &s.ports[..]);
            ports.iter().filter(|p| !p.name.is_empty()).for_each(f);
        } else if self.is_headless() {
            for slice in self.slices.iter().filter(|s| !s.endpoints.is_empty()) {
                slice
                    .ports
                    .iter()
                    .filter(|p| !p.name.is_empty())
                    .for_each(&mut f);
            }
        }
    }

    /// Whether a named port with protocol `protocol` exists (the `_<proto>` empty non-terminal).
    pub(crate) fn has_protocol(&self, protocol: &[u8]) -> bool {
        let mut found = false;
        self.for_each_named_port(|port| {
            found |= port.protocol.label().as_bytes() == protocol;
        });
        found
    }

    /// Whether the named port `_<name>._<proto>` exists.
    pub(crate) fn has_port(&self, name: &[u8], protocol: &[u8]) -> bool {
        let mut found = false;
        self.for_each_named_port(|port| {
            found |= port_matches(port, name, protocol);
        });
        found
    }

    /// Endpoints in the record's slices, ready or not.
    pub(crate) fn total_endpoints(&self) -> usize {
        self.slices.iter().map(|s| s.total as usize).sum()
    }

    /// The addresses the record gives reverse names to: its cluster IPs, else its ready
    /// endpoints'.
    pub(crate) fn claimed_addresses(&self) -> Vec<IpAddr> {
        if !self.answers_below() {
            return Vec::new();
        }
        let mut ips: Vec<IpAddr> = self.cluster_ips().map(<[_]>::to_vec).unwrap_or_default();
        ips.extend(self.endpoints().map(|(e, _)| e.ip));
        ips.sort();
        ips.dedup();
        ips
    }
}

impl ServiceRecord {
    /// The external IP addresses the record gives the external index (`k8s_external`'s PTR):
    /// a served ClusterIP or headless Service's, sorted, once each.
    pub(crate) fn external_ips(&self) -> Vec<IpAddr> {
        if !self.answers_below() {
            return Vec::new();
        }
        let external = self.spec.as_ref().map_or(&[][..], |s| &s.external[..]);
        let mut ips: Vec<IpAddr> = (external.iter())
            .filter_map(|address| match address {
                ExternalAddress::Ip(ip) => Some(*ip),
                ExternalAddress::Hostname(_) => None,
            })
            .collect();
        ips.sort();
        ips.dedup();
        ips
    }
}

/// Whether `port` is `_<name>._<proto>` (both labels without their underscore, lowercase).
pub(crate) fn port_matches(port: &Port, name: &[u8], protocol: &[u8]) -> bool {
    port.protocol.label().as_bytes() == protocol && port.name.as_bytes().eq_ignore_ascii_case(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fields_every_lookup_reads_are_in_the_lines_a_prefetch_loads() {
        let end = std::mem::offset_of!(ServiceRecord, cluster)
            + std::mem::size_of::<SmallVec<[IpAddr; 2]>>();
        // Lines are fetched from the record's start, which need not be on a line's boundary.
        assert!(end <= (crate::snapshot::RECORD_LINES - 1) * 64, "{end}");
    }
}
