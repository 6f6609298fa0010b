//! # clusterdns
//!
//! The server around the zone:
//!
//! ```text
//!  manifest files ──▶ source ──▶ Publisher (ZoneBuilder) ──▶ ArcSwap<Snapshot>
//!                                                               │
//!  UDP socket per worker (recvmmsg/sendmmsg thread) ───────────┤  handler::handle
//!  TCP listener per worker (tokio task per connection) ────────┘  (zone answer, else REFUSED)
//! ```
//!
//! [`config`] parses and validates flags; [`corefile`] reads a CoreDNS Corefile into a syntax
//! tree; [`sockets`] binds one UDP socket and one TCP listener per worker with SO_REUSEPORT;
//! [`udp`] and [`tcp`] serve them; [`server`] starts and stops them; [`manifest`] reads
//! Kubernetes manifests and [`source`] watches them for changes; [`nodelocal`] is the node-local
//! cache mode (no zone; everything forwarded and cached); [`memory`] makes the allocator give
//! back what loading the zone used.

pub mod config;
pub mod corefile;
pub mod forward;
pub mod handler;
pub mod kubernetes;
pub mod manifest;
pub mod memory;
pub mod metrics;
pub mod nodelocal;
pub mod objects;
pub mod ops;
pub mod plugins;
pub mod publisher;
pub mod server;
pub mod sockets;
pub mod source;
pub mod tcp;
pub mod udp;
