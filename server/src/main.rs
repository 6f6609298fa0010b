//! The `clusterdns` binary: parse flags (and the Corefile, when given one), bind, sync the zone
//! from its source (manifest files or the Kubernetes API), serve DNS and the operations
//! endpoints, re-read the Corefile when it changes, and on SIGTERM go through lameduck before
//! exiting. In node-local mode there is no zone: the node's interface and
//! iptables rules are set up (when asked) before binding, the rules are removed when lameduck
//! starts and the interface on exit.
//!
//! There is one way out once serving: a signal and a fatal error the server reports (a
//! forwarding loop) take the same path out of `run`, so node-local teardown always runs. Errors
//! are typed in the modules that raise them and boxed here, once; their messages name the file,
//! object and field.

use std::error::Error;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches};
use clusterdns::config::plan::Plan;
use clusterdns::config::{Config, Mode};
use clusterdns::ops::metrics::Metrics;
use clusterdns::ops::{self, OpsEndpoint, Readiness};
use clusterdns::serving::Server;
use clusterdns::sources::manifest::watch::ManifestSource;
use clusterdns::sources::{Filter, PodChanges, Publisher, Selection};
use clusterdns_zone::{PodsMode, WireName, ZoneConfig};
use tokio::sync::oneshot;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The allocator's options, set by the C runtime's start-up (glibc's or musl's, from
/// `.init_array`) before `main` and before the first allocation reserves mimalloc's first arena
/// (`ops::memory::configure`). clusterdns is Linux-only (recvmmsg, SO_REUSEPORT).
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static CONFIGURE_ALLOCATOR: extern "C" fn() = clusterdns::ops::memory::configure;

fn main() -> ExitCode {
    let config = match parse_flags() {
        Ok(config) => config,
        Err(error) => error.exit(),
    };
    if let Some(path) = &config.check_corefile {
        return match clusterdns::config::corefile::load(path) {
            Ok(plan) => {
                let blocks: usize = plan.ports.iter().map(|p| p.blocks.len()).sum();
                println!(
                    "{}: ok ({blocks} server blocks on {} ports)",
                    path.display(),
                    plan.ports.len()
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("clusterdns: {error}");
                ExitCode::FAILURE
            }
        };
    }
    ops::logging::init();
    ops::panics::install();
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("clusterdns: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Where the zone comes from, once started.
enum ZoneSource {
    /// Manifest files, polled by a thread until `stop` is set.
    Manifests {
        watcher: std::thread::JoinHandle<()>,
        stop: Arc<AtomicBool>,
    },
    /// The Kubernetes API; `synced` fires at the first complete publish.
    Kubernetes { synced: oneshot::Receiver<()> },
    /// No zone: node-local mode forwards every name.
    Nothing,
}

/// The flags, with CoreDNS's single-dash `-conf` accepted, and which were given explicitly.
fn parse_flags() -> Result<Config, clap::Error> {
    let args = std::env::args_os().map(|arg| match arg.to_str() {
        Some("-conf") => "--conf".into(),
        Some(text) if text.starts_with("-conf=") => format!("-{text}").into(),
        _ => arg,
    });
    let matches = Config::command().try_get_matches_from(args)?;
    let mut config = Config::from_arg_matches(&matches)?;
    config.explicit = (matches.ids())
        .filter(|id| {
            matches!(
                matches.value_source(id.as_str()),
                Some(
                    clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable
                )
            )
        })
        .map(|id| id.as_str().to_owned())
        .collect();
    Ok(config)
}

/// The plan: the Corefile's, else the flags'.
fn plan(config: &Config) -> Result<Plan, Box<dyn Error>> {
    config.check_corefile_flags()?;
    let plan = match &config.corefile {
        Some(path) => clusterdns::config::corefile::load(path)?,
        None => config.plan()?,
    };
    if plan.kubernetes.is_none() && !config.manifests.is_empty() {
        return Err("--manifests: the Corefile has no kubernetes directive to serve them".into());
    }
    Ok(plan)
}

/// What a failure was doing, prefixed to its message: `cannot start the control runtime: ...`.
fn doing<E: Error>(what: &'static str) -> impl FnOnce(E) -> Box<dyn Error> {
    move |error| format!("{what}: {error}").into()
}

/// Why serving ended.
enum Stop {
    /// SIGTERM or SIGINT.
    Signal,
    /// The server cannot go on (a forwarding loop); the process exits with this reason.
    Fatal(String),
}

fn run(config: Config) -> Result<(), Box<dyn Error>> {
    let plan = plan(&config)?;
    ops::logging::set_debug(plan.debug);
    ops::panics::set_recovery(!plan.debug);
    // The size the plan's forwarder took, not a second reckoning of it.
    let sized = (plan.ports.iter().flat_map(|port| &port.blocks))
        .find_map(|block| block.forward.as_ref())
        .map(|forward| forward.config.cache.capacity);
    if let (None, None, Some(answers)) = (&config.corefile, config.forward.cache_size, sized) {
        tracing::info!(
            answers,
            memory_limit_mib = clusterdns::forward::config::memory_limit().map(|b| b >> 20),
            "cache of upstream answers sized from the memory limit (--cache-size sets it)"
        );
    }
    let zone = match &plan.kubernetes {
        Some(k) => ZoneConfig {
            domain: k.domain.clone(),
            ttl: k.ttl,
            pods: k.pods,
            ignore_empty_service: k.ignore_empty_service,
            // The source reports only the Namespaces the selector matches.
            namespace_objects_only: k.namespace_labels.is_some(),
        },
        // Nothing answers from the zone; it stays empty.
        None => ZoneConfig {
            domain: WireName::from_dotted("cluster.local").unwrap_or_else(WireName::root),
            ttl: 5,
            pods: PodsMode::Disabled,
            ..ZoneConfig::default()
        },
    };
    let selection = plan
        .kubernetes
        .as_ref()
        .map(|k| Selection {
            labels: k.labels.clone(),
            namespace_labels: k.namespace_labels.clone(),
            endpoint_pod_names: k.endpoint_pod_names,
        })
        .unwrap_or_default();
    let pods = PodChanges {
        verified: zone.pods == PodsMode::Verified,
        addresses: plan.kubernetes.as_ref().is_some_and(|k| k.pod_addresses),
    };
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("clusterdns-control")
        .on_thread_park(clusterdns::ops::memory::release_freed)
        .enable_all()
        .build()
        .map_err(doing("cannot start the control runtime"))?;
    let server_label = (plan.ports.first())
        .and_then(|p| p.blocks.first())
        .and_then(|b| b.zones.first())
        .map_or_else(|| config.server_label(), |z| z.server_label.clone());
    let metrics = Arc::new(Metrics::new(server_label));
    let readiness = Arc::new(Readiness::default());
    let filter = Filter {
        namespaces: (plan.kubernetes.iter())
            .flat_map(|k| k.namespaces.iter().map(|n| n.as_str().into()))
            .collect(),
        no_endpoints: plan.kubernetes.as_ref().is_some_and(|k| k.no_endpoints),
    };
    let publisher = Publisher::new(zone).with_filter(filter);
    let store = publisher.store();

    let source = if let Some(kubernetes) = plan
        .kubernetes
        .as_ref()
        .filter(|_| config.manifests.is_empty())
    {
        let (kubeconfig, context) = match &kubernetes.kubeconfig {
            Some((path, context)) => (Some(path.as_path()), context.as_deref()),
            None => (None, None),
        };
        let client = control.block_on(clusterdns::sources::kubernetes::client(
            kubeconfig,
            context,
            kubernetes.endpoint.as_deref(),
            metrics.clone(),
        ))?;
        let synced = clusterdns::sources::kubernetes::start(
            client,
            pods,
            &selection,
            publisher,
            readiness.clone(),
            metrics.clone(),
            control.handle(),
        )
        .map_err(doing("cannot start the Kubernetes source"))?;
        tracing::info!("watching the Kubernetes API");
        ZoneSource::Kubernetes { synced }
    } else if plan.kubernetes.is_some() {
        start_manifests(&config, pods, selection, publisher, &readiness, &metrics)?
    } else {
        // Nothing to sync (node-local mode, or no `kubernetes`): ready as soon as it serves.
        readiness.set_synced();
        ZoneSource::Nothing
    };

    // The listen addresses must be on the node's interface before they can be bound. Dropping
    // `node_setup` undoes it, on every way out of this function.
    let node_setup = match config.mode {
        Mode::NodeLocal => Some(
            (config.node_local.setup(&config.listen))
                .apply(config.node_local.skip_teardown)
                .map_err(doing("cannot set up the node for node-local mode"))?,
        ),
        Mode::Cluster => None,
    };
    let serve = config.serve(&plan);
    let bound = Server::bind(&serve)?;
    let endpoints: Vec<(OpsEndpoint, std::net::SocketAddr)> = [
        (OpsEndpoint::Health, plan.health),
        (OpsEndpoint::Ready, plan.ready),
        (OpsEndpoint::Metrics, plan.metrics),
    ]
    .into_iter()
    .filter_map(|(endpoint, addr)| Some((endpoint, addr?)))
    .collect();
    let listeners = control.block_on(ops::bind(&endpoints))?;
    let mut ops_addrs = Vec::new();
    let mut ops_tasks = Vec::new();
    for listener in listeners {
        let addr = listener.local_addr()?;
        for endpoint in listener.endpoints() {
            ops_addrs.push(format!("{}={addr}", endpoint.path()));
        }
        if listener.endpoints().contains(&OpsEndpoint::Health) {
            ops_tasks.push(control.spawn(ops::probe_health(addr, metrics.clone())));
        }
        ops_tasks.push(control.spawn(ops::serve(listener, readiness.clone(), metrics.clone())));
    }

    let (signals, mut signal) = control
        .block_on(async { Signals::new() })
        .map_err(doing("cannot wait for signals"))?;
    let manifest_source = match source {
        ZoneSource::Kubernetes { synced } => {
            let wait = Duration::from_secs(config.startup_timeout);
            let outcome = control.block_on(async {
                tokio::select! {
                    result = tokio::time::timeout(wait, synced) => Some(result.is_ok()),
                    _ = signal.recv() => None,
                }
            });
            match outcome {
                Some(true) => {}
                Some(false) => tracing::warn!(
                    startup_timeout_s = config.startup_timeout,
                    "not yet synced with the Kubernetes API; answering anyway (cluster names \
                     get SERVFAIL and /ready fails until the first sync)"
                ),
                None => {
                    tracing::info!("signal received before serving; exiting");
                    return Ok(());
                }
            }
            None
        }
        ZoneSource::Manifests { watcher, stop } => Some((watcher, stop)),
        ZoneSource::Nothing => None,
    };

    let server = Arc::new(Server::serve(bound, store, &metrics)?);
    tracing::info!(addrs = ?server.local_addrs(), workers = serve.workers, ops = ?ops_addrs, mode = ?config.mode, "serving");
    let watcher = clusterdns::config::reload::Watcher::start(
        config.corefile.clone(),
        plan.clone(),
        server.clone(),
        metrics.clone(),
    )
    .map_err(doing("cannot start the configuration watcher"))?;
    let stopped = control.block_on(async {
        tokio::select! {
            _ = signal.recv() => Stop::Signal,
            reason = server.fatal() => Stop::Fatal(reason),
        }
    });
    readiness.set_lameduck();
    // A successor bound to our addresses (an upgrade with maxSurge) keeps the node's setup
    // and takes over the queries; without one, node-local rules go now, as NodeLocal DNSCache
    // removes them when it stops.
    let mut handed_over = server.successor_bound();
    if let Some(applied) = node_setup.as_ref().filter(|_| !handed_over) {
        applied.release();
    }
    match &stopped {
        Stop::Signal => {
            let lameduck = plan.lameduck;
            tracing::info!(
                lameduck_s = lameduck.as_secs_f64(),
                successor = handed_over,
                "signal received; lameduck: /ready fails, queries are still answered"
            );
            let interrupted = control.block_on(async {
                tokio::select! {
                    _ = tokio::time::sleep(lameduck) => false,
                    _ = signal.recv() => true,
                }
            });
            if interrupted {
                tracing::info!("second signal; stopping now");
            } else if !handed_over && config.handover_wait > 0 {
                handed_over = server.wait_for_successor(Duration::from_secs(config.handover_wait));
            }
        }
        Stop::Fatal(reason) => tracing::error!(%reason, "stopping"),
    }
    if handed_over {
        // Probes and scrapes of the shared endpoints go to the successor from now on.
        for task in &ops_tasks {
            task.abort();
        }
        tracing::info!("a successor serves our addresses; handing over");
    }
    watcher.stop();
    match Arc::try_unwrap(server) {
        Ok(server) => server.shutdown(),
        Err(_) => tracing::warn!("the server is still referenced; not waiting for its workers"),
    }
    if let Some((watcher, stop)) = manifest_source {
        stop.store(true, Ordering::Relaxed);
        let _ = watcher.join();
    }
    drop(node_setup);
    drop(signals);
    control.shutdown_timeout(Duration::from_millis(200));
    tracing::info!("stopped");
    match stopped {
        Stop::Signal => Ok(()),
        Stop::Fatal(reason) => Err(reason.into()),
    }
}

/// Loads the manifests (a bad file stops startup here), publishes the zone and starts polling.
fn start_manifests(
    config: &Config,
    pods: PodChanges,
    selection: Selection,
    publisher: Publisher,
    readiness: &Readiness,
    metrics: &Arc<Metrics>,
) -> Result<ZoneSource, Box<dyn Error>> {
    let loaded = ManifestSource::load(
        config.manifests.clone(),
        pods,
        selection,
        publisher,
        metrics.clone(),
    )?;
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
    readiness.set_synced();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = loaded
        .source
        .watch(Duration::from_millis(config.manifest_poll_ms), stop.clone())
        .map_err(doing("cannot start the manifest watcher"))?;
    Ok(ZoneSource::Manifests { watcher, stop })
}

/// SIGTERM and SIGINT, forwarded to one receiver by a task on the control runtime.
struct Signals(tokio::task::JoinHandle<()>);

impl Signals {
    /// Must run inside the runtime.
    fn new() -> std::io::Result<(Signals, tokio::sync::mpsc::UnboundedReceiver<()>)> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = interrupt.recv() => {}
                }
                if sender.send(()).is_err() {
                    return;
                }
            }
        });
        Ok((Signals(task), receiver))
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        self.0.abort();
    }
}
