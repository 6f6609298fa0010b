//! Test support for clusterdns's end-to-end tests: the golden-case format ([`golden`]), DNS
//! clients over real sockets ([`client`]), fixture zones and servers ([`fixture`]) and a fake
//! Kubernetes API server ([`fakeapi`]).

pub mod client;
pub mod fakeapi;
pub mod fixture;
pub mod golden;
