//! A [`Cluster`] written as Kubernetes YAML: Namespaces, Services and EndpointSlices
//! (`discovery.k8s.io/v1`, with the `kubernetes.io/service-name` label and an `addressType`),
//! shaped like `kubectl get -o yaml` output so that `clusterdns --manifests` (and any other server
//! that reads manifests) loads it; either one document per object or one `kind: List` document.
//!
//! Written by hand rather than through a serializer: the 50,000-Service cluster is hundreds of
//! megabytes of YAML and this keeps writing it to a few seconds.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::IpAddr;

use clusterdns_zone::{Cluster, EndpointSlice, Port, Protocol, Service, ServiceKind};

/// The label that ties an EndpointSlice to its Service.
pub(crate) const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// How the objects are laid out in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One YAML document per object, separated by `---`.
    Documents,
    /// One `kind: List` document holding every object under `items:`, as
    /// `kubectl get ns,svc,endpointslices -A -o yaml` writes it.
    List,
}

/// Writes `cluster` to `out` as one YAML document per object: every Namespace, then every
/// Service, then every EndpointSlice, each in the cluster's order.
pub fn write_manifests<W: Write>(cluster: &Cluster, out: W) -> io::Result<()> {
    write_manifests_as(cluster, Layout::Documents, out)
}

/// Writes `cluster` to `out` in `layout`, objects in the order of [`write_manifests`].
pub fn write_manifests_as<W: Write>(
    cluster: &Cluster,
    layout: Layout,
    mut out: W,
) -> io::Result<()> {
    if layout == Layout::List {
        out.write_all(b"apiVersion: v1\nitems:\n")?;
    }
    // Each object is written into this buffer first, so that the list layout can indent it as
    // an item without every writer knowing about layouts.
    let mut object = Vec::with_capacity(64 << 10);
    let put = |out: &mut W, object: &mut Vec<u8>| -> io::Result<()> {
        match layout {
            Layout::Documents => {
                out.write_all(object)?;
                out.write_all(b"---\n")?;
            }
            Layout::List => {
                for (i, line) in object.split_inclusive(|b| *b == b'\n').enumerate() {
                    out.write_all(if i == 0 { b"- " } else { b"  " })?;
                    out.write_all(line)?;
                }
            }
        }
        object.clear();
        Ok(())
    };
    for namespace in &cluster.namespaces {
        writeln!(
            object,
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}"
        )?;
        put(&mut out, &mut object)?;
    }
    let slice_ports = slice_ports_by_service(cluster);
    for service in &cluster.services {
        write_service(
            &mut object,
            service,
            service_slice_ports(&slice_ports, service),
        )?;
        put(&mut out, &mut object)?;
    }
    for slice in &cluster.slices {
        write_slice(&mut object, slice)?;
        put(&mut out, &mut object)?;
    }
    if layout == Layout::List {
        out.write_all(b"kind: List\nmetadata:\n  resourceVersion: \"\"\n")?;
    }
    out.flush()
}

/// The ports of every Service's EndpointSlices, by (namespace, Service name), for target ports.
pub(crate) fn slice_ports_by_service(cluster: &Cluster) -> HashMap<(&str, &str), Vec<&Port>> {
    let mut slice_ports: HashMap<(&str, &str), Vec<&Port>> = HashMap::new();
    for slice in &cluster.slices {
        slice_ports
            .entry((&slice.namespace, &slice.service))
            .or_default()
            .extend(&slice.ports);
    }
    slice_ports
}

/// The ports of `service`'s EndpointSlices, from [`slice_ports_by_service`].
pub(crate) fn service_slice_ports<'a>(
    slice_ports: &'a HashMap<(&'a str, &'a str), Vec<&'a Port>>,
    service: &'a Service,
) -> &'a [&'a Port] {
    let key = (&*service.namespace, &*service.name);
    slice_ports.get(&key).map_or(&[][..], Vec::as_slice)
}

/// An address as a YAML scalar: IPv6 quoted (a plain scalar with colons is easy to misread).
fn address(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"{v6}\""),
    }
}

/// The Kubernetes spelling of a protocol.
pub(crate) fn protocol(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

/// The family name of an address (`IPv4`/`IPv6`), as `ipFamilies` and `addressType` spell it.
pub(crate) fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// The target port of a Service port: the number of the same-named port of its
/// EndpointSlices, else the port itself.
pub(crate) fn target_port(slice_ports: &[&Port], port: &Port) -> u16 {
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
    Ok(())
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

/// A slice's `addressType`: the family of its first address (IPv4 when it has none).
pub(crate) fn address_type(slice: &EndpointSlice) -> &'static str {
    slice
        .endpoints
        .iter()
        .find_map(|e| e.addresses.first())
        .map_or("IPv4", family)
}

fn write_slice<W: Write>(out: &mut W, slice: &EndpointSlice) -> io::Result<()> {
    let address_type = address_type(slice);
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
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::generate::{generate, Spec};
    use std::fs::File;
    use std::path::PathBuf;

    /// A scratch file under the system temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Writes the cluster of `spec` with `write` into a file named `name` (its extension picks
    /// the format clusterdns reads) and checks that clusterdns loads the same cluster back.
    pub(crate) fn round_trip(
        spec: &Spec,
        name: &str,
        write: impl FnOnce(&Cluster, io::BufWriter<File>) -> io::Result<()>,
    ) {
        let cluster = generate(spec).expect("generate");
        let scratch = Scratch(
            std::env::temp_dir().join(format!("clusterdns-bench-{}-{name}", std::process::id())),
        );
        let file = File::create(&scratch.0).expect("create the scratch file");
        write(&cluster, io::BufWriter::new(file)).expect("write manifests");
        let (loaded, report) =
            clusterdns::sources::manifest::load(std::slice::from_ref(&scratch.0), false)
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
        round_trip(&Spec::new(200), "small.yaml", write_manifests);
    }

    #[test]
    fn manifests_round_trip_with_big_slices_and_another_domain() {
        let mut spec = Spec::new(60).domain("example.internal").seed(77);
        spec.endpoints_per_headless = 130;
        round_trip(&spec, "big-slices.yaml", write_manifests);
    }

    #[test]
    fn list_layout_round_trips_through_clusterdns() {
        round_trip(&Spec::new(200), "list.yaml", |cluster, out| {
            write_manifests_as(cluster, Layout::List, out)
        });
    }
}
