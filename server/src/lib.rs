//! # clusterdns
//!
//! The server around the zone. ARCHITECTURE.md at the repository root walks a query and an
//! EndpointSlice change through these modules; each folder's module doc says what it owns and
//! what it may not touch.
//!
//! - [`config`]: what the server is told to do: flags, the Corefile, the [`config::plan::Plan`]
//!   both become, and reloading it.
//! - [`serving`]: the sockets, the UDP and TCP workers, starting and stopping them.
//! - [`chain`]: the query path above the sockets: a router per port and each server block's
//!   plugin chain.
//! - [`sources`]: where the zone comes from (the Kubernetes API or manifest files) and the one
//!   writer that publishes it.
//! - [`forward`]: everything outside the zone: upstreams, the cache, loop detection.
//! - [`nodelocal`]: the node-local cache mode's arguments and the node's network setup.
//! - [`ops`]: `/health`, `/ready`, `/metrics`, the counters behind them and the process's memory.

pub mod chain;
pub mod config;
pub mod forward;
pub mod nodelocal;
pub mod ops;
pub mod serving;
pub mod sources;
