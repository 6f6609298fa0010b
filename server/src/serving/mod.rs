//! Starting and stopping the listeners: binds every socket first (so a port that cannot be bound
//! stops startup before anything serves), then runs one UDP thread per worker socket and the TCP
//! listeners on a small tokio runtime. Forwarding runs on a runtime of its own whose threads
//! have a lower CPU priority ([`FORWARD_NICE`]): the forwarder's upstream exchanges and health
//! checks, UDP queries waiting on them, and the startup loop check. If our loop probe comes back
//! to us, the server reports it through [`Server::fatal`], and the binary stops with the reason
//! (as CoreDNS's `loop` plugin does) through the same way out as SIGTERM, so that node-local
//! teardown runs.

pub mod handover;
pub mod pending;
pub mod sockets;
pub mod tcp;
pub mod udp;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use arc_swap::ArcSwap;
use clusterdns_zone::Snapshot;
use tokio::sync::watch;

use crate::chain::Router;
use crate::config::plan::PortPlan;
use crate::config::ServeConfig;
use crate::ops::metrics::Metrics;
use crate::serving::pending::Pending;
use crate::serving::sockets::{bind, BindError};
use crate::serving::udp::{Sources, UdpForward};

/// How much lower the forwarding threads' CPU priority is than the listeners' (a nice value).
/// A flood of names outside the cluster that all miss the cache costs an upstream exchange each;
/// when that work and cluster answers want the same core, the scheduler gives the forwarding
/// threads about a sixteenth of it (CFS weights 70 against 1024), so cluster names keep being
/// answered at near full rate and the flood waits (then meets `max_concurrent` and
/// `--max-forward-pending`, answered REFUSED on the listener). That sixteenth still forwards
/// about 2,500 queries a second per core (24 µs each). With a core to spare, forwarding runs at
/// full speed. At +10 (a tenth of the core) the listeners kept 89% of it under a forwarded flood.
pub const FORWARD_NICE: libc::c_int = 12;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A socket could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// A thread or the runtime could not be started.
    #[error("cannot start workers: {0}")]
    Workers(#[from] std::io::Error),
}

/// Sockets bound for every address, not yet served.
pub struct Bound {
    /// Per port of the configuration, its bound addresses.
    ports: Vec<Vec<crate::serving::sockets::BoundAddress>>,
    config: ServeConfig,
}

/// A running server; dropping it without [`Server::shutdown`] leaves the workers running.
pub struct Server {
    addrs: Vec<SocketAddr>,
    /// The inodes of our UDP sockets, to tell a successor's sockets from ours.
    inodes: Vec<u64>,
    /// Per port, its router: what a reload swaps.
    routers: Vec<Arc<ArcSwap<Router>>>,
    stop_udp: Arc<AtomicBool>,
    stop_tcp: watch::Sender<bool>,
    udp_threads: Vec<JoinHandle<()>>,
    /// TCP listeners and connections.
    runtime: tokio::runtime::Runtime,
    /// Forwarding, at [`FORWARD_NICE`].
    forwarding: tokio::runtime::Runtime,
    /// The first fatal error (a forwarding loop), for [`Server::fatal`].
    fatal: watch::Sender<Option<String>>,
}

impl Server {
    /// Binds every address and starts answering from `store`.
    pub fn start(
        config: &ServeConfig,
        store: Arc<ArcSwap<Snapshot>>,
        metrics: &Metrics,
    ) -> Result<Server, StartError> {
        Server::serve(Server::bind(config)?, store, metrics)
    }

    /// Binds every address, so that a port that cannot be bound stops startup before anything
    /// else happens.
    pub fn bind(config: &ServeConfig) -> Result<Bound, StartError> {
        let workers = config.workers.max(1);
        let ports = (config.ports.iter())
            .map(|port| {
                (port.listen.iter())
                    .map(|&addr| bind(addr, workers))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Bound {
            ports,
            config: config.clone(),
        })
    }

    /// Starts answering from `store` on sockets already bound.
    pub fn serve(
        bound: Bound,
        store: Arc<ArcSwap<Snapshot>>,
        metrics: &Metrics,
    ) -> Result<Server, StartError> {
        let Bound { ports, config } = bound;
        let config = &config;
        let workers = config.workers.max(1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.min(4))
            .thread_name("clusterdns-tcp")
            .enable_all()
            .build()?;
        let forwarding = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.min(4))
            .thread_name("clusterdns-fwd")
            .on_thread_start(lower_priority)
            .enable_all()
            .build()?;
        let stop_udp = Arc::new(AtomicBool::new(false));
        let (stop_tcp, stop_rx) = watch::channel(false);
        let connections = tcp::Connections::new(config.max_tcp_connections);
        let pending = Pending::new(config.max_forward_pending);
        let limits = tcp::TcpLimits {
            idle: config.tcp_idle_timeout,
            read: config.tcp_read_timeout,
            write: config.tcp_write_timeout.unwrap_or(config.tcp_idle_timeout),
            pending: pending.clone(),
        };
        let forward = UdpForward {
            runtime: forwarding.handle().clone(),
            counters: metrics.dns_counters(true),
            pending: pending.clone(),
        };
        let mut addrs = Vec::new();
        let mut inodes = Vec::new();
        let mut udp_threads = Vec::new();
        let mut routers = Vec::new();
        let (fatal, _) = watch::channel(None);
        for (plan, bound) in config.ports.iter().zip(ports) {
            let router = Router::new(plan, metrics, forwarding.handle());
            check_loops(&router, &forwarding, &fatal);
            let router = Arc::new(ArcSwap::from_pointee(router));
            for address in bound {
                addrs.push(address.addr);
                for (i, socket) in address.udp.into_iter().enumerate() {
                    inodes.push(handover::inode(&socket)?);
                    let sources = Sources {
                        store: store.clone(),
                        router: router.clone(),
                    };
                    let stop = stop_udp.clone();
                    let size = config.max_udp_size;
                    let counters = metrics.dns_counters(false);
                    let forward = forward.clone();
                    let thread = std::thread::Builder::new()
                        .name(format!("clusterdns-udp-{i}"))
                        .spawn(move || {
                            crate::serving::udp::serve(
                                socket, sources, size, counters, forward, stop,
                            )
                        })?;
                    udp_threads.push(thread);
                }
                for listener in address.tcp {
                    let listener = {
                        let _guard = runtime.enter();
                        tokio::net::TcpListener::from_std(listener)?
                    };
                    runtime.spawn(crate::serving::tcp::serve(
                        listener,
                        store.clone(),
                        limits.clone(),
                        connections.clone(),
                        metrics.dns_counters(true),
                        router.clone(),
                        stop_rx.clone(),
                    ));
                }
            }
            routers.push(router);
        }
        Ok(Server {
            addrs,
            inodes,
            routers,
            stop_udp,
            stop_tcp,
            udp_threads,
            runtime,
            forwarding,
            fatal,
        })
    }

