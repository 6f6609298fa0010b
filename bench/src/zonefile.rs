//! A [`Cluster`] as RFC 1035 zone files holding the records clusterdns answers for it
//! (ARCHITECTURE.md, "The zone"), so that Knot DNS, NSD and Unbound can serve the same cluster from
//! files.
//!
//! - The cluster zone (`cluster.local` by default): SOA and NS at the apex, `dns-version` TXT,
//!   Service A/AAAA (cluster IPs, or the ready endpoint addresses of a headless Service), SRV at
//!   the bare Service name and at `_<port>._<proto>.<svc>.<ns>.svc.<zone>` for named ports (with
//!   CoreDNS's weights, floor(100/N) over the N candidates), endpoint A/AAAA at
//!   `<ep>.<svc>.<ns>.svc.<zone>`, and ExternalName CNAMEs.
//! - Reverse zones: PTR of every cluster IP (to its Service) and of every ready endpoint address
//!   (to its endpoint names), one zone per IPv4 /8 (`10.in-addr.arpa`) and per IPv6 /48, cuts
//!   every server accepts as a plain primary zone.
//!
//! What a zone file cannot say, and so differs from clusterdns's answers: synthesized pod names
//! (`a-b-c-d.<ns>.pod.<zone>`), the empty non-terminals clusterdns keeps without children
//! (`pod.<zone>`, `dns.<zone>`, `<ns>.pod.<zone>`, a namespace without Services), and NXDOMAIN
//! instead of "not ours" for reverse names of addresses nothing uses. Glue (the additional
//! section of SRV answers) is each server's own business.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::Path;

use clusterdns_zone::{Cluster, EndpointSlice, Port, Service, ServiceKind};

use crate::packet::reverse_dotted;
use clusterdns_zone::name::dashed;

/// SOA timers as clusterdns (and CoreDNS) sets them: refresh, retry, expire.
const SOA_TIMERS: [u32; 3] = [7200, 1800, 86400];
/// The `dns-version` TXT record: schema version and TTL (specification §2.2).
const SCHEMA_VERSION: (&str, u32) = ("1.1.0", 28800);
/// Write buffer of each zone file.
const FILE_BUFFER: usize = 1 << 20;

/// What the written zones share with the server they mirror.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneParams {
    /// The cluster domain, without trailing dot.
    pub domain: String,
    /// TTL of every record (clusterdns's `--ttl`, default 5).
    pub ttl: u32,
    /// The SOA serial of every zone.
    pub serial: u32,
}

impl ZoneParams {
    /// The SOA and NS lines every zone starts with.
    fn apex<W: Write>(&self, out: &mut W, origin: &str) -> io::Result<()> {
        let domain = &self.domain;
        let [refresh, retry, expire] = SOA_TIMERS;
        writeln!(out, "$ORIGIN {origin}.")?;
        writeln!(out, "$TTL {}", self.ttl)?;
        writeln!(
            out,
            "@\t{}\tIN\tSOA\tns.dns.{domain}. hostmaster.{domain}. {} {refresh} {retry} {expire} {}",
            self.ttl.min(300),
            self.serial,
            self.ttl
        )?;
        writeln!(out, "@\t{}\tIN\tNS\tns.dns.{domain}.", self.ttl)
    }
}

/// One zone file: its origin (no trailing dot) and how many records it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneFile {
    /// The zone's origin, without trailing dot (the file is `<origin>.zone`).
    pub origin: String,
    /// Records in the file.
    pub records: usize,
}

impl ZoneFile {
    /// The file name the zone is written to: `<origin>.zone`.
    pub fn file_name(&self) -> String {
        format!("{}.zone", self.origin)
    }
}

/// Writes the cluster zone and every reverse zone of `cluster` into `dir` as `<origin>.zone`,
/// the cluster zone first.
pub fn write_zone_files(
    cluster: &Cluster,
    params: &ZoneParams,
    dir: &Path,
) -> io::Result<Vec<ZoneFile>> {
    let create = |origin: &str| -> io::Result<BufWriter<File>> {
        let path = dir.join(format!("{origin}.zone"));
        let file = File::create(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(BufWriter::with_capacity(FILE_BUFFER, file))
    };
    let mut files = vec![ZoneFile {
        origin: params.domain.clone(),
        records: write_cluster_zone(cluster, params, create(&params.domain)?)?,
    }];
    for (origin, records) in reverse_records(cluster, params) {
        let written = write_reverse_zone(&origin, &records, params, create(&origin)?)?;
        files.push(ZoneFile {
            origin,
            records: written,
        });
    }
    Ok(files)
}

/// A ready endpoint address of a Service: its address, its label, the ports of its slice.
struct Ready<'a> {
    ip: IpAddr,
    label: String,
    ports: &'a [Port],
}

