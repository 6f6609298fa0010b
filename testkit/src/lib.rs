//! # clusterdns-testkit
//!
//! One copy of what clusterdns's tests (unit, `server/tests/`, the e2e package in `tests/`) and
//! the `api-scale` benchmark share:
//!
//! - [`dns`]: queries built by hand, response headers read by hand, decoded replies and records
//!   in presentation format;
//! - [`client`]: DNS over real sockets (UDP, TCP, framing) with timeouts;
//! - [`net`] and [`http`]: free loopback ports, `GET` over HTTP/1.1 and Prometheus samples;
//! - [`alloc`]: the counting global allocator (allocations and live heap bytes);
//! - [`fakeapi`]: the in-process fake Kubernetes API server (list/watch over HTTP);
//! - [`fixture`]: zones and in-process servers; [`golden`]: the golden-case harness;
//! - [`process`]: the `clusterdns` binary (or any program) as a child process killed on drop;
//! - [`knot`]: Knot DNS on a loopback port as a real upstream; [`unbound`]: Unbound serving
//!   DNS over TLS with a certificate made at run time; [`temp`]: temp directories;
//! - [`upstream`]: a scripted upstream that numbers its answers and can go silent or slow;
//! - [`yaml`]: Kubernetes objects in YAML files, read strictly (unknown fields are errors).
//!
//! It is test support: a failure of the environment (a socket that cannot be bound, a program
//! that does not start) panics with a message saying what failed, as a test would; what depends
//! on a server's behaviour (an answer, a page) is returned for the caller to judge.

#![warn(missing_docs)]

pub mod alloc;
pub mod client;
pub mod dns;
pub mod fakeapi;
pub mod fixture;
pub mod golden;
pub mod http;
pub mod knot;
pub mod net;
pub mod process;
pub mod rng;
pub mod temp;
pub mod unbound;
pub mod upstream;
pub mod yaml;
