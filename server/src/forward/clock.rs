//! The cache's notion of time: milliseconds on a monotonic clock, either the system's or one a
//! test moves by hand, so TTL countdown, expiry and serve-stale are tested without sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A monotonic clock read in milliseconds since it was made.
#[derive(Clone, Debug)]
pub struct Clock(Source);

#[derive(Clone, Debug)]
enum Source {
    System(Instant),
    Manual(Arc<AtomicU64>),
}

/// The hand that moves a manual [`Clock`].
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicU64>);

impl Clock {
    /// The system's monotonic clock.
    pub fn system() -> Self {
        Clock(Source::System(Instant::now()))
    }

    /// A clock standing still at zero until its hand moves it.
    pub fn manual() -> (Self, ManualClock) {
        let millis = Arc::new(AtomicU64::new(0));
        (Clock(Source::Manual(millis.clone())), ManualClock(millis))
    }

    /// Milliseconds since the clock was made.
    pub fn now_ms(&self) -> u64 {
        match &self.0 {
            Source::System(start) => start.elapsed().as_millis() as u64,
            Source::Manual(millis) => millis.load(Ordering::Relaxed),
        }
    }
}

impl ManualClock {
    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_by_hand() {
        let (clock, hand) = Clock::manual();
        assert_eq!(clock.now_ms(), 0);
        hand.advance(Duration::from_millis(1500));
        assert_eq!(clock.clone().now_ms(), 1500);
    }

    #[test]
    fn system_clock_is_monotonic() {
        let clock = Clock::system();
        let a = clock.now_ms();
        assert!(clock.now_ms() >= a);
    }
}