/// The slices of each Service, by `(namespace, service)`, in slice-name order.
fn slices_by_service(cluster: &Cluster) -> HashMap<(&str, &str), Vec<&EndpointSlice>> {
    let mut by_service: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
    for slice in &cluster.slices {
        by_service
            .entry((&slice.namespace, &slice.service))
            .or_default()
            .push(slice);
    }
    for slices in by_service.values_mut() {
        slices.sort_by(|a, b| a.name.cmp(&b.name));
    }
    by_service
}

/// The ready endpoint addresses of one Service's slices; an endpoint is named by its hostname,
/// else by its dashed address.
fn ready_addresses<'a>(slices: &[&'a EndpointSlice]) -> Vec<Ready<'a>> {
    let mut out = Vec::new();
    for slice in slices {
        for endpoint in slice.endpoints.iter().filter(|e| e.ready) {
            for &ip in &endpoint.addresses {
                let label = match &endpoint.hostname {
                    Some(hostname) => hostname.to_string(),
                    None => dashed(ip),
                };
                out.push(Ready {
                    ip,
                    label,
                    ports: &slice.ports,
                });
            }
        }
    }
    out
}

/// A candidate SRV record: target (relative to the zone) and port, `None` for an endpoint
/// without ports (counted in the weight, as CoreDNS does, but given no record).
type SrvCandidate = (String, Option<u16>);

/// Writes the records of one zone, counting them.
struct RecordWriter<'p, W> {
    out: W,
    params: &'p ZoneParams,
    records: usize,
}

impl<W: Write> RecordWriter<'_, W> {
    fn record(&mut self, owner: &str, rtype: &str, rdata: std::fmt::Arguments) -> io::Result<()> {
        self.records += 1;
        writeln!(
            self.out,
            "{owner}\t{}\tIN\t{rtype}\t{rdata}",
            self.params.ttl
        )
    }

    /// A and AAAA records of `owner`, each distinct address once.
    fn addresses(&mut self, owner: &str, ips: impl Iterator<Item = IpAddr>) -> io::Result<()> {
        let mut seen = HashSet::new();
        for ip in ips.filter(|ip| seen.insert(*ip)) {
            let rtype = if ip.is_ipv4() { "A" } else { "AAAA" };
            self.record(owner, rtype, format_args!("{ip}"))?;
        }
        Ok(())
    }

    /// The SRV RRset of `owner`: priority 0, weight floor(100/N) over the N candidates (in
    /// floating point, as CoreDNS computes it), each (target, port) once.
    fn srv(&mut self, owner: &str, candidates: &[SrvCandidate]) -> io::Result<()> {
        let total = 100.0 * candidates.len() as f64;
        let weight = ((100.0 / total) * 100.0).floor() as u16;
        let mut seen = HashSet::new();
        for (target, port) in candidates {
            let Some(port) = port else { continue };
            if seen.insert((target, *port)) {
                let domain = &self.params.domain;
                self.record(
                    owner,
                    "SRV",
                    format_args!("0 {weight} {port} {target}.{domain}."),
                )?;
            }
        }
        Ok(())
    }
}

/// Writes the cluster zone of `cluster` to `out`; returns the number of records.
pub fn write_cluster_zone<W: Write>(
    cluster: &Cluster,
    params: &ZoneParams,
    mut out: W,
) -> io::Result<usize> {
    params.apex(&mut out, &params.domain)?;
    let (version, version_ttl) = SCHEMA_VERSION;
    writeln!(out, "dns-version\t{version_ttl}\tIN\tTXT\t\"{version}\"")?;
    let slices = slices_by_service(cluster);
    let mut writer = RecordWriter {
        out,
        params,
        records: 3,
    };
    for service in &cluster.services {
        let key = (&*service.namespace, &*service.name);
        let ready = ready_addresses(slices.get(&key).map_or(&[][..], Vec::as_slice));
        write_service(&mut writer, service, &ready)?;
    }
    writer.out.flush()?;
    Ok(writer.records)
}

