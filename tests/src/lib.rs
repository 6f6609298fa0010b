//! Test support for clusterdns's end-to-end tests: the golden-case format ([`golden`]), DNS
//! clients over real sockets ([`client`]) and fixture zones and servers ([`fixture`]).

pub mod client;
pub mod fixture;
pub mod golden;
