//! Flags of the forwarder and its cache, as a clap flag group to flatten into the server's
//! `Config`, and their validation into a plain [`ForwardConfig`]. Defaults mirror CoreDNS's
//! `forward` and `cache` plugins, and each says which option it mirrors.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use clusterdns_zone::answer::ADVERTISED_PAYLOAD;
use clusterdns_zone::name::is_subdomain;
use clusterdns_zone::WireName;

use super::resolv::{parse_upstream, read_nameservers};
use super::tls::TlsUpstreams;

/// The order in which upstreams are tried (CoreDNS `forward { policy }`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Policy {
    /// A random healthy upstream first, then the others in random order.
    Random,
    /// Each query starts at the next upstream in turn.
    RoundRobin,
    /// Always in the given order: the first healthy upstream takes every query.
    Sequential,
}

/// Forwarding and cache flags (CoreDNS `forward . /etc/resolv.conf` and `cache 30`).
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Forwarding and cache (names outside the cluster zone)")]
pub struct ForwardArgs {
    /// Upstream resolver as ip[:port], port 53 unless given (repeatable) [default: the
    /// nameserver lines of --resolv-conf].
    #[arg(long = "upstream", value_name = "ADDR", value_parser = parse_upstream)]
    pub upstreams: Vec<SocketAddr>,

    /// File whose `nameserver` lines are the upstreams when no --upstream is given.
    #[arg(long, value_name = "PATH", default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,

    /// How upstreams are picked (CoreDNS `policy`, default random).
    #[arg(long, value_enum, default_value_t = Policy::Random)]
    pub policy: Policy,

    /// Milliseconds to wait for one upstream before trying another.
    #[arg(long, value_name = "MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub forward_timeout_ms: u64,

    /// Failures in a row that mark an upstream down until a health check succeeds
    /// (CoreDNS `max_fails`, default 2).
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_fails: u32,

    /// Milliseconds between health checks (`. NS` queries) of an upstream marked down
    /// (CoreDNS `health_check`, default 0.5 s).
    #[arg(long, value_name = "MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub health_check_ms: u64,

    /// Forwarded queries in flight at once; more are answered REFUSED (CoreDNS
    /// `max_concurrent`, 1000 as the kubeadm-era CoreDNS deployments use).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent: u32,

    /// Largest TTL, in seconds, of a cached answer (CoreDNS `cache 30`).
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub cache_ttl: u32,

    /// Largest TTL, in seconds, of a cached NXDOMAIN or NODATA answer (CoreDNS `denial`).
    #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub cache_denial_ttl: u32,

    /// Seconds a SERVFAIL answer is cached; at most 300 (CoreDNS `servfail`, RFC 2308 §7.1).
    #[arg(long, value_name = "SECONDS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=300))]
    pub cache_servfail_ttl: u32,

    /// Answers the cache holds at most; past it the least recently hit are evicted. Default:
    /// sized from the memory limit of the container (its cgroup): three quarters of what is left
    /// past 48 MiB, at least 10,000; 500,000 without a limit.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub cache_size: Option<u32>,

    /// Refresh an answer in the background when it has been hit this many times, no two hits a
    /// minute apart, and has 10% of its TTL left or less; 0 disables prefetch (CoreDNS
    /// `prefetch`, off by default).
    #[arg(long, value_name = "HITS", default_value_t = 0)]
    pub cache_prefetch: u32,

    /// Seconds past its expiry that an answer may still be served, with TTL 30, when every
    /// upstream fails; 0 disables serve-stale (CoreDNS `serve_stale`, RFC 8767; off by default).
    #[arg(long, value_name = "SECONDS", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=604_800))]
    pub cache_serve_stale: u32,
}

