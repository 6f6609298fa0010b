//! CoreDNS's `k8s_external`: another zone (`example.org`) in which `<svc>.<ns>.<zone>` answers
//! a Service's external addresses (`spec.externalIPs` and the load balancer's ingress), for
//! clients outside the cluster. It reads the same snapshot as the cluster zone (no second
//! watch; see the zone's `external` module).
//!
//! | name | answer |
//! | --- | --- |
//! | `<zone>` | SOA and NS (`ns1.<apex>.<zone>`, glue: the external addresses of `kube-system/kube-dns`); NODATA otherwise |
//! | `<apex>.<zone>` | NODATA (an empty non-terminal) |
//! | `ns1.<apex>.<zone>` | A/AAAA: the name server's addresses, as the NS glue |
//! | `<ns>.<zone>` | NODATA when the namespace exists |
//! | `<svc>.<ns>.<zone>` | A/AAAA: the external IP addresses of that family; a CNAME to a load balancer's host name; SRV: one per port, target `<svc>.<ns>.<zone>` with the addresses as glue |
//! | `_<port>._<proto>.<svc>.<ns>.<zone>` | SRV of that port |
//! | with `headless`, a headless Service without external addresses: `<svc>...` and `<ep>.<svc>...` | its ready endpoints' addresses; SRV targets `<ep>.<svc>.<ns>.<zone>` |
//! | reverse name of an external IP (when a reverse zone is one of the plugin's) | PTR `<svc>.<ns>.<first zone>` |
//!
//! Anything else in the zones is NXDOMAIN (passed on with `fallthrough`); other types are
//! NODATA. Every answer is authoritative with the zone's SOA in negative answers; A, AAAA, PTR,
//! glue, SOA and NS carry the plugin's TTL, and SRV and CNAME records the cluster zone's, as
//! CoreDNS writes them. SRV weights are CoreDNS's: floor(100/N) over the N (address, port)
//! pairs before duplicates are dropped.
//!
//! Where clusterdns differs from CoreDNS (each where CoreDNS contradicts itself):
//! - `<label>.<svc>.<ns>.<zone>` under a Service answered by its external addresses is NXDOMAIN;
//!   CoreDNS answers the Service's addresses there whatever the label.
//! - With `headless`, endpoint names exist under headless Services only; CoreDNS also answers
//!   them under a ClusterIP Service without external addresses, whose own name is NXDOMAIN.
//! - The name servers are `kube-system/kube-dns`'s external addresses (the Service whose cluster
//!   IPs are the cluster zone's glue); CoreDNS takes those of the Services in front of its own
//!   Pod's address, or that address outside a cluster.
//! - The SOA serial is the cluster zone's (the time of its last change); CoreDNS's is the time
//!   of the last change to a Service with external addresses.
//! - An SRV target that is a load balancer's host name gets no glue (CoreDNS looks its
//!   addresses up); an A or AAAA question answered with its CNAME gets the target's records
//!   through the block's chain, as for an ExternalName.

use std::collections::HashSet;
use std::net::IpAddr;

use clusterdns_zone::external::{EndpointView, ServiceView};
use clusterdns_zone::model::{ExternalAddress, Port};
use clusterdns_zone::name::{labels, parse_reverse};
use clusterdns_zone::wire::{TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_NS, TYPE_PTR, TYPE_SOA, TYPE_SRV};
use clusterdns_zone::{Rcode, Snapshot, WireName};

use super::body::{soa_rdata, Body, Owner, Section};
use super::Zones;

/// The default TTL (CoreDNS's `ttl` default).
pub const DEFAULT_TTL: u32 = 5;
/// The default apex label (CoreDNS's `apex` default).
pub const DEFAULT_APEX: &str = "dns";

/// The plugin of one server block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct K8sExternal {
    zones: Zones,
    /// The first zone, which PTR targets are in.
    first: WireName,
    /// The apex label(s), lowercase wire format without the root label.
    apex: Vec<u8>,
    ttl: u32,
    headless: bool,
    fallthrough: Option<Zones>,
}

/// What the plugin makes of a question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum External {
    /// Not the plugin's: the next plugin answers.
    Pass,
    /// An authoritative response with this rcode and these records.
    Answer(Rcode, Body),
}

/// A name and port an SRV answer points at, with its address.
struct Target<'a> {
    address: &'a ExternalAddressRef,
    /// `None`: the Service (or slice) declares no port, which counts in SRV weights only.
    port: Option<u16>,
    /// The endpoint, for a headless Service's.
    endpoint: Option<EndpointView<'a>>,
}

/// An external address or an endpoint's: what an A, AAAA or CNAME record says.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ExternalAddressRef {
    Ip(IpAddr),
    Hostname(WireName),
}

