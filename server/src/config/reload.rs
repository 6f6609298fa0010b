//! Watching configuration files while serving (CoreDNS `reload`, and the `hosts` and `file`
//! plugins' `reload`): a thread that twice a second re-reads the Corefile with its imports and,
//! when the parsed result differs, builds the new plan and swaps the routers in; and that
//! re-reads each hosts file and `file` zone when its interval has passed. A new Corefile that
//! does not parse or validate, or that changes what needs a restart (ports, endpoints, the
//! cluster zone's source), is refused: logged, counted in `coredns_reload_failed_total`, and
//! the running configuration stays.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::corefile::{self, Corefile};
use crate::config::plan::Plan;
use crate::ops::metrics::Metrics;
use crate::serving::Server;

/// How often the files are looked at. A ConfigMap update reaches the pod within kubelet's sync
/// period anyway; reading a few small files twice a second costs nothing, so a change is live
/// within a second of landing, whatever the `reload` interval says.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// The watcher thread; [`Watcher::stop`] ends it.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// What the watcher compares a fresh read with.
struct Seen {
    path: PathBuf,
    /// The last Corefile read, valid or not (so one bad file is reported once).
    corefile: Option<Corefile>,
    error: Option<String>,
    plan: Plan,
}

impl Watcher {
    /// Starts watching `corefile` (when given and its plan says `reload`) and the hosts and zone
    /// files of `server`'s blocks.
    pub fn start(
        corefile: Option<PathBuf>,
        plan: Plan,
        server: Arc<Server>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Watcher> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut seen = corefile.filter(|_| plan.reload.is_some()).map(|path| {
            metrics.set_reload_version(corefile_hash(&path));
            Seen {
                corefile: corefile::read(&path).ok(),
                path,
                error: None,
                plan,
            }
        });
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("clusterdns-reload".into())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    std::thread::sleep(CHECK_EVERY);
                    if let Some(seen) = &mut seen {
                        seen.check(&server, &metrics);
                    }
                    for router in server.routers() {
                        for hosts in router.load().hosts() {
                            hosts.refresh();
                        }
                        for files in router.load().files() {
                            files.refresh(&metrics);
                        }
                    }
                }
            })?;
        Ok(Watcher { stop, thread })
    }

    /// Stops the thread and waits for it.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// The hex SHA-512 of the Corefile's text (`coredns_reload_version_info`'s `value`); empty when
/// it cannot be read.
fn corefile_hash(path: &std::path::Path) -> String {
    let Ok(text) = std::fs::read(path) else {
        return String::new();
    };
    let digest = ring::digest::digest(&ring::digest::SHA512, &text);
    digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl Seen {
    /// Re-reads the Corefile and applies it if it changed.
    fn check(&mut self, server: &Server, metrics: &Metrics) {
        let read = corefile::read(&self.path);
        let outcome = match read {
            Ok(parsed) if self.corefile.as_ref() == Some(&parsed) => return,
            Ok(parsed) => {
                self.corefile = Some(parsed.clone());
                corefile::plan(&parsed).map_err(|e| e.to_string())
            }
            Err(error) => {
                let message = error.to_string();
                if self.error.as_ref() == Some(&message) {
                    return;
                }
                // A later valid read must be applied even if it equals the last valid one.
                self.corefile = None;
                Err(message)
            }
        };
        let outcome = outcome.and_then(|plan| match self.plan.restart_needed(&plan) {
            Some(reason) => Err(format!("{reason}: restart clusterdns to apply it")),
            None => Ok(plan),
        });
        match outcome {
            Ok(plan) => {
                server.replace_routes(&plan.ports, metrics);
                crate::ops::logging::set_debug(plan.debug);
                crate::ops::panics::set_recovery(!plan.debug);
                self.error = None;
                tracing::info!(corefile = %self.path.display(), "configuration reloaded");
                self.plan = plan;
                metrics.reloaded(true);
                metrics.set_reload_version(corefile_hash(&self.path));
            }
            Err(message) => {
                tracing::error!(corefile = %self.path.display(), error = %message, "reload refused; the running configuration stays");
                self.error = Some(message);
                metrics.reloaded(false);
            }
        }
    }
}
