//! The fixed names the builder pre-encodes into the nodes table: the apex (SOA, NS), `ns.dns`,
//! `dns-version`, the empty non-terminals `svc`, `pod`, `dns` and `<ns>.svc`/`<ns>.pod`,
//! ExternalName Services (a CNAME, and the target's addresses when it is in the zone), and pod
//! names in `pods verified` mode. There are few of them, so encoding them once is cheaper than
//! deriving them per query.

use std::collections::HashSet;
use std::net::IpAddr;

use crate::builder::ZoneBuilder;
use crate::encode::{EntryWriter, Owner, RData, Section};
use crate::model::ServiceKind;
use crate::name::{dashed, WireName};
use crate::node::{NodeBuilder, ANY_TYPE_ENTRY};
use crate::record::Label;
use crate::snapshot::PodsMode;
use crate::wire::{CLASS_IN, TYPE_A, TYPE_AAAA, TYPE_NS, TYPE_SOA, TYPE_TXT};

/// The schema version answered at `dns-version.<zone>` (specification §2.2).
const SCHEMA_VERSION: &str = "1.1.0";
/// TTL of the `dns-version` TXT record (specification §2.2).
const SCHEMA_VERSION_TTL: u32 = 28800;
/// SOA timers as CoreDNS sets them: refresh, retry, expire (the minimum is the record TTL).
const SOA_TIMERS: [u32; 3] = [7200, 1800, 86400];
/// How many CNAMEs an ExternalName answer follows inside the zone.
const MAX_CNAME_CHAIN: usize = 8;

/// What an in-zone name resolves to, for following ExternalName targets.
enum Resolved {
    Addresses(Vec<IpAddr>),
    Alias(WireName),
    Nothing,
}

impl ZoneBuilder {
    fn zone(&self) -> &[u8] {
        self.config.domain.as_bytes()
    }

    /// `<label>.<zone>`.
    fn zone_child(&self, label: &str) -> WireName {
        self.config
            .domain
            .child(label)
            .unwrap_or_else(|| self.config.domain.clone())
    }

    /// `<namespace>.<kind>.<zone>` (`kind` is `svc` or `pod`).
    fn namespace_name(&self, kind: &str, namespace: &str) -> Option<WireName> {
        self.zone_child(kind).child(namespace)
    }

    /// `<name>.<namespace>.svc.<zone>`.
    fn service_name(&self, namespace: &str, name: &str) -> Option<WireName> {
        self.namespace_name("svc", namespace)?.child(name)
    }

    fn name_in_zone(&self, name: &[u8]) -> bool {
        crate::name::is_subdomain(name, self.zone())
    }

    /// Adds or removes `<ns>.svc.<zone>` (and `<ns>.pod.<zone>`) as the namespace exists or not.
    pub(crate) fn render_namespace(&mut self, namespace: &str) {
        let exists = self.namespace_exists(namespace);
        if exists {
            self.existing_namespaces.insert(namespace.into());
        } else {
            self.existing_namespaces.remove(namespace);
        }
        let mut kinds = vec!["svc"];
        if self.config.pods != PodsMode::Disabled {
            kinds.push("pod");
        }
        for kind in kinds {
            let Some(name) = self.namespace_name(kind, namespace) else {
                continue;
            };
            if exists {
                self.tables
                    .nodes
                    .insert(NodeBuilder::new(name.as_bytes()).finish());
            } else {
                self.tables.nodes.remove(name.as_bytes());
            }
        }
    }

    /// Removes the node of a Service that is no longer an ExternalName.
    pub(crate) fn remove_service_node(&mut self, key: &(Box<str>, Box<str>)) {
        if let Some(name) = self.service_name(&key.0, &key.1) {
            self.tables.nodes.remove(name.as_bytes());
        }
    }

    /// Renders an ExternalName Service's node: its CNAME for every type, followed by the
    /// target's addresses for A and AAAA when the target is in the zone. Returns whether the
    /// target is in the zone (then the node follows other Services and is re-rendered at every
    /// publish).
    pub(crate) fn render_alias(&mut self, key: &(Box<str>, Box<str>)) -> bool {
        let target = match self.record(&key.0, &key.1).and_then(|r| r.spec.as_ref()) {
            Some(spec) => match &spec.kind {
                ServiceKind::ExternalName(target) => WireName::from_dotted(target),
                _ => None,
            },
            None => None,
        };
        let Some(base) = self.service_name(&key.0, &key.1) else {
            return false;
        };
        let Some(target) = target else {
            self.tables.nodes.remove(base.as_bytes());
            return false;
        };
        let ttl = self.config.ttl;
        let in_zone = self.name_in_zone(target.as_bytes());
        let mut node = NodeBuilder::new(base.as_bytes());
        // Every entry of the node starts with the CNAME to the target.
        let cname = || {
            let mut entry = EntryWriter::lowercase(base.as_bytes());
            entry.record(
                Section::Answer,
                Owner::Question,
                ttl,
                RData::Cname(target.as_bytes()),
            );
            entry
        };
        let alone = cname();
        if in_zone {
            let (chain, addresses) = self.follow(&target);
            for family in [TYPE_A, TYPE_AAAA] {
                let mut entry = cname();
                let mut owner = target.clone();
                for next in &chain {
                    entry.record(
                        Section::Answer,
                        Owner::Name(owner.as_bytes()),
                        ttl,
                        RData::Cname(next.as_bytes()),
                    );
                    owner = next.clone();
                }
                for ip in &addresses {
                    if let Some(rdata) = address_rdata(*ip, family) {
                        entry.record(Section::Answer, Owner::Name(owner.as_bytes()), ttl, rdata);
                    }
                }
                node.entry(family, entry.finish());
            }
        }
        node.entry(ANY_TYPE_ENTRY, alone.finish());
        self.tables.nodes.insert(node.finish());
        in_zone
    }