/// A `_<port>._<proto>` filter; an empty label matches any (as CoreDNS's `matchPortAndProtocol`).
#[derive(Clone, Copy)]
struct PortFilter<'a> {
    name: &'a [u8],
    protocol: &'a [u8],
}

impl PortFilter<'_> {
    fn matches(&self, port: Option<&Port>) -> bool {
        let (name, protocol) = match port {
            Some(p) => (p.name.as_bytes(), p.protocol.label().as_bytes()),
            // A Service without ports stands as one port without name or protocol.
            None => (&b""[..], &b""[..]),
        };
        (self.name.is_empty() || self.name.eq_ignore_ascii_case(name))
            && (self.protocol.is_empty() || self.protocol.eq_ignore_ascii_case(protocol))
    }
}

impl K8sExternal {
    /// The plugin for `zones` (the first names PTR targets) with the apex label `apex`, the
    /// TTL `ttl`, endpoint answers for headless Services (`headless`), and the zones whose
    /// NXDOMAIN goes on to the next plugin.
    pub fn new(
        zones: &[WireName],
        apex: &str,
        ttl: u32,
        headless: bool,
        fallthrough: Option<Zones>,
    ) -> Result<Self, String> {
        let first = zones.first().cloned().ok_or("no zone")?;
        // CoreDNS joins the apex in front of the zone as it is written, so it may be several
        // labels; the README calls it one.
        let apex = WireName::from_dotted(apex)
            .filter(|name| name.as_bytes().len() > 1)
            .ok_or_else(|| format!("apex {apex:?} is not a domain name"))?;
        let apex = apex.as_bytes()[..apex.as_bytes().len() - 1].to_vec();
        let dotted: Vec<String> = zones.iter().map(WireName::to_dotted).collect();
        Ok(K8sExternal {
            zones: Zones::parse(&dotted)?,
            first,
            apex,
            ttl,
            headless,
            fallthrough,
        })
    }

    /// The answer to `qname` (lowercase wire format) of type `qtype` from `snapshot`.
    pub fn answer(&self, snapshot: &Snapshot, qname: &[u8], qtype: u16) -> External {
        let Some(zone) = self.zones.matches(qname) else {
            return External::Pass;
        };
        let zone = zone.as_bytes();
        let base = &qname[..qname.len() - zone.len()];
        let names: Vec<&[u8]> = labels(base).collect();
        let at = At {
            snapshot,
            zone,
            qname,
        };
        if names.is_empty() {
            return self.apex_answer(&at, qtype);
        }
        let apex: Vec<&[u8]> = labels(&self.apex).collect();
        if let Some(below) = names.len().checked_sub(apex.len()) {
            if names[below..] == apex[..] {
                return self.sub_apex_answer(&at, &names[..below], qtype);
            }
        }
        let rcode_only = |rcode| self.negative(&at, rcode);
        let answer = match self.records(&at, &names, qtype) {
            Some(body) if body.no_answer() => rcode_only(Rcode::NoError),
            Some(body) => External::Answer(Rcode::NoError, body),
            None => rcode_only(Rcode::NxDomain),
        };
        match answer {
            External::Answer(Rcode::NxDomain, _)
                if self
                    .fallthrough
                    .as_ref()
                    .is_some_and(|f| f.matches(qname).is_some()) =>
            {
                External::Pass
            }
            answer => answer,
        }
    }

    /// The records answering a name below the zone (`names`, its labels above the zone), an
    /// empty body for NODATA; `None` for NXDOMAIN.
    fn records(&self, at: &At, names: &[&[u8]], qtype: u16) -> Option<Body> {
        if qtype == TYPE_PTR {
            if let Some(ip) = parse_reverse(at.qname) {
                return self.ptr(at, ip);
            }
        }
        let (namespace, rest) = names.split_last()?;
        if !at.snapshot.namespace_exists(namespace) {
            return None;
        }
        let Some((service, rest)) = rest.split_last() else {
            // `<ns>.<zone>`: NODATA.
            return Some(Body::default());
        };
        let (endpoint, filter) = match rest {
            [] => (None, None),
            [endpoint] => (Some(underscore(endpoint)), None),
            [port, protocol] => (
                None,
                Some(PortFilter {
                    name: underscore(port),
                    protocol: underscore(protocol),
                }),
            ),
            _ => return None,
        };
        let view = at.snapshot.service(namespace, service)?;
        let addresses: Vec<ExternalAddressRef> = (view.external().iter())
            .map(|address| match address {
                ExternalAddress::Ip(ip) => ExternalAddressRef::Ip(*ip),
                ExternalAddress::Hostname(host) => ExternalAddressRef::Hostname(
                    WireName::from_dotted(host).unwrap_or_else(WireName::root),
                ),
            })
            .collect();
        let endpoint_ips: Vec<ExternalAddressRef>;
        let mut targets: Vec<Target> = Vec::new();
        if self.headless && addresses.is_empty() && view.is_headless() {
            let endpoints: Vec<EndpointView> = view.endpoints().collect();
            endpoint_ips = (endpoints.iter())
                .map(|e| ExternalAddressRef::Ip(e.ip()))
                .collect();
            for (endpoint_view, address) in endpoints.iter().zip(&endpoint_ips) {
                if endpoint.is_some_and(|label| !endpoint_view.has_label(label)) {
                    continue;
                }
                push_targets(
                    &mut targets,
                    address,
                    endpoint_view.ports(),
                    filter,
                    Some(*endpoint_view),
                );
            }
        } else {
            if endpoint.is_some() {
                // Only a headless Service's endpoints have names below it.
                return None;
            }
            for address in &addresses {
                push_targets(&mut targets, address, view.ports(), filter, None);
            }
        }
        if targets.is_empty() {
            return None;
        }
        let mut body = Body::default();
        match qtype {
            TYPE_A | TYPE_AAAA => self.addresses(at, &targets, qtype, &mut body),
            TYPE_SRV => self.srv(at, view, &targets, &mut body),
            // PTR of a name that is not an address, and every other type: NODATA.
            _ => {}
        }
        Some(body)
    }