/// Cache limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Cap on the TTL of positive answers.
    pub max_ttl: u32,
    /// Cap on the TTL of NXDOMAIN and NODATA answers.
    pub max_denial_ttl: u32,
    /// Cap on the TTL of SERVFAIL answers (0: not cached).
    pub servfail_ttl: u32,
    /// Entries at most.
    pub capacity: usize,
    /// Hits that make an entry worth prefetching (0: never).
    pub prefetch_hits: u32,
    /// Hits count toward `prefetch_hits` while no two are this far apart (CoreDNS `prefetch
    /// AMOUNT DURATION`, default 1m).
    pub prefetch_window: Duration,
    /// An entry is prefetched once its remaining TTL is at most this percentage of the TTL it
    /// was stored with, rounded up (CoreDNS `prefetch ... PERCENTAGE%`, default 10).
    pub prefetch_percent: u8,
    /// How long after expiry an entry may be served stale (zero: never).
    pub serve_stale: Duration,
    /// When a stale entry is served (CoreDNS `serve_stale ... REFRESH_MODE`).
    pub stale_refresh: StaleRefresh,
    /// Floor on the TTL of cached positive answers (CoreDNS `success ... MINTTL`).
    pub min_ttl: u32,
    /// Floor on the TTL of cached NXDOMAIN and NODATA answers (CoreDNS `denial ... MINTTL`).
    pub min_denial_ttl: u32,
    /// Serve the TTL an answer was stored with instead of counting it down (`keepttl`).
    pub keep_ttl: bool,
    /// What is cached, by name (CoreDNS `cache [ZONES]` and `disable`).
    pub scope: CacheScope,
}

/// When an expired entry within `serve_stale` is served (RFC 8767 §4 allows both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaleRefresh {
    /// At once, with a refresh started in the background (CoreDNS's default, `immediate`).
    Immediate,
    /// Only after the upstreams failed to refresh it (`verify`; the flags' behaviour).
    Verify,
}

/// Which names' answers are cached: lowercase wire-format zones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheScope {
    /// Names at or under one of these are cached; empty: nothing is (no `cache` directive).
    pub zones: Vec<WireName>,
    /// Positive answers for names under these are not cached (`disable success`).
    pub no_success: Vec<WireName>,
    /// Negative answers for names under these are not cached (`disable denial`).
    pub no_denial: Vec<WireName>,
}

impl CacheScope {
    /// Every name cached.
    pub fn everything() -> Self {
        CacheScope {
            zones: vec![WireName::root()],
            no_success: Vec::new(),
            no_denial: Vec::new(),
        }
    }

    /// Whether an answer of `kind` for `name` (lowercase wire format) may be cached.
    pub fn allows(&self, name: &[u8], positive: bool) -> bool {
        let under = |zones: &[WireName]| zones.iter().any(|z| is_subdomain(name, z.as_bytes()));
        under(&self.zones)
            && !under(if positive {
                &self.no_success
            } else {
                &self.no_denial
            })
    }
}

impl Default for CacheConfig {
    /// The flag defaults.
    fn default() -> Self {
        CacheConfig {
            max_ttl: 30,
            max_denial_ttl: 5,
            servfail_ttl: 2,
            capacity: 10_000,
            prefetch_hits: 0,
            prefetch_window: Duration::from_secs(60),
            prefetch_percent: 10,
            serve_stale: Duration::ZERO,
            stale_refresh: StaleRefresh::Verify,
            min_ttl: 0,
            min_denial_ttl: 0,
            keep_ttl: false,
            scope: CacheScope::everything(),
        }
    }
}

