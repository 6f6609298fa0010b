//! `api-scale`: clusterdns on the Kubernetes API path at scale.
//!
//! Loads a synthetic cluster (`clusterdns_bench::generate`) into the in-process fake API server,
//! starts the `clusterdns` binary of the `dist` profile against it (one worker thread, pinned to CPU 0 with
//! `taskset` when there is one, a dead upstream so nothing leaves the machine) and reports:
//!
//! - the time from start to `/ready` 200 (the initial list, streamed or with `--lists paged` in
//!   pages, plus the first build), the build time the server logs, the CPU time of the server's
//!   threads and of the fake's thread until then, and the server's minor page faults;
//! - the peak (`VmHWM`) and current (`VmRSS`) resident memory after the sync and after the writes;
//! - write-to-answer latency: from the fake's write to the first UDP answer that shows it, for a
//!   new ClusterIP Service, a changed EndpointSlice of a headless Service and a deleted Service;
//! - a re-list after `410 Expired`: how long it takes and how answers fare while it runs.
//!
//! ```text
//! cargo build --profile dist -p clusterdns
//! cargo build --profile dist -p clusterdns-bench --bin api-scale
//! taskset -c 1 target/dist/api-scale --services 1000 --endpoints 10000
//! ```
//!
//! The fake and this driver should run on another CPU than the server (`taskset -c 1` above), so
//! serving the list does not compete with the server for its core.
//!
//! `--soak MINUTES` runs the soak instead of the measurements (`soak.rs`): dnsperf at 80% of
//! the server's capacity, one EndpointSlice change a second, memory and answers checked every
//! minute.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

mod soak;

use clusterdns::ops::process;
use clusterdns_bench::{generate, Spec};
use clusterdns_testkit::dns::query;
use clusterdns_testkit::fakeapi::{self, FakeApi, Kind};
use clusterdns_testkit::http::{http_get, metric};
use clusterdns_testkit::net::{free_port, loopback};
use clusterdns_testkit::process::Process;
use clusterdns_testkit::temp::TempDir;
use clusterdns_zone::{Cluster, EndpointSlice, Port, Protocol, Service, ServiceKind};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RData;
use serde_json::{json, Value};

/// The cluster domain the generator and the server use by default.
const DOMAIN: &str = "cluster.local";
/// How long one change may take to show before the run fails.
const GIVE_UP: Duration = Duration::from_secs(5);
/// The pause between two queries of a wait loop.
const RETRY: Duration = Duration::from_micros(200);
/// How long one query waits for its answer.
const QUERY_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the server may take to list and build (the `--startup-timeout` it gets).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a re-list after 410 may take before the run fails.
const RELIST_LIMIT: Duration = Duration::from_secs(600);
/// The pause between measurements, so one change's publish does not overlap the next write.
const SETTLE: Duration = Duration::from_millis(20);

