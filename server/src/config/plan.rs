//! What the server is told to do, whichever way it was told: the command-line flags
//! ([`crate::config::Config::plan`]) or a Corefile ([`crate::config::corefile::plan`]) both become one
//! [`Plan`]. A plan is plain data, validated completely; the listeners are built from it
//! ([`crate::chain::Router`]) and a Corefile reload swaps the part that may change while
//! serving ([`Plan::routes`]) for a new one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clusterdns_zone::{PodsMode, Rcode, WireName};

use crate::chain::plugins::acl::Rule as AclRule;
use crate::chain::plugins::autopath::SearchPath;
use crate::chain::plugins::chaos::Chaos;
use crate::chain::plugins::dns64::Dns64;
use crate::chain::plugins::file::FilePlan;
use crate::chain::plugins::header::Header;
use crate::chain::plugins::hosts::HostsTable;
use crate::chain::plugins::k8s_external::K8sExternal;
use crate::chain::plugins::local::Local;
use crate::chain::plugins::nsid::Nsid;
use crate::chain::plugins::rewrite::Rule;
use crate::chain::plugins::template::Template;
use crate::forward::config::ForwardConfig;
use crate::sources::selector::LabelSelector;

/// Everything the server does.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The DNS servers: one per port, each with its server blocks.
    pub ports: Vec<PortPlan>,
    /// The cluster zone and where its objects come from; `None` when nothing is authoritative
    /// for a cluster (node-local mode, or a Corefile without `kubernetes`).
    pub kubernetes: Option<KubernetesPlan>,
    /// GET /health and the lameduck period after SIGTERM (CoreDNS `health`).
    pub health: Option<SocketAddr>,
    /// Time between SIGTERM and exit, while /ready fails and queries are still answered.
    pub lameduck: Duration,
    /// GET /ready (CoreDNS `ready`).
    pub ready: Option<SocketAddr>,
    /// GET /metrics (CoreDNS `prometheus`).
    pub metrics: Option<SocketAddr>,
    /// How often the Corefile is checked for changes (CoreDNS `reload`); `None`: never.
    pub reload: Option<Duration>,
    /// The files the plan was read from (the Corefile and its imports), for the reload watcher.
    pub files: Vec<PathBuf>,
    /// Debug-level logging for the process (CoreDNS `debug`, in any server block).
    pub debug: bool,
    /// The TCP timeouts a Corefile gives (CoreDNS `timeouts`); what it leaves out, the flags say.
    pub timeouts: Timeouts,
}

/// TCP timeouts (CoreDNS `timeouts`): `None` where the flags decide.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// How long a query may take to arrive once begun.
    pub read: Option<Duration>,
    /// How long an answer may take to be taken by the peer.
    pub write: Option<Duration>,
    /// How long a connection may wait for its next query.
    pub idle: Option<Duration>,
}

/// One port: the addresses bound for it and the server blocks its queries are routed to.
#[derive(Clone, Debug)]
pub struct PortPlan {
    /// Addresses bound over UDP and TCP (CoreDNS binds every interface unless `bind` says).
    pub listen: Vec<SocketAddr>,
    /// The server blocks on this port; a query goes to the one with the longest matching zone.
    pub blocks: Vec<BlockPlan>,
}

/// A zone a server block is for, with its metric labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockZone {
    /// The zone, lowercase wire format.
    pub zone: WireName,
    /// The `server` label of queries routed by this zone (`dns://:53`).
    pub server_label: String,
    /// The `zone` label (`.`, `cluster.local.`).
    pub zone_label: String,
}

