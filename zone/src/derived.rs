//! Answers derived at query time from a [`ServiceRecord`]: the A/AAAA of a Service or an
//! endpoint name, SRV with its glue, and PTR. Each record is encoded into a small stack buffer
//! and appended to the response only when it fits whole, so encoding allocates nothing and a
//! response cut short for UDP carries whole records and TC=1.
//!
//! Names follow CoreDNS's spelling: SRV targets are written in full (RFC 2782 forbids
//! compressing them), lowercase, with the zone part spelled as the client spelled it; glue
//! owners point into the first SRV target; PTR targets are lowercase.

use std::net::IpAddr;

use crate::model::Port;
use crate::name::{WireName, MAX_NAME_LEN};
use crate::node::Entry;
use crate::record::{port_matches, Endpoint, Label, ServiceRecord, Slice, DUP_LABEL, DUP_PAIR};
use crate::snapshot::{Found, SOA_RECORD_LEN};
use crate::wire::{CLASS_IN, HEADER_LEN, TYPE_A, TYPE_AAAA, TYPE_PTR, TYPE_SRV};

/// `svc` as a wire label.
const SVC_LABEL: &[u8] = b"\x03svc";

/// What a found name answers with.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Derived<'a> {
    /// A pre-encoded node entry.
    Entry(Entry<'a>),
    /// A ClusterIP Service's addresses of one family (`TYPE_A` or `TYPE_AAAA`).
    ClusterIps(&'a ServiceRecord, u16),
    /// A headless Service's ready addresses of one family.
    Ready(&'a ServiceRecord, u16),
    /// The addresses of one family of the endpoints with one label.
    Endpoint(&'a ServiceRecord, Label<'a>, u16),
    /// SRV at the Service name (`None`) or at `_<name>._<proto>` (both without underscores).
    Srv(&'a ServiceRecord, Option<(&'a [u8], &'a [u8])>),
    /// PTR for an address.
    Ptr(IpAddr),
    /// The SOA at the apex.
    Soa,
}

/// The record type of an address.
fn family_of(ip: IpAddr) -> u16 {
    match ip {
        IpAddr::V4(_) => TYPE_A,
        IpAddr::V6(_) => TYPE_AAAA,
    }
}

impl<'a> Derived<'a> {
    /// The Service name's addresses of `family`, when it has any.
    pub(crate) fn base_addresses(record: &'a ServiceRecord, family: u16) -> Option<Self> {
        match record.cluster_ips() {
            Some(ips) => (ips.iter().any(|&ip| family_of(ip) == family))
                .then_some(Derived::ClusterIps(record, family)),
            None => (record.endpoints().any(|(e, _)| family_of(e.ip) == family))
                .then_some(Derived::Ready(record, family)),
        }
    }

    /// The addresses of `family` of the endpoints labelled `label`, when there are any.
    pub(crate) fn endpoint_addresses(
        record: &'a ServiceRecord,
        label: Label<'a>,
        family: u16,
    ) -> Option<Self> {
        (record.endpoints())
            .any(|(e, _)| e.has_label(&label) && family_of(e.ip) == family)
            .then_some(Derived::Endpoint(record, label, family))
    }

    /// SRV at the Service name or one of its named ports, when there is a target with a port.
    pub(crate) fn srv(
        record: &'a ServiceRecord,
        port: Option<(&'a [u8], &'a [u8])>,
    ) -> Option<Self> {
        let has_target = match record.cluster_ips() {
            Some(ips) => {
                let ports = record.spec.as_ref().map_or(&[][..], |s| &s.ports[..]);
                !ips.is_empty() && ports.iter().any(|p| selects(p, port))
            }
            None => record
                .endpoints()
                .any(|(_, slice)| slice.ports.iter().any(|p| selects(p, port))),
        };
        has_target.then_some(Derived::Srv(record, port))
    }
}

/// Whether `port` is one an SRV question for `selected` answers with.
fn selects(port: &Port, selected: Option<(&[u8], &[u8])>) -> bool {
    match selected {
        None => true,
        Some((name, protocol)) => port_matches(port, name, protocol),
    }
}

/// What [`Found::write`] appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// The response's length with the records.
    pub len: usize,
    /// Records written to the answer, authority and additional sections.
    pub counts: [u16; 3],
    /// Whether a record was left out for lack of room.
    pub truncated: bool,
}

/// The sections of a response.
#[derive(Clone, Copy)]
enum Section {
    Answer = 0,
    Additional = 2,
}

/// Appends whole records after the question of a response, encoding each in place and taking it
/// back when it does not fit.
struct Records<'o> {
    out: &'o mut [u8],
    len: usize,
    limit: usize,
    counts: [u16; 3],
    truncated: bool,
    /// Where the record being written starts, and whether it ran past the buffer.
    start: usize,
    overflow: bool,
}

impl Records<'_> {
    fn put(&mut self, bytes: &[u8]) {
        match self.out.get_mut(self.len..self.len + bytes.len()) {
            Some(slot) => {
                slot.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            None => self.overflow = true,
        }
    }

    /// Starts a record: owner (already encoded, in `owner` parts), type, class, TTL and a zero
    /// RDLENGTH.
    fn begin(&mut self, owner: &[&[u8]], rtype: u16, ttl: u32) {
        self.start = self.len;
        self.overflow = self.truncated;
        for part in owner {
            self.put(part);
        }
        self.put(&rtype.to_be_bytes());
        self.put(&CLASS_IN.to_be_bytes());
        self.put(&ttl.to_be_bytes());
        self.put(&[0, 0]);
    }

    /// Ends the record begun with an owner of `owner_len` bytes: sets RDLENGTH and keeps it if it
    /// fits; otherwise takes it back. Returns whether it fit. Only an answer record left out
    /// makes the response truncated: TC says the answer did not fit, not that additional data
    /// was trimmed (RFC 2181 §9), so glue that does not fit is dropped without TC.
    fn end(&mut self, section: Section, owner_len: usize) -> bool {
        if self.overflow || self.len > self.limit {
            self.len = self.start;
            if let Section::Answer = section {
                self.truncated = true;
            }
            return false;
        }
        let rdlen_at = self.start + owner_len + 8;
        let rdlen = (self.len - rdlen_at - 2) as u16;
        self.out[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
        self.counts[section as usize] += 1;
        true
    }

    /// An A or AAAA record for `ip` owned by `owner`.
    fn address(&mut self, section: Section, owner: &[&[u8]], ip: IpAddr, ttl: u32) -> bool {
        self.begin(owner, family_of(ip), ttl);
        match ip {
            IpAddr::V4(v4) => self.put(&v4.octets()),
            IpAddr::V6(v6) => self.put(&v6.octets()),
        }
        self.end(section, owner.iter().map(|p| p.len()).sum())
    }
}

/// A compression pointer to `offset` (which must be below 0x4000).
fn pointer(offset: usize) -> [u8; 2] {
    (0xC000 | offset as u16).to_be_bytes()
}

/// The owner `0xC00C`: the question name.
const QUESTION: [u8; 2] = [0xC0, HEADER_LEN as u8];

impl Found<'_> {
    /// Appends the records this answer holds to `out`, whose first `question_end` bytes are the
    /// header and the question, without going past `limit` (whole records only).
    pub fn write(&self, out: &mut [u8], question_end: usize, limit: usize) -> Written {
        let qname_len = question_end - HEADER_LEN - 4;
        let config = self.snapshot.config();
        let zone_len = config.domain.as_bytes().len();
        // Where the zone starts in the question (meaningful only for questions in the zone).
        let zone_at = (HEADER_LEN + qname_len).saturating_sub(zone_len);
        let mut records = Records {
            out,
            len: question_end,
            limit: limit.min(usize::from(u16::MAX)),
            counts: [0; 3],
            truncated: false,
            start: question_end,
            overflow: false,
        };
        let ttl = config.ttl;
        match self.what {
            Derived::Entry(entry) => write_entry(&mut records, entry),
            Derived::ClusterIps(record, family) => {
                let ips = record.cluster_ips().unwrap_or_default();
                write_distinct(&mut records, ips.iter().copied(), family, ttl);
            }
            Derived::Ready(record, family) => {
                let ips = (record.endpoints())
                    .filter(|(e, _)| e.flags & crate::record::DUP_ADDRESS == 0)
                    .map(|(e, _)| e.ip);
                write_addresses(&mut records, ips, family, ttl);
            }
            Derived::Endpoint(record, label, family) => {
                let ips = (record.endpoints())
                    .filter(|(e, _)| e.has_label(&label) && e.flags & DUP_PAIR == 0)
                    .map(|(e, _)| e.ip);
                write_addresses(&mut records, ips, family, ttl);
            }
            Derived::Srv(record, port) => {
                let mut zone = [0u8; MAX_NAME_LEN];
                zone[..zone_len].copy_from_slice(&records.out[zone_at..zone_at + zone_len]);
                let target = Target {
                    key: &record.key,
                    zone: &zone[..zone_len],
                };
                match record.cluster_ips() {
                    Some(ips) => write_cluster_srv(&mut records, record, ips, port, target, ttl),
                    None => write_headless_srv(&mut records, record, port, target, ttl),
                }
            }
            Derived::Ptr(ip) => self.write_ptr(&mut records, ip),
            Derived::Soa => {
                let mut soa = [0u8; SOA_RECORD_LEN];
                let len = self.snapshot.write_soa(qname_len, &mut soa);
                if len > 0 && records.len + len <= records.limit {
                    records.put(&soa[..len]);
                    records.counts[Section::Answer as usize] += 1;
                }
            }
        }
        Written {
            len: records.len,
            counts: records.counts,
            truncated: records.truncated,
        }
    }

    /// The records this answer holds, written after `question` (a name in wire format with its
    /// type and class, as a query carries them) with no size limit: their section counts and
    /// bytes. For tests and tools that compare answers.
    pub fn records(&self, question: &[u8]) -> ([u16; 3], Vec<u8>) {
        let mut out = vec![0u8; usize::from(u16::MAX)];
        let end = HEADER_LEN + question.len();
        out[HEADER_LEN..end].copy_from_slice(question);
        let limit = out.len();
        let written = self.write(&mut out, end, limit);
        (written.counts, out[end..written.len].to_vec())
    }

    /// PTR: a cluster IP names its Service alone (the first by namespace and name when several
    /// claim it); otherwise every ready endpoint with the address names it.
    fn write_ptr(&self, records: &mut Records<'_>, ip: IpAddr) {
        let config = self.snapshot.config();
        let ttl = config.ttl;
        let target = Target {
            key: &[],
            zone: config.domain.as_bytes(),
        };
        let cluster = (self.snapshot.tables.owners(ip))
            .filter(|r| r.cluster_ips().is_some_and(|ips| ips.contains(&ip)))
            .min_by(|a, b| service_order(a).cmp(&service_order(b)));
        if let Some(record) = cluster {
            let target = Target {
                key: &record.key,
                ..target
            };
            records.begin(&[&QUESTION], TYPE_PTR, ttl);
            target.write(records, &[]);
            records.end(Section::Answer, QUESTION.len());
            return;
        }
        // Owners in namespace and name order (there are rarely more than one or two), so the
        // answer does not depend on the tables' history.
        let mut previous = None;
        loop {
            let mut owners = self.snapshot.tables.owners(ip);
            let next = match (previous, owners.next(), owners.next()) {
                // One owner (the common case): no ordering to do.
                (None, Some(only), None) => Some(only),
                (None, None, _) => None,
                _ => (self.snapshot.tables.owners(ip))
                    .filter(|r| previous.is_none() || service_order(r) > previous)
                    .min_by(|a, b| service_order(a).cmp(&service_order(b))),
            };
            let Some(record) = next else {
                return;
            };
            previous = service_order(record);
            if previous.is_none() {
                // Only Services (with a spec) claim addresses; nothing to order after this.
                return;
            }
            let target = Target {
                key: &record.key,
                ..target
            };
            for (endpoint, _) in record.endpoints() {
                if endpoint.ip != ip || endpoint.flags & DUP_PAIR != 0 {
                    continue;
                }
                let mut label = [0u8; 63];
                let len = endpoint.write_label(&mut label);
                if !target.fits(len) {
                    continue;
                }
                records.begin(&[&QUESTION], TYPE_PTR, ttl);
                target.write(records, &label[..len]);
                if !records.end(Section::Answer, QUESTION.len()) {
                    return;
                }
            }
        }
    }
}

/// The order among Services claiming one cluster IP: by namespace, then name.
fn service_order(record: &ServiceRecord) -> Option<(&str, &str)> {
    record.spec.as_ref().map(|s| (&*s.namespace, &*s.name))
}

/// A pre-encoded entry: the whole records that fit.
fn write_entry(records: &mut Records<'_>, entry: Entry<'_>) {
    let room = records.limit.saturating_sub(records.len);
    let (fitted, bytes) = entry.fit(room);
    let total: usize = entry.counts.iter().map(|&c| usize::from(c)).sum();
    let at = records.len;
    records.out[at..at + bytes].copy_from_slice(&entry.body[..bytes]);
    records.len += bytes;
    let mut left = fitted;
    for (count, &of) in records.counts.iter_mut().zip(&entry.counts) {
        let take = left.min(usize::from(of));
        *count += take as u16;
        left -= take;
    }
    // Truncated only when an answer (or authority) record was left out (RFC 2181 §9).
    let needed = usize::from(entry.counts[0]) + usize::from(entry.counts[1]);
    if fitted < needed.min(total) {
        records.truncated = true;
    }
}

/// A/AAAA records of `family` owned by the question, for addresses already distinct.
fn write_addresses(
    records: &mut Records<'_>,
    ips: impl Iterator<Item = IpAddr>,
    family: u16,
    ttl: u32,
) {
    for ip in ips.filter(|&ip| family_of(ip) == family) {
        if !records.address(Section::Answer, &[&QUESTION], ip, ttl) {
            return;
        }
    }
}

/// A/AAAA records of `family` owned by the question, each address once (a short list).
fn write_distinct(
    records: &mut Records<'_>,
    ips: impl Iterator<Item = IpAddr> + Clone,
    family: u16,
    ttl: u32,
) {
    let all = ips.clone();
    let distinct = ips
        .enumerate()
        .filter(move |(i, ip)| !all.clone().take(*i).any(|earlier| earlier == *ip))
        .map(|(_, ip)| ip);
    write_addresses(records, distinct, family, ttl);
}

/// `[<label>.]<svc>.<ns>.svc.<zone>`: the record key and the zone as it is to be spelled.
#[derive(Clone, Copy)]
struct Target<'k> {
    key: &'k [u8],
    zone: &'k [u8],
}

