//! The cluster as DNS sees it: Namespaces, Services, EndpointSlices and Pods stripped to the
//! fields that make records. Sources (manifest files, the Kubernetes API) convert their objects
//! into these types at the edge, so memory follows the DNS data rather than the API objects.

use std::net::IpAddr;

/// Transport protocol of a port, as used in the `_<proto>` label of SRV names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (the Kubernetes default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// The lowercase label used in `_<port>._<proto>` names.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// A port of a Service or an EndpointSlice. `name` is empty for an unnamed port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// The port's name (`""` when unnamed); named ports get `_<name>._<proto>` SRV names.
    pub name: Box<str>,
    /// The transport protocol.
    pub protocol: Protocol,
    /// The port number.
    pub port: u16,
}

/// How a Service is answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceKind {
    /// A Service with cluster IPs (ClusterIP, NodePort, LoadBalancer): `spec.clusterIPs`.
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: answered from its ready endpoints.
    Headless,
    /// `type: ExternalName`: a CNAME to `spec.externalName` (lowercase, no trailing dot).
    ExternalName(Box<str>),
}

/// An address a Service is reached at from outside the cluster (CoreDNS `k8s_external`):
/// `spec.externalIPs`, then `status.loadBalancer.ingress` (an IP, or the host name of a load
/// balancer that gives one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExternalAddress {
    /// An IP address.
    Ip(IpAddr),
    /// A load balancer's host name (lowercase, no trailing dot), answered with a CNAME.
    Hostname(Box<str>),
}

/// A Service stripped to what DNS needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// `metadata.namespace`.
    pub namespace: Box<str>,
    /// `metadata.name`.
    pub name: Box<str>,
    /// ClusterIP, headless or ExternalName.
    pub kind: ServiceKind,
    /// `spec.ports`.
    pub ports: Vec<Port>,
    /// `spec.externalIPs` and the load balancer's ingress addresses; empty for most Services.
    pub external: Vec<ExternalAddress>,
}

/// One endpoint of an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `addresses` (one address for IPv4/IPv6 slices).
    pub addresses: Vec<IpAddr>,
    /// `hostname`, when set: names the endpoint instead of its dashed address.
    pub hostname: Option<Box<str>>,
    /// `conditions.ready`, with unset meaning ready (as the specification says).
    pub ready: bool,
}

/// An EndpointSlice (discovery.k8s.io/v1) stripped to what DNS needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSlice {
    /// `metadata.namespace`.
    pub namespace: Box<str>,
    /// `metadata.name`.
    pub name: Box<str>,
    /// The owning Service, from the `kubernetes.io/service-name` label.
    pub service: Box<str>,
    /// `ports`; empty when the slice declares none.
    pub ports: Vec<Port>,
    /// `endpoints`.
    pub endpoints: Vec<Endpoint>,
}

/// A Pod's addresses, used only in `pods verified` mode (the client index takes
/// [`Change::PodAddressUpsert`] instead).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    /// `metadata.namespace`.
    pub namespace: Box<str>,
    /// `metadata.name`.
    pub name: Box<str>,
    /// `status.podIPs` (or `status.podIP`).
    pub ips: Vec<IpAddr>,
}

/// One change to the cluster, as a source reports it; the builder applies changes in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A Namespace was added or changed.
    NamespaceUpsert(Box<str>),
    /// A Namespace was deleted.
    NamespaceDelete(Box<str>),
    /// A Service was added or changed.
    ServiceUpsert(Service),
    /// A Service was deleted (namespace, name).
    ServiceDelete(Box<str>, Box<str>),
    /// An EndpointSlice was added or changed.
    SliceUpsert(EndpointSlice),
    /// An EndpointSlice was deleted (namespace, name).
    SliceDelete(Box<str>, Box<str>),
    /// A Pod was added or changed.
    PodUpsert(Pod),
    /// A Pod was deleted (namespace, name).
    PodDelete(Box<str>, Box<str>),
    /// A Pod of the namespace holds the address (namespace, address): the client index gives
    /// the address to the namespace, whatever held it before.
    ///
    /// Why not [`Change::PodUpsert`]: the client index keeps no Pod and no name (a few bytes
    /// per address, not a Pod's), so one change per address keys it for re-lists, and only
    /// the Pods that can be clients count (not host-network ones, whose address is the node's,
    /// nor finished ones). `pods verified` sends both kinds for the same Pod.
    PodAddressUpsert(Box<str>, IpAddr),
    /// A Pod of the namespace released the address (namespace, address): it was deleted,
    /// finished or is terminating. The client index drops the address only while it still
    /// belongs to that namespace, so a late delete leaves an address another namespace's Pod
    /// took since alone.
    ///
    /// Why not [`Change::PodDelete`]: that carries the Pod's name, which the client index does
    /// not keep; this carries the address, which a watch's delete event still has (its last
    /// object).
    PodAddressDelete(Box<str>, IpAddr),
}