    /// A and AAAA records of the family asked, and CNAMEs to host names, each once.
    fn addresses(&self, at: &At, targets: &[Target], qtype: u16, body: &mut Body) {
        let mut seen: HashSet<&ExternalAddressRef> = HashSet::new();
        for target in targets {
            if !seen.insert(target.address) {
                continue;
            }
            match target.address {
                ExternalAddressRef::Ip(ip) => {
                    let (rtype, rdata) = address_record(*ip);
                    if rtype == qtype {
                        body.push(Section::Answer, Owner::Question(0), rtype, self.ttl, &rdata);
                    }
                }
                ExternalAddressRef::Hostname(host) => {
                    let ttl = at.snapshot.config().ttl;
                    body.push(
                        Section::Answer,
                        Owner::Question(0),
                        TYPE_CNAME,
                        ttl,
                        host.as_bytes(),
                    );
                }
            }
        }
    }

    /// SRV records, one per distinct (target, port), with the targets' addresses as glue.
    fn srv(&self, at: &At, view: ServiceView, targets: &[Target], body: &mut Body) {
        let weight = srv_weight(targets.len());
        let mut records: HashSet<(Vec<u8>, u16)> = HashSet::new();
        let mut glue: Vec<(Vec<u8>, IpAddr)> = Vec::new();
        let service_name = self.service_name(at.zone, view);
        for target in targets {
            let Some(port) = target.port else { continue };
            let name = match (target.address, target.endpoint) {
                (ExternalAddressRef::Hostname(host), _) => host.as_bytes().to_vec(),
                (ExternalAddressRef::Ip(_), Some(endpoint)) => {
                    let mut label = [0u8; 63];
                    let len = endpoint.write_label(&mut label);
                    let mut name = Vec::with_capacity(1 + len + service_name.len());
                    name.push(len as u8);
                    name.extend_from_slice(&label[..len]);
                    name.extend_from_slice(&service_name);
                    name
                }
                (ExternalAddressRef::Ip(_), None) => service_name.clone(),
            };
            if records.insert((name.clone(), port)) {
                let mut rdata = Vec::with_capacity(6 + name.len());
                rdata.extend_from_slice(&0u16.to_be_bytes());
                rdata.extend_from_slice(&weight.to_be_bytes());
                rdata.extend_from_slice(&port.to_be_bytes());
                rdata.extend_from_slice(&name);
                let ttl = at.snapshot.config().ttl;
                body.push(Section::Answer, Owner::Question(0), TYPE_SRV, ttl, &rdata);
            }
            if let ExternalAddressRef::Ip(ip) = target.address {
                if !glue.iter().any(|(n, a)| *n == name && a == ip) {
                    glue.push((name, *ip));
                }
            }
        }
        for (name, ip) in &glue {
            let (rtype, rdata) = address_record(*ip);
            body.push(
                Section::Additional,
                Owner::Name(name),
                rtype,
                self.ttl,
                &rdata,
            );
        }
    }

    /// PTR records for the Services that have `ip` as an external address; `None` when none.
    fn ptr(&self, at: &At, ip: IpAddr) -> Option<Body> {
        let mut body = Body::default();
        let mut seen = HashSet::new();
        for view in at.snapshot.external_owners(ip) {
            let name = self.service_name(self.first.as_bytes(), view);
            if seen.insert(name.clone()) {
                body.push(
                    Section::Answer,
                    Owner::Question(0),
                    TYPE_PTR,
                    self.ttl,
                    &name,
                );
            }
        }
        (!body.no_answer()).then_some(body)
    }