    /// Follows an in-zone name through ExternalName Services: the further CNAME targets (the
    /// last one possibly outside the zone) and the addresses at the end of the chain.
    fn follow(&self, target: &WireName) -> (Vec<WireName>, Vec<IpAddr>) {
        let mut chain = Vec::new();
        let mut current = target.clone();
        for _ in 0..MAX_CNAME_CHAIN {
            match self.resolve(&current) {
                Resolved::Addresses(ips) => return (chain, ips),
                Resolved::Alias(next) => {
                    if chain.contains(&next) || next == *target {
                        break;
                    }
                    chain.push(next.clone());
                    if !self.name_in_zone(next.as_bytes()) {
                        // The chain leaves the zone: the server's chain resolves the rest
                        // through its upstreams (CoreDNS's kubernetes plugin does the same).
                        break;
                    }
                    current = next;
                }
                Resolved::Nothing => break,
            }
        }
        (chain, Vec::new())
    }

    /// What an in-zone name is: a Service's or an endpoint's addresses, or an alias.
    fn resolve(&self, name: &WireName) -> Resolved {
        let labels: Vec<String> = crate::name::labels(name.as_bytes())
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        let zone_labels = crate::name::labels(self.zone()).count();
        if labels.len() < zone_labels + 3 || labels[labels.len() - zone_labels - 1] != "svc" {
            return Resolved::Nothing;
        }
        let rest = &labels[..labels.len() - zone_labels - 1];
        let (endpoint, service, namespace) = match rest {
            [service, namespace] => (None, service, namespace),
            [endpoint, service, namespace] => (Some(endpoint), service, namespace),
            _ => return Resolved::Nothing,
        };
        let Some(record) = self.record(namespace, service) else {
            return Resolved::Nothing;
        };
        let Some(spec) = record.spec.as_ref().filter(|_| !record.is_hidden()) else {
            return Resolved::Nothing;
        };
        if self.config.ignore_empty_service && record.is_empty_cluster_ip() {
            // The target does not exist for `ignore empty_service`: the CNAME stands alone.
            return Resolved::Nothing;
        }
        let ready = || record.endpoints().map(|(e, _)| e);
        match (endpoint, &spec.kind) {
            (Some(label), ServiceKind::ClusterIp(_) | ServiceKind::Headless) => {
                let label = Label::new(label.as_bytes());
                Resolved::Addresses(
                    ready()
                        .filter(|e| e.has_label(&label))
                        .map(|e| e.ip)
                        .collect(),
                )
            }
            (None, ServiceKind::ClusterIp(ips)) => Resolved::Addresses(ips.clone()),
            (None, ServiceKind::Headless) => Resolved::Addresses(ready().map(|e| e.ip).collect()),
            (None, ServiceKind::ExternalName(next)) => match WireName::from_dotted(next) {
                Some(next) => Resolved::Alias(next),
                None => Resolved::Nothing,
            },
            (Some(_), ServiceKind::ExternalName(_)) => Resolved::Nothing,
        }
    }

    /// Renders the verified pod name of one address in one namespace.
    pub(crate) fn render_pod(&mut self, namespace: &str, ip: IpAddr) {
        let Some(name) = self
            .namespace_name("pod", namespace)
            .and_then(|n| n.child(&dashed(ip)))
        else {
            return;
        };
        if self.pod_addresses.contains_key(&(namespace.into(), ip))
            && !self.namespace_hidden(namespace)
        {
            let mut node = NodeBuilder::new(name.as_bytes());
            address_entries(&mut node, self.zone(), std::iter::once(ip), self.config.ttl);
            self.tables.nodes.insert(node.finish());
        } else {
            self.tables.nodes.remove(name.as_bytes());
        }
    }

    /// The name-server addresses: the cluster IPs of `kube-system/kube-dns`, when it exists
    /// (served or not: CoreDNS finds its own Service whatever `namespace_labels` says).
    fn name_server_addresses(&self) -> Vec<IpAddr> {
        match self
            .record("kube-system", "kube-dns")
            .and_then(|r| r.spec.as_ref())
            .map(|s| &s.kind)
        {
            Some(ServiceKind::ClusterIp(ips)) => ips.clone(),
            _ => Vec::new(),
        }
    }