impl Target<'_> {
    /// Whether the name with a label of `label_len` bytes (0: none) is at most 255 bytes.
    fn fits(&self, label_len: usize) -> bool {
        let label = if label_len == 0 { 0 } else { 1 + label_len };
        label + self.key.len() + SVC_LABEL.len() + self.zone.len() <= MAX_NAME_LEN
    }

    /// Writes the name in full; returns where its `<svc>.` part starts in the response.
    fn write(&self, records: &mut Records<'_>, label: &[u8]) -> usize {
        if !label.is_empty() {
            records.put(&[label.len() as u8]);
            records.put(label);
        }
        let suffix = records.len;
        records.put(self.key);
        records.put(SVC_LABEL);
        records.put(self.zone);
        suffix
    }
}

/// The SRV weight CoreDNS gives each of `candidates` targets: floor(100/N), computed in floating
/// point as it does.
fn srv_weight(candidates: usize) -> u16 {
    let total = 100.0 * candidates as f64;
    ((100.0 / total) * 100.0).floor() as u16
}

/// Appends an SRV record owned by the question; returns where its target's `<svc>.` part
/// starts, or `None` when it did not fit.
fn srv_record(
    records: &mut Records<'_>,
    target: Target<'_>,
    label: &[u8],
    weight: u16,
    port: u16,
    ttl: u32,
) -> Option<usize> {
    records.begin(&[&QUESTION], TYPE_SRV, ttl);
    records.put(&0u16.to_be_bytes());
    records.put(&weight.to_be_bytes());
    records.put(&port.to_be_bytes());
    let suffix = target.write(records, label);
    records
        .end(Section::Answer, QUESTION.len())
        .then_some(suffix)
}

