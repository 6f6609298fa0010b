//! Fuzz target `forward_response`: upstream replies validated and served back (see `clusterdns_fuzz::forward_response`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| clusterdns_fuzz::forward_response::run(data));
