//! The logic of the fuzz targets, one module per target, kept out of `fuzz_targets/` so that an
//! ordinary stable test can replay the seed corpus through exactly the same checks
//! (`tests/tests/fuzz_corpus.rs` includes this file with `#[path]`). Each `run` takes the raw
//! fuzz input, must never panic on any input, and panics (with a message) only when an invariant
//! of the code under test is broken.

pub mod cache;
pub mod corefile;
pub mod forward_response;
pub mod manifest;
pub mod query;
pub mod zone;