/// One server block's plugin chain, in CoreDNS's plugin order (not the file's): nsid, bufsize,
/// log, local, dns64, any, loadbalance, rewrite, autopath, acl, cache, header, minimal,
/// template, hosts, k8s_external, kubernetes, file, loop, forward, whoami.
#[derive(Clone, Debug)]
pub struct BlockPlan {
    /// The zones it answers for.
    pub zones: Vec<BlockZone>,
    /// The ceiling on the EDNS payload size of its queries (CoreDNS `bufsize`).
    pub bufsize: Option<u16>,
    /// Query logging (CoreDNS `log`).
    pub log: Option<LogPlan>,
    /// Whether errors are logged (CoreDNS `errors`).
    pub errors: bool,
    /// AAAA records synthesized from A records (CoreDNS `dns64`).
    pub dns64: Option<Dns64>,
    /// Answer ANY queries with a short HINFO record (RFC 8482, CoreDNS `any`).
    pub any: bool,
    /// CH TXT answers about the server (CoreDNS `chaos`).
    pub chaos: Option<Chaos>,
    /// Rotate the address records of each answer (CoreDNS `loadbalance`).
    pub loadbalance: bool,
    /// The `rewrite` rules, in the order written (CoreDNS `rewrite`).
    pub rewrite: Vec<Rule>,
    /// Server-side search-path completion (CoreDNS `autopath`).
    pub autopath: Option<SearchPath>,
    /// Fixed answers for names matching a pattern (CoreDNS `template`), in order.
    pub templates: Vec<Template>,
    /// Names and addresses from a hosts file and inline entries (CoreDNS `hosts`).
    pub hosts: Option<HostsPlan>,
    /// The plugins of issue 19 ("The plugins operators add to their Corefile"), each in its
    /// own module of `chain::plugins`.
    pub extra: ExtraPlugins,
    /// The cluster zone's names, when this block serves them (CoreDNS `kubernetes`).
    pub kubernetes: Option<KubernetesRoute>,
    /// Zones read from master files (CoreDNS `file`).
    pub file: Option<FilePlan>,
    /// Forwarding of the rest, with the block's cache (CoreDNS `forward` and `cache`).
    pub forward: Option<ForwardPlan>,
    /// Whether what reaches the end of the chain is answered with the client's address
    /// (CoreDNS `whoami`) rather than `fallback`.
    pub whoami: bool,
    /// The rcode of a query no plugin answered: SERVFAIL as CoreDNS's chain ends, REFUSED for the
    /// flag-configured server (which has no chain to fall off).
    pub fallback: Rcode,
}

impl BlockPlan {
    /// A block for `zones` with no plugin yet, ending the chain with `fallback`.
    pub fn new(zones: Vec<BlockZone>, fallback: Rcode) -> Self {
        BlockPlan {
            zones,
            bufsize: None,
            log: None,
            errors: false,
            dns64: None,
            any: false,
            chaos: None,
            loadbalance: false,
            rewrite: Vec::new(),
            autopath: None,
            templates: Vec::new(),
            hosts: None,
            extra: ExtraPlugins::default(),
            kubernetes: None,
            file: None,
            forward: None,
            whoami: false,
            fallback,
        }
    }
}

/// The plugins a block may have beside the cluster's: none unless its Corefile names them.
#[derive(Clone, Debug, Default)]
pub struct ExtraPlugins {
    /// The server's identifier in answers that ask for it (CoreDNS `nsid`).
    pub nsid: Option<Nsid>,
    /// Answers for `localhost.` and the loopback reverse zones (CoreDNS `local`).
    pub local: Option<Local>,
    /// Rules on the client's address and the query's type, in order (CoreDNS `acl`).
    pub acl: Vec<AclRule>,
    /// The flags of the answers of the plugins after it (CoreDNS `header`).
    pub header: Option<Header>,
    /// Positive answers without their authority and additional records (CoreDNS `minimal`).
    pub minimal: bool,
    /// Services' external addresses in other zones (CoreDNS `k8s_external`).
    pub k8s_external: Option<K8sExternal>,
}

/// Query logging options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogPlan {
    /// Names logged (lowercase wire format): queries at or under one of them.
    pub names: Vec<WireName>,
    /// The line format, with CoreDNS's placeholders (`{remote}`, `{type}`, `{rcode}`, ...).
    pub format: String,
    /// Which responses are logged.
    pub classes: LogClasses,
}

/// The response classes `log { class }` selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogClasses {
    /// NOERROR with records.
    pub success: bool,
    /// NXDOMAIN, or NOERROR without records.
    pub denial: bool,
    /// SERVFAIL, NOTIMP, REFUSED and the other errors.
    pub error: bool,
}

/// The `hosts` plugin of one block.
#[derive(Clone, Debug)]
pub struct HostsPlan {
    /// The hosts file, re-read every `reload` when it changes (`None`: inline entries only).
    pub file: Option<PathBuf>,
    /// Entries written in the Corefile, in hosts-file syntax.
    pub inline: Vec<String>,
    /// Zones the plugin answers (names outside are passed on), dotted.
    pub zones: Vec<String>,
    /// TTL of its records.
    pub ttl: u32,
    /// Whether PTR records are not derived from the entries.
    pub no_reverse: bool,
    /// How often the file is checked for changes (zero: never).
    pub reload: Duration,
    /// Names for which a miss goes on down the chain instead of failing.
    pub fallthrough: Fallthrough,
    /// The file's text as first read (`None`: no file, or it does not exist yet).
    pub text: Option<String>,
    /// The table as first read.
    pub table: HostsTable,
}

/// Where a plugin lets a miss go on to the next plugin (CoreDNS `fallthrough [ZONES...]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fallthrough {
    /// Lowercase wire-format zones; empty means none, the root means every name.
    pub zones: Vec<WireName>,
}

impl Fallthrough {
    /// Every name falls through.
    pub fn all() -> Self {
        Fallthrough {
            zones: vec![WireName::root()],
        }
    }

