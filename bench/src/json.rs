//! A [`Cluster`] written as one JSON `kind: List`, laid out as `kubectl get
//! ns,svc,endpointslices -A -o json` writes it (keys sorted, so `items` comes before `kind`,
//! four-space indent): the same objects, in the same order, as [`crate::yaml`] writes.
//!
//! Each object is built as a small `serde_json::Value` and written at once, so the writer holds
//! one object at a time however large the cluster.

use std::io::{self, Write};

use clusterdns_zone::{Cluster, EndpointSlice, Port, Service, ServiceKind};
use serde_json::{json, Map, Value};

use crate::yaml::{
    address_type, family, protocol, service_slice_ports, slice_ports_by_service, target_port,
    SERVICE_NAME_LABEL,
};

/// Indent of one JSON level, as kubectl writes it.
const INDENT: &[u8] = b"    ";

/// Writes `cluster` to `out` as one JSON `kind: List`: every Namespace, then every Service,
/// then every EndpointSlice, each in the cluster's order.
pub fn write_json_list<W: Write>(cluster: &Cluster, mut out: W) -> io::Result<()> {
    out.write_all(b"{\n    \"apiVersion\": \"v1\",\n    \"items\": [")?;
    let mut first = true;
    let mut buffer = Vec::with_capacity(64 << 10);
    let mut put = |out: &mut W, object: Value| -> io::Result<()> {
        buffer.clear();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(INDENT);
        let mut serializer = serde_json::Serializer::with_formatter(&mut buffer, formatter);
        serde::Serialize::serialize(&object, &mut serializer).map_err(io::Error::other)?;
        out.write_all(if first { b"\n" } else { b",\n" })?;
        first = false;
        // Items sit two levels deep in the list.
        for line in buffer.split_inclusive(|b| *b == b'\n') {
            out.write_all(INDENT)?;
            out.write_all(INDENT)?;
            out.write_all(line)?;
        }
        Ok(())
    };
    for namespace in &cluster.namespaces {
        put(
            &mut out,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
        )?;
    }
    let slice_ports = slice_ports_by_service(cluster);
    for service in &cluster.services {
        put(
            &mut out,
            service_object(service, service_slice_ports(&slice_ports, service)),
        )?;
    }
    for slice in &cluster.slices {
        put(&mut out, slice_object(slice))?;
    }
    out.write_all(
        b"\n    ],\n    \"kind\": \"List\",\n    \"metadata\": {\n        \"resourceVersion\": \"\"\n    }\n}\n",
    )?;
    out.flush()
}

/// A Service object, with the fields [`crate::yaml`] writes.
fn service_object(service: &Service, slice_ports: &[&Port]) -> Value {
    let mut spec = Map::new();
    match &service.kind {
        ServiceKind::ExternalName(target) => {
            spec.insert("type".into(), "ExternalName".into());
            spec.insert("externalName".into(), json!(target));
        }
        ServiceKind::Headless => {
            spec.insert("type".into(), "ClusterIP".into());
            spec.insert("clusterIP".into(), "None".into());
            spec.insert("clusterIPs".into(), json!(["None"]));
            spec.insert("ipFamilies".into(), json!(["IPv4"]));
            spec.insert("ipFamilyPolicy".into(), "SingleStack".into());
        }
        ServiceKind::ClusterIp(ips) => {
            spec.insert("type".into(), "ClusterIP".into());
            if let Some(first) = ips.first() {
                spec.insert("clusterIP".into(), first.to_string().into());
                let addresses: Vec<String> = ips.iter().map(ToString::to_string).collect();
                spec.insert("clusterIPs".into(), json!(addresses));
                let families: Vec<&str> = ips.iter().map(family).collect();
                spec.insert("ipFamilies".into(), json!(families));
                let policy = if ips.len() > 1 {
                    "PreferDualStack"
                } else {
                    "SingleStack"
                };
                spec.insert("ipFamilyPolicy".into(), policy.into());
            }
        }
    }
    if !service.ports.is_empty() {
        let ports: Vec<Value> = (service.ports.iter())
            .map(|port| {
                let mut entry = port_object(port);
                entry.insert("targetPort".into(), target_port(slice_ports, port).into());
                Value::Object(entry)
            })
            .collect();
        spec.insert("ports".into(), ports.into());
    }
    if !matches!(service.kind, ServiceKind::ExternalName(_)) {
        spec.insert("selector".into(), json!({"app": service.name}));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service.name, "namespace": service.namespace},
        "spec": spec,
    })
}

/// One port entry: `name` (when named), `port`, `protocol`.
fn port_object(port: &Port) -> Map<String, Value> {
    let mut entry = Map::new();
    if !port.name.is_empty() {
        entry.insert("name".into(), json!(port.name));
    }
    entry.insert("port".into(), port.port.into());
    entry.insert("protocol".into(), protocol(port.protocol).into());
    entry
}

/// An EndpointSlice object, with the fields [`crate::yaml`] writes.
fn slice_object(slice: &EndpointSlice) -> Value {
    let endpoints: Vec<Value> = (slice.endpoints.iter())
        .map(|endpoint| {
            let addresses: Vec<String> =
                endpoint.addresses.iter().map(ToString::to_string).collect();
            let mut entry = json!({
                "addresses": addresses,
                "conditions": {
                    "ready": endpoint.ready,
                    "serving": endpoint.ready,
                    "terminating": false,
                },
            });
            if let (Some(hostname), Value::Object(fields)) = (&endpoint.hostname, &mut entry) {
                fields.insert("hostname".into(), json!(hostname));
            }
            entry
        })
        .collect();
    let mut object = json!({
        "addressType": address_type(slice),
        "apiVersion": "discovery.k8s.io/v1",
        "endpoints": endpoints,
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice.name,
            "namespace": slice.namespace,
            "labels": {
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                SERVICE_NAME_LABEL: slice.service,
            },
        },
    });
    if let (false, Value::Object(fields)) = (slice.ports.is_empty(), &mut object) {
        let ports: Vec<Value> = slice
            .ports
            .iter()
            .map(|p| Value::Object(port_object(p)))
            .collect();
        fields.insert("ports".into(), ports.into());
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::Spec;
    use crate::yaml::tests::round_trip;

    #[test]
    fn json_list_round_trips_through_clusterdns() {
        round_trip(&Spec::new(200), "list.json", write_json_list);
    }

    #[test]
    fn json_list_with_big_slices_round_trips() {
        let mut spec = Spec::new(60).domain("example.internal").seed(77);
        spec.endpoints_per_headless = 130;
        round_trip(&spec, "big-slices.json", write_json_list);
    }
}