    /// Resolves with the reason once the server cannot go on (a forwarding loop was detected);
    /// the caller stops it as it would on SIGTERM.
    pub async fn fatal(&self) -> String {
        let mut receiver = self.fatal.subscribe();
        let reason = match receiver.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            // The sender lives as long as `self`: never reached while borrowed.
            Err(_) => std::future::pending().await,
        };
        reason
    }

    /// The bound addresses (ports resolved), in configuration order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Whether another process serves every one of our addresses ([`handover::others_bound`]).
    pub fn successor_bound(&self) -> bool {
        handover::others_bound(&self.addrs, &self.inodes)
    }

    /// Waits up to `wait` for another process to serve every one of our addresses; returns
    /// whether one does.
    pub fn wait_for_successor(&self, wait: std::time::Duration) -> bool {
        handover::wait_for_successor(&self.addrs, &self.inodes, wait)
    }

    /// Replaces the server blocks of every port with `ports` (the same ports, in the same
    /// order, as the plan the server started with): queries already being answered finish with
    /// the old chains, the next ones take the new.
    pub fn replace_routes(&self, ports: &[PortPlan], metrics: &Metrics) {
        for (router, plan) in self.routers.iter().zip(ports) {
            let new = Router::new(plan, metrics, self.forwarding.handle());
            check_loops(&new, &self.forwarding, &self.fatal);
            router.store(Arc::new(new));
        }
    }

    /// The routers of every port, for the hosts file watchers.
    pub fn routers(&self) -> &[Arc<ArcSwap<Router>>] {
        &self.routers
    }

    /// Stops taking queries, answers those already received, and waits for the workers.
    pub fn shutdown(self) {
        self.stop_udp.store(true, Ordering::Relaxed);
        let _ = self.stop_tcp.send(true);
        for thread in self.udp_threads {
            let _ = thread.join();
        }
        self.runtime
            .shutdown_timeout(std::time::Duration::from_secs(1));
        self.forwarding
            .shutdown_timeout(std::time::Duration::from_secs(1));
    }
}

/// Lowers the calling thread's CPU priority by [`FORWARD_NICE`] (on Linux a nice value is per
/// thread). Lowering needs no privilege; if it fails anyway, forwarding runs at the listeners'
/// priority, as before.
fn lower_priority() {
    // SAFETY: gettid and setpriority take no pointers; a thread may always renice itself down.
    let failed = unsafe {
        let thread = libc::gettid() as libc::id_t;
        let current = libc::getpriority(libc::PRIO_PROCESS, thread);
        libc::setpriority(libc::PRIO_PROCESS, thread, (current + FORWARD_NICE).min(19)) != 0
    };
    if failed {
        let error = std::io::Error::last_os_error();
        tracing::debug!(%error, "forwarding thread keeps the listeners' priority");
    }
}

/// Starts the loop probe of every forwarder of `router` that asks for one (CoreDNS `loop`): if
/// a probe comes back to us, the reason goes to `fatal`.
fn check_loops(
    router: &Router,
    runtime: &tokio::runtime::Runtime,
    fatal: &watch::Sender<Option<String>>,
) {
    for (forwarder, check) in router.forwarders() {
        if !check {
            continue;
        }
        let forwarder = forwarder.clone();
        let fatal = fatal.clone();
        runtime.spawn(async move {
            if let Err(error) = forwarder.check_loop().await {
                fatal.send_if_modified(|reason| {
                    reason.get_or_insert_with(|| error.to_string());
                    true
                });
            }
        });
    }
}
