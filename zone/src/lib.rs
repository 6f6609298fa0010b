//! # clusterdns-zone
//!
//! The cluster model and its DNS records, with no I/O. Sources turn Kubernetes objects into
//! [`model`] types and feed them as [`Change`]s to the single-writer [`ZoneBuilder`], which keeps
//! one compact record per Service (its spec and its slices' ready endpoints) and publishes
//! immutable [`Snapshot`]s. The sans-IO [`answer()`] function turns a query packet into a
//! response using one snapshot, deriving names and records from the Service records at query
//! time instead of storing them.
//!
//! ```text
//!  source ──Change──▶ ZoneBuilder ──publish()──▶ Snapshot
//!                      (record)                    services: <svc>.<ns> ──▶ ServiceRecord
//!                      (render)                    reverse:  address ──▶ owning Services
//!                                                  nodes:    fixed name ──▶ pre-encoded node
//!                                                  clients:  Pod address ──▶ namespace
//!                                                     │ ArcSwap (in the server)
//!  query bytes ──parse_query──▶ Snapshot::lookup ──▶ Found::write (derived) ──▶ response bytes
//! ```
//!
//! | module | owns |
//! | --- | --- |
//! | [`model`] | the objects sources report |
//! | [`builder`] | applying changes, folding them into records, publishing |
//! | `record` | the compact Service record and its endpoint labels |
//! | `render` | the fixed names encoded at publish time |
//! | `reverse` | the address index PTR answers come from |
//! | `clients` | the index from a Pod's address to its namespace, for a query's client |
//! | [`external`] | the Services as another zone answers them (`k8s_external`), by name and by external address |
//! | [`snapshot`] | the published tables and the lookup that classifies a question |
//! | `derived` | encoding records derived from a Service at query time |
//! | [`answer`] | parsing a query and assembling the response |
//! | `encode`, `node` | the pre-encoded form of the fixed names |
//! | [`name`], [`wire`] | domain names and DNS wire-format constants |
//!
//! What is answered follows the Kubernetes DNS-Based Service Discovery specification v1.1.0 and,
//! where it is silent, CoreDNS's `kubernetes` plugin; see the crate README.

pub mod answer;
pub mod builder;
mod clients;
mod derived;
mod encode;
pub mod external;
pub mod model;
pub mod name;
mod node;
mod record;
mod render;
mod reverse;
pub mod snapshot;
mod table;
pub mod wire;

pub use answer::{answer, parse_query, Answered, Query, Transport};
pub use builder::ZoneBuilder;
pub use derived::Written;
pub use model::{
    Change, Cluster, Endpoint, EndpointSlice, ExternalAddress, ObjectKey, ObjectKind, Pod, Port,
    Protocol, Service, ServiceKind,
};
pub use name::WireName;
pub use snapshot::{Found, Lookup, PodsMode, Snapshot, ZoneConfig, ZoneStats};
pub use wire::Rcode;
