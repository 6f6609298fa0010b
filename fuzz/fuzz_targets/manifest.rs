//! Fuzz target `manifest`: manifest files loaded as YAML and JSON (see `clusterdns_fuzz::manifest`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| clusterdns_fuzz::manifest::run(data));
