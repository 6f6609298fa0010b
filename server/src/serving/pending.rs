//! The bound on queries waiting on upstreams, shared by every UDP worker and TCP connection
//! (`--max-forward-pending`). Each waiting query holds a task and its answer buffer until its
//! upstreams answer or time out; under a flood of names that all miss the cache (random names)
//! and a slow upstream, their number would grow with the flood's rate. Past the bound a query
//! that misses the cache is answered REFUSED at once, as `max_concurrent` answers past its own
//! bound (CoreDNS `forward`). Cluster names never get here: they are answered from the zone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::chain::Deferred;

/// How many queries wait on upstreams, and how many may.
#[derive(Debug)]
pub struct Pending {
    count: AtomicUsize,
    limit: usize,
}

/// What a query waiting over TCP counts as: its answer buffer is 16 times a UDP one's.
pub const TCP_WEIGHT: usize = 16;

/// One waiting query's place (and what it weighs), given back when dropped.
pub struct PendingPlace(Arc<Pending>, usize);

impl Pending {
    /// At most `limit` queries waiting at once.
    pub fn new(limit: usize) -> Arc<Pending> {
        Arc::new(Pending {
            count: AtomicUsize::new(0),
            limit,
        })
    }

    /// A place that counts as `weight` waiting queries: a TCP query waits with a 64 KiB answer
    /// buffer where a UDP one has at most 4 KiB, so it weighs [`TCP_WEIGHT`].
    fn enter_weighing(self: &Arc<Self>, weight: usize) -> Option<PendingPlace> {
        let before = self.count.fetch_add(weight, Ordering::AcqRel);
        if before + weight > self.limit {
            self.count.fetch_sub(weight, Ordering::AcqRel);
            return None;
        }
        Some(PendingPlace(self.clone(), weight))
    }

    /// A place for `deferred`, weighing `weight`: `None` when its forwarder is at
    /// `max_concurrent` or the server at its bound, so the listener answers REFUSED itself.
    pub fn admit(self: &Arc<Self>, deferred: &Deferred, weight: usize) -> Option<PendingPlace> {
        if !deferred.has_room() {
            return None;
        }
        self.enter_weighing(weight)
    }

    /// Queries waiting now.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

impl Drop for PendingPlace {
    fn drop(&mut self) {
        self.0.count.fetch_sub(self.1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_up_to_the_bound_and_back() {
        let pending = Pending::new(2);
        let first = pending.enter_weighing(1).expect("one");
        let second = pending.enter_weighing(1).expect("two");
        assert!(
            pending.enter_weighing(1).is_none(),
            "the third waits for none"
        );
        assert_eq!(pending.count(), 2);
        drop(first);
        let third = pending.enter_weighing(1).expect("room again");
        drop((second, third));
        assert_eq!(pending.count(), 0);
        let tcp = Pending::new(TCP_WEIGHT + 1);
        let heavy = tcp.enter_weighing(TCP_WEIGHT).expect("one TCP query");
        assert!(
            tcp.enter_weighing(TCP_WEIGHT).is_none(),
            "no room for a second"
        );
        let light = tcp.enter_weighing(1).expect("a UDP one fits");
        drop((heavy, light));
        assert_eq!(tcp.count(), 0);
    }
}
