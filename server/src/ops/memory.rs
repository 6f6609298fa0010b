//! What the allocator gives back to the OS. clusterdns runs on mimalloc (set in the binary); the
//! zone is built from large transient inputs (list pages, manifest items) on threads that then
//! go quiet, and the process should shrink to the size of the zone afterwards instead of keeping
//! its peak. Three defaults stand in the way; this module changes them:
//!
//! - freed pages are returned to the OS only after a delay, measured while the freeing thread
//!   keeps allocating ([`configure`] makes it immediate);
//! - a block freed by another thread (a converted object the zone thread drops) goes back to its
//!   page only when the owning thread next allocates or collects ([`release_freed`], called when
//!   a control thread parks and after each publish).
//!
//! The answer path allocates and frees nothing, so it never pays for either.
//!
//! A third default is changed before the process allocates anything: mimalloc on Linux commits
//! the whole of its first arena when it reserves it, and with that the pages the start-up load
//! touched stayed resident after it freed them. Committed on demand instead, they go back: on the
//! API path at 5k Services / 50k endpoints the peak fell from 42-46 MiB to 27-30 MiB and the RSS
//! after sync from 41-43 to 26-27 MiB, at 50k / 500k from 122 to 109 MiB, with the time to ready
//! unchanged or shorter (bench/README.md, "Arenas committed on demand").

use std::cell::Cell;
use std::time::{Duration, Instant};

/// mimalloc's `mi_option_arena_eager_commit` (its position in `mi_option_e`, the same in v2 and v3).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_e`, the same in v2 and v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How often one thread collects at most: collecting walks the thread's pages.
const COLLECT_EVERY: Duration = Duration::from_millis(100);

/// Makes the allocator commit its arenas on demand and return freed pages to the OS at once.
/// Call before the first allocation (the binary runs it as a constructor, before `main`): the
/// first arena is reserved by the first allocation, with the options set then.
pub extern "C" fn configure() {
    // SAFETY: sets process-wide allocator options; runs before `main`, with one thread.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}

/// Collects the calling thread's allocator heap (blocks other threads freed, pages now empty),
/// returning what is free to the OS; does nothing if this thread collected in the last 100 ms.
pub fn release_freed() {
    thread_local!(static LAST: Cell<Option<Instant>> = const { Cell::new(None) });
    let now = Instant::now();
    let due = LAST.with(|last| {
        let due = last
            .get()
            .is_none_or(|at| now.duration_since(at) >= COLLECT_EVERY);
        if due {
            last.set(Some(now));
        }
        due
    });
    if due {
        // SAFETY: collects only the calling thread's heap; always safe to call.
        unsafe { libmimalloc_sys::mi_collect(true) };
    }
}
