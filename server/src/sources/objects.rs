//! Kubernetes objects stripped to what DNS needs: the one conversion from k8s-openapi types to the
//! zone model, shared by every source (manifest files, the API watch). It checks what DNS relies
//! on (names, IP addresses, ports, protocols) and names the field it rejects.
//!
//! A Pod becomes one of two things, or both: a whole [`Pod`] for `pods verified` names
//! ([`pod`]), and the client addresses of the client index ([`pod_addresses`], whose
//! [`PodAddresses::changes`] say what a list, a watch event or a delete makes of them).

use std::net::IpAddr;

use clusterdns_zone::name::MAX_LABEL_LEN;
use clusterdns_zone::{
    Change, Endpoint, EndpointSlice, ExternalAddress, Pod, Port, Protocol, Service, ServiceKind,
    WireName,
};
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The namespace of a namespaced object that names none (as `kubectl apply` does).
pub const DEFAULT_NAMESPACE: &str = "default";

/// A field of an object that DNS cannot use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ObjectError {
    /// The field's path, as in `spec.ports[0].port`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ObjectError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ObjectError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// `metadata.name`, required.
fn required_name(metadata: &ObjectMeta) -> Result<&str, ObjectError> {
    metadata
        .name
        .as_deref()
        .filter(|name| !name.is_empty())
        .ok_or_else(|| ObjectError::new("metadata.name", "required"))
}

/// `metadata.namespace`, lowercased, `default` when unset.
fn object_namespace(metadata: &ObjectMeta) -> Result<Box<str>, ObjectError> {
    match metadata.namespace.as_deref().filter(|ns| !ns.is_empty()) {
        Some(namespace) => dns_label("metadata.namespace", namespace),
        None => Ok(DEFAULT_NAMESPACE.into()),
    }
}

/// The name of a Namespace object.
pub fn namespace_name(metadata: &ObjectMeta) -> Result<Box<str>, ObjectError> {
    dns_label("metadata.name", required_name(metadata)?)
}

/// `value` lowercased, when it can be one label of a DNS name (RFC 1123 §2.1: letters, digits
/// and inner hyphens, at most 63 octets), as Kubernetes requires of Service, Namespace and
/// endpoint host names.
fn dns_label(field: &str, value: &str) -> Result<Box<str>, ObjectError> {
    let bytes = value.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= MAX_LABEL_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-');
    if valid {
        Ok(value.to_ascii_lowercase().into())
    } else {
        Err(ObjectError::new(
            field,
            format!("{value:?} is not a DNS label (letters, digits and inner '-', at most 63)"),
        ))
    }
}

/// Parses an IP address, naming `field` (built only on error) when it is not one.
fn ip(value: &str, field: impl FnOnce() -> String) -> Result<IpAddr, ObjectError> {
    value
        .parse()
        .map_err(|_| ObjectError::new(field(), format!("{value:?} is not an IP address")))
}

/// A port number, 1-65535.
fn port_number(value: i32, field: impl FnOnce() -> String) -> Result<u16, ObjectError> {
    match u16::try_from(value) {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(ObjectError::new(
            field(),
            format!("{value} is not a port number (1-65535)"),
        )),
    }
}

/// A port's protocol; TCP when unset.
fn protocol(value: Option<&str>, field: impl FnOnce() -> String) -> Result<Protocol, ObjectError> {
    match value {
        None => Ok(Protocol::Tcp),
        Some(p) if p.eq_ignore_ascii_case("TCP") => Ok(Protocol::Tcp),
        Some(p) if p.eq_ignore_ascii_case("UDP") => Ok(Protocol::Udp),
        Some(p) if p.eq_ignore_ascii_case("SCTP") => Ok(Protocol::Sctp),
        Some(p) => Err(ObjectError::new(
            field(),
            format!("unknown protocol {p:?} (expected TCP, UDP or SCTP)"),
        )),
    }
}

