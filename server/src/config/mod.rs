//! Command-line configuration: one plain [`Config`], parsed by clap and validated completely
//! before any socket is bound. Defaults mirror CoreDNS where it has the same option.

pub mod corefile;
pub mod plan;
pub mod reload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use clusterdns_zone::{PodsMode, WireName, ZoneConfig};

use crate::chain::plugins::autopath::{search_domains, SearchPath};
use crate::config::plan::{
    BlockPlan, BlockZone, ForwardPlan, KubernetesPlan, KubernetesRoute, Plan, PortPlan,
};
use crate::forward::config::{check_no_loop, ForwardArgs, ForwardConfig, ForwardConfigError};
use crate::nodelocal::{NodeLocalArgs, NodeLocalError};

/// What the server is (`--mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// The cluster DNS (CoreDNS's job): answers --domain from Kubernetes objects, forwards the
    /// rest to upstreams.
    Cluster,
    /// A cache on each node (NodeLocal DNSCache's job): no zone; --domain and the reverse zones
    /// go to --cluster-dns over TCP, the rest to upstreams, and every answer is cached.
    NodeLocal,
}

/// Pod record mode (CoreDNS `kubernetes { pods ... }`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PodsArg {
    /// No pod records.
    Disabled,
    /// `a-b-c-d.<ns>.pod.<zone>` answers the address it spells (kubeadm's default).
    Insecure,
    /// Only addresses of existing Pods in that namespace.
    Verified,
}

/// clusterdns: a Kubernetes cluster DNS server.
#[derive(Clone, Debug, Parser)]
#[command(name = "clusterdns", version, about, long_about = None)]
pub struct Config {
    /// What this server is: the cluster's DNS, or a caching forwarder on each node.
    #[arg(long, value_enum, default_value_t = Mode::Cluster)]
    pub mode: Mode,

    /// Serve as this CoreDNS Corefile says (CoreDNS's `-conf`, which is accepted too): its
    /// server blocks, ports and plugins replace the flags that say the same things, which may
    /// then not be given; re-read on change when it has `reload`.
    #[arg(long = "corefile", visible_alias = "conf", value_name = "PATH")]
    pub corefile: Option<PathBuf>,

    /// Check this Corefile (grammar, imports, every directive and option) and exit: 0 when it
    /// can be served, else 1 with the file, line and token of the first problem.
    #[arg(long, value_name = "PATH", conflicts_with = "corefile")]
    pub check_corefile: Option<PathBuf>,

    /// The flags given on the command line or through the environment (not defaults): a
    /// Corefile refuses the ones it replaces.
    #[arg(skip)]
    pub explicit: Vec<String>,

    /// Serve Kubernetes manifests instead of watching the API: a file or a directory of
    /// .yaml/.yml/.json files (repeatable). Multi-document YAML and `kind: List` load as
    /// `kubectl get -o yaml` prints them. Files are re-read when they change.
    #[arg(long = "manifests", value_name = "PATH")]
    pub manifests: Vec<PathBuf>,

    /// Watch the Kubernetes API server this kubeconfig names [default without --manifests:
    /// $KUBECONFIG, ~/.kube/config, then the pod's service account].
    #[arg(long, value_name = "PATH", conflicts_with = "manifests")]
    pub kubeconfig: Option<PathBuf>,

    /// Seconds to wait for the first sync with the API before answering anyway; until it
    /// completes, cluster names answer SERVFAIL and /ready fails (CoreDNS `startup_timeout`).
    #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub startup_timeout: u64,

    /// Seconds between SIGTERM and exit: /ready fails at once, queries are still answered, then
    /// listeners close and TCP connections drain (CoreDNS `health { lameduck }`).
    #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub lameduck: u64,

    /// Address of the liveness endpoint GET /health.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
    pub health: SocketAddr,

    /// Address of the readiness endpoint GET /ready (200 once synced, 503 before and in lameduck).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8181")]
    pub ready: SocketAddr,

    /// Address of the Prometheus endpoint GET /metrics (CoreDNS metric names).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:9153")]
    pub metrics: SocketAddr,