    /// `<svc>.<ns>.<zone>` in wire format.
    fn service_name(&self, zone: &[u8], view: ServiceView) -> Vec<u8> {
        let mut name =
            Vec::with_capacity(view.name().len() + view.namespace().len() + 2 + zone.len());
        for label in [view.name(), view.namespace()] {
            name.push(label.len() as u8);
            name.extend_from_slice(label.as_bytes());
        }
        name.extend_from_slice(zone);
        name
    }

    /// The zone's apex: SOA, NS with glue, NODATA for the rest.
    fn apex_answer(&self, at: &At, qtype: u16) -> External {
        let mut body = Body::default();
        match qtype {
            TYPE_SOA => {
                let soa = self.soa(at);
                body.push(
                    Section::Answer,
                    Owner::Name(at.zone),
                    TYPE_SOA,
                    self.ttl,
                    &soa,
                );
            }
            TYPE_NS => {
                let ns = self.in_zone(b"\x03ns1", at.zone);
                body.push(
                    Section::Answer,
                    Owner::Name(at.zone),
                    TYPE_NS,
                    self.ttl,
                    &ns,
                );
                let glue_owner = [&b"\x03ns1"[..], &self.apex].concat();
                for ip in self.name_servers(at.snapshot) {
                    let (rtype, rdata) = address_record(ip);
                    let owner = Owner::BelowQuestion(&glue_owner);
                    body.push(Section::Additional, owner, rtype, self.ttl, &rdata);
                }
            }
            _ => return self.negative(at, Rcode::NoError),
        }
        External::Answer(Rcode::NoError, body)
    }

    /// Names below `<apex>.<zone>` (`names`: their labels above it): `ns1` has the name servers'
    /// addresses, the apex label itself is an empty non-terminal, the rest does not exist.
    fn sub_apex_answer(&self, at: &At, names: &[&[u8]], qtype: u16) -> External {
        match names {
            [] => self.negative(at, Rcode::NoError),
            [label] if *label == b"ns1" => {
                let mut body = Body::default();
                for ip in self.name_servers(at.snapshot) {
                    let (rtype, rdata) = address_record(ip);
                    if rtype == qtype {
                        body.push(Section::Answer, Owner::Question(0), rtype, self.ttl, &rdata);
                    }
                }
                match body.no_answer() {
                    true => self.negative(at, Rcode::NoError),
                    false => External::Answer(Rcode::NoError, body),
                }
            }
            _ => self.negative(at, Rcode::NxDomain),
        }
    }

    /// A response with `rcode`, no answer and the zone's SOA.
    fn negative(&self, at: &At, rcode: Rcode) -> External {
        let mut body = Body::default();
        let soa = self.soa(at);
        body.push(
            Section::Authority,
            Owner::Name(at.zone),
            TYPE_SOA,
            self.ttl,
            &soa,
        );
        External::Answer(rcode, body)
    }

    /// The zone's SOA RDATA, as CoreDNS synthesizes it.
    fn soa(&self, at: &At) -> Vec<u8> {
        let mname = self.in_zone(b"\x03ns1", at.zone);
        let rname = self.in_zone(b"\x0ahostmaster", at.zone);
        let serial = at.snapshot.serial();
        soa_rdata(&mname, &rname, [serial, 7200, 1800, 86400, self.ttl])
    }

    /// `<label>.<apex>.<zone>` in wire format.
    fn in_zone(&self, label: &[u8], zone: &[u8]) -> Vec<u8> {
        [label, &self.apex, zone].concat()
    }

    /// The name servers' addresses: `kube-system/kube-dns`'s external IPs (its ready endpoints
    /// when it is headless and `headless` is on).
    fn name_servers(&self, snapshot: &Snapshot) -> Vec<IpAddr> {
        let Some(view) = snapshot.dns_service() else {
            return Vec::new();
        };
        let mut ips: Vec<IpAddr> = if self.headless && view.is_headless() {
            view.endpoints().map(|e| e.ip()).collect()
        } else {
            (view.external().iter())
                .filter_map(|a| match a {
                    ExternalAddress::Ip(ip) => Some(*ip),
                    ExternalAddress::Hostname(_) => None,
                })
                .collect()
        };
        let mut seen = HashSet::new();
        ips.retain(|ip| seen.insert(*ip));
        ips
    }
}

/// The zone and question a lookup is for.
struct At<'a> {
    snapshot: &'a Snapshot,
    /// The zone matched (lowercase wire format).
    zone: &'a [u8],
    qname: &'a [u8],
}

/// One target per port of `ports` that `filter` matches (one without a port when there are
/// none), as CoreDNS lists a Service's or an endpoint's.
fn push_targets<'a>(
    targets: &mut Vec<Target<'a>>,
    address: &'a ExternalAddressRef,
    ports: &'a [Port],
    filter: Option<PortFilter>,
    endpoint: Option<EndpointView<'a>>,
) {
    let matches = |port| filter.is_none_or(|f| f.matches(port));
    if ports.is_empty() {
        if matches(None) {
            targets.push(Target {
                address,
                port: None,
                endpoint,
            });
        }
        return;
    }
    for port in ports.iter().filter(|p| matches(Some(p))) {
        targets.push(Target {
            address,
            port: Some(port.port),
            endpoint,
        });
    }
}

