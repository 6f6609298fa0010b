//! The process's log filter. When RUST_LOG is set (and valid) it chooses the levels, for good.
//! Otherwise clusterdns logs at info, with kube's watcher quieted (it warns at every retry;
//! the source logs each failure once), and at debug for its own crates while the Corefile says
//! `debug`: CoreDNS's `debug` turns on its debug output for the whole process when any server
//! block has it, and a reload that drops it turns it off again, as here.

use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

/// The levels without `debug`.
const DEFAULT: &str = "info,kube_runtime=error";
/// The levels with `debug`: clusterdns's own messages at debug, other crates as without.
const DEBUG: &str = "info,kube_runtime=error,clusterdns=debug,clusterdns_zone=debug";

/// Swaps the filter; set when RUST_LOG does not choose the levels.
type SetFilter = Box<dyn Fn(&'static str) + Send + Sync>;
static SET_FILTER: OnceLock<SetFilter> = OnceLock::new();

/// Starts logging to stderr (colours only on a terminal).
pub fn init() {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match EnvFilter::try_from_default_env() {
        Ok(chosen) => builder.with_env_filter(chosen).init(),
        Err(_) => {
            let builder = builder
                .with_env_filter(EnvFilter::new(DEFAULT))
                .with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            let _ = SET_FILTER.set(Box::new(move |levels| {
                let _ = handle.reload(EnvFilter::new(levels));
            }));
        }
    }
}

/// Turns debug-level logging of clusterdns's own messages on or off (the Corefile's `debug`),
/// unless RUST_LOG chose the levels.
pub fn set_debug(on: bool) {
    let Some(set) = SET_FILTER.get() else {
        return;
    };
    set(if on { DEBUG } else { DEFAULT });
    tracing::debug!("debug-level logging on: the Corefile says `debug`");
}
