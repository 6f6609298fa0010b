//! Panics: one while a query is answered is recovered, the query gets SERVFAIL and
//! `coredns_panics_total` counts it, as CoreDNS recovers a plugin's panic; a panic anywhere
//! else (the zone's builder, a watch, the forwarder's tasks) still ends the process, so a
//! half-working server is restarted rather than left serving a zone that no longer follows the
//! cluster.
//!
//! [`recovering`] marks the calling thread as answering (a thread-local flag) around the call
//! and catches an unwind out of it; [`install`]'s hook reads the flag to tell the two apart.
//! Without a panic it costs two thread-local stores and no allocation. As in CoreDNS, the
//! Corefile's `debug` turns recovery off ([`set_recovery`]): a panic then ends the process with
//! its backtrace, wherever it happens.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

thread_local!(static ANSWERING: Cell<bool> = const { Cell::new(false) });

/// Whether a panic while answering is recovered (off under the Corefile's `debug`).
static RECOVER: AtomicBool = AtomicBool::new(true);

/// Panics recovered so far (`coredns_panics_total`).
static RECOVERED: AtomicU64 = AtomicU64::new(0);

/// Recovered panics logged at most: the first ten, then each time the count doubles.
const LOGGED_FIRST: u64 = 10;

/// Installs the process's panic hook: a panic inside [`recovering`] is logged (the first ten,
/// then at each power of two, so a query of death repeated does not flood the log) and left to
/// unwind; any other is reported as Rust reports it and aborts the process.
pub fn install() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if ANSWERING.with(Cell::get) && RECOVER.load(Ordering::Relaxed) {
            let seen = RECOVERED.load(Ordering::Relaxed) + 1;
            if seen <= LOGGED_FIRST || seen.is_power_of_two() {
                tracing::error!(
                    panics = seen,
                    "answering a query panicked; it gets SERVFAIL and serving goes on: {info}"
                );
            }
        } else {
            report(info);
            std::process::abort();
        }
    }));
}

/// Runs `answer`, the handling of one query; `None` if it panicked (counted).
pub fn recovering<R>(answer: impl FnOnce() -> R) -> Option<R> {
    let outer = ANSWERING.with(|flag| flag.replace(true));
    let result = std::panic::catch_unwind(AssertUnwindSafe(answer));
    ANSWERING.with(|flag| flag.set(outer));
    match result {
        Ok(value) => Some(value),
        Err(_) => {
            RECOVERED.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Recovers panics while answering (`true`, the default) or lets them end the process
/// (`false`: the Corefile's `debug`, as in CoreDNS).
pub fn set_recovery(recover: bool) {
    RECOVER.store(recover, Ordering::Relaxed);
}

/// How many panics were recovered since the process started.
pub fn recovered() -> u64 {
    RECOVERED.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_while_answering_is_recovered_and_counted() {
        let before = recovered();
        assert_eq!(recovering(|| 7), Some(7));
        assert_eq!(recovered(), before);
        let panicked: Option<()> = recovering(|| panic!("a query of death"));
        assert_eq!(panicked, None);
        assert!(recovered() > before);
        assert!(
            !ANSWERING.with(Cell::get),
            "the flag is cleared after an unwind"
        );
    }
}