/// A validated forwarding configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardConfig {
    /// Upstream resolvers, in the order given.
    pub upstreams: Vec<SocketAddr>,
    /// How upstreams are picked.
    pub policy: Policy,
    /// Time allowed to one upstream for one query.
    pub timeout: Duration,
    /// Failures in a row that mark an upstream down.
    pub max_fails: u32,
    /// Interval of health checks of an upstream marked down.
    pub health_check: Duration,
    /// Client queries waiting on upstreams at most.
    pub max_concurrent: usize,
    /// The cache.
    pub cache: CacheConfig,
    /// Ask upstreams over TCP only (CoreDNS `force_tcp`); else UDP, then TCP when truncated.
    pub force_tcp: bool,
    /// Names that go to the cluster DNS over TCP instead (node-local mode); `None` otherwise.
    pub cluster: Option<ClusterRoute>,
    /// The EDNS payload size our queries to the upstreams advertise: 1232 (DNS Flag Day 2020),
    /// or less under the block's `bufsize`.
    pub edns_payload: u16,
    /// The upstreams asked over TLS, and how (CoreDNS `tls://`); `None`: every one is plain.
    pub tls: Option<TlsUpstreams>,
    /// How long a connection to an upstream with nothing to carry is kept for the next query:
    /// a plain upstream's UDP sockets and a TLS upstream's connections (CoreDNS `expire`).
    pub expire: Duration,
}

/// Names sent to one server over pooled TCP connections instead of to the upstreams: the
/// cluster domain and reverse zones, from a node-local cache to the cluster DNS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterRoute {
    /// Zones in lowercase wire format; a name takes this route when it is one or lies under one.
    pub zones: Vec<Box<[u8]>>,
    /// The server (the cluster DNS Service).
    pub server: SocketAddr,
    /// TCP connections to it at most.
    pub connections: usize,
}

impl ClusterRoute {
    /// Whether `name` (lowercase wire format) is one of the zones or lies under one: compared at
    /// label boundaries only, so `xcluster.local.` is not under `cluster.local.`.
    pub fn covers(&self, name: &[u8]) -> bool {
        let mut at = 0;
        while let Some(&len) = name.get(at) {
            let rest = &name[at..];
            if self.zones.iter().any(|zone| **zone == *rest) {
                return true;
            }
            if len == 0 {
                break;
            }
            at += 1 + usize::from(len);
        }
        false
    }
}

impl ForwardConfig {
    /// Defaults for `upstreams`: for tests and embedders.
    pub fn new(upstreams: Vec<SocketAddr>) -> Self {
        ForwardConfig {
            upstreams,
            policy: Policy::Random,
            timeout: Duration::from_secs(2),
            max_fails: 2,
            health_check: Duration::from_millis(500),
            max_concurrent: 1000,
            cache: CacheConfig::default(),
            force_tcp: false,
            cluster: None,
            edns_payload: ADVERTISED_PAYLOAD,
            tls: None,
            expire: DEFAULT_EXPIRE,
        }
    }
}

/// How long an idle upstream connection is kept unless `expire` says otherwise (CoreDNS's
/// default `expire`).
pub const DEFAULT_EXPIRE: Duration = Duration::from_secs(10);

/// A forwarding setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ForwardConfigError {
    /// The resolv.conf file cannot be read.
    #[error("--resolv-conf {path}: {source} (give upstreams with --upstream instead)")]
    ResolvConf {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Neither --upstream nor a nameserver line.
    #[error("no upstream resolver: {0} has no nameserver line; give one with --upstream ADDR")]
    NoUpstream(PathBuf),
    /// An upstream is one of our own listen addresses.
    #[error("upstream {upstream} is our own listen address {listen}: forwarding to it would loop")]
    Loop {
        /// The upstream.
        upstream: SocketAddr,
        /// The listen address it matches.
        listen: SocketAddr,
    },
}