/// A Service, stripped to what DNS needs.
pub fn service(object: core::Service) -> Result<Service, ObjectError> {
    let name = dns_label("metadata.name", required_name(&object.metadata)?)?;
    let namespace = object_namespace(&object.metadata)?;
    let external = external_addresses(&object)?;
    let spec = object.spec.unwrap_or_default();
    let kind = service_kind(&spec)?;
    let ports = spec
        .ports
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, port)| {
            Ok(Port {
                name: port.name.as_deref().unwrap_or_default().into(),
                protocol: protocol(port.protocol.as_deref(), || {
                    format!("spec.ports[{i}].protocol")
                })?,
                port: port_number(port.port, || format!("spec.ports[{i}].port"))?,
            })
        })
        .collect::<Result<_, ObjectError>>()?;
    Ok(Service {
        namespace,
        name,
        kind,
        ports,
        external,
    })
}

/// `spec.externalIPs`, then `status.loadBalancer.ingress` (each entry's `ip`, else its
/// `hostname`), in that order, as CoreDNS's `k8s_external` reads them. An ingress entry with
/// neither is left out.
fn external_addresses(object: &core::Service) -> Result<Vec<ExternalAddress>, ObjectError> {
    let spec_ips = (object.spec.as_ref())
        .and_then(|s| s.external_ips.as_deref())
        .unwrap_or_default();
    let ingress = (object.status.as_ref())
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_deref())
        .unwrap_or_default();
    let mut out = Vec::with_capacity(spec_ips.len() + ingress.len());
    for (i, value) in spec_ips.iter().enumerate() {
        out.push(ExternalAddress::Ip(ip(value, || {
            format!("spec.externalIPs[{i}]")
        })?));
    }
    for (i, entry) in ingress.iter().enumerate() {
        if let Some(value) = entry.ip.as_deref().filter(|v| !v.is_empty()) {
            let field = || format!("status.loadBalancer.ingress[{i}].ip");
            out.push(ExternalAddress::Ip(ip(value, field)?));
        } else if let Some(host) = entry.hostname.as_deref().filter(|h| !h.is_empty()) {
            let host = host.strip_suffix('.').unwrap_or(host);
            if WireName::from_dotted(host).is_none() {
                return Err(ObjectError::new(
                    format!("status.loadBalancer.ingress[{i}].hostname"),
                    format!("{host:?} is not a domain name"),
                ));
            }
            out.push(ExternalAddress::Hostname(host.to_ascii_lowercase().into()));
        }
    }
    Ok(out)
}

/// ExternalName, headless, or the cluster IPs (`spec.clusterIPs`, else `spec.clusterIP`; none
/// while unassigned).
fn service_kind(spec: &core::ServiceSpec) -> Result<ServiceKind, ObjectError> {
    if spec.type_.as_deref() == Some("ExternalName") {
        return external_name(spec.external_name.as_deref());
    }
    let cluster_ips = spec.cluster_ips.as_deref().unwrap_or_default();
    if spec.cluster_ip.as_deref() == Some("None")
        || cluster_ips.first().map(String::as_str) == Some("None")
    {
        return Ok(ServiceKind::Headless);
    }
    let ips: Result<Vec<IpAddr>, _> = if cluster_ips.is_empty() {
        let single = spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty());
        single
            .map(|value| ip(value, || "spec.clusterIP".to_owned()))
            .into_iter()
            .collect()
    } else {
        (cluster_ips.iter().enumerate())
            .filter(|(_, value)| !value.is_empty())
            .map(|(i, value)| ip(value, || format!("spec.clusterIPs[{i}]")))
            .collect()
    };
    Ok(ServiceKind::ClusterIp(ips?))
}

/// `spec.externalName`, lowercased without its trailing dot; required, and a valid domain name.
fn external_name(value: Option<&str>) -> Result<ServiceKind, ObjectError> {
    const FIELD: &str = "spec.externalName";
    let target = value.unwrap_or_default();
    let target = target.strip_suffix('.').unwrap_or(target);
    if target.is_empty() {
        return Err(ObjectError::new(FIELD, "required for type ExternalName"));
    }
    if WireName::from_dotted(target).is_none() {
        return Err(ObjectError::new(
            FIELD,
            format!("{target:?} is not a domain name"),
        ));
    }
    Ok(ServiceKind::ExternalName(
        target.to_ascii_lowercase().into(),
    ))
}

