//! The bound on queries waiting on upstreams, shared by every UDP worker and TCP connection
//! (`--max-forward-pending`). Each waiting query holds a task and its answer buffer until its
//! upstreams answer or time out; under a flood of names that all miss the cache (random names)
//! and a slow upstream, their number would grow with the flood's rate. Past the bound a query
//! that misses the cache is answered REFUSED at once, as `max_concurrent` answers past its own
//! bound (CoreDNS `forward`). Cluster names never get here: they are answered from the zone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// How many queries wait on upstreams, and how many may.
#[derive(Debug)]
pub struct Pending {
    count: AtomicUsize,
    limit: usize,
}

/// One waiting query's place, given back when dropped.
pub struct PendingPlace(Arc<Pending>);

impl Pending {
    /// At most `limit` queries waiting at once.
    pub fn new(limit: usize) -> Arc<Pending> {
        Arc::new(Pending {
            count: AtomicUsize::new(0),
            limit,
        })
    }

    /// A place for one more waiting query; `None` at the bound.
    pub fn enter(self: &Arc<Self>) -> Option<PendingPlace> {
        let before = self.count.fetch_add(1, Ordering::AcqRel);
        if before >= self.limit {
            self.count.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(PendingPlace(self.clone()))
    }

    /// Queries waiting now.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

impl Drop for PendingPlace {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_up_to_the_bound_and_back() {
        let pending = Pending::new(2);
        let first = pending.enter().expect("one");
        let second = pending.enter().expect("two");
        assert!(pending.enter().is_none(), "the third waits for none");
        assert_eq!(pending.count(), 2);
        drop(first);
        let third = pending.enter().expect("room again");
        drop((second, third));
        assert_eq!(pending.count(), 0);
    }
}