    fn mname(&self) -> WireName {
        self.zone_child("dns")
            .child("ns")
            .unwrap_or_else(|| self.config.domain.clone())
    }

    /// TTL of the SOA record itself: min(TTL, 300), as CoreDNS.
    fn soa_ttl(&self) -> u32 {
        self.config.ttl.min(300)
    }

    /// The SOA rdata after the names: serial, refresh, retry, expire, minimum (= the TTL).
    fn soa_numbers(&self) -> [u32; 5] {
        let [refresh, retry, expire] = SOA_TIMERS;
        [self.serial, refresh, retry, expire, self.config.ttl]
    }

    /// The SOA record of negative answers without its owner: mname and rname end in pointers to
    /// the zone, which the answer path aims at the zone part of each question (see
    /// [`crate::Snapshot::write_soa`]).
    pub(crate) fn soa_template(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(52);
        out.extend_from_slice(&TYPE_SOA.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&self.soa_ttl().to_be_bytes());
        out.extend_from_slice(&42u16.to_be_bytes());
        out.extend_from_slice(b"\x02ns\x03dns\xC0\x00");
        out.extend_from_slice(b"\x0ahostmaster\xC0\x00");
        for number in self.soa_numbers() {
            out.extend_from_slice(&number.to_be_bytes());
        }
        out
    }

    /// The apex NS (its SOA is the negative answers' record, see [`Self::soa_template`]), `ns.dns`, `dns-version` and the fixed empty non-terminals.
    pub(crate) fn render_apex(&mut self) {
        let ttl = self.config.ttl;
        let zone = self.config.domain.clone();
        let mname = self.mname();
        let ns_addresses = self.name_server_addresses();
        let mut apex = NodeBuilder::new(zone.as_bytes());
        let mut ns = EntryWriter::new(zone.as_bytes(), zone.as_bytes());
        ns.record(
            Section::Answer,
            Owner::Question,
            ttl,
            RData::Ns(mname.as_bytes()),
        );
        for ip in &ns_addresses {
            let rdata = address_rdata(*ip, TYPE_A).or_else(|| address_rdata(*ip, TYPE_AAAA));
            if let Some(rdata) = rdata {
                ns.record(
                    Section::Additional,
                    Owner::Name(mname.as_bytes()),
                    ttl,
                    rdata,
                );
            }
        }
        apex.entry(TYPE_NS, ns.finish());
        self.tables.nodes.insert(apex.finish());

        let mut ns_node = NodeBuilder::new(mname.as_bytes());
        address_entries(&mut ns_node, zone.as_bytes(), ns_addresses.into_iter(), ttl);
        self.tables.nodes.insert(ns_node.finish());

        let version = self.zone_child("dns-version");
        let mut txt = EntryWriter::new(version.as_bytes(), zone.as_bytes());
        txt.record(
            Section::Answer,
            Owner::Question,
            SCHEMA_VERSION_TTL,
            RData::Txt(SCHEMA_VERSION),
        );
        let mut version_node = NodeBuilder::new(version.as_bytes());
        version_node.entry(TYPE_TXT, txt.finish());
        self.tables.nodes.insert(version_node.finish());

        // Empty non-terminals: `pod.<zone>` is NODATA even with pods disabled, as in CoreDNS.
        for label in ["svc", "pod", "dns"] {
            let name = self.zone_child(label);
            self.tables
                .nodes
                .insert(NodeBuilder::new(name.as_bytes()).finish());
        }
    }
}

/// The A or AAAA rdata of `ip` when it is of the family `qtype` asks for.
fn address_rdata(ip: IpAddr, qtype: u16) -> Option<RData<'static>> {
    match (ip, qtype) {
        (IpAddr::V4(v4), TYPE_A) => Some(RData::A(v4)),
        (IpAddr::V6(v6), TYPE_AAAA) => Some(RData::Aaaa(v6)),
        _ => None,
    }
}

/// Adds A and AAAA entries (owner = the question) for the distinct addresses given.
fn address_entries(
    node: &mut NodeBuilder<'_>,
    zone: &[u8],
    ips: impl Iterator<Item = IpAddr>,
    ttl: u32,
) {
    let mut seen = HashSet::new();
    let distinct: Vec<IpAddr> = ips.filter(|ip| seen.insert(*ip)).collect();
    for family in [TYPE_A, TYPE_AAAA] {
        let mut entry = EntryWriter::new(node.key(), zone);
        for ip in &distinct {
            if let Some(rdata) = address_rdata(*ip, family) {
                entry.record(Section::Answer, Owner::Question, ttl, rdata);
            }
        }
        if !entry.is_empty() {
            node.entry(family, entry.finish());
        }
    }
}