/// The records of one Service (see the module docs).
fn write_service<W: Write>(
    writer: &mut RecordWriter<'_, W>,
    service: &Service,
    ready: &[Ready<'_>],
) -> io::Result<()> {
    let base = format!("{}.{}.svc", service.name, service.namespace);
    let port_owner = |port: &Port| {
        format!(
            "_{}._{}.{base}",
            port.name.to_ascii_lowercase(),
            port.protocol.label()
        )
    };
    match &service.kind {
        ServiceKind::ExternalName(target) => {
            return writer.record(&base, "CNAME", format_args!("{target}."));
        }
        ServiceKind::ClusterIp(ips) => {
            writer.addresses(&base, ips.iter().copied())?;
            // One candidate per (port, cluster IP), as clusterdns and CoreDNS count them.
            let bare: Vec<SrvCandidate> = service
                .ports
                .iter()
                .flat_map(|p| ips.iter().map(|_| (base.clone(), Some(p.port))))
                .collect();
            writer.srv(&base, &bare)?;
            for port in service.ports.iter().filter(|p| !p.name.is_empty()) {
                let named: Vec<SrvCandidate> = ips
                    .iter()
                    .map(|_| (base.clone(), Some(port.port)))
                    .collect();
                writer.srv(&port_owner(port), &named)?;
            }
        }
        ServiceKind::Headless => {
            if ready.is_empty() {
                return Ok(());
            }
            writer.addresses(&base, ready.iter().map(|r| r.ip))?;
            let mut bare: Vec<SrvCandidate> = Vec::new();
            for address in ready {
                let target = format!("{}.{base}", address.label);
                if address.ports.is_empty() {
                    bare.push((target.clone(), None));
                }
                for port in address.ports {
                    bare.push((target.clone(), Some(port.port)));
                }
            }
            writer.srv(&base, &bare)?;
            let mut named: Vec<&Port> = Vec::new();
            for port in ready.iter().flat_map(|r| r.ports) {
                let same = |p: &&Port| p.name == port.name && p.protocol == port.protocol;
                if !port.name.is_empty() && !named.iter().any(same) {
                    named.push(port);
                }
            }
            for port in named {
                let candidates: Vec<SrvCandidate> = ready
                    .iter()
                    .filter_map(|address| {
                        let matching = address
                            .ports
                            .iter()
                            .find(|p| p.name == port.name && p.protocol == port.protocol)?;
                        Some((format!("{}.{base}", address.label), Some(matching.port)))
                    })
                    .collect();
                writer.srv(&port_owner(port), &candidates)?;
            }
        }
    }
    // Endpoint names, for every Service with ready endpoints.
    let mut labels: Vec<&str> = Vec::new();
    let mut by_label: HashMap<&str, Vec<IpAddr>> = HashMap::new();
    for address in ready {
        by_label
            .entry(&address.label)
            .or_insert_with(|| {
                labels.push(&address.label);
                Vec::new()
            })
            .push(address.ip);
    }
    for label in labels {
        let ips = by_label.remove(label).unwrap_or_default();
        writer.addresses(&format!("{label}.{base}"), ips.into_iter())?;
    }
    Ok(())
}

/// The reverse zone an address's PTR lives in: its IPv4 /8 or its IPv6 /48.
pub fn reverse_zone_of(ip: IpAddr) -> String {
    let full = reverse_dotted(ip);
    // Keep the last labels: 1 octet + `in-addr.arpa`, or 12 nibbles + `ip6.arpa`.
    let keep = if ip.is_ipv4() { 3 } else { 14 };
    let labels: Vec<&str> = full.split('.').collect();
    labels[labels.len().saturating_sub(keep)..].join(".")
}

/// PTR targets (fully qualified, no trailing dot) of every address that has a reverse name,
/// grouped by reverse zone: a cluster IP names its Service (the first by namespace and name
/// when several claim it), any other ready endpoint address every endpoint name it has.
pub fn reverse_records(
    cluster: &Cluster,
    params: &ZoneParams,
) -> BTreeMap<String, BTreeMap<IpAddr, Vec<String>>> {
    let domain = &params.domain;
    let slices = slices_by_service(cluster);
    let mut cluster_ips: HashMap<IpAddr, (&str, &str)> = HashMap::new();
    let mut endpoints: HashMap<IpAddr, Vec<(&str, &str, String)>> = HashMap::new();
    for service in &cluster.services {
        let key = (&*service.namespace, &*service.name);
        match &service.kind {
            ServiceKind::ExternalName(_) => continue,
            ServiceKind::ClusterIp(ips) => {
                for ip in ips {
                    let claim = cluster_ips.entry(*ip).or_insert(key);
                    *claim = (*claim).min(key);
                }
            }
            ServiceKind::Headless => {}
        }
        let ready = ready_addresses(slices.get(&key).map_or(&[][..], Vec::as_slice));
        for address in ready {
            endpoints
                .entry(address.ip)
                .or_default()
                .push((key.0, key.1, address.label));
        }
    }
    let mut zones: BTreeMap<String, BTreeMap<IpAddr, Vec<String>>> = BTreeMap::new();
    let mut add = |ip: IpAddr, targets: Vec<String>| {
        zones
            .entry(reverse_zone_of(ip))
            .or_default()
            .insert(ip, targets);
    };
    for (ip, mut claims) in endpoints {
        if cluster_ips.contains_key(&ip) {
            continue;
        }
        claims.sort();
        let mut targets: Vec<String> = Vec::new();
        for (namespace, service, label) in claims {
            let target = format!("{label}.{service}.{namespace}.svc.{domain}");
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
        add(ip, targets);
    }
    for (ip, (namespace, service)) in cluster_ips {
        add(ip, vec![format!("{service}.{namespace}.svc.{domain}")]);
    }
    zones
}

/// Writes one reverse zone: SOA, NS and the PTR records of `records`; returns the number of
/// records.
pub fn write_reverse_zone<W: Write>(
    origin: &str,
    records: &BTreeMap<IpAddr, Vec<String>>,
    params: &ZoneParams,
    mut out: W,
) -> io::Result<usize> {
    params.apex(&mut out, origin)?;
    let mut writer = RecordWriter {
        out,
        params,
        records: 2,
    };
    let suffix = format!(".{origin}");
    for (ip, targets) in records {
        let full = reverse_dotted(*ip);
        let owner = full.strip_suffix(&suffix).unwrap_or(&full);
        for target in targets {
            writer.record(owner, "PTR", format_args!("{target}."))?;
        }
    }
    writer.out.flush()?;
    Ok(writer.records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clusterdns_zone::{Endpoint, Protocol};

    fn params() -> ZoneParams {
        ZoneParams {
            domain: "cluster.local".into(),
            ttl: 5,
            serial: 1,
        }
    }

    fn endpoint(ip: &str, hostname: Option<&str>, ready: bool) -> Endpoint {
        Endpoint {
            addresses: vec![ip.parse().expect("ip")],
            hostname: hostname.map(Into::into),
            ready,
        }
    }

    fn port(name: &str, port: u16) -> Port {
        Port {
            name: name.into(),
            protocol: Protocol::Tcp,
            port,
        }
    }

    /// A dual-stack ClusterIP Service with a named and an unnamed port, a StatefulSet-like
    /// headless Service, a headless Service with no ready endpoint, an ExternalName.
    fn tiny() -> Cluster {
        let service = |name: &str, kind: ServiceKind, ports: Vec<Port>| Service {
            namespace: "ns".into(),
            name: name.into(),
            kind,
            ports,
            external: Vec::new(),
        };
        let slice = |name: &str, service: &str, ports: Vec<Port>, endpoints| EndpointSlice {
            namespace: "ns".into(),
            name: name.into(),
            service: service.into(),
            ports,
            endpoints,
        };
        Cluster {
            namespaces: vec!["ns".into()],
            services: vec![
                service(
                    "web",
                    ServiceKind::ClusterIp(vec![
                        "10.96.0.20".parse().expect("ip"),
                        "fd00:10:96::14".parse().expect("ip"),
                    ]),
                    vec![port("http", 80), port("", 81)],
                ),
                service("db", ServiceKind::Headless, vec![port("pg", 5432)]),
                service("idle", ServiceKind::Headless, vec![port("pg", 5432)]),
                service(
                    "ext",
                    ServiceKind::ExternalName("ext.example.com".into()),
                    Vec::new(),
                ),
            ],
            slices: vec![
                slice(
                    "web-abcde",
                    "web",
                    vec![port("http", 8080)],
                    vec![
                        endpoint("10.1.0.2", None, true),
                        endpoint("10.1.0.3", None, false),
                    ],
                ),
                slice(
                    "db-fghjk",
                    "db",
                    vec![port("pg", 5432)],
                    vec![
                        endpoint("10.1.1.2", Some("db-0"), true),
                        endpoint("10.1.1.3", Some("db-1"), true),
                    ],
                ),
                slice(
                    "idle-lmnpq",
                    "idle",
                    vec![port("pg", 5432)],
                    vec![endpoint("10.1.2.2", None, false)],
                ),
            ],
            pods: Vec::new(),
        }
    }

    #[test]
    fn cluster_zone_of_a_tiny_cluster() {
        let mut out = Vec::new();
        let count = write_cluster_zone(&tiny(), &params(), &mut out).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        let expected = [
            "$ORIGIN cluster.local.",
            "$TTL 5",
            "@\t5\tIN\tSOA\tns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5",
            "@\t5\tIN\tNS\tns.dns.cluster.local.",
            "dns-version\t28800\tIN\tTXT\t\"1.1.0\"",
            "web.ns.svc\t5\tIN\tA\t10.96.0.20",
            "web.ns.svc\t5\tIN\tAAAA\tfd00:10:96::14",
            // 2 ports x 2 cluster IPs: weight 25, each (target, port) once.
            "web.ns.svc\t5\tIN\tSRV\t0 25 80 web.ns.svc.cluster.local.",
            "web.ns.svc\t5\tIN\tSRV\t0 25 81 web.ns.svc.cluster.local.",
            "_http._tcp.web.ns.svc\t5\tIN\tSRV\t0 50 80 web.ns.svc.cluster.local.",
            "10-1-0-2.web.ns.svc\t5\tIN\tA\t10.1.0.2",
            "db.ns.svc\t5\tIN\tA\t10.1.1.2",
            "db.ns.svc\t5\tIN\tA\t10.1.1.3",
            "db.ns.svc\t5\tIN\tSRV\t0 50 5432 db-0.db.ns.svc.cluster.local.",
            "db.ns.svc\t5\tIN\tSRV\t0 50 5432 db-1.db.ns.svc.cluster.local.",
            "_pg._tcp.db.ns.svc\t5\tIN\tSRV\t0 50 5432 db-0.db.ns.svc.cluster.local.",
            "_pg._tcp.db.ns.svc\t5\tIN\tSRV\t0 50 5432 db-1.db.ns.svc.cluster.local.",
            "db-0.db.ns.svc\t5\tIN\tA\t10.1.1.2",
            "db-1.db.ns.svc\t5\tIN\tA\t10.1.1.3",
            "ext.ns.svc\t5\tIN\tCNAME\text.example.com.",
        ];
        assert_eq!(lines, expected);
        assert_eq!(count, expected.len() - 2);
    }

    #[test]
    fn reverse_zones_of_a_tiny_cluster() {
        let zones = reverse_records(&tiny(), &params());
        let origins: Vec<&str> = zones.keys().map(String::as_str).collect();
        assert_eq!(
            origins,
            ["10.in-addr.arpa", "6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa"]
        );
        let mut out = Vec::new();
        let count = write_reverse_zone(
            "10.in-addr.arpa",
            &zones["10.in-addr.arpa"],
            &params(),
            &mut out,
        )
        .expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        let records: Vec<&str> = text.lines().skip(4).collect();
        assert_eq!(
            records,
            [
                "2.0.1\t5\tIN\tPTR\t10-1-0-2.web.ns.svc.cluster.local.",
                "2.1.1\t5\tIN\tPTR\tdb-0.db.ns.svc.cluster.local.",
                "3.1.1\t5\tIN\tPTR\tdb-1.db.ns.svc.cluster.local.",
                "20.0.96\t5\tIN\tPTR\tweb.ns.svc.cluster.local.",
            ]
        );
        assert_eq!(count, 6);
        let v6 = &zones["6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa"];
        assert_eq!(v6.len(), 1);
        assert_eq!(
            v6.values().next().expect("one"),
            &["web.ns.svc.cluster.local".to_owned()]
        );
    }
}