/// Why an EndpointSlice is left out, as the key it is counted under; `None` to load it.
pub fn slice_skip_reason(object: &discovery::EndpointSlice) -> Option<&'static str> {
    if object.address_type == "FQDN" {
        return Some("EndpointSlice (addressType FQDN)");
    }
    let labels = object.metadata.labels.as_ref();
    match labels.and_then(|l| l.get(SERVICE_NAME_LABEL)) {
        Some(service) if !service.is_empty() => None,
        _ => Some("EndpointSlice (no service-name label)"),
    }
}

/// An EndpointSlice (already known to have a service-name label and IP addresses). With
/// `pod_names` (CoreDNS `endpoint_pod_names`), an endpoint without a hostname is named by the
/// object its `targetRef` names, its Pod ([`endpoint_name`]).
pub fn endpoint_slice(
    object: discovery::EndpointSlice,
    pod_names: bool,
) -> Result<EndpointSlice, ObjectError> {
    let name = required_name(&object.metadata)?.to_ascii_lowercase().into();
    let namespace = object_namespace(&object.metadata)?;
    let labels = object.metadata.labels.as_ref();
    let service_label = labels
        .and_then(|l| l.get(SERVICE_NAME_LABEL))
        .map(String::as_str);
    let service = dns_label(
        "metadata.labels[\"kubernetes.io/service-name\"]",
        service_label.unwrap_or_default(),
    )?;
    let ports = slice_ports(object.ports.unwrap_or_default())?;
    let endpoints = (object.endpoints.unwrap_or_default().into_iter().enumerate())
        .map(|(i, endpoint)| slice_endpoint(i, endpoint, pod_names))
        .collect::<Result<_, _>>()?;
    Ok(EndpointSlice {
        namespace,
        name,
        service,
        ports,
        endpoints,
    })
}

/// A slice's ports; a port without a number (which the API allows) is dropped.
fn slice_ports(ports: Vec<discovery::EndpointPort>) -> Result<Vec<Port>, ObjectError> {
    let mut out = Vec::with_capacity(ports.len());
    for (i, port) in ports.into_iter().enumerate() {
        let Some(number) = port.port else { continue };
        out.push(Port {
            name: port.name.unwrap_or_default().into(),
            protocol: protocol(port.protocol.as_deref(), || format!("ports[{i}].protocol"))?,
            port: port_number(number, || format!("ports[{i}].port"))?,
        });
    }
    Ok(out)
}

/// One endpoint; `ready` unset counts as ready (specification §2.4.1 via EndpointConditions).
fn slice_endpoint(
    i: usize,
    endpoint: discovery::Endpoint,
    pod_names: bool,
) -> Result<Endpoint, ObjectError> {
    let addresses = (endpoint.addresses.iter().enumerate())
        .map(|(j, value)| ip(value, || format!("endpoints[{i}].addresses[{j}]")))
        .collect::<Result<_, _>>()?;
    let hostname = match endpoint.hostname.as_deref().filter(|h| !h.is_empty()) {
        Some(hostname) => Some(dns_label(&format!("endpoints[{i}].hostname"), hostname)?),
        None if pod_names => endpoint_name(endpoint.target_ref.as_ref()),
        None => None,
    };
    let ready = endpoint.conditions.and_then(|c| c.ready).unwrap_or(true);
    Ok(Endpoint {
        addresses,
        hostname,
        ready,
    })
}

/// The name `endpoint_pod_names` gives an endpoint without a hostname: the name of the object
/// its `targetRef` points at (the Pod, for every slice the EndpointSlice controller writes;
/// CoreDNS takes the name whatever the kind), lowercased. `None`, so the endpoint keeps its
/// dashed address, when there is no target or its name cannot be one DNS label: CoreDNS
/// leaves out names of 64 characters or more, and clusterdns also those a label cannot spell
/// (a Pod name may hold dots), which CoreDNS would put in an answer as several labels.
pub fn endpoint_name(target: Option<&core::ObjectReference>) -> Option<Box<str>> {
    let name = target?.name.as_deref()?;
    dns_label("targetRef.name", name).ok()
}

/// A Pod's addresses: `status.podIPs`, else `status.podIP`; none before it is scheduled.
pub fn pod(object: core::Pod) -> Result<Pod, ObjectError> {
    let name = required_name(&object.metadata)?.to_ascii_lowercase().into();
    let namespace = object_namespace(&object.metadata)?;
    let ips = pod_ips(object.status.as_ref())?;
    Ok(Pod {
        namespace,
        name,
        ips,
    })
}

