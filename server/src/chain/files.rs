//! The `file` plugin of a block while serving: each zone behind an `ArcSwapOption`, which a
//! query loads once (no lock, no allocation) and a reload replaces whole, so a query sees the
//! old zone or the new one, never a mix; and the reload check the configuration watcher runs.
//!
//! The reload rule is CoreDNS's: every `reload` interval the zone file is looked at, and a new
//! zone replaces the old one only when its SOA serial differs (any change, not only an
//! increase), or, with `reload_by_mtime`, whenever the file changed. The file is read again
//! only when it (or a file it `$INCLUDE`s) changed size or modification time. A file that no
//! longer reads or parses keeps the zone being served, logged once per change with the file
//! and line, and counted in `clusterdns_file_reload_failed_total`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwapOption;
use clusterdns_zone::{Answered, Query, Rcode, Transport};

use super::steps::rcode_step;
use super::Step;
use crate::chain::plugins::file::{self, FilePlan, Loaded, ZoneFile};
use crate::config::plan::Fallthrough;
use crate::ops::metrics::{Metrics, Plugin};

/// What a file looked like when last read: its size and modification time (`None`: missing).
type Stamp = (PathBuf, Option<(u64, SystemTime)>);

/// One zone of the plugin.
struct Slot {
    config: ZoneFile,
    zone: ArcSwapOption<file::zone::Zone>,
    /// When the file was last looked at, and what its files looked like when last read.
    watch: Mutex<(Instant, Vec<Stamp>)>,
}

/// The `file` plugin of a block (see the module docs).
pub struct Files {
    zones: Box<[Slot]>,
    fallthrough: Fallthrough,
    /// A name outside every zone is REFUSED when nothing follows the plugin in the block, as
    /// CoreDNS answers when `file` ends its chain.
    refuse_outside: bool,
}

impl Files {
    /// The plugin as `plan` read it; `last` says whether it ends the block's chain.
    pub(super) fn new(plan: &FilePlan, last: bool) -> Files {
        let zones = plan.zones.iter().map(|config| Slot {
            zone: ArcSwapOption::new(config.zone.clone()),
            watch: Mutex::new((Instant::now(), stamps(&config.files, &config.path))),
            config: config.clone(),
        });
        Files {
            zones: zones.collect(),
            fallthrough: plan.fallthrough.clone(),
            refuse_outside: last,
        }
    }

    /// The plugin's answer, or `None` to go on down the chain.
    pub(super) fn step(
        &self,
        query: &Query,
        packet: &[u8],
        out: &mut [u8],
        transport: Transport,
    ) -> Option<Step> {
        let Some(slot) = self.slot(query.qname()) else {
            return (self.refuse_outside)
                .then(|| rcode_step(query, packet, out, transport, Rcode::Refused));
        };
        let zone = slot.zone.load();
        let Some(zone) = zone.as_deref() else {
            // Not read yet (the file was missing at startup): CoreDNS answers SERVFAIL.
            return Some(rcode_step(query, packet, out, transport, Rcode::ServFail));
        };
        let fallthrough = &self.fallthrough;
        match file::answer(zone, fallthrough, query, packet, out, transport) {
            file::Step::Next => None,
            file::Step::Answered(Answered::Response { len, rcode }) => Some(Step::Reply {
                len,
                rcode: rcode as u16,
                plugin: Plugin::File,
            }),
            file::Step::Answered(_) => Some(Step::Drop),
        }
    }

    /// Whether the answer to `query` ends with a CNAME to a name outside its zone, for the
    /// chain to look that name up (the lookup again: no allocation, unlike reading the
    /// response).
    pub(super) fn leaves_zone(&self, query: &Query) -> bool {
        let Some(slot) = self.slot(query.qname()) else {
            return false;
        };
        let zone = slot.zone.load();
        zone.as_deref()
            .is_some_and(|zone| zone.lookup(query.qname(), query.qtype).leaves_zone)
    }

    /// The zone `qname` is in: the longest origin it is at or under.
    fn slot(&self, qname: &[u8]) -> Option<&Slot> {
        (self.zones.iter())
            .filter(|s| clusterdns_zone::name::is_subdomain(qname, s.config.origin.as_bytes()))
            .max_by_key(|s| s.config.origin.as_bytes().len())
    }

    /// Reloads each zone whose interval has passed and whose file changed (see the module
    /// docs); failures are counted in `metrics`.
    pub fn refresh(&self, metrics: &Metrics) {
        for slot in self.zones.iter() {
            slot.refresh(metrics);
        }
    }
}

impl Slot {
    fn refresh(&self, metrics: &Metrics) {
        let config = &self.config;
        if config.reload.is_zero() {
            return;
        }
        let Ok(mut watch) = self.watch.lock() else {
            return;
        };
        if watch.0.elapsed() < config.reload {
            return;
        }
        watch.0 = Instant::now();
        let files: Vec<PathBuf> = watch.1.iter().map(|(path, _)| path.clone()).collect();
        let now = stamps(&files, &config.path);
        if now == watch.1 {
            return;
        }
        let zone_name = config.origin.to_dotted();
        let loaded = read_zone(config);
        // Whatever came of it, this is what was read: a broken file is reported once.
        watch.1 = match &loaded {
            Ok(loaded) => stamps(&loaded.files, &config.path),
            Err(_) => now,
        };
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(error) => {
                metrics.file_reload_failed(&zone_name);
                tracing::error!(zone = %zone_name, %error, "file: reload failed; the zone read before is still served");
                return;
            }
        };
        log_warnings(&zone_name, &loaded);
        let serial = loaded.zone.serial();
        let current = self.zone.load().as_ref().map(|z| z.serial());
        if current == Some(serial) && !config.reload_by_mtime {
            tracing::warn!(zone = %zone_name, serial, file = %config.path.display(), "file: the zone file changed but its SOA serial did not; not reloaded (raise the serial)");
            return;
        }
        self.zone.store(Some(Arc::new(loaded.zone)));
        tracing::info!(zone = %zone_name, serial, file = %config.path.display(), "file: zone reloaded");
    }
}

/// Reads the zone of `config` from its file.
pub fn read_zone(config: &ZoneFile) -> Result<Loaded, file::load::LoadError> {
    let mut read = |path: &Path| std::fs::read_to_string(path);
    file::read(&config.origin, &config.path, &mut read)
}

/// Logs what reading a zone left out or found odd, each with its file and line.
pub fn log_warnings(zone: &str, loaded: &Loaded) {
    for warning in &loaded.warnings {
        tracing::warn!(zone = %zone, warning = %warning.at, "file: zone read with a warning");
    }
}

/// What `files` (or, when none were read, `path`) look like now.
fn stamps(files: &[PathBuf], path: &Path) -> Vec<Stamp> {
    let one = |path: &Path| {
        let stamp = std::fs::metadata(path)
            .ok()
            .map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
        (path.to_path_buf(), stamp)
    };
    match files.is_empty() {
        true => vec![one(path)],
        false => files.iter().map(|f| one(f)).collect(),
    }
}