/// SRV of a ClusterIP Service: one candidate per (port, cluster IP), each port number once, the
/// Service name as target, and its addresses as glue.
fn write_cluster_srv(
    records: &mut Records<'_>,
    record: &ServiceRecord,
    ips: &[IpAddr],
    port: Option<(&[u8], &[u8])>,
    target: Target<'_>,
    ttl: u32,
) {
    let ports = record.spec.as_ref().map_or(&[][..], |s| &s.ports[..]);
    let chosen = |i: usize, p: &Port| match port {
        None => true,
        // A named port answers once, with the first port of that name.
        Some(_) => selects(p, port) && !ports[..i].iter().any(|q| selects(q, port)),
    };
    let count = ports
        .iter()
        .enumerate()
        .filter(|(i, p)| chosen(*i, p))
        .count();
    let weight = srv_weight(count * ips.len());
    let mut glue_owner = None;
    for (i, p) in ports.iter().enumerate() {
        let repeated = port.is_none() && ports[..i].iter().any(|q| q.port == p.port);
        if !chosen(i, p) || repeated {
            continue;
        }
        let Some(target_at) = srv_record(records, target, &[], weight, p.port, ttl) else {
            return;
        };
        glue_owner.get_or_insert(target_at);
    }
    let Some(owner) = glue_owner.filter(|&at| at < 0x4000) else {
        return;
    };
    for (i, &ip) in ips.iter().enumerate() {
        if ips[..i].contains(&ip) {
            continue;
        }
        if !records.address(Section::Additional, &[&pointer(owner)], ip, ttl) {
            return;
        }
    }
}

