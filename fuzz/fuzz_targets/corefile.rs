//! Fuzz target `corefile`: Corefile text parsed and planned (see `clusterdns_fuzz::corefile`).
//! The working directory is moved into the sandbox first, so relative `hosts` and `forward`
//! paths resolve inside it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        let sandbox = clusterdns_fuzz::corefile::sandbox();
        std::env::set_current_dir(sandbox).unwrap();
    },
    |data: &[u8]| clusterdns_fuzz::corefile::run(data)
);
