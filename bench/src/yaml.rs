//! A [`Cluster`] written as multi-document Kubernetes YAML: Namespaces, Services and
//! EndpointSlices (`discovery.k8s.io/v1`, with the `kubernetes.io/service-name` label and an
//! `addressType`), shaped like `kubectl get -o yaml` output so that `clusterdns --manifests`
//! (and any other server that reads manifests) loads it.
//!
//! Written by hand rather than through a serializer: the 50,000-Service cluster is hundreds of
//! megabytes of YAML and this keeps writing it to a few seconds.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::IpAddr;

use clusterdns_zone::{Cluster, EndpointSlice, Port, Protocol, Service, ServiceKind};

/// The label that ties an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Writes `cluster` to `out`: every Namespace, then every Service, then every EndpointSlice,
/// each in the cluster's order, one YAML document each.
pub fn write_manifests<W: Write>(cluster: &Cluster, mut out: W) -> io::Result<()> {
    for namespace in &cluster.namespaces {
        writeln!(
            out,
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n---"
        )?;
    }
    let mut slice_ports: HashMap<(&str, &str), Vec<&Port>> = HashMap::new();
    for slice in &cluster.slices {
        slice_ports
            .entry((&slice.namespace, &slice.service))
            .or_default()
            .extend(&slice.ports);
    }
    for service in &cluster.services {
        let key = (&*service.namespace, &*service.name);
        let ports = slice_ports.get(&key).map_or(&[][..], Vec::as_slice);
        write_service(&mut out, service, ports)?;
    }
    for slice in &cluster.slices {
        write_slice(&mut out, slice)?;
    }
    out.flush()
}

/// An address as a YAML scalar: IPv6 quoted (a plain scalar with colons is easy to misread).
fn address(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"{v6}\""),
    }
}

/// The Kubernetes spelling of a protocol.
fn protocol(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

/// The family name of an address (`IPv4`/`IPv6`), as `ipFamilies` and `addressType` spell it.
fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// The target port of a Service port: the number of the same-named port of its
/// EndpointSlices, else the port itself.
fn target_port(slice_ports: &[&Port], port: &Port) -> u16 {
    slice_ports
        .iter()
        .find(|p| p.name == port.name && p.protocol == port.protocol)
        .map_or(port.port, |p| p.port)
}

fn write_service<W: Write>(
    out: &mut W,
    service: &Service,
    slice_ports: &[&Port],
) -> io::Result<()> {
    writeln!(
        out,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {}\n  namespace: {}\nspec:",
        service.name, service.namespace
    )?;
    match &service.kind {
        ServiceKind::ExternalName(target) => {
            writeln!(out, "  type: ExternalName\n  externalName: {target}")?;
        }
        ServiceKind::Headless => {
            writeln!(
                out,
                "  type: ClusterIP\n  clusterIP: None\n  clusterIPs:\n  - None\n  ipFamilies:\n  - IPv4\n  ipFamilyPolicy: SingleStack"
            )?;
        }
        ServiceKind::ClusterIp(ips) => {
            writeln!(out, "  type: ClusterIP")?;
            if let Some(first) = ips.first() {
                writeln!(out, "  clusterIP: {}\n  clusterIPs:", address(first))?;
                for ip in ips {
                    writeln!(out, "  - {}", address(ip))?;
                }
                writeln!(out, "  ipFamilies:")?;
                for ip in ips {
                    writeln!(out, "  - {}", family(ip))?;
                }
                let policy = if ips.len() > 1 {
                    "PreferDualStack"
                } else {
                    "SingleStack"
                };
                writeln!(out, "  ipFamilyPolicy: {policy}")?;
            }
        }
    }
    if !service.ports.is_empty() {
        writeln!(out, "  ports:")?;
        for port in &service.ports {
            write_port(out, "  ", port)?;
            writeln!(out, "    targetPort: {}", target_port(slice_ports, port))?;
        }
    }
    if !matches!(service.kind, ServiceKind::ExternalName(_)) {
        writeln!(out, "  selector:\n    app: {}", service.name)?;
    }
    writeln!(out, "---")
}

/// One port entry (`- name: ...`), indented by `indent`.
fn write_port<W: Write>(out: &mut W, indent: &str, port: &Port) -> io::Result<()> {
    if port.name.is_empty() {
        writeln!(out, "{indent}- port: {}", port.port)?;
    } else {
        writeln!(
            out,
            "{indent}- name: {}\n{indent}  port: {}",
            port.name, port.port
        )?;
    }
    writeln!(out, "{indent}  protocol: {}", protocol(port.protocol))
}

fn write_slice<W: Write>(out: &mut W, slice: &EndpointSlice) -> io::Result<()> {
    let address_type = slice
        .endpoints
        .iter()
        .find_map(|e| e.addresses.first())
        .map_or("IPv4", family);
    writeln!(
        out,
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {}\n  namespace: {}\n  labels:\n    endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io\n    {SERVICE_NAME_LABEL}: {}\naddressType: {address_type}",
        slice.name, slice.namespace, slice.service
    )?;
    if slice.endpoints.is_empty() {
        writeln!(out, "endpoints: []")?;
    } else {
        writeln!(out, "endpoints:")?;
    }
    for endpoint in &slice.endpoints {
        writeln!(out, "- addresses:")?;
        for ip in &endpoint.addresses {
            writeln!(out, "  - {}", address(ip))?;
        }
        writeln!(
            out,
            "  conditions:\n    ready: {}\n    serving: {}\n    terminating: false",
            endpoint.ready, endpoint.ready
        )?;
        if let Some(hostname) = &endpoint.hostname {
            writeln!(out, "  hostname: {hostname}")?;
        }
    }
    if !slice.ports.is_empty() {
        writeln!(out, "ports:")?;
        for port in &slice.ports {
            write_port(out, "", port)?;
        }
    }
    writeln!(out, "---")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{generate, Spec};
    use std::path::PathBuf;

    /// A scratch file under the system temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn round_trip(spec: &Spec, name: &str) {
        let cluster = generate(spec).expect("generate");
        let scratch = Scratch(std::env::temp_dir().join(format!(
            "clusterdns-bench-{}-{name}.yaml",
            std::process::id()
        )));
        let file = std::fs::File::create(&scratch.0).expect("create the scratch file");
        write_manifests(&cluster, io::BufWriter::new(file)).expect("write manifests");
        let (loaded, report) = clusterdns::manifest::load(std::slice::from_ref(&scratch.0), false)
            .expect("clusterdns loads the generated manifests");
        assert!(report.skipped.is_empty(), "skipped: {:?}", report.skipped);
        assert_eq!(
            report.objects,
            cluster.namespaces.len() + cluster.services.len() + cluster.slices.len()
        );
        assert_eq!(loaded.namespaces, cluster.namespaces);
        for (got, want) in loaded.services.iter().zip(&cluster.services) {
            assert_eq!(got, want);
        }
        assert_eq!(loaded.services.len(), cluster.services.len());
        for (got, want) in loaded.slices.iter().zip(&cluster.slices) {
            assert_eq!(got, want);
        }
        assert_eq!(loaded, cluster);
    }

    #[test]
    fn manifests_round_trip_through_clusterdns() {
        round_trip(&Spec::new(200), "small");
    }

    #[test]
    fn manifests_round_trip_with_big_slices_and_another_domain() {
        let mut spec = Spec::new(60).domain("example.internal").seed(77);
        spec.endpoints_per_headless = 130;
        round_trip(&spec, "big-slices");
    }
}
