//! # clusterdns-zone
//!
//! The cluster model and its DNS records, with no I/O. Sources turn Kubernetes objects into
//! [`model`] types and feed them as [`Change`]s to the single-writer [`ZoneBuilder`], which
//! publishes immutable [`Snapshot`]s of pre-encoded answers. The sans-IO [`answer()`] function
//! turns a query packet into a response using one snapshot.
//!
//! ```text
//!  source ──Change──▶ ZoneBuilder ──publish()──▶ Snapshot (shards of name → node blob)
//!                                                     │ ArcSwap (in the server)
//!  query bytes ──parse_query──▶ Snapshot::lookup ──▶ copy pre-encoded body, patch header ──▶ bytes
//! ```
//!
//! What is answered follows the Kubernetes DNS-Based Service Discovery specification v1.1.0 and,
//! where it is silent, CoreDNS's `kubernetes` plugin; see DESIGN.md §2 and the crate README.

pub mod answer;
pub mod builder;
pub mod encode;
pub mod model;
pub mod name;
pub mod node;
pub mod snapshot;
pub mod wire;

pub use answer::{answer, parse_query, Answered, Query, Transport};
pub use builder::ZoneBuilder;
pub use model::{
    Change, Cluster, Endpoint, EndpointSlice, ObjectKey, ObjectKind, Pod, Port, Protocol, Service,
    ServiceKind,
};
pub use name::WireName;
pub use snapshot::{Lookup, PodsMode, Snapshot, ZoneConfig, ZoneStats};
pub use wire::Rcode;