    /// Whether a miss for `qname` (lowercase wire format) goes on.
    pub fn covers(&self, qname: &[u8]) -> bool {
        self.zones
            .iter()
            .any(|zone| clusterdns_zone::name::is_subdomain(qname, zone.as_bytes()))
    }
}

/// The cluster zone and its source (one per server: the snapshot has one domain).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubernetesPlan {
    /// The cluster domain.
    pub domain: WireName,
    /// TTL of its records.
    pub ttl: u32,
    /// Pod records.
    pub pods: PodsMode,
    /// The API server's URL (CoreDNS `endpoint`), instead of the kubeconfig's.
    pub endpoint: Option<String>,
    /// The kubeconfig file (CoreDNS `kubeconfig`) and its context.
    pub kubeconfig: Option<(PathBuf, Option<String>)>,
    /// Only these namespaces are served (CoreDNS `namespaces`); empty: all.
    pub namespaces: Vec<String>,
    /// No endpoint records: EndpointSlices are not watched (CoreDNS `noendpoints`).
    pub no_endpoints: bool,
    /// Pods are read for the client index, a Pod's address → its namespace, which
    /// search-path completion (`autopath @kubernetes`) asks: a few bytes per Pod, in any
    /// `pods` mode.
    pub pod_addresses: bool,
    /// An endpoint without a hostname is named by its Pod (CoreDNS `endpoint_pod_names`).
    pub endpoint_pod_names: bool,
    /// A ClusterIP Service without a ready endpoint is NXDOMAIN (CoreDNS `ignore
    /// empty_service`).
    pub ignore_empty_service: bool,
    /// Only Services, EndpointSlices and Pods whose labels match (CoreDNS `labels`).
    pub labels: Option<LabelSelector>,
    /// Only namespaces whose Namespace's labels match (CoreDNS `namespace_labels`).
    pub namespace_labels: Option<LabelSelector>,
}

/// How a block answers the cluster zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubernetesRoute {
    /// Reverse zones it is authoritative for (lowercase wire format): a PTR name under one that
    /// the zone does not know is NXDOMAIN, unless it falls through.
    pub reverse: Vec<WireName>,
    /// Names whose NXDOMAIN goes on to the next plugin instead.
    pub fallthrough: Fallthrough,
}

/// Forwarding of one block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardPlan {
    /// Names forwarded: at or under this zone (CoreDNS `forward FROM`).
    pub from: WireName,
    /// Names never forwarded (CoreDNS `except`).
    pub except: Vec<WireName>,
    /// Upstreams, health, policy and the block's cache.
    pub config: ForwardConfig,
    /// Whether the startup loop probe is sent (CoreDNS `loop`).
    pub loop_check: bool,
}

impl KubernetesRoute {
    /// Authoritative for PTR names of cluster addresses, passing other reverse names on (the
    /// flag-configured server; kubeadm's `fallthrough in-addr.arpa ip6.arpa`).
    pub fn reverse_fallthrough() -> Self {
        let reverse: Vec<WireName> = ["in-addr.arpa", "ip6.arpa"]
            .iter()
            .filter_map(|z| WireName::from_dotted(z))
            .collect();
        KubernetesRoute {
            fallthrough: Fallthrough {
                zones: reverse.clone(),
            },
            reverse,
        }
    }
}

impl ForwardPlan {
    /// Whether `qname` (lowercase wire format) is forwarded.
    pub fn takes(&self, qname: &[u8]) -> bool {
        use clusterdns_zone::name::is_subdomain;
        is_subdomain(qname, self.from.as_bytes())
            && !self
                .except
                .iter()
                .any(|e| is_subdomain(qname, e.as_bytes()))
    }
}

impl Plan {
    /// Every address bound for DNS, all ports together.
    pub fn listen(&self) -> Vec<SocketAddr> {
        self.ports.iter().flat_map(|p| p.listen.clone()).collect()
    }

    /// What a reload cannot change without a restart, as text to compare: the bound addresses,
    /// the operations endpoints and the cluster zone's source. `None` when equal.
    pub fn restart_needed(&self, new: &Plan) -> Option<String> {
        if self.listen() != new.listen() {
            return Some(format!(
                "the listen addresses changed ({:?} to {:?})",
                self.listen(),
                new.listen()
            ));
        }
        if (self.health, self.ready, self.metrics) != (new.health, new.ready, new.metrics) {
            return Some("the health, ready or prometheus address changed".into());
        }
        if self.timeouts != new.timeouts {
            return Some("the TCP timeouts changed".into());
        }
        if self.kubernetes != new.kubernetes {
            return Some("the kubernetes zone, source or record options changed".into());
        }
        None
    }
}
