//! The manifest source: loads Kubernetes manifests at startup and re-reads them when a file
//! changes (polling size and modification time, which also catches the symlink swap a mounted
//! ConfigMap does), feeding the same [`Publisher`] the Kubernetes API source feeds.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use clusterdns_zone::{ObjectKind, ZoneStats};

use crate::ops::metrics::Metrics;
use crate::sources::manifest::{self, LoadReport, ManifestError};
use crate::sources::{PodChanges, Publisher, Selection};

/// What identifies one version of the manifest files.
type Stamp = Vec<(PathBuf, Option<(SystemTime, u64)>)>;

/// Watches manifest files and republishes the zone when they change.
pub struct ManifestSource {
    paths: Vec<PathBuf>,
    pods: PodChanges,
    selection: Selection,
    stamp: Stamp,
    publisher: Publisher,
    metrics: Arc<Metrics>,
    /// The last error, so a broken file is reported once rather than at every poll.
    last_error: Option<String>,
}

/// The outcome of the initial load, for the startup log line.
pub struct Loaded {
    /// The source, ready to watch.
    pub source: ManifestSource,
    /// What was read.
    pub report: LoadReport,
    /// The zone's counts.
    pub stats: ZoneStats,
    /// How long reading and building took.
    pub took: Duration,
}

fn stamp(paths: &[PathBuf]) -> Result<Stamp, ManifestError> {
    Ok(manifest::files(paths)?
        .into_iter()
        .map(|file| {
            let meta = std::fs::metadata(&file).ok();
            let version = meta.and_then(|m| Some((m.modified().ok()?, m.len())));
            (file, version)
        })
        .collect())
}

impl ManifestSource {
    /// Reads `paths` and publishes the first (synced) snapshot through `publisher`; Pods become
    /// what `pods` asks for, and only the objects `selection` selects are read.
    pub fn load(
        paths: Vec<PathBuf>,
        pods: PodChanges,
        selection: Selection,
        mut publisher: Publisher,
        metrics: Arc<Metrics>,
    ) -> Result<Loaded, ManifestError> {
        let started = std::time::Instant::now();
        let stamp = stamp(&paths)?;
        // Streamed straight into the builder, object by object: nothing holds the file or the
        // cluster beside the zone. A file that fails stops startup, so a partial zone is never
        // published.
        let report = manifest::read_selected(&paths, pods, &selection, &mut |change| {
            publisher.apply(change)
        })?;
        publisher.set_synced();
        let (stats, took, serial) = publisher.publish();
        metrics.source.published(took, stats, serial);
        Ok(Loaded {
            source: ManifestSource {
                paths,
                pods,
                selection,
                stamp,
                publisher,
                metrics,
                last_error: None,
            },
            report,
            stats,
            took: started.elapsed(),
        })
    }

    /// The store the listeners read.
    pub fn publisher_store(&self) -> Arc<arc_swap::ArcSwap<clusterdns_zone::Snapshot>> {
        self.publisher.store()
    }

    /// Re-reads the files if they changed; returns whether a new snapshot was published. A file
    /// that no longer loads is reported once and the last good zone keeps serving.
    pub fn poll(&mut self) -> bool {
        let result = stamp(&self.paths).and_then(|stamp| {
            if stamp == self.stamp {
                return Ok(None);
            }
            // Read once to validate, then again into the builder: a file that fails halfway
            // must not leave half a change behind, and holding the whole cluster to apply it at
            // once would cost the memory streaming saves.
            manifest::read_selected(&self.paths, self.pods, &self.selection, &mut |_| {})?;
            self.reapply()?;
            Ok(Some(stamp))
        });
        match result {
            Ok(None) => false,
            Ok(Some(stamp)) => {
                self.stamp = stamp;
                self.last_error = None;
                let (stats, took, serial) = self.publisher.publish();
                self.metrics.source.published(took, stats, serial);
                tracing::info!(
                    services = stats.services,
                    endpoints = stats.endpoints,
                    names = stats.names,
                    publish_us = took.as_micros() as u64,
                    "manifests changed; zone republished"
                );
                true
            }
            Err(error) => {
                let message = error.to_string();
                if self.last_error.as_deref() != Some(&message) {
                    tracing::error!(error = %message, "manifests not reloaded; still serving the last good zone");
                    self.last_error = Some(message);
                }
                false
            }
        }
    }

    /// Applies every object of the files as an upsert (unchanged ones cost nothing) and deletes
    /// what they no longer hold. Should the files change between validation and this read and
    /// fail, what was applied stays unpublished until a later read succeeds and corrects it.
    fn reapply(&mut self) -> Result<(), ManifestError> {
        let publisher = &mut self.publisher;
        for kind in ObjectKind::ALL {
            publisher.begin_list(kind);
        }
        manifest::read_selected(&self.paths, self.pods, &self.selection, &mut |change| {
            publisher.apply_listed(change)
        })?;
        for kind in ObjectKind::ALL {
            publisher.end_list(kind);
        }
        Ok(())
    }

    /// Polls every `interval` on a thread until `stop` is set.
    pub fn watch(
        mut self,
        interval: Duration,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("clusterdns-manifests".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(interval);
                    self.poll();
                }
            })
    }
}
