//! Fuzz target `query`: query packets answered by the zone (see `clusterdns_fuzz::query`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| clusterdns_fuzz::query::run(data));