/// The kinds of object a source reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// Namespace (v1).
    Namespace,
    /// Service (v1).
    Service,
    /// EndpointSlice (discovery.k8s.io/v1).
    EndpointSlice,
    /// Pod (v1): whole Pods in `pods verified` mode, and the client addresses of
    /// [`Change::PodAddressUpsert`] (keyed by [`Change::object`] as `(namespace, "ip:<address>")`).
    Pod,
}

impl ObjectKind {
    /// Every kind, in the order of [`ObjectKind::index`].
    pub const ALL: [ObjectKind; 4] = [
        ObjectKind::Namespace,
        ObjectKind::Service,
        ObjectKind::EndpointSlice,
        ObjectKind::Pod,
    ];

    /// The position of this kind in [`ObjectKind::ALL`], for per-kind arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The object's `kind` as a manifest spells it.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Namespace => "Namespace",
            ObjectKind::Service => "Service",
            ObjectKind::EndpointSlice => "EndpointSlice",
            ObjectKind::Pod => "Pod",
        }
    }

    /// The `apiVersion` an object of this kind must carry.
    pub fn api_version(self) -> &'static str {
        match self {
            ObjectKind::EndpointSlice => "discovery.k8s.io/v1",
            ObjectKind::Namespace | ObjectKind::Service | ObjectKind::Pod => "v1",
        }
    }

    /// The API resource's plural name (`endpointslices`), as watches and metrics label it.
    pub fn resource(self) -> &'static str {
        match self {
            ObjectKind::Namespace => "namespaces",
            ObjectKind::Service => "services",
            ObjectKind::EndpointSlice => "endpointslices",
            ObjectKind::Pod => "pods",
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        self != ObjectKind::Namespace
    }
}

/// `(namespace, name)` of an object; the namespace is empty for a Namespace.
pub type ObjectKey = (Box<str>, Box<str>);

impl Change {
    /// The kind and key of the object this change is about.
    pub fn object(&self) -> (ObjectKind, ObjectKey) {
        match self {
            Change::NamespaceUpsert(name) | Change::NamespaceDelete(name) => {
                (ObjectKind::Namespace, (Box::default(), name.clone()))
            }
            Change::ServiceUpsert(s) => {
                (ObjectKind::Service, (s.namespace.clone(), s.name.clone()))
            }
            Change::ServiceDelete(ns, name) => (ObjectKind::Service, (ns.clone(), name.clone())),
            Change::SliceUpsert(s) => (
                ObjectKind::EndpointSlice,
                (s.namespace.clone(), s.name.clone()),
            ),
            Change::SliceDelete(ns, name) => {
                (ObjectKind::EndpointSlice, (ns.clone(), name.clone()))
            }
            Change::PodUpsert(p) => (ObjectKind::Pod, (p.namespace.clone(), p.name.clone())),
            Change::PodDelete(ns, name) => (ObjectKind::Pod, (ns.clone(), name.clone())),
            Change::PodAddressUpsert(ns, ip) | Change::PodAddressDelete(ns, ip) => {
                (ObjectKind::Pod, (ns.clone(), address_key(*ip)))
            }
        }
    }
}

/// The prefix of a client address's key name (see [`address_key`]).
const ADDRESS_KEY_PREFIX: &str = "ip:";

/// The name part of a client address's [`ObjectKey`] (`ip:10.0.0.1`): a Pod name cannot hold a
/// colon, so addresses and `pods verified` Pods can be listed under [`ObjectKind::Pod`] together
/// without one key standing for the other.
pub(crate) fn address_key(ip: IpAddr) -> Box<str> {
    format!("{ADDRESS_KEY_PREFIX}{ip}").into()
}

/// The address a key name made by [`address_key`] stands for; `None` for a Pod's name.
pub(crate) fn key_address(name: &str) -> Option<IpAddr> {
    name.strip_prefix(ADDRESS_KEY_PREFIX)?.parse().ok()
}

/// A whole cluster: what a source holds after a full list, used to replace the builder's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cluster {
    /// Namespace names.
    pub namespaces: Vec<Box<str>>,
    /// Services.
    pub services: Vec<Service>,
    /// EndpointSlices.
    pub slices: Vec<EndpointSlice>,
    /// Pods (only kept in `pods verified` mode).
    pub pods: Vec<Pod>,
}
