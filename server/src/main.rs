//! The `clusterdns` binary: parse flags, load the zone, bind, serve until SIGTERM or SIGINT.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use clusterdns::config::Config;
use clusterdns::publisher::Publisher;
use clusterdns::server::Server;
use clusterdns::source::ManifestSource;
use clusterdns_zone::PodsMode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("clusterdns: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: Config) -> Result<(), String> {
    config.validate().map_err(|e| e.to_string())?;
    let zone = config.zone().map_err(|e| e.to_string())?;
    let keep_pods = zone.pods == PodsMode::Verified;
    let loaded = ManifestSource::load(config.manifests.clone(), keep_pods, Publisher::new(zone))
        .map_err(|e| e.to_string())?;
    let skipped: usize = loaded.report.skipped.values().sum();
    tracing::info!(
        files = loaded.report.files,
        namespaces = loaded.stats.namespaces,
        services = loaded.stats.services,
        endpoints = loaded.stats.endpoints,
        names = loaded.stats.names,
        skipped,
        build_ms = format!("{:.1}", loaded.took.as_secs_f64() * 1e3),
        "zone loaded from manifests"
    );
    if skipped > 0 {
        tracing::info!(kinds = ?loaded.report.skipped, "objects of other kinds skipped");
    }
    let serve = config.serve();
    let store = loaded.source.publisher_store();
    let server = Server::start(&serve, store).map_err(|e| e.to_string())?;
    tracing::info!(addrs = ?server.local_addrs(), workers = serve.workers, "serving");
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = loaded
        .source
        .watch(Duration::from_millis(config.manifest_poll_ms), stop.clone())
        .map_err(|e| format!("cannot start the manifest watcher: {e}"))?;
    wait_for_signal().map_err(|e| format!("cannot wait for signals: {e}"))?;
    tracing::info!("signal received; shutting down");
    stop.store(true, Ordering::Relaxed);
    server.shutdown();
    let _ = watcher.join();
    Ok(())
}

/// Blocks until SIGTERM or SIGINT.
fn wait_for_signal() -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok(())
    })
}