fn main() -> ExitCode {
    match Args::parse(std::env::args().skip(1)).and_then(|args| run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("api-scale: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The command line.
struct Args {
    services: usize,
    endpoints: usize,
    rounds: usize,
    clusterdns: PathBuf,
    /// Minutes of soak instead of the measurements (0: none).
    soak: u64,
    /// Whether the fake serves streaming lists (`--lists streaming`, as v1.36 does) or
    /// refuses them (`--lists paged`, a server with the WatchList feature off).
    streaming: bool,
}

const USAGE: &str = "usage: api-scale [--services N] [--endpoints N] [--rounds N] \
                     [--clusterdns PATH] [--soak MINUTES] [--lists streaming|paged]\n\
                     defaults: 50000 Services, 500000 endpoints, 20 rounds, \
                     target/dist/clusterdns, streaming lists";

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut parsed = Args {
            services: 50_000,
            endpoints: 500_000,
            rounds: 20,
            clusterdns: PathBuf::from("target/dist/clusterdns"),
            soak: 0,
            streaming: true,
        };
        while let Some(flag) = args.next() {
            if flag == "-h" || flag == "--help" {
                return Err(USAGE.to_string());
            }
            let value = args
                .next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
            let number = || {
                value
                    .parse::<usize>()
                    .map_err(|_| format!("{flag}: not a number: {value:?}"))
            };
            match flag.as_str() {
                "--services" => parsed.services = number()?,
                "--endpoints" => parsed.endpoints = number()?,
                "--rounds" => parsed.rounds = number()?.max(1),
                "--clusterdns" => parsed.clusterdns = PathBuf::from(&value),
                "--soak" => parsed.soak = number()? as u64,
                "--lists" => {
                    parsed.streaming = match value.as_str() {
                        "streaming" => true,
                        "paged" => false,
                        _ => return Err(format!("--lists: streaming or paged, not {value:?}")),
                    }
                }
                _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
            }
        }
        Ok(parsed)
    }
}

fn run(args: &Args) -> Result<(), String> {
    let command: Vec<String> = std::env::args().collect();
    let started = Instant::now();
    let spec = Spec::with_total_endpoints(args.services, args.endpoints);
    let cluster = generate(&spec).map_err(|e| format!("cannot generate the cluster: {e}"))?;
    let generated = started.elapsed();
    let api = FakeApi::start();
    api.set_watch_list(args.streaming);
    let objects = load(&api, &cluster);
    eprintln!(
        "api-scale: generated {} Services / {} endpoints in {generated:.1?}, loaded {objects} \
         objects into the fake API in {:.1?}",
        cluster.services.len(),
        spec.total_endpoints(),
        started.elapsed() - generated,
    );

    let fake_before = Cpu::of(std::process::id())?;
    let server = Server::start(&api, &args.clusterdns)?;
    let ready = server.wait_ready()?;
    let synced = Memory::of(server.pid())?;
    let sync_cpu = (
        Cpu::of(server.pid())?,
        Cpu::of(std::process::id())?.since(&fake_before),
    );
    let sync_faults = minor_faults(server.pid())?;
    let text = server.metrics()?;
    let zone = (
        metric(&text, "clusterdns_zone_services", &[]).unwrap_or(0.0),
        metric(&text, "clusterdns_zone_endpoints", &[]).unwrap_or(0.0),
    );
    let build = server.logged_build_ms();
    eprintln!(
        "api-scale: /ready 200 after {ready:.2?}; zone {} Services, {} endpoints; {synced}",
        zone.0, zone.1
    );

    let mut plan = Plan::new(&cluster, args.rounds)?;
    let mut resolver = Resolver::new(server.dns)?;
    plan.check_before(&mut resolver)?;
    if args.soak > 0 {
        return soak::soak(args.soak, &cluster, &api, &server, &mut plan, &mut resolver);
    }
    let mut latencies: [Vec<Duration>; 3] = Default::default();
    for round in 0..args.rounds {
        latencies[0].push(plan.add_service(&api, &mut resolver, round)?);
        std::thread::sleep(SETTLE);
        latencies[1].push(plan.change_headless(&api, &mut resolver, round)?);
        std::thread::sleep(SETTLE);
        latencies[2].push(plan.delete_service(&api, &mut resolver, round)?);
        std::thread::sleep(SETTLE);
        server.check_alive()?;
        // Per round, so an outlier can be placed in time (and next to the server's log).
        eprintln!(
            "api-scale: round {round} at {:.2?} after start: add {:.2?}, headless {:.2?}, \
             delete {:.2?}",
            server.started.elapsed(),
            latencies[0][round],
            latencies[1][round],
            latencies[2][round],
        );
    }
    let written = Memory::of(server.pid())?;
    let after_writes = server.metrics()?;

    let relist = relist(&api, &server, &mut resolver, &plan.steady)?;
    let relisted = Memory::of(server.pid())?;

    println!(
        "{}",
        report(&Report {
            command: &command.join(" "),
            spec: &spec,
            ready,
            build,
            zone,
            synced,
            written,
            relisted,
            latencies,
            metrics: &after_writes,
            relist: &relist,
            sync_cpu: &sync_cpu,
            sync_faults,
        })
    );
    Ok(())
}

/// Loads `cluster` into `api` as API objects; returns how many.
fn load(api: &FakeApi, cluster: &Cluster) -> usize {
    for namespace in &cluster.namespaces {
        api.upsert(Kind::Namespace, fakeapi::namespace(namespace));
    }
    for service in &cluster.services {
        api.upsert(Kind::Service, service_object(service));
    }
    for slice in &cluster.slices {
        api.upsert(Kind::EndpointSlice, slice_object(slice, None));
    }
    cluster.namespaces.len() + cluster.services.len() + cluster.slices.len()
}

/// The Kubernetes spelling of a protocol.
fn protocol(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

fn ports(ports: &[Port]) -> Vec<Value> {
    (ports.iter())
        .map(|p| fakeapi::port(&p.name, p.port, protocol(p.protocol)))
        .collect()
}

/// A Service as the API serves it; those with endpoints get a selector, as a Deployment's or a
/// StatefulSet's Service has.
fn service_object(service: &Service) -> Value {
    let (namespace, name) = (&*service.namespace, &*service.name);
    let mut object = match &service.kind {
        ServiceKind::ClusterIp(ips) => {
            let ips: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
            let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
            fakeapi::service(namespace, name, &ips, &ports(&service.ports))
        }
        ServiceKind::Headless => fakeapi::headless_service(namespace, name, &ports(&service.ports)),
        ServiceKind::ExternalName(target) => {
            return fakeapi::external_name_service(namespace, name, target)
        }
    };
    object["spec"]["selector"] = json!({ "app": name });
    object
}

/// An EndpointSlice as the API serves it, with the trigger-time annotation when given.
fn slice_object(slice: &EndpointSlice, triggered: Option<&str>) -> Value {
    let endpoints: Vec<Value> = (slice.endpoints.iter())
        .map(|e| {
            let addresses: Vec<String> = e.addresses.iter().map(IpAddr::to_string).collect();
            let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
            fakeapi::endpoint(&addresses, e.hostname.as_deref(), Some(e.ready))
        })
        .collect();
    let address_type = match slice.endpoints.first().and_then(|e| e.addresses.first()) {
        Some(IpAddr::V6(_)) => "IPv6",
        _ => "IPv4",
    };
    let object = fakeapi::endpoint_slice(
        &slice.namespace,
        &slice.name,
        &slice.service,
        address_type,
        &ports(&slice.ports),
        &endpoints,
    );
    match triggered {
        Some(time) => fakeapi::with_trigger_time(object, time),
        None => object,
    }
}

/// The name of a Service, fully qualified.
fn fqdn(namespace: &str, name: &str) -> String {
    format!("{name}.{namespace}.svc.{DOMAIN}")
}

/// A Service's namespace and name.
type ServiceKey = (Box<str>, Box<str>);

/// Which objects the measured writes touch, and the slices as the fake now holds them.
struct Plan {
    /// Headless Services whose first slice has at least two ready endpoints: `(ns, name)`.
    headless: Vec<ServiceKey>,
    /// ClusterIP Services to delete, with their slices' names.
    doomed: Vec<(ServiceKey, Vec<Box<str>>)>,
    /// Every slice by Service, as last written.
    slices: HashMap<ServiceKey, Vec<EndpointSlice>>,
    /// A ClusterIP Service no write touches, and its address: asked during the re-list.
    steady: (String, Ipv4Addr),
    /// The namespace new Services go to.
    namespace: Box<str>,
}

impl Plan {
    fn new(cluster: &Cluster, rounds: usize) -> Result<Plan, String> {
        let mut slices: HashMap<ServiceKey, Vec<EndpointSlice>> = HashMap::new();
        for slice in &cluster.slices {
            slices
                .entry((slice.namespace.clone(), slice.service.clone()))
                .or_default()
                .push(slice.clone());
        }
        let ready = |slice: &EndpointSlice| slice.endpoints.iter().filter(|e| e.ready).count();
        let key = |s: &Service| (s.namespace.clone(), s.name.clone());
        let headless: Vec<ServiceKey> = (cluster.services.iter())
            .filter(|s| s.kind == ServiceKind::Headless)
            .filter(|s| {
                (slices.get(&key(s)))
                    .and_then(|slices| slices.first())
                    .is_some_and(|slice| ready(slice) >= 2)
            })
            .take(rounds)
            .map(key)
            .collect();
        let mut cluster_ip = (cluster.services.iter()).filter_map(|s| match &s.kind {
            ServiceKind::ClusterIp(ips) => match ips.first() {
                Some(IpAddr::V4(v4)) => Some((s, *v4)),
                _ => None,
            },
            _ => None,
        });
        let (steady, steady_ip) = cluster_ip
            .next()
            .ok_or("the cluster has no ClusterIP Service")?;
        let doomed: Vec<_> = cluster_ip
            .take(rounds)
            .map(|(s, _)| {
                let names = (slices.get(&key(s)).into_iter().flatten())
                    .map(|slice| slice.name.clone())
                    .collect();
                (key(s), names)
            })
            .collect();
        if headless.is_empty() || doomed.is_empty() {
            return Err(format!(
                "too small a cluster: {} headless Services with two ready endpoints, {} \
                 ClusterIP Services to delete",
                headless.len(),
                doomed.len()
            ));
        }
        Ok(Plan {
            headless,
            doomed,
            slices,
            steady: (fqdn(&steady.namespace, &steady.name), steady_ip),
            namespace: steady.namespace.clone(),
        })
    }

    /// The ready addresses of a Service's slices, sorted: its headless A answer.
    fn ready_addresses(&self, key: &ServiceKey) -> Vec<IpAddr> {
        let mut addresses: Vec<IpAddr> = (self.slices.get(key).into_iter().flatten())
            .flat_map(|slice| &slice.endpoints)
            .filter(|e| e.ready)
            .flat_map(|e| e.addresses.iter().copied())
            .collect();
        addresses.sort();
        addresses
    }

    /// Checks that the synced server answers what the writes will change.
    fn check_before(&self, resolver: &mut Resolver) -> Result<(), String> {
        let (name, ip) = &self.steady;
        let want = vec![IpAddr::V4(*ip)];
        expect(resolver, name, |a| a.is(&want), "its ClusterIP")?;
        for key in &self.headless {
            let want = self.ready_addresses(key);
            expect(
                resolver,
                &fqdn(&key.0, &key.1),
                |a| a.is(&want),
                "its ready endpoints",
            )?;
        }
        Ok(())
    }

    /// (a) A new ClusterIP Service (and its EndpointSlice): until its A answer shows it.
    fn add_service(
        &self,
        api: &FakeApi,
        resolver: &mut Resolver,
        round: usize,
    ) -> Result<Duration, String> {
        let name = format!("api-scale-new-{round}");
        // 172.16.0.0/12 is outside every range the generator hands out.
        let ip = Ipv4Addr::new(172, 16, (round / 250) as u8, (round % 250 + 1) as u8);
        let pod = Ipv4Addr::new(172, 17, (round / 250) as u8, (round % 250 + 1) as u8);
        let http = [fakeapi::port("http", 80, "TCP")];
        let service = fakeapi::service(&self.namespace, &name, &[&ip.to_string()], &http);
        let slice = fakeapi::endpoint_slice(
            &self.namespace,
            &format!("{name}-abcde"),
            &name,
            "IPv4",
            &[fakeapi::port("http", 8080, "TCP")],
            &[fakeapi::endpoint(&[&pod.to_string()], None, Some(true))],
        );
        let slice = fakeapi::with_trigger_time(slice, &fakeapi::now_rfc3339());
        let want = vec![IpAddr::V4(ip)];
        let written = Instant::now();
        api.upsert(Kind::Service, service);
        api.upsert(Kind::EndpointSlice, slice);
        resolver.wait(&fqdn(&self.namespace, &name), written, |a| a.is(&want))
    }

    /// (b) A headless Service's EndpointSlice with one endpoint's ready condition flipped:
    /// until its A answer changes to the new ready set.
    fn change_headless(
        &mut self,
        api: &FakeApi,
        resolver: &mut Resolver,
        round: usize,
    ) -> Result<Duration, String> {
        let key = self.headless[round % self.headless.len()].clone();
        let slice = (self.slices.get_mut(&key))
            .and_then(|slices| slices.first_mut())
            .ok_or_else(|| format!("{}/{}: no slice", key.0, key.1))?;
        let ready = slice.endpoints.iter().filter(|e| e.ready).count();
        // Take one of two or more ready endpoints out, or put a not-ready one back, so the
        // answer always changes and never empties.
        let flip = (slice.endpoints.iter())
            .position(|e| e.ready == (ready >= 2))
            .ok_or_else(|| format!("{}/{}: nothing to flip", key.0, key.1))?;
        slice.endpoints[flip].ready = !slice.endpoints[flip].ready;
        let object = slice_object(slice, Some(&fakeapi::now_rfc3339()));
        let want = self.ready_addresses(&key);
        let written = Instant::now();
        api.upsert(Kind::EndpointSlice, object);
        resolver.wait(&fqdn(&key.0, &key.1), written, |a| a.is(&want))
    }

    /// (c) A ClusterIP Service deleted (its slices first, untimed, as the garbage collector
    /// would soon after): until NXDOMAIN.
    fn delete_service(
        &self,
        api: &FakeApi,
        resolver: &mut Resolver,
        round: usize,
    ) -> Result<Duration, String> {
        let ((namespace, name), slices) = (self.doomed.get(round))
            .ok_or_else(|| format!("no ClusterIP Service left to delete in round {round}"))?;
        for slice in slices {
            api.delete(Kind::EndpointSlice, namespace, slice);
        }
        std::thread::sleep(SETTLE);
        let written = Instant::now();
        api.delete(Kind::Service, namespace, name)
            .ok_or_else(|| format!("{namespace}/{name}: not in the fake API"))?;
        resolver.wait(&fqdn(namespace, name), written, |a| {
            a.rcode == ResponseCode::NXDomain
        })
    }
}

/// Asks once and fails unless `condition` holds.
fn expect(
    resolver: &mut Resolver,
    name: &str,
    condition: impl Fn(&Answer) -> bool,
    what: &str,
) -> Result<(), String> {
    match resolver.ask(name, QUERY_TIMEOUT)? {
        Some(answer) if condition(&answer) => Ok(()),
        other => Err(format!("{name}: {other:?}, expected {what}")),
    }
}

/// A DNS answer reduced to what the measurements compare.
#[derive(Debug)]
struct Answer {
    rcode: ResponseCode,
    /// The A and AAAA addresses of the answer section, sorted.
    addresses: Vec<IpAddr>,
}

impl Answer {
    fn is(&self, addresses: &[IpAddr]) -> bool {
        self.rcode == ResponseCode::NoError && self.addresses == addresses
    }
}

/// One UDP socket asking the server A questions, one at a time.
struct Resolver {
    socket: UdpSocket,
    server: SocketAddr,
    id: u16,
    buf: Vec<u8>,
}

impl Resolver {
    fn new(server: SocketAddr) -> Result<Resolver, String> {
        let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind UDP: {e}"))?;
        Ok(Resolver {
            socket,
            server,
            id: 0,
            buf: vec![0; 65535],
        })
    }

    /// Asks `name A`; `None` when no answer came within `timeout`.
    fn ask(&mut self, name: &str, timeout: Duration) -> Result<Option<Answer>, String> {
        self.id = self.id.wrapping_add(1);
        let query = query(self.id, name, 1, None);
        self.socket
            .send_to(&query, self.server)
            .map_err(|e| format!("send to {}: {e}", self.server))?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.socket
                .set_read_timeout(Some(left))
                .map_err(|e| format!("socket timeout: {e}"))?;
            let len = match self.socket.recv_from(&mut self.buf) {
                Ok((len, _)) => len,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(format!("receive from {}: {e}", self.server)),
            };
            // A late answer to an earlier query is not this one's.
            if len < 12 || u16::from_be_bytes([self.buf[0], self.buf[1]]) != self.id {
                continue;
            }
            let message = Message::from_vec(&self.buf[..len])
                .map_err(|e| format!("{name}: malformed response: {e}"))?;
            let mut addresses: Vec<IpAddr> = (message.answers.iter())
                .filter_map(|record| match &record.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                })
                .collect();
            addresses.sort();
            return Ok(Some(Answer {
                rcode: message.metadata.response_code,
                addresses,
            }));
        }
    }

    /// Asks `name A` every [`RETRY`] until `condition` holds; how long after `since` it did.
    /// Fails after [`GIVE_UP`].
    fn wait(
        &mut self,
        name: &str,
        since: Instant,
        condition: impl Fn(&Answer) -> bool,
    ) -> Result<Duration, String> {
        loop {
            let answer = self.ask(name, QUERY_TIMEOUT)?;
            if answer.as_ref().is_some_and(&condition) {
                return Ok(since.elapsed());
            }
            if since.elapsed() > GIVE_UP {
                return Err(format!(
                    "{name}: still {answer:?} {GIVE_UP:?} after the write"
                ));
            }
            std::thread::sleep(RETRY);
        }
    }
}