impl ForwardArgs {
    /// The validated configuration: upstreams from --upstream, else from --resolv-conf; none may
    /// be one of `listen` (our own addresses).
    pub fn config(&self, listen: &[SocketAddr]) -> Result<ForwardConfig, ForwardConfigError> {
        let upstreams = if self.upstreams.is_empty() {
            upstreams_from(&self.resolv_conf)?
        } else {
            self.upstreams.clone()
        };
        check_no_loop(&upstreams, listen)?;
        Ok(ForwardConfig {
            upstreams,
            policy: self.policy,
            timeout: Duration::from_millis(self.forward_timeout_ms),
            max_fails: self.max_fails,
            health_check: Duration::from_millis(self.health_check_ms),
            max_concurrent: self.max_concurrent as usize,
            cache: CacheConfig {
                max_ttl: self.cache_ttl,
                max_denial_ttl: self.cache_denial_ttl,
                servfail_ttl: self.cache_servfail_ttl,
                capacity: (self.cache_size)
                    .map_or_else(|| cache_capacity_for(memory_limit()), |n| n as usize),
                prefetch_hits: self.cache_prefetch,
                serve_stale: Duration::from_secs(u64::from(self.cache_serve_stale)),
                ..CacheConfig::default()
            },
            force_tcp: false,
            cluster: None,
            edns_payload: ADVERTISED_PAYLOAD,
            tls: None,
            expire: DEFAULT_EXPIRE,
        })
    }
}

/// Heap bytes one cached answer is counted at: its entry, key, record spans and slots. The
/// counting allocator measures about 200 bytes for a one-record answer, table growth included
/// (`tests/tests/forward_alloc.rs`, which holds this bound); the rest is the allocator's size
/// classes.
pub const CACHE_ENTRY_BYTES: usize = 256;
/// What the process takes besides its cache: the binary, the runtime and buffers (16-20 MiB
/// measured in node-local mode), and the queries waiting on upstreams at their bound
/// (`--max-forward-pending`, up to about 24 MiB under a random-name flood).
const BASE_BYTES: u64 = 48 << 20;
/// The cache's size where no memory limit is known: twice a large cluster's working set
/// (100,000 names asked for A and AAAA), at most about 125 MiB once full.
pub const UNLIMITED_CACHE_CAPACITY: usize = 500_000;
/// The fewest answers a sized cache holds (the old fixed default).
const MIN_CACHE_CAPACITY: usize = 10_000;
/// The most answers a sized cache holds.
const MAX_CACHE_CAPACITY: usize = 4_000_000;

/// The cache's capacity for a process limited to `limit` bytes: three quarters of what is left
/// past 48 MiB, in answers of [`CACHE_ENTRY_BYTES`], between 10,000 and 4,000,000;
/// [`UNLIMITED_CACHE_CAPACITY`] without a limit. The entries come as answers do; until then
/// the room costs the index tables' control bytes (about a byte an answer).
pub fn cache_capacity_for(limit: Option<u64>) -> usize {
    match limit {
        Some(bytes) => {
            let budget = bytes.saturating_sub(BASE_BYTES) / 4 * 3;
            (usize::try_from(budget).unwrap_or(usize::MAX) / CACHE_ENTRY_BYTES)
                .clamp(MIN_CACHE_CAPACITY, MAX_CACHE_CAPACITY)
        }
        None => UNLIMITED_CACHE_CAPACITY,
    }
}

/// The memory limit this process runs under, when it has one: a container's (or its pod's)
/// `resources.limits.memory`. The smallest limit from the process's own cgroup
/// (`/proc/self/cgroup`) up to the root of the mounted hierarchy, so a pod-level limit and a
/// host cgroup namespace are seen too: `memory.limit_in_bytes` under cgroup v1's memory
/// controller, else `memory.max` under cgroup v2.
pub fn memory_limit() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let v1 = own.lines().find_map(|line| {
        let (controllers, path) = line.split_once(':')?.1.split_once(':')?;
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then_some(path)
    });
    match v1 {
        Some(path) => smallest_limit("/sys/fs/cgroup/memory", path, "memory.limit_in_bytes"),
        None => {
            let path = own.lines().find_map(|line| line.strip_prefix("0::"));
            smallest_limit("/sys/fs/cgroup", path.unwrap_or("/"), "memory.max")
        }
    }
}

