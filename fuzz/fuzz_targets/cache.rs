//! Fuzz target `cache`: op sequences run against the forward cache (see `clusterdns_fuzz::cache`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| clusterdns_fuzz::cache::run(data));