/// A running `clusterdns` fed by the fake; killed when dropped.
struct Server {
    process: Process,
    dns: SocketAddr,
    ready: SocketAddr,
    metrics: SocketAddr,
    started: Instant,
    /// Holds the kubeconfig; removed after the process is gone.
    _dir: TempDir,
}

impl Server {
    fn start(api: &FakeApi, binary: &Path) -> Result<Server, String> {
        if !binary.is_file() {
            return Err(format!(
                "{}: no such binary (cargo build --profile dist -p clusterdns, or --clusterdns PATH)",
                binary.display()
            ));
        }
        let dir = TempDir::new("api-scale");
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig)
            .map_err(|e| format!("{}: {e}", kubeconfig.display()))?;
        let dns = loopback(free_port());
        let (health, ready, metrics) = (
            loopback(free_port()),
            loopback(free_port()),
            loopback(free_port()),
        );
        let taskset = Path::new("/usr/bin/taskset");
        let mut command = if taskset.is_file() {
            let mut command = Command::new(taskset);
            command.args(["-c", "0"]).arg(binary);
            command
        } else {
            Command::new(binary)
        };
        command
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--listen", &dns.to_string(), "--threads", "1"])
            .args(["--health", &health.to_string()])
            .args(["--ready", &ready.to_string()])
            .args(["--metrics", &metrics.to_string()])
            .args(["--startup-timeout", &STARTUP_TIMEOUT.as_secs().to_string()])
            // Discard: nothing answers there, and nothing leaves the machine.
            .args(["--upstream", "127.0.0.1:9"]);
        let started = Instant::now();
        Ok(Server {
            process: Process::spawn(&mut command),
            dns,
            ready,
            metrics,
            started,
            _dir: dir,
        })
    }

    fn pid(&self) -> u32 {
        self.process.pid()
    }

    fn check_alive(&self) -> Result<(), String> {
        match self.process.exited() {
            None => Ok(()),
            Some(status) => Err(format!(
                "clusterdns exited: {status}\n{}",
                self.process.stderr()
            )),
        }
    }

    /// Waits for `/ready` 200; how long after the start that was.
    fn wait_ready(&self) -> Result<Duration, String> {
        loop {
            if http_get(self.ready, "/ready").is_some_and(|(code, _)| code == 200) {
                return Ok(self.started.elapsed());
            }
            self.check_alive()?;
            if self.started.elapsed() > STARTUP_TIMEOUT {
                return Err(format!(
                    "/ready not 200 within {STARTUP_TIMEOUT:?}\n{}",
                    self.process.stderr()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn metrics(&self) -> Result<String, String> {
        match http_get(self.metrics, "/metrics") {
            Some((200, text)) => Ok(text),
            other => Err(format!("/metrics: {other:?}")),
        }
    }

    /// The first build's duration, from the server's "zone synced" log line.
    fn logged_build_ms(&self) -> Option<f64> {
        let log = self.process.stderr();
        let line = log.lines().find(|l| l.contains("zone synced"))?;
        let value = line.split("build_ms=").nth(1)?.split_whitespace().next()?;
        value.trim_matches('"').parse().ok()
    }
}

/// Resident memory of a process, from `/proc/PID/status`.
#[derive(Clone, Copy)]
struct Memory {
    /// `VmHWM`: the peak, in KiB.
    peak_kib: u64,
    /// `VmRSS`: now, in KiB.
    current_kib: u64,
}

impl Memory {
    fn of(pid: u32) -> Result<Memory, String> {
        let field = |name: &str| {
            process::status_kib(&pid.to_string(), name)
                .ok_or_else(|| format!("/proc/{pid}/status: no {name}"))
        };
        Ok(Memory {
            peak_kib: field("VmHWM:")?,
            current_kib: field("VmRSS:")?,
        })
    }
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "peak RSS {} / RSS {}",
            mib(self.peak_kib),
            mib(self.current_kib)
        )
    }
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

/// Minor page faults of a process so far (`minflt`, the 10th field of `/proc/PID/stat`): each
/// is memory touched for the first time since it was mapped (or purged), which the kernel zeroes.
fn minor_faults(pid: u32) -> Result<u64, String> {
    (process::stat_fields(&pid.to_string()))
        .and_then(|fields| fields.get(7)?.parse().ok())
        .ok_or_else(|| format!("/proc/{pid}/stat: unreadable"))
}

/// The name of the fake API server's thread (`fakeapi::FakeApi::start`).
const FAKE_API_THREAD: &str = "fake-api";

/// CPU time (user and system) of a process's live threads, by thread name, from
/// `/proc/PID/task/*/schedstat` (threads that have exited are not counted).
struct Cpu(BTreeMap<String, Duration>);

impl Cpu {
    fn of(pid: u32) -> Result<Cpu, String> {
        let tasks = format!("/proc/{pid}/task");
        let entries = std::fs::read_dir(&tasks).map_err(|e| format!("{tasks}: {e}"))?;
        let mut threads = BTreeMap::new();
        for entry in entries.flatten() {
            let dir = entry.path();
            // A thread may exit between the listing and the reads: skip it.
            let (Ok(comm), Ok(schedstat)) = (
                std::fs::read_to_string(dir.join("comm")),
                std::fs::read_to_string(dir.join("schedstat")),
            ) else {
                continue;
            };
            let Some(ns) = schedstat
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
            else {
                return Err(format!("{}: unexpected {schedstat:?}", dir.display()));
            };
            *threads.entry(comm.trim().to_string()).or_default() += Duration::from_nanos(ns);
        }
        Ok(Cpu(threads))
    }

    /// What each thread used since `before`.
    fn since(mut self, before: &Cpu) -> Cpu {
        for (name, used) in &mut self.0 {
            *used = used.saturating_sub(before.0.get(name).copied().unwrap_or_default());
        }
        self
    }

    /// `total (name time, ...)`, the busiest threads first; only `thread` when given.
    fn summary(&self, thread: Option<&str>) -> String {
        let secs = |d: &Duration| format!("{:.2} s", d.as_secs_f64());
        if let Some(thread) = thread {
            return self.0.get(thread).map_or("?".into(), secs);
        }
        let total: Duration = self.0.values().sum();
        let mut threads: Vec<(&String, &Duration)> =
            self.0.iter().filter(|(_, d)| !d.is_zero()).collect();
        threads.sort_by(|a, b| b.1.cmp(a.1));
        let threads: Vec<String> = (threads.iter())
            .take(4)
            .map(|(name, d)| format!("{name} {}", secs(d)))
            .collect();
        format!("{} ({})", secs(&total), threads.join(", "))
    }
}

/// What a re-list after 410 Expired did, and how answers fared meanwhile.
struct Relist {
    took: Duration,
    /// Round-trip times of the queries answered correctly during the re-list.
    answered: Vec<Duration>,
    /// Queries answered with something else, or not within [`QUERY_TIMEOUT`].
    failed: usize,
}

/// Expires every watch (410): the server re-lists every resource while it keeps answering from
/// its last zone. Queries `steady` all along, until each resource's list count went up.
fn relist(
    api: &FakeApi,
    server: &Server,
    resolver: &mut Resolver,
    steady: &(String, Ipv4Addr),
) -> Result<Relist, String> {
    let resources = ["namespaces", "services", "endpointslices"];
    let lists = |text: &str| -> Vec<f64> {
        (resources.iter())
            .map(|r| {
                let label = format!("resource=\"{r}\"");
                metric(text, "clusterdns_kubernetes_lists_total", &[&label]).unwrap_or(0.0)
            })
            .collect()
    };
    let before = lists(&server.metrics()?);
    let (name, ip) = steady;
    let want = [IpAddr::V4(*ip)];
    let mut answered = Vec::new();
    let mut failed = 0;
    let mut polled = Instant::now();
    let expired = Instant::now();
    api.expire();
    loop {
        let asked = Instant::now();
        match resolver.ask(name, QUERY_TIMEOUT)? {
            Some(answer) if answer.is(&want) => answered.push(asked.elapsed()),
            _ => failed += 1,
        }
        if polled.elapsed() >= Duration::from_millis(50) {
            polled = Instant::now();
            let now = lists(&server.metrics()?);
            if now.iter().zip(&before).all(|(now, before)| now > before) {
                return Ok(Relist {
                    took: expired.elapsed(),
                    answered,
                    failed,
                });
            }
        }
        if expired.elapsed() > RELIST_LIMIT {
            return Err(format!("no re-list within {RELIST_LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Everything the report shows.
struct Report<'a> {
    command: &'a str,
    spec: &'a Spec,
    ready: Duration,
    build: Option<f64>,
    zone: (f64, f64),
    synced: Memory,
    written: Memory,
    relisted: Memory,
    latencies: [Vec<Duration>; 3],
    metrics: &'a str,
    relist: &'a Relist,
    /// CPU time of the server's threads at `/ready`, and of this process's threads meanwhile.
    sync_cpu: &'a (Cpu, Cpu),
    /// Minor page faults of the server until `/ready`.
    sync_faults: u64,
}

/// The `q`-quantile of sorted `samples` (nearest rank).
fn quantile(samples: &[Duration], q: f64) -> Duration {
    let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len().max(1));
    samples.get(rank - 1).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn report(r: &Report) -> String {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(format!("`{}`", r.command));
    line(String::new());
    line(format!(
        "{} Services / {} endpoints ({} namespaces), zone after sync: {} Services, {} endpoints",
        r.spec.services,
        r.spec.total_endpoints(),
        r.spec.namespaces(),
        r.zone.0,
        r.zone.1
    ));
    line(String::new());
    line("| measure | value |".into());
    line("| --- | --- |".into());
    let build = r.build.map_or("?".into(), |b| format!("{b:.0} ms"));
    line(format!(
        "| start to `/ready` 200 (list + build) | {:.2} s (first build {build}) |",
        r.ready.as_secs_f64()
    ));
    let (server, fake) = r.sync_cpu;
    line(format!(
        "| CPU time until `/ready`: clusterdns (by thread) | {} |",
        server.summary(None)
    ));
    line(format!(
        "| CPU time until `/ready`: fake API thread | {} |",
        fake.summary(Some(FAKE_API_THREAD))
    ));
    // A fault maps a 4 KiB page, or a 2 MiB one where the allocator asked for huge pages.
    line(format!(
        "| minor page faults until `/ready` | {} |",
        r.sync_faults
    ));
    for (when, memory) in [
        ("after sync", r.synced),
        ("after the writes", r.written),
        ("after a re-list", r.relisted),
    ] {
        line(format!(
            "| peak RSS / RSS {when} | {} / {} |",
            mib(memory.peak_kib),
            mib(memory.current_kib)
        ));
    }
    let mut answered = r.relist.answered.clone();
    answered.sort();
    line(format!(
        "| re-list after 410 (all resources) | {:.2} s |",
        r.relist.took.as_secs_f64()
    ));
    line(format!(
        "| answers during the re-list: n, median / p99 / max RTT, failed | {}, {} / {} / {}, {} |",
        answered.len(),
        ms(quantile(&answered, 0.5)),
        ms(quantile(&answered, 0.99)),
        ms(quantile(&answered, 1.0)),
        r.relist.failed
    ));
    line(String::new());
    line("| write to answer | n | min | median | p90 | max |".into());
    line("| --- | --- | --- | --- | --- | --- |".into());
    let kinds = [
        "new ClusterIP Service (A)",
        "headless slice: ready flipped (A)",
        "Service deleted (NXDOMAIN)",
    ];
    for (kind, samples) in kinds.iter().zip(&r.latencies) {
        let mut sorted = samples.clone();
        sorted.sort();
        line(format!(
            "| {kind} | {} | {} | {} | {} | {} |",
            sorted.len(),
            ms(quantile(&sorted, 0.0)),
            ms(quantile(&sorted, 0.5)),
            ms(quantile(&sorted, 0.9)),
            ms(quantile(&sorted, 1.0)),
        ));
    }
    line(String::new());
    let programming = "coredns_kubernetes_dns_programming_duration_seconds";
    for kind in [
        "cluster_ip",
        "headless_with_selector",
        "headless_without_selector",
    ] {
        let label = format!("service_kind=\"{kind}\"");
        let sample = |suffix: &str| {
            metric(r.metrics, &format!("{programming}_{suffix}"), &[&label]).unwrap_or(0.0)
        };
        let (count, sum) = (sample("count"), sample("sum"));
        if count > 0.0 {
            line(format!(
                "`{programming}{{{label}}}`: count {count}, mean {:.2} ms",
                sum / count * 1e3
            ));
        }
    }
    let publish = |sample: &str| {
        let name = format!("clusterdns_zone_publish_duration_seconds_{sample}");
        metric(r.metrics, &name, &[]).unwrap_or(0.0)
    };
    let (publishes, publish_sum) = (publish("count"), publish("sum"));
    if publishes > 0.0 {
        line(format!(
            "`clusterdns_zone_publish_duration_seconds`: count {publishes}, mean {:.2} ms \
             (the first build included)",
            publish_sum / publishes * 1e3
        ));
    }
    out
}