/// `status.podIPs`, else `status.podIP`; none before the Pod has an address.
fn pod_ips(status: Option<&core::PodStatus>) -> Result<Vec<IpAddr>, ObjectError> {
    let Some(status) = status else {
        return Ok(Vec::new());
    };
    match status.pod_ips.as_deref().filter(|ips| !ips.is_empty()) {
        Some(pod_ips) => (pod_ips.iter().enumerate())
            .map(|(i, pod_ip)| ip(&pod_ip.ip, || format!("status.podIPs[{i}].ip")))
            .collect(),
        None => (status.pod_ip.as_deref().filter(|ip| !ip.is_empty()))
            .map(|value| ip(value, || "status.podIP".to_owned()))
            .into_iter()
            .collect(),
    }
}

/// How a source sees an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// In a full list (a watch's list, a manifest read): what the list leaves out is deleted
    /// at its end.
    Listed,
    /// In a watch event that added or changed it.
    Applied,
    /// In a watch event that deleted it (its last state).
    Deleted,
}

/// Whether a Pod's addresses are its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodState {
    /// Pending, Running or Unknown, and not being deleted: the addresses are its own.
    Holding,
    /// Being deleted (`metadata.deletionTimestamp`): the addresses are about to be released.
    /// Left out from now on, as CoreDNS leaves terminating Pods out, so that no later event of
    /// this Pod can give an address back after another Pod got it.
    Terminating,
    /// Succeeded or Failed: the addresses were released, and may be another Pod's by now.
    Finished,
}

/// What the client index needs of a Pod: its namespace, its addresses and whether they are
/// still its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodAddresses {
    /// `metadata.namespace`.
    pub namespace: Box<str>,
    /// `status.podIPs` (or `status.podIP`); never empty.
    pub ips: Vec<IpAddr>,
    /// From `status.phase` and `metadata.deletionTimestamp`.
    pub state: PodState,
}

/// A Pod as a DNS client: `None` for a host-network Pod (its address is the node's, whose
/// queries must get plain answers, whichever Pods share it) and for a Pod with no address yet.
pub fn pod_addresses(object: &core::Pod) -> Result<Option<PodAddresses>, ObjectError> {
    let host_network = (object.spec.as_ref()).and_then(|spec| spec.host_network);
    if host_network == Some(true) {
        return Ok(None);
    }
    let ips = pod_ips(object.status.as_ref())?;
    if ips.is_empty() {
        return Ok(None);
    }
    let phase = (object.status.as_ref()).and_then(|status| status.phase.as_deref());
    let state = match phase {
        Some("Succeeded" | "Failed") => PodState::Finished,
        _ if object.metadata.deletion_timestamp.is_some() => PodState::Terminating,
        _ => PodState::Holding,
    };
    Ok(Some(PodAddresses {
        namespace: object_namespace(&object.metadata)?,
        ips,
        state,
    }))
}

impl PodAddresses {
    /// The changes this Pod makes to the client index, seen as `seen`:
    ///
    /// | | Holding | Terminating | Finished |
    /// | --- | --- | --- | --- |
    /// | listed | upsert | — | — |
    /// | applied | upsert | delete | delete |
    /// | deleted | delete | delete | — |
    ///
    /// A list says what holds an address now; an address it does not list goes at its end, so
    /// a released address needs no delete there. A Finished Pod's addresses were deleted by the
    /// event that finished it; a delete of it, which may come hours later (a completed Job's
    /// Pod), would remove the address from a newer Pod of the same namespace.
    pub fn changes(self, seen: Seen) -> Vec<Change> {
        let upsert = match (seen, self.state) {
            (Seen::Listed | Seen::Applied, PodState::Holding) => true,
            (Seen::Listed, _) | (Seen::Deleted, PodState::Finished) => return Vec::new(),
            (Seen::Applied | Seen::Deleted, _) => false,
        };
        let namespace = self.namespace;
        (self.ips.into_iter())
            .map(|ip| {
                if upsert {
                    Change::PodAddressUpsert(namespace.clone(), ip)
                } else {
                    Change::PodAddressDelete(namespace.clone(), ip)
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