    /// Address to answer DNS on, over UDP and TCP (repeatable).
    #[arg(long = "listen", value_name = "ADDR", default_values_t = [
        SocketAddr::from(([0, 0, 0, 0], 53)),
        SocketAddr::from(([0u16; 8], 53)),
    ])]
    pub listen: Vec<SocketAddr>,

    /// Worker threads, each with its own UDP and TCP socket per address [default: the CPUs this
    /// process may use, respecting CPU affinity and the cgroup CPU quota].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,

    /// The cluster domain (CoreDNS `kubernetes cluster.local`).
    #[arg(long, value_name = "DOMAIN", default_value = "cluster.local")]
    pub domain: String,

    /// TTL of cluster records in seconds, 0-3600 (CoreDNS `ttl`, default 5).
    #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=3600))]
    pub ttl: u32,

    /// Pod records under pod.<domain> (CoreDNS `pods`).
    #[arg(long, value_enum, default_value_t = PodsArg::Insecure)]
    pub pods: PodsArg,

    /// Largest UDP response sent, whatever larger size a client's EDNS asks for (512-65535).
    #[arg(long, value_name = "BYTES", default_value_t = 4096, value_parser = clap::value_parser!(u16).range(512..))]
    pub max_udp_size: u16,

    /// Seconds an idle TCP connection stays open (and a peer that reads no answer is waited for).
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub tcp_idle_timeout: u64,

    /// Seconds a TCP query may take to arrive once its first byte has: a client that drips a
    /// query slower is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub tcp_read_timeout: u64,

    /// Queries waiting on upstreams at once, over UDP and TCP together (one over TCP counts
    /// 16: it waits with a 64 KiB buffer); past it, a query that
    /// misses the cache is answered REFUSED at once, so a flood of names that all miss (random
    /// names) cannot grow the server's memory without bound. Cluster names never wait on it.
    /// Each waiting query holds about 10 KiB: the default's 20 MiB keep the largest promised
    /// cluster inside the Deployment's 170Mi limit under a flood.
    #[arg(long, value_name = "N", default_value_t = 2048, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_forward_pending: u32,

    /// Open TCP connections allowed at once; past it, the connection idle the longest is
    /// closed to make room for a new one (RFC 7766 §6.2.3).
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tcp_connections: u32,

    /// Server-side search-path completion (CoreDNS `autopath @kubernetes`): a query from a Pod
    /// for `<name>.<its namespace>.svc.<domain>` is answered with what its resolver's search
    /// path ends at (a CNAME to the name that exists, then its records). The search domains
    /// after the cluster's are those of --resolv-conf. Watches Pods for their addresses.
    #[arg(long)]
    pub autopath: bool,

    /// On SIGTERM, after lameduck, seconds to wait for a successor process to bind the same
    /// addresses (SO_REUSEPORT) before this one stops taking queries: an upgrade that drops
    /// nothing. 0 stops at once; a successor already there takes over either way.
    #[arg(long, value_name = "SECONDS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub handover_wait: u64,

    /// How often manifest files are checked for changes, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(10..=60000))]
    pub manifest_poll_ms: u64,

    /// Forwarding of names outside the cluster zone, and the cache of upstream answers.
    #[command(flatten)]
    pub forward: ForwardArgs,

    /// Node-local mode: the cluster DNS and the node's network setup.
    #[command(flatten)]
    pub node_local: NodeLocalArgs,
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--domain` is not a valid domain name.
    #[error("--domain {0:?}: not a valid domain name")]
    Domain(String),
    /// No `--listen` address.
    #[error("--listen: at least one address is needed")]
    NoListen,
    /// The upstreams or cache flags cannot be used.
    #[error(transparent)]
    Forward(#[from] ForwardConfigError),
    /// The node-local flags cannot be used.
    #[error(transparent)]
    NodeLocal(#[from] NodeLocalError),
    /// A flag that the Corefile replaces was given with it.
    #[error("--{flag} cannot be given with a Corefile: {instead}")]
    ReplacedByCorefile {
        /// The flag.
        flag: String,
        /// Where the Corefile says it.
        instead: &'static str,
    },
}

/// The flags a Corefile replaces, with the directive that says the same.
pub const REPLACED_BY_COREFILE: [(&str, &str); 22] = [
    ("mode", "node-local mode is configured by flags only"),
    (
        "listen",
        "the ports are the server block keys, the addresses `bind`",
    ),
    ("domain", "use `kubernetes ZONE`"),
    ("ttl", "use `kubernetes { ttl }`"),
    ("pods", "use `kubernetes { pods }`"),
    ("autopath", "use `autopath @kubernetes`"),
    ("kubeconfig", "use `kubernetes { kubeconfig }`"),
    ("health", "use `health ADDRESS`"),
    ("ready", "use `ready ADDRESS`"),
    ("metrics", "use `prometheus ADDRESS`"),
    ("lameduck", "use `health { lameduck }`"),
    ("upstreams", "use `forward . ADDRESS...`"),
    ("resolv_conf", "use `forward . /etc/resolv.conf`"),
    ("policy", "use `forward { policy }`"),
    ("max_fails", "use `forward { max_fails }`"),
    ("health_check_ms", "use `forward { health_check }`"),
    ("max_concurrent", "use `forward { max_concurrent }`"),
    ("cache_ttl", "use `cache TTL`"),
    ("cache_denial_ttl", "use `cache { denial }`"),
    (
        "cache_size",
        "use `cache { success }` and `cache { denial }`",
    ),
    ("cache_prefetch", "use `cache { prefetch }`"),
    ("cache_serve_stale", "use `cache { serve_stale }`"),
];

impl Config {
    /// The zone configuration these flags describe.
    pub fn zone(&self) -> Result<ZoneConfig, ConfigError> {
        let domain = WireName::from_dotted(&self.domain)
            .filter(|d| d.as_bytes().len() > 1)
            .ok_or_else(|| ConfigError::Domain(self.domain.clone()))?;
        Ok(ZoneConfig {
            domain,
            ttl: self.ttl,
            pods: match self.pods {
                PodsArg::Disabled => PodsMode::Disabled,
                PodsArg::Insecure => PodsMode::Insecure,
                PodsArg::Verified => PodsMode::Verified,
            },
            ..ZoneConfig::default()
        })
    }

    /// Refuses the flags a Corefile replaces when one is given.
    pub fn check_corefile_flags(&self) -> Result<(), ConfigError> {
        if self.corefile.is_none() {
            return Ok(());
        }
        for (flag, instead) in REPLACED_BY_COREFILE {
            if self.explicit.iter().any(|given| given == flag) {
                return Err(ConfigError::ReplacedByCorefile {
                    flag: flag.replace('_', "-").replace("upstreams", "upstream"),
                    instead,
                });
            }
        }
        Ok(())
    }

    /// The plan these flags describe: one server block for every zone, the cluster domain
    /// answered from the zone (reverse names it does not own fall through) and the rest
    /// forwarded; in node-local mode, everything forwarded.
    pub fn plan(&self) -> Result<Plan, ConfigError> {
        self.validate()?;
        let zone = self.zone()?;
        let server_label = self.server_label();
        let block_zone = |zone: WireName, zone_label: String| BlockZone {
            zone,
            server_label: server_label.clone(),
            zone_label,
        };
        let domain_label = zone.domain.to_dotted();
        let zones = vec![
            block_zone(zone.domain.clone(), domain_label),
            block_zone(WireName::root(), ".".into()),
        ];
        let cluster = self.mode == Mode::Cluster;
        let kubernetes = cluster.then(KubernetesRoute::reverse_fallthrough);
        let autopath = (cluster && self.autopath).then(|| SearchPath {
            cluster_zone: Some(zone.domain.clone()),
            // A resolv.conf that cannot be read has no search domains to add.
            domains: search_domains(
                &std::fs::read_to_string(&self.forward.resolv_conf).unwrap_or_default(),
            ),
        });
        let block = BlockPlan {
            kubernetes,
            autopath,
            forward: Some(ForwardPlan {
                from: WireName::root(),
                except: Vec::new(),
                config: self.forward_config()?,
                loop_check: true,
            }),
            ..BlockPlan::new(zones, clusterdns_zone::Rcode::Refused)
        };
        Ok(Plan {
            ports: vec![PortPlan {
                listen: self.listen.clone(),
                blocks: vec![block],
            }],
            kubernetes: cluster.then(|| KubernetesPlan {
                domain: zone.domain.clone(),
                ttl: zone.ttl,
                pods: zone.pods,
                endpoint: None,
                kubeconfig: self.kubeconfig.clone().map(|path| (path, None)),
                namespaces: Vec::new(),
                no_endpoints: false,
                pod_addresses: self.autopath,
                endpoint_pod_names: false,
                ignore_empty_service: false,
                labels: None,
                namespace_labels: None,
            }),
            health: Some(self.health),
            lameduck: Duration::from_secs(self.lameduck),
            ready: Some(self.ready),
            metrics: Some(self.metrics),
            reload: None,
            files: Vec::new(),
            debug: false,
            timeouts: plan::Timeouts::default(),
        })
    }

    /// Checks every value; called before anything is bound or read.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.zone()?;
        if self.listen.is_empty() {
            return Err(ConfigError::NoListen);
        }
        match self.mode {
            Mode::Cluster => {
                if let Some(flag) = self.node_local.given() {
                    let mode = "node-local";
                    return Err(NodeLocalError::WrongMode { flag, mode }.into());
                }
            }
            Mode::NodeLocal => {
                let flag = if !self.manifests.is_empty() {
                    Some("--manifests")
                } else {
                    self.kubeconfig.as_ref().map(|_| "--kubeconfig")
                };
                let flag = flag.or(self.autopath.then_some("--autopath"));
                if let Some(flag) = flag {
                    let mode = "cluster";
                    return Err(NodeLocalError::WrongMode { flag, mode }.into());
                }
                self.node_local.validate(&self.listen)?;
            }
        }
        self.forward_config()?;
        Ok(())
    }

    /// The forwarding configuration: in node-local mode with the route to the cluster DNS,
    /// which may not be one of our own addresses either.
    pub fn forward_config(&self) -> Result<ForwardConfig, ConfigError> {
        let mut forward = self.forward.config(&self.listen)?;
        if self.mode == Mode::NodeLocal {
            let route = self.node_local.route(self.zone()?.domain.as_bytes())?;
            check_no_loop(&[route.server], &self.listen)?;
            forward.cluster = Some(route);
        }
        Ok(forward)
    }

    /// The `server` label of DNS metrics, as CoreDNS writes it for `.:53`: `dns://:<port>`.
    pub fn server_label(&self) -> String {
        let port = self.listen.first().map_or(53, SocketAddr::port);
        format!("dns://:{port}")
    }

    /// The number of workers: `--threads`, else what this process may use.
    pub fn worker_count(&self) -> usize {
        self.threads.map_or_else(available_cpus, usize::from)
    }

    /// The serving options of these flags for the DNS servers of `plan`.
    pub fn serve(&self, plan: &Plan) -> ServeConfig {
        ServeConfig {
            ports: plan.ports.clone(),
            workers: self.worker_count(),
            max_udp_size: self.max_udp_size,
            tcp_idle_timeout: (plan.timeouts.idle)
                .unwrap_or(Duration::from_secs(self.tcp_idle_timeout)),
            tcp_read_timeout: (plan.timeouts.read)
                .unwrap_or(Duration::from_secs(self.tcp_read_timeout)),
            tcp_write_timeout: plan.timeouts.write,
            max_tcp_connections: self.max_tcp_connections as usize,
            max_forward_pending: self.max_forward_pending as usize,
        }
    }
}