/// The port an endpoint's slice offers for `selected` (the first match), or every port.
fn slice_ports<'s>(slice: &'s Slice, selected: Option<(&[u8], &[u8])>) -> &'s [Port] {
    match selected {
        None => &slice.ports,
        Some(_) => match slice.ports.iter().position(|p| selects(p, selected)) {
            Some(i) => &slice.ports[i..=i],
            None => &[],
        },
    }
}

/// SRV of a headless Service: one candidate per ready endpoint and port (a port-less endpoint
/// counts in the weights but gets no record, as CoreDNS), each (target, port) once, and each
/// (target, address) once as glue.
fn write_headless_srv(
    records: &mut Records<'_>,
    record: &ServiceRecord,
    selected: Option<(&[u8], &[u8])>,
    target: Target<'_>,
    ttl: u32,
) {
    let mut label = [0u8; 63];
    // Labels are at most 63 bytes: when the longest fits, every target does, and the weights
    // need no label written.
    let all_fit = target.fits(63);
    let mut candidates = 0;
    for (endpoint, slice) in record.endpoints() {
        if !all_fit && !target.fits(endpoint.write_label(&mut label)) {
            continue;
        }
        candidates += match (selected, slice.ports.len()) {
            (None, 0) => 1,
            _ => slice_ports(slice, selected).len(),
        };
    }
    let weight = srv_weight(candidates);
    let mut suffix_at = None;
    for (i, (endpoint, slice)) in record.endpoints().enumerate() {
        let len = endpoint.write_label(&mut label);
        if !target.fits(len) {
            continue;
        }
        let ports = slice_ports(slice, selected);
        for (j, port) in ports.iter().enumerate() {
            let repeated = ports[..j].iter().any(|q| q.port == port.port)
                || (endpoint.flags & DUP_LABEL != 0
                    && earlier_same_label(record, i, &label[..len]).any(|(_, s)| {
                        slice_ports(s, selected).iter().any(|q| q.port == port.port)
                    }));
            if repeated {
                continue;
            }
            let Some(suffix) = srv_record(records, target, &label[..len], weight, port.port, ttl)
            else {
                return;
            };
            suffix_at.get_or_insert(suffix);
        }
    }
    let Some(suffix_at) = suffix_at.filter(|&at| at < 0x4000) else {
        return;
    };
    for (endpoint, slice) in record.endpoints() {
        let len = endpoint.write_label(&mut label);
        if !target.fits(len)
            || endpoint.flags & DUP_PAIR != 0
            || slice_ports(slice, selected).is_empty()
        {
            continue;
        }
        let owner: [&[u8]; 3] = [&[len as u8], &label[..len], &pointer(suffix_at)];
        if !records.address(Section::Additional, &owner, endpoint.ip, ttl) {
            return;
        }
    }
}

