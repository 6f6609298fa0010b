//! Holds the zone's heap to the compact design: a deterministic count of the bytes the builder
//! keeps per endpoint and per Service (a counting allocator, not RSS), failing if either grows
//! past the bound below. One test in this binary, so no other test's allocations are counted.

use clusterdns_bench::heap::bytes_per_object;
use clusterdns_testkit::alloc::Counting;

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap per endpoint: the record's compact endpoint (40 bytes) and its IPv4 reverse-index entry
/// (12 bytes and a control byte, at 45-87% load): 58 measured, with room for where the hash
/// tables' growth falls.
const MAX_BYTES_PER_ENDPOINT: f64 = 80.0;
/// Heap per Service: its record and spec, its slice, its name in the slice index, its cluster
/// IP's reverse entry, and at this size about 400 bytes of the four tables' 4096 shards each
/// (less per Service in larger clusters): 975 measured (empty shards share one table).
const MAX_BYTES_PER_SERVICE: f64 = 1300.0;

#[test]
fn zone_heap_per_endpoint_and_service_stays_compact() {
    let (per_service, per_endpoint, build) = match bytes_per_object(2_000) {
        Ok(measured) => measured,
        Err(error) => panic!("building the synthetic zone: {error}"),
    };
    println!(
        "2000 Services, {} endpoints: {per_endpoint:.0} bytes/endpoint, {per_service:.0} bytes/Service",
        build.endpoints
    );
    assert!(
        per_endpoint <= MAX_BYTES_PER_ENDPOINT,
        "{per_endpoint:.0} bytes per endpoint (bound {MAX_BYTES_PER_ENDPOINT})"
    );
    assert!(
        per_service <= MAX_BYTES_PER_SERVICE,
        "{per_service:.0} bytes per Service (bound {MAX_BYTES_PER_SERVICE})"
    );
}