/// A label of a `_<port>._<proto>` name without its underscore (CoreDNS's `stripUnderscore`,
/// which also takes the labels without one).
fn underscore<'a>(label: &&'a [u8]) -> &'a [u8] {
    label.strip_prefix(b"_").unwrap_or(label)
}

/// The SRV weight of each of `n` records of one priority, as CoreDNS computes it:
/// floor(100 / (100 n) * 100), at least 1.
fn srv_weight(n: usize) -> u16 {
    let total = 100.0 * n as f64;
    ((100.0 / total * 100.0).floor() as u16).max(1)
}

/// The type and RDATA of an address record.
fn address_record(ip: IpAddr) -> (u16, Vec<u8>) {
    match ip {
        IpAddr::V4(v4) => (TYPE_A, v4.octets().to_vec()),
        IpAddr::V6(v6) => (TYPE_AAAA, v6.octets().to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clusterdns_zone::answer::{parse_query, respond_records, Transport};
    use clusterdns_zone::model::{Change, Endpoint, EndpointSlice, Protocol, Service, ServiceKind};
    use clusterdns_zone::wire::TYPE_TXT;
    use clusterdns_zone::{Answered, ZoneBuilder, ZoneConfig};
    use hickory_proto::op::Message;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn http() -> Vec<Port> {
        vec![Port {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port: 80,
        }]
    }

    fn service(name: &str, kind: ServiceKind, external: &[&str]) -> Change {
        Change::ServiceUpsert(Service {
            namespace: "testns".into(),
            name: name.into(),
            kind,
            ports: http(),
            external: (external.iter())
                .map(|a| match a.parse() {
                    Ok(ip) => ExternalAddress::Ip(ip),
                    Err(_) => ExternalAddress::Hostname((*a).into()),
                })
                .collect(),
        })
    }

    /// The cluster of CoreDNS's k8s_external/external_test.go, and `kube-system/kube-dns`
    /// with an external address for the name servers.
    fn snapshot() -> Snapshot {
        let mut builder = ZoneBuilder::new(ZoneConfig::default());
        builder.apply(Change::NamespaceUpsert("testns".into()));
        let cluster = |a: &str| ServiceKind::ClusterIp(vec![ip(a)]);
        builder.apply(service("svc1", cluster("10.0.0.1"), &["1.2.3.4"]));
        builder.apply(service("svc6", cluster("10.0.0.3"), &["1:2::5"]));
        builder.apply(service("svc11", cluster("10.0.0.3"), &["2.3.4.5"]));
        builder.apply(service("svc12", cluster("10.0.0.3"), &["dummy.hostname"]));
        builder.apply(service("svc-headless", ServiceKind::Headless, &[]));
        builder.apply(Change::SliceUpsert(EndpointSlice {
            namespace: "testns".into(),
            name: "svc-headless-1".into(),
            service: "svc-headless".into(),
            ports: http(),
            endpoints: ["1.2.3.4", "1.2.3.5"]
                .iter()
                .enumerate()
                .map(|(i, a)| Endpoint {
                    addresses: vec![ip(a)],
                    hostname: Some(format!("endpoint-svc-{i}").into()),
                    ready: true,
                })
                .collect(),
        }));
        builder.apply(Change::ServiceUpsert(Service {
            namespace: "kube-system".into(),
            name: "kube-dns".into(),
            kind: ServiceKind::ClusterIp(vec![ip("10.96.0.10")]),
            ports: Vec::new(),
            external: vec![ExternalAddress::Ip(ip("192.0.2.53"))],
        }));
        builder.set_synced();
        builder.publish()
    }

    fn plugin(headless: bool, fallthrough: Option<&[&str]>) -> K8sExternal {
        let zones: Vec<WireName> = ["example.com", "in-addr.arpa"]
            .iter()
            .filter_map(|z| WireName::from_dotted(z))
            .collect();
        let fallthrough = fallthrough.map(|z| Zones::parse(z).expect("zones"));
        K8sExternal::new(&zones, DEFAULT_APEX, DEFAULT_TTL, headless, fallthrough).expect("valid")
    }

    /// The response to `name` of `qtype`: `None` when passed on, else its rcode and
    /// `section: owner TTL TYPE data` lines, sorted within a section (as CoreDNS's
    /// `SortAndCheck`), the SOA serial as `SERIAL`.
    fn asked(
        plugin: &K8sExternal,
        snapshot: &Snapshot,
        name: &str,
        qtype: u16,
    ) -> Option<(String, Vec<String>)> {
        let mut packet = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.').filter(|l| !l.is_empty()) {
            packet.push(label.len() as u8);
            packet.extend_from_slice(label.as_bytes());
        }
        packet.push(0);
        packet.extend_from_slice(&qtype.to_be_bytes());
        packet.extend_from_slice(&[0, 1]);
        let query = parse_query(&packet).expect("a query");
        let External::Answer(rcode, body) = plugin.answer(snapshot, query.qname(), qtype) else {
            return None;
        };
        let mut out = vec![0u8; 4096];
        let tcp = Transport::Tcp;
        let written = respond_records(
            &query,
            &packet,
            &mut out,
            tcp,
            (rcode, true),
            &body.bytes,
            body.counts,
        );
        let Answered::Response { len, .. } = written else {
            panic!("{written:?}");
        };
        let message = Message::from_vec(&out[..len]).expect("decodes");
        assert!(message.metadata.authoritative, "{name}: authoritative");
        let serial = snapshot.serial().to_string();
        let mut lines = Vec::new();
        let sections = [
            ("answer", &message.answers),
            ("authority", &message.authorities),
            ("additional", &message.additionals),
        ];
        for (section, records) in sections {
            let mut texts: Vec<String> = (records.iter())
                .map(|r| {
                    let data = r.data.to_string().replace(&serial, "SERIAL");
                    format!("{section}: {} {} {} {data}", r.name, r.ttl, r.record_type())
                })
                .collect();
            texts.sort();
            lines.extend(texts);
        }
        Some((message.metadata.response_code.to_string(), lines))
    }

    const SOA: &str =
        "authority: example.com. 5 SOA ns1.dns.example.com. hostmaster.dns.example.com. SERIAL 7200 1800 86400 5";
    const NOERROR: &str = "No Error";
    const NXDOMAIN: &str = "Non-Existent Domain";

    /// Every case of CoreDNS's k8s_external/external_test.go (zones `example.com` and
    /// `in-addr.arpa`, `headless`), in its order.
    #[test]
    fn coredns_cases() {
        let snapshot = snapshot();
        let plugin = plugin(true, None);
        let cases: &[(&str, u16, &str, &[&str])] = &[
            ("4.3.2.1.in-addr.arpa.", TYPE_PTR, NOERROR, &["answer: 4.3.2.1.in-addr.arpa. 5 PTR svc1.testns.example.com."]),
            ("svc1.testns.example.com.", TYPE_PTR, NOERROR, &[SOA]),
            ("not-existing.testns.example.com.", TYPE_PTR, NXDOMAIN, &[SOA]),
            ("svc1.testns.example.com.", TYPE_A, NOERROR, &["answer: svc1.testns.example.com. 5 A 1.2.3.4"]),
            (
                "svc1.testns.example.com.",
                TYPE_SRV,
                NOERROR,
                &[
                    "answer: svc1.testns.example.com. 5 SRV 0 100 80 svc1.testns.example.com.",
                    "additional: svc1.testns.example.com. 5 A 1.2.3.4",
                ],
            ),
            ("*._not-udp-or-tcp.svc1.testns.example.com.", TYPE_SRV, NXDOMAIN, &[SOA]),
            (
                "_http._tcp.svc1.testns.example.com.",
                TYPE_SRV,
                NOERROR,
                &[
                    "answer: _http._tcp.svc1.testns.example.com. 5 SRV 0 100 80 svc1.testns.example.com.",
                    "additional: svc1.testns.example.com. 5 A 1.2.3.4",
                ],
            ),
            ("svc1.testns.example.com.", TYPE_AAAA, NOERROR, &[SOA]),
            ("svc0.testns.example.com.", TYPE_AAAA, NXDOMAIN, &[SOA]),
            ("svc0.testns.example.com.", TYPE_A, NXDOMAIN, &[SOA]),
            ("svc0.svc-nons.example.com.", TYPE_A, NXDOMAIN, &[SOA]),
            ("svc6.testns.example.com.", TYPE_AAAA, NOERROR, &["answer: svc6.testns.example.com. 5 AAAA 1:2::5"]),
            (
                "_http._tcp.svc6.testns.example.com.",
                TYPE_SRV,
                NOERROR,
                &[
                    "answer: _http._tcp.svc6.testns.example.com. 5 SRV 0 100 80 svc6.testns.example.com.",
                    "additional: svc6.testns.example.com. 5 AAAA 1:2::5",
                ],
            ),
            (
                "svc6.testns.example.com.",
                TYPE_SRV,
                NOERROR,
                &[
                    "answer: svc6.testns.example.com. 5 SRV 0 100 80 svc6.testns.example.com.",
                    "additional: svc6.testns.example.com. 5 AAAA 1:2::5",
                ],
            ),
            ("testns.example.com.", TYPE_A, NOERROR, &[SOA]),
            ("testns.example.com.", TYPE_SOA, NOERROR, &[SOA]),
            ("svc11.testns.example.com.", TYPE_A, NOERROR, &["answer: svc11.testns.example.com. 5 A 2.3.4.5"]),
            (
                "_http._tcp.svc11.testns.example.com.",
                TYPE_SRV,
                NOERROR,
                &[
                    "answer: _http._tcp.svc11.testns.example.com. 5 SRV 0 100 80 svc11.testns.example.com.",
                    "additional: svc11.testns.example.com. 5 A 2.3.4.5",
                ],
            ),
            (
                "svc11.testns.example.com.",
                TYPE_SRV,
                NOERROR,
                &[
                    "answer: svc11.testns.example.com. 5 SRV 0 100 80 svc11.testns.example.com.",
                    "additional: svc11.testns.example.com. 5 A 2.3.4.5",
                ],
            ),
            ("svc12.testns.example.com.", TYPE_A, NOERROR, &["answer: svc12.testns.example.com. 5 CNAME dummy.hostname."]),
            (
                "_http._tcp.svc12.testns.example.com.",
                TYPE_SRV,
                NOERROR,
                &["answer: _http._tcp.svc12.testns.example.com. 5 SRV 0 100 80 dummy.hostname."],
            ),
            ("svc12.testns.example.com.", TYPE_SRV, NOERROR, &["answer: svc12.testns.example.com. 5 SRV 0 100 80 dummy.hostname."]),
            (
                "svc-headless.testns.example.com.",
                TYPE_A,
                NOERROR,
                &[
                    "answer: svc-headless.testns.example.com. 5 A 1.2.3.4",
                    "answer: svc-headless.testns.example.com. 5 A 1.2.3.5",
                ],
            ),
            (
                "svc-headless.testns.example.com.",
                TYPE_SRV,
                NOERROR,
                &[
                    "answer: svc-headless.testns.example.com. 5 SRV 0 50 80 endpoint-svc-0.svc-headless.testns.example.com.",
                    "answer: svc-headless.testns.example.com. 5 SRV 0 50 80 endpoint-svc-1.svc-headless.testns.example.com.",
                    "additional: endpoint-svc-0.svc-headless.testns.example.com. 5 A 1.2.3.4",
                    "additional: endpoint-svc-1.svc-headless.testns.example.com. 5 A 1.2.3.5",
                ],
            ),
            (
                "_http._tcp.svc-headless.testns.example.com.",
                TYPE_SRV,
                NOERROR,
                &[
                    "answer: _http._tcp.svc-headless.testns.example.com. 5 SRV 0 50 80 endpoint-svc-0.svc-headless.testns.example.com.",
                    "answer: _http._tcp.svc-headless.testns.example.com. 5 SRV 0 50 80 endpoint-svc-1.svc-headless.testns.example.com.",
                    "additional: endpoint-svc-0.svc-headless.testns.example.com. 5 A 1.2.3.4",
                    "additional: endpoint-svc-1.svc-headless.testns.example.com. 5 A 1.2.3.5",
                ],
            ),
            (
                "endpoint-svc-0.svc-headless.testns.example.com.",
                TYPE_SRV,
                NOERROR,
                &[
                    "answer: endpoint-svc-0.svc-headless.testns.example.com. 5 SRV 0 100 80 endpoint-svc-0.svc-headless.testns.example.com.",
                    "additional: endpoint-svc-0.svc-headless.testns.example.com. 5 A 1.2.3.4",
                ],
            ),
            (
                "endpoint-svc-1.svc-headless.testns.example.com.",
                TYPE_SRV,
                NOERROR,
                &[
                    "answer: endpoint-svc-1.svc-headless.testns.example.com. 5 SRV 0 100 80 endpoint-svc-1.svc-headless.testns.example.com.",
                    "additional: endpoint-svc-1.svc-headless.testns.example.com. 5 A 1.2.3.5",
                ],
            ),
            ("endpoint-svc-0.svc-headless.testns.example.com.", TYPE_A, NOERROR, &["answer: endpoint-svc-0.svc-headless.testns.example.com. 5 A 1.2.3.4"]),
            ("endpoint-svc-1.svc-headless.testns.example.com.", TYPE_A, NOERROR, &["answer: endpoint-svc-1.svc-headless.testns.example.com. 5 A 1.2.3.5"]),
        ];
        for (name, qtype, rcode, lines) in cases {
            let got = asked(&plugin, &snapshot, name, *qtype);
            let expected = Some((
                rcode.to_string(),
                lines.iter().map(|l| l.to_string()).collect(),
            ));
            assert_eq!(got, expected, "{name} {qtype}");
        }
    }

    /// The apex, the `dns` subdomain and what the README says about them.
    #[test]
    fn apex_and_name_servers() {
        let snapshot = snapshot();
        let plugin = plugin(false, None);
        let ns = |name: &str, qtype| asked(&plugin, &snapshot, name, qtype).expect("answered");
        assert_eq!(
            ns("example.com.", TYPE_SOA),
            (NOERROR.into(), vec![SOA.replace("authority:", "answer:")])
        );
        assert_eq!(
            ns("Example.COM.", TYPE_NS),
            (
                NOERROR.into(),
                vec![
                    "answer: example.com. 5 NS ns1.dns.example.com.".into(),
                    "additional: ns1.dns.Example.COM. 5 A 192.0.2.53".into(),
                ]
            )
        );
        assert_eq!(
            ns("example.com.", TYPE_A),
            (NOERROR.into(), vec![SOA.into()])
        );
        assert_eq!(
            ns("dns.example.com.", TYPE_A),
            (NOERROR.into(), vec![SOA.into()])
        );
        assert_eq!(
            ns("ns1.dns.example.com.", TYPE_A),
            (
                NOERROR.into(),
                vec!["answer: ns1.dns.example.com. 5 A 192.0.2.53".into()]
            )
        );
        assert_eq!(
            ns("ns1.dns.example.com.", TYPE_AAAA),
            (NOERROR.into(), vec![SOA.into()])
        );
        assert_eq!(
            ns("ns2.dns.example.com.", TYPE_A),
            (NXDOMAIN.into(), vec![SOA.into()])
        );
        assert_eq!(
            ns("a.ns1.dns.example.com.", TYPE_A),
            (NXDOMAIN.into(), vec![SOA.into()])
        );
        // Another apex label and TTL.
        let zones = [WireName::from_dotted("example.com").expect("zone")];
        let other = K8sExternal::new(&zones, "ext", 60, false, None).expect("valid");
        let (_, lines) =
            asked(&other, &snapshot, "ns1.ext.example.com.", TYPE_A).expect("answered");
        assert_eq!(lines, ["answer: ns1.ext.example.com. 60 A 192.0.2.53"]);
        let (_, lines) =
            asked(&other, &snapshot, "svc1.testns.example.com.", TYPE_TXT).expect("answered");
        assert_eq!(lines, ["authority: example.com. 60 SOA ns1.ext.example.com. hostmaster.ext.example.com. SERIAL 7200 1800 86400 60"]);
        let (_, lines) =
            asked(&other, &snapshot, "svc1.testns.example.com.", TYPE_SRV).expect("answered");
        assert_eq!(
            lines,
            [
                // The SRV record carries the cluster zone's TTL, the glue the plugin's.
                "answer: svc1.testns.example.com. 5 SRV 0 100 80 svc1.testns.example.com.",
                "additional: svc1.testns.example.com. 60 A 1.2.3.4",
            ]
        );
    }

    #[test]
    fn headless_fallthrough_and_differences() {
        let snapshot = snapshot();
        // Without `headless`, a headless Service without external addresses does not exist.
        let plain = plugin(false, None);
        let (rcode, _) = asked(
            &plain,
            &snapshot,
            "svc-headless.testns.example.com.",
            TYPE_A,
        )
        .expect("answered");
        assert_eq!(rcode, NXDOMAIN);
        // A label under a Service answered by its external addresses does not exist (CoreDNS
        // answers the Service's addresses there).
        let (rcode, _) =
            asked(&plain, &snapshot, "x.svc1.testns.example.com.", TYPE_A).expect("answered");
        assert_eq!(rcode, NXDOMAIN);
        // `fallthrough`: NXDOMAIN goes on; the rest is still answered.
        let through = plugin(false, Some(&["example.com"]));
        assert!(asked(&through, &snapshot, "svc0.testns.example.com.", TYPE_A).is_none());
        assert!(asked(&through, &snapshot, "svc1.testns.example.com.", TYPE_A).is_some());
        assert!(asked(&through, &snapshot, "svc1.testns.example.com.", TYPE_AAAA).is_some());
        assert!(
            asked(&through, &snapshot, "9.9.9.9.in-addr.arpa.", TYPE_PTR).is_some(),
            "not a fallthrough zone"
        );
        // Names outside the zones are not the plugin's.
        assert!(asked(&plain, &snapshot, "svc1.testns.svc.cluster.local.", TYPE_A).is_none());
        // Ports without underscores are read as CoreDNS reads them.
        let (_, lines) = asked(
            &plain,
            &snapshot,
            "http.tcp.svc1.testns.example.com.",
            TYPE_SRV,
        )
        .expect("answered");
        assert_eq!(lines.len(), 2);
        assert!(K8sExternal::new(&[], DEFAULT_APEX, 5, false, None).is_err());
        let zone = [WireName::root()];
        assert!(K8sExternal::new(&zone, "a..b", 5, false, None).is_err());
    }
}
