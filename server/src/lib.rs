//! # clusterdns
//!
//! The server around the zone:
//!
//! ```text
//!  flags ─────┐
//!  Corefile ──┴─▶ Plan ─▶ Router per port (server blocks, plugin chains) ◀── reload
//!                                          │
//!  UDP socket per worker (recvmmsg/sendmmsg thread) ───┤ Router::handle: route by zone, then
//!  TCP listener per worker (tokio task per connection) ┘ any, rewrite, template, hosts,
//!                                                        kubernetes (snapshot), forward (cache)
//!  manifest files / Kubernetes API ─▶ Publisher (ZoneBuilder) ─▶ ArcSwap<Snapshot>
//! ```
//!
//! [`config`] parses and validates flags; [`corefile`] reads a CoreDNS Corefile; both become a
//! [`plan`]; [`chain`] routes each query to its server block and runs the block's plugins
//! ([`plugins`] holds the logic of hosts, rewrite and template); [`reload`] swaps in a changed
//! Corefile; [`sockets`] binds one UDP socket and one TCP listener per worker with SO_REUSEPORT;
//! [`udp`] and [`tcp`] serve them; [`server`] starts and stops them; [`manifest`] reads
//! Kubernetes manifests and [`source`] watches them for changes; [`kubernetes`] watches the API;
//! [`nodelocal`] is the node-local cache mode (no zone; everything forwarded and cached);
//! [`memory`] makes the allocator give back what loading the zone used.

pub mod chain;
pub mod config;
pub mod corefile;
pub mod forward;
pub mod kubernetes;
pub mod manifest;
pub mod memory;
pub mod metrics;
pub mod nodelocal;
pub mod objects;
pub mod ops;
pub mod plan;
pub mod plugins;
pub mod publisher;
pub mod reload;
pub mod server;
pub mod sockets;
pub mod source;
pub mod tcp;
pub mod udp;