/// The endpoints before the `index`th whose label is `label` (the rare path of a Service whose
/// slices repeat a label).
fn earlier_same_label<'r>(
    record: &'r ServiceRecord,
    index: usize,
    label: &'r [u8],
) -> impl Iterator<Item = (&'r Endpoint, &'r Slice)> {
    let label = Label::new(label);
    record
        .endpoints()
        .take(index)
        .filter(move |(e, _)| e.has_label(&label))
}

/// Adds every name a Service record answers for to `out` (for [`crate::Snapshot::names`]).
pub(crate) fn record_names(record: &ServiceRecord, zone: &WireName, out: &mut Vec<WireName>) {
    if !record.answers_below() {
        return;
    }
    let mut base_bytes = record.key.to_vec();
    base_bytes.extend_from_slice(SVC_LABEL);
    base_bytes.extend_from_slice(zone.as_bytes());
    let Some(base) = WireName::from_wire(&base_bytes) else {
        return;
    };
    if record.base_exists() {
        out.push(base.clone());
    }
    let mut label = [0u8; 63];
    for (endpoint, _) in record.endpoints() {
        if endpoint.flags & DUP_LABEL == 0 {
            let len = endpoint.write_label(&mut label);
            out.extend(base.child(&String::from_utf8_lossy(&label[..len])));
        }
    }
    record.for_each_named_port(|port| {
        let protocol = base.child(&format!("_{}", port.protocol.label()));
        out.extend(protocol.clone());
        out.extend(protocol.and_then(|p| p.child(&format!("_{}", port.name.to_ascii_lowercase()))));
    });
}