/// The smallest limit in the file `file` of the cgroup `path` of the hierarchy mounted at
/// `root` and of its ancestors up to `root`.
fn smallest_limit(root: &str, path: &str, file: &str) -> Option<u64> {
    let root = Path::new(root);
    let mut dir = root.join(path.trim_start_matches('/'));
    let mut limit: Option<u64> = None;
    loop {
        let found = std::fs::read_to_string(dir.join(file)).ok();
        if let Some(bytes) = found.as_deref().and_then(parse_memory_limit) {
            limit = Some(limit.map_or(bytes, |l| l.min(bytes)));
        }
        if dir == root || !dir.pop() {
            return limit;
        }
    }
}

/// A cgroup memory limit file's value: `max` (v2) or a v1 "unlimited" (a page-rounded
/// `i64::MAX`) is none.
fn parse_memory_limit(text: &str) -> Option<u64> {
    let bytes = text.trim().parse::<u64>().ok()?;
    (bytes < 1 << 60).then_some(bytes)
}

fn upstreams_from(path: &Path) -> Result<Vec<SocketAddr>, ForwardConfigError> {
    let found = read_nameservers(path).map_err(|source| ForwardConfigError::ResolvConf {
        path: path.to_owned(),
        source,
    })?;
    if found.is_empty() {
        return Err(ForwardConfigError::NoUpstream(path.to_owned()));
    }
    Ok(found)
}

/// Refuses an upstream that is one of our own listeners: the same address and port, or a
/// loopback address on the port of a wildcard listener of the same family. A loop through
/// another resolver is caught at startup by the loop probe instead ([`super::Forwarder::check_loop`]).
pub fn check_no_loop(
    upstreams: &[SocketAddr],
    listen: &[SocketAddr],
) -> Result<(), ForwardConfigError> {
    for &upstream in upstreams {
        for &ours in listen {
            let same_host = ours.ip() == upstream.ip()
                || (ours.ip().is_unspecified()
                    && upstream.ip().is_loopback()
                    && ours.is_ipv4() == upstream.is_ipv4())
                || is_mapped_same(ours.ip(), upstream.ip());
            if same_host && ours.port() == upstream.port() {
                return Err(ForwardConfigError::Loop {
                    upstream,
                    listen: ours,
                });
            }
        }
    }
    Ok(())
}

