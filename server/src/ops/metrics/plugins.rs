//! The counters of `acl` and `local` (issue 19), with CoreDNS's names and labels:
//! `coredns_acl_{blocked,filtered,dropped}_requests_total{server,zone,view}`,
//! `coredns_acl_allowed_requests_total{server,view}` and
//! `coredns_local_localhost_requests_total`. A family is written once a block that has its
//! plugin is built (CoreDNS registers them in the plugin's setup); `view` is always empty
//! (clusterdns has no `view` plugin).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::Exposition;

/// What `acl` did with the queries of one `(server, zone)`, the zone being the rule's.
#[derive(Debug, Default)]
pub struct AclZone {
    /// Refused (`block`).
    pub blocked: AtomicU64,
    /// Answered empty (`filter`).
    pub filtered: AtomicU64,
    /// Not answered (`drop`).
    pub dropped: AtomicU64,
}

/// One of an [`AclZone`]'s counters.
type Field = fn(&AclZone) -> &AtomicU64;

/// The counters of `acl` and `local`, shared by every block's chain.
#[derive(Debug, Default)]
pub struct PluginCounters {
    acl: Mutex<Vec<(String, String, Arc<AclZone>)>>,
    allowed: Mutex<Vec<(String, Arc<AtomicU64>)>>,
    localhost: Mutex<Option<Arc<AtomicU64>>>,
}

impl PluginCounters {
    /// The `acl` counters of `(server, zone)`, the same ones for every block that asks.
    pub fn acl_zone(&self, server: &str, zone: &str) -> Arc<AclZone> {
        let Ok(mut all) = self.acl.lock() else {
            return Arc::default();
        };
        if let Some((_, _, found)) = all.iter().find(|(s, z, _)| s == server && z == zone) {
            return found.clone();
        }
        let counters = Arc::new(AclZone::default());
        all.push((server.to_owned(), zone.to_owned(), counters.clone()));
        counters
    }

    /// The counter of the queries `acl` let on in `server`.
    pub fn acl_allowed(&self, server: &str) -> Arc<AtomicU64> {
        let Ok(mut all) = self.allowed.lock() else {
            return Arc::default();
        };
        if let Some((_, found)) = all.iter().find(|(s, _)| s == server) {
            return found.clone();
        }
        let counter = Arc::new(AtomicU64::new(0));
        all.push((server.to_owned(), counter.clone()));
        counter
    }

    /// The counter of `local`'s answers to names below `localhost.` and `localhost.<domain>`.
    pub fn localhost(&self) -> Arc<AtomicU64> {
        let Ok(mut counter) = self.localhost.lock() else {
            return Arc::default();
        };
        counter.get_or_insert_with(Arc::default).clone()
    }

    /// Describes the families in use.
    pub(super) fn describe(&self, out: &mut Exposition) {
        if let Ok(all) = self.acl.lock() {
            let families: [(&'static str, &'static str, Field); 3] = [
                (
                    "coredns_acl_blocked_requests_total",
                    "Counter of DNS requests being blocked.",
                    |z| &z.blocked,
                ),
                (
                    "coredns_acl_filtered_requests_total",
                    "Counter of DNS requests being filtered.",
                    |z| &z.filtered,
                ),
                (
                    "coredns_acl_dropped_requests_total",
                    "Counter of DNS requests being dropped.",
                    |z| &z.dropped,
                ),
            ];
            for (name, help, field) in families.into_iter().filter(|_| !all.is_empty()) {
                let family = out.counter(name, help);
                for (server, zone, counters) in all.iter() {
                    let labels = [("server", server.as_str()), ("view", ""), ("zone", zone)];
                    family.add(&labels, field(counters).load(Ordering::Relaxed));
                }
            }
        }
        if let Ok(all) = self.allowed.lock() {
            if !all.is_empty() {
                let family = out.counter(
                    "coredns_acl_allowed_requests_total",
                    "Counter of DNS requests being allowed.",
                );
                for (server, counter) in all.iter() {
                    let labels = [("server", server.as_str()), ("view", "")];
                    family.add(&labels, counter.load(Ordering::Relaxed));
                }
            }
        }
        if let Ok(localhost) = self.localhost.lock() {
            if let Some(counter) = localhost.as_ref() {
                (out.counter(
                    "coredns_local_localhost_requests_total",
                    "Counter of localhost.<domain> requests.",
                ))
                .add(&[], counter.load(Ordering::Relaxed));
            }
        }
    }
}