/// The CPUs this process may run on: the standard library reads the affinity mask and the
/// cgroup (v1 and v2) CPU quota, rounding the quota down, never below one.
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What the listeners need to know.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The DNS servers: addresses to bind (UDP and TCP each) and their server blocks.
    pub ports: Vec<PortPlan>,
    /// Workers per address.
    pub workers: usize,
    /// Ceiling on UDP response size.
    pub max_udp_size: u16,
    /// Idle timeout of TCP connections.
    pub tcp_idle_timeout: Duration,
    /// How long a TCP query may take to arrive once begun.
    pub tcp_read_timeout: Duration,
    /// How long a TCP answer may take to be taken by the peer (`None`: the idle timeout).
    pub tcp_write_timeout: Option<Duration>,
    /// Bound on open TCP connections.
    pub max_tcp_connections: usize,
    /// Bound on queries waiting on upstreams, UDP and TCP together.
    pub max_forward_pending: usize,
}

impl ServeConfig {
    /// Loopback on an ephemeral port with one worker, answering the zone and refusing other
    /// names: for tests.
    pub fn loopback() -> Self {
        let zone = BlockZone {
            zone: WireName::root(),
            server_label: "dns://:53".into(),
            zone_label: ".".into(),
        };
        let block = BlockPlan {
            kubernetes: Some(KubernetesRoute::reverse_fallthrough()),
            ..BlockPlan::new(vec![zone], clusterdns_zone::Rcode::Refused)
        };
        ServeConfig {
            ports: vec![PortPlan {
                listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
                blocks: vec![block],
            }],
            workers: 1,
            max_udp_size: 4096,
            tcp_idle_timeout: Duration::from_secs(10),
            tcp_read_timeout: Duration::from_secs(2),
            tcp_write_timeout: None,
            max_tcp_connections: 1024,
            max_forward_pending: 2048,
        }
    }

    /// This configuration with names outside the zone forwarded as `forward` says: for tests.
    pub fn with_forward(mut self, forward: ForwardConfig) -> Self {
        for block in self.ports.iter_mut().flat_map(|p| p.blocks.iter_mut()) {
            block.forward = Some(ForwardPlan {
                from: WireName::root(),
                except: Vec::new(),
                config: forward.clone(),
                loop_check: true,
            });
        }
        self
    }
}