/// `::ffff:a.b.c.d` and `a.b.c.d` name the same host.
fn is_mapped_same(a: IpAddr, b: IpAddr) -> bool {
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    canonical(a) == canonical(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        forward: ForwardArgs,
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_mirror_coredns() {
        let flags = Flags::parse_from(["t", "--upstream", "10.0.0.10"]);
        let config = flags.forward.config(&[addr("0.0.0.0:53")]).unwrap();
        let mut expected = ForwardConfig::new(vec![addr("10.0.0.10:53")]);
        // The flags size the cache from the memory limit; a Corefile's `cache` does not.
        expected.cache.capacity = cache_capacity_for(memory_limit());
        assert_eq!(config, expected);
    }

    #[test]
    fn upstreams_from_resolv_conf() {
        let dir = std::env::temp_dir().join(format!("clusterdns-resolv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("resolv.conf");
        std::fs::write(&path, "nameserver 192.0.2.1\nnameserver 192.0.2.2\n").unwrap();
        let path_arg = path.to_str().unwrap();
        let flags = Flags::parse_from(["t", "--resolv-conf", path_arg, "--policy", "sequential"]);
        let config = flags.forward.config(&[]).unwrap();
        assert_eq!(
            config.upstreams,
            vec![addr("192.0.2.1:53"), addr("192.0.2.2:53")]
        );
        assert_eq!(config.policy, Policy::Sequential);

        std::fs::write(&path, "search example.com\n").unwrap();
        let error = flags.forward.config(&[]).unwrap_err().to_string();
        assert!(error.contains("no nameserver line"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();

        let error = flags.forward.config(&[]).unwrap_err().to_string();
        assert!(error.contains("--resolv-conf"), "{error}");
    }

    #[test]
    fn cluster_route_covers_its_zones_at_label_boundaries() {
        let route = ClusterRoute {
            zones: vec![
                b"\x07cluster\x05local\x00".as_slice().into(),
                b"\x07in-addr\x04arpa\x00".as_slice().into(),
            ],
            server: addr("10.0.0.10:53"),
            connections: 2,
        };
        for name in [
            b"\x07cluster\x05local\x00".as_slice(),
            b"\x03web\x07default\x03svc\x07cluster\x05local\x00",
            b"\x0210\x0296\x010\x0210\x07in-addr\x04arpa\x00",
        ] {
            assert!(route.covers(name), "{name:?}");
        }
        for name in [
            b"\x08xcluster\x05local\x00".as_slice(),
            b"\x05local\x00",
            b"\x00",
            b"\x03www\x07example\x03com\x00",
            b"\x04arpa\x00",
            b"\x07cluster\x05local",
        ] {
            assert!(!route.covers(name), "{name:?}");
        }
    }

    #[test]
    fn our_own_address_is_refused() {
        let loops = [
            ("127.0.0.1:53", "127.0.0.1:53"),
            ("127.0.0.1:53", "0.0.0.0:53"),
            ("[::1]:53", "[::]:53"),
            ("[::ffff:127.0.0.1]:53", "127.0.0.1:53"),
        ];
        for (upstream, listen) in loops {
            let error = check_no_loop(&[addr(upstream)], &[addr(listen)]);
            assert!(error.is_err(), "{upstream} vs {listen}");
        }
        let fine = [
            ("127.0.0.1:53", "127.0.0.1:5353"),
            ("10.0.0.10:53", "0.0.0.0:53"),
            ("127.0.0.1:53", "[::]:53"),
        ];
        for (upstream, listen) in fine {
            assert!(
                check_no_loop(&[addr(upstream)], &[addr(listen)]).is_ok(),
                "{upstream} vs {listen}"
            );
        }
    }

    #[test]
    fn the_cache_is_sized_from_the_memory_limit() {
        let mib = |n: u64| Some(n << 20);
        assert_eq!(cache_capacity_for(None), UNLIMITED_CACHE_CAPACITY);
        // deploy/node-local's limit: 100 MiB, three quarters of the 52 past 48 in answers.
        assert_eq!(cache_capacity_for(mib(100)), 159_744);
        assert_eq!(cache_capacity_for(mib(170)), 374_784);
        assert_eq!(cache_capacity_for(mib(4)), MIN_CACHE_CAPACITY);
        assert_eq!(cache_capacity_for(Some(u64::MAX)), MAX_CACHE_CAPACITY);
        assert_eq!(parse_memory_limit("max\n"), None);
        assert_eq!(parse_memory_limit("104857600\n"), Some(100 << 20));
        assert_eq!(parse_memory_limit("9223372036854771712\n"), None);
        assert_eq!(parse_memory_limit("garbage"), None);
    }

    #[test]
    fn the_smallest_limit_from_the_own_cgroup_up_counts() {
        let root = std::env::temp_dir().join(format!("clusterdns-cgroup-{}", std::process::id()));
        let pod = root.join("kubepods/pod1");
        let container = pod.join("c1");
        std::fs::create_dir_all(&container).unwrap();
        std::fs::write(root.join("memory.max"), "max\n").unwrap();
        std::fs::write(pod.join("memory.max"), "104857600\n").unwrap();
        std::fs::write(container.join("memory.max"), "max\n").unwrap();
        let root_text = root.to_str().unwrap();
        // A pod-level limit above an unlimited container is the one that holds.
        let found = smallest_limit(root_text, "/kubepods/pod1/c1", "memory.max");
        assert_eq!(found, Some(100 << 20));
        std::fs::write(container.join("memory.max"), "52428800\n").unwrap();
        let found = smallest_limit(root_text, "/kubepods/pod1/c1", "memory.max");
        assert_eq!(found, Some(50 << 20));
        assert_eq!(smallest_limit(root_text, "/", "memory.max"), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
