//! `compare`: clusterdns side by side with Knot DNS, NSD and Unbound on the same synthetic cluster
//! (ARCHITECTURE.md, "Measuring"), and with the empty responder (`responder`: queries sent back
//! with QR set, no DNS work), the ceiling of this machine's UDP path. For each size: generate the cluster (manifests, query files,
//! zone files), start every server on loopback pinned to CPU 0, check that their answers agree with
//! clusterdns's on a sample of the query files, then run interleaved rounds (A B C D A B C D...) of
//! the load generator (and dnsperf) pinned to CPU 1, and print a table per query file.
//!
//! Run it through `bench/scripts/compare.sh`, which installs the servers and builds the dist
//! binaries first. It writes every config into a temporary directory, and stops the servers it
//! started on exit. `servers.rs` starts them, `measure.rs` measures them, `report.rs` prints the
//! tables.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use clusterdns::ops::process;
use clusterdns_bench::check::{answer_set, AnswerSet};
use clusterdns_bench::generate::DEFAULT_DOMAIN;
use clusterdns_bench::packet::query_packet;
use clusterdns_bench::queryfile::qtype_code;
use serde_json::Value;

mod measure;
mod report;
mod servers;

use measure::{
    ask, check_answers, client_name, latency_at, measure, median, memory_kib, Latency, Measured,
};
use report::{machine_line, write_latency_table, write_table};
use servers::{
    check_programs, find_program, start_server, zone_files, Server, ServerKind, Upstream,
};

/// Runs clusterdns, Knot DNS, NSD and Unbound side by side and prints comparison tables.
#[derive(Debug, Parser)]
#[command(name = "compare", version, about, long_about = None)]
struct Args {
    /// Cluster sizes in Services (`1k`, `10k`, `50k`...); each gets 10 endpoints per Service.
    #[arg(long, default_value = "1k,10k,50k", value_delimiter = ',', value_parser = parse_size)]
    sizes: Vec<usize>,
    /// Interleaved rounds per size (the table shows the median).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of load per run.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Servers to run, in round order.
    #[arg(
        long,
        default_value = "clusterdns,clusterdns-corefile,knot,nsd,unbound,responder",
        value_delimiter = ','
    )]
    servers: Vec<ServerKind>,
    /// Load clients, each run in turn against every server.
    #[arg(long, default_value = "loadgen,dnsperf", value_delimiter = ',')]
    clients: Vec<ClientKind>,
    /// Also run clusterdns with 2 workers (on CPUs 0 and 1, shared with the load generator).
    #[arg(long)]
    threads: bool,
    /// Query lines of the sample checked against clusterdns per query file (0: no check).
    #[arg(long, default_value_t = 2000)]
    check_sample: usize,
    /// Seconds without any `rustc` process required before each measured run.
    #[arg(long, default_value_t = 30)]
    quiet_secs: u64,
    /// Longest total wait for that quiet over the whole comparison, in seconds; once spent,
    /// runs are measured anyway and flagged.
    #[arg(long, default_value_t = 600)]
    max_quiet_wait: u64,
    /// First loopback port; servers take consecutive ports from it.
    #[arg(long, default_value_t = 5400)]
    base_port: u16,
    /// CPU the servers are pinned to.
    #[arg(long, default_value_t = 0)]
    server_cpu: usize,
    /// CPU the load clients are pinned to.
    #[arg(long, default_value_t = 1)]
    client_cpu: usize,
    /// Directory of the dist binaries (clusterdns, gen-cluster, loadgen) [default: this
    /// binary's].
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Keep the generated files, configs and logs.
    #[arg(long)]
    keep: bool,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also measure latency at this steady rate (queries a second, the service mix; 0: not):
    /// `loadgen --flood` times every reply, for p50, p99 and p999 per server.
    #[arg(long, default_value_t = 0.0)]
    latency_at: f64,
    /// Seconds of each steady-rate latency run.
    #[arg(long, default_value_t = 10.0)]
    latency_secs: f64,
}

/// A load client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ClientKind {
    /// This crate's batching load generator.
    Loadgen,
    /// dnsperf.
    Dnsperf,
}

/// `1k` → 1000, `50k` → 50000, `2500` → 2500.
fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let (digits, scale) = match text.strip_suffix(['k', 'K']) {
        Some(digits) => (digits, 1000),
        None => (text, 1),
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{text:?} is not a size like 1k, 10k or 2500"))
}

/// A size as the tables show it.
fn size_label(services: usize) -> String {
    if services.is_multiple_of(1000) {
        format!("{}k", services / 1000)
    } else {
        services.to_string()
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("compare: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Tells how long ago a `rustc` process was last seen (polled in the background).
struct Quiet {
    start: Instant,
    last_seen_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// Waiting time left over the whole comparison.
    budget: std::cell::Cell<Duration>,
}

impl Quiet {
    /// Starts polling `/proc` for `rustc` processes (as `pgrep -x rustc`) twice a second; the
    /// clock starts as if one had just been seen.
    fn start(budget: Duration) -> Self {
        let start = Instant::now();
        let last_seen_ms = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (last_seen_ms, stop) = (last_seen_ms.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if rustc_running() {
                        last_seen_ms.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
                    }
                    thread::sleep(Duration::from_millis(500));
                }
            });
        }
        Quiet {
            start,
            last_seen_ms,
            stop,
            budget: std::cell::Cell::new(budget),
        }
    }

    fn last_seen(&self) -> Duration {
        Duration::from_millis(self.last_seen_ms.load(Ordering::Relaxed))
    }

    /// Waits until no rustc has run for `quiet`, within what is left of the budget; false when
    /// it gave up.
    fn wait(&self, quiet: Duration) -> bool {
        let began = Instant::now();
        let mut told = false;
        loop {
            let since = self.start.elapsed().saturating_sub(self.last_seen());
            if since >= quiet {
                self.budget
                    .set(self.budget.get().saturating_sub(began.elapsed()));
                return true;
            }
            if began.elapsed() >= self.budget.get() {
                if !self.budget.get().is_zero() {
                    eprintln!("  (waiting budget for quiet spent: measuring anyway, flagged)");
                }
                self.budget.set(Duration::ZERO);
                return false;
            }
            if !told && self.last_seen() > Duration::ZERO {
                eprintln!("  waiting for {quiet:?} without rustc...");
                told = true;
            }
            thread::sleep(Duration::from_millis(500));
        }
    }

    /// Whether a rustc was seen after `since` (an instant of this run).
    fn seen_since(&self, since: Instant) -> bool {
        self.start + self.last_seen() >= since && self.last_seen() > Duration::ZERO
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Whether a process named exactly `rustc` exists.
fn rustc_running() -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
            && fs::read_to_string(entry.path().join("comm"))
                .is_ok_and(|comm| comm.trim() == "rustc")
    })
}

/// Every run of one (server, client) pair on one query file.
type Runs = BTreeMap<(String, ServerKind, &'static str), Vec<Measured>>;

fn run(args: &Args) -> Result<(), String> {
    if args.rounds == 0 || args.duration.is_nan() || args.duration <= 0.0 {
        return Err("--rounds and --duration must be positive".into());
    }
    check_programs()?;
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot locate this binary: {e}"))?
            .parent()
            .map(Path::to_path_buf)
            .ok_or("cannot locate the binary directory")?,
    };
    for binary in ["clusterdns", "gen-cluster", "loadgen"] {
        if !bin_dir.join(binary).is_file() {
            return Err(format!(
                "{}: missing; build with cargo build --profile dist -p clusterdns -p clusterdns-bench",
                bin_dir.join(binary).display()
            ));
        }
    }
    let quiet = Quiet::start(Duration::from_secs(args.max_quiet_wait));
    let work = std::env::temp_dir().join(format!("clusterdns-compare.{}", std::process::id()));
    fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let mut kinds = args.servers.clone();
    kinds.dedup();
    if args.threads && kinds.contains(&ServerKind::Clusterdns) {
        kinds.insert(1, ServerKind::Clusterdns2);
    }
    let mut out = String::new();
    let _ = writeln!(out, "{}", machine_line());
    let _ = writeln!(
        out,
        "servers pinned to CPU {}, clients to CPU {}; {} rounds of {} s, interleaved; median of rounds",
        args.server_cpu, args.client_cpu, args.rounds, args.duration
    );
    let result = (|| {
        for &services in &args.sizes {
            size_run(args, services, &kinds, &work, &bin_dir, &quiet, &mut out)?;
        }
        Ok::<(), String>(())
    })();
    println!("\n{out}");
    if args.keep {
        eprintln!("kept: {}", work.display());
    } else {
        let _ = fs::remove_dir_all(&work);
    }
    result
}

/// Generates one size, starts the servers, checks answers, measures, and appends the tables.
fn size_run(
    args: &Args,
    services: usize,
    kinds: &[ServerKind],
    work: &Path,
    bin_dir: &Path,
    quiet: &Quiet,
    out: &mut String,
) -> Result<(), String> {
    let label = size_label(services);
    let dir = work.join(&label);
    eprintln!("== {label}: generating");
    let status = Command::new(bin_dir.join("gen-cluster"))
        .args(["--services", &services.to_string()])
        .args(["--endpoints", &(services * 10).to_string()])
        .args(["--seed", &args.seed.to_string(), "--out"])
        .arg(&dir)
        .status()
        .map_err(|e| format!("gen-cluster: {e}"))?;
    if !status.success() {
        return Err(format!("gen-cluster failed: {status}"));
    }
    let domain = DEFAULT_DOMAIN;
    let zones = zone_files(&dir, domain)?;
    let upstream = Upstream::start()?;
    let mut servers = Vec::new();
    for (i, &kind) in kinds.iter().enumerate() {
        let cpus = if kind == ServerKind::Clusterdns2 {
            format!("{},{}", args.server_cpu, args.client_cpu)
        } else {
            args.server_cpu.to_string()
        };
        eprintln!("== {label}: starting {}", kind.name());
        let port = args.base_port + i as u16;
        servers.push(start_server(
            kind,
            (port, upstream.address),
            &cpus,
            &dir,
            &zones,
            bin_dir,
            domain,
        )?);
    }
    let files = ["service-mix", "search-storm"];
    let mut checks = Vec::new();
    if args.check_sample > 0 {
        for file in files {
            for line in check_answers(
                &servers,
                &dir.join(format!("{file}.txt")),
                args.check_sample,
            )? {
                eprintln!("  answers, {file}: {line}");
                checks.push(format!("- {file}: {line}"));
            }
        }
    }
    let mut runs: Runs = BTreeMap::new();
    for round in 0..args.rounds {
        for file in files {
            let queries = dir.join(format!("{file}.txt"));
            for &client in &args.clients {
                for server in &servers {
                    let calm = quiet.wait(Duration::from_secs(args.quiet_secs));
                    let began = Instant::now();
                    let mut measured = measure(args, client, server, &queries, bin_dir)?;
                    measured.disturbed = !calm || quiet.seen_since(began);
                    eprintln!(
                        "  round {} {file} {} {}: {:.0} qps, lost {}, {:.2} us CPU/query{}",
                        round + 1,
                        client_name(client),
                        server.kind.name(),
                        measured.qps,
                        measured.lost,
                        measured.cpu_us_per_query,
                        if measured.disturbed {
                            " (rustc ran)"
                        } else {
                            ""
                        }
                    );
                    runs.entry((file.to_owned(), server.kind, client_name(client)))
                        .or_default()
                        .push(measured);
                }
            }
        }
    }
    let _ = writeln!(out, "\n## {label} Services, {} endpoints\n", services * 10);
    let _ = writeln!(
        out,
        "| server | ready after start | peak RSS (VmHWM) | RSS after the runs |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: |");
    let mut rss: BTreeMap<ServerKind, (u64, u64)> = BTreeMap::new();
    for server in &servers {
        let (peak, now) = memory_kib(server.pid());
        rss.insert(server.kind, (peak, now));
        let _ = writeln!(
            out,
            "| {} | {:.1} s | {:.0} MiB | {:.0} MiB |",
            server.kind.name(),
            server.ready_after.as_secs_f64(),
            peak as f64 / 1024.0,
            now as f64 / 1024.0
        );
    }
    if !checks.is_empty() {
        let _ = writeln!(
            out,
            "\nAnswer check ({} lines sampled from each query file; rcode and answer records vs clusterdns):\n",
            args.check_sample
        );
        for line in &checks {
            let _ = writeln!(out, "{line}");
        }
    }
    for file in files {
        write_table(out, file, &runs, &rss, kinds, args);
    }
    if args.latency_at > 0.0 {
        let queries = dir.join("service-mix.txt");
        let mut latencies: BTreeMap<ServerKind, Vec<Latency>> = BTreeMap::new();
        for round in 0..args.rounds {
            for server in &servers {
                let latency = latency_at(args, server, &queries, bin_dir)?;
                eprintln!(
                    "  round {} latency at {} qps {}: p50 {:.3} / p99 {:.3} / p999 {:.3} / max {:.3} ms",
                    round + 1,
                    args.latency_at,
                    server.kind.name(),
                    latency.p50_ms,
                    latency.p99_ms,
                    latency.p999_ms,
                    latency.max_ms
                );
                latencies.entry(server.kind).or_default().push(latency);
            }
        }
        write_latency_table(out, &latencies, kinds, args);
    }
    if args.keep {
        for server in &servers {
            eprintln!("  {} files: {}", server.kind.name(), server.dir.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1k"), Ok(1000));
        assert_eq!(parse_size("50K"), Ok(50_000));
        assert_eq!(parse_size("2500"), Ok(2500));
        assert!(parse_size("0").is_err());
        assert!(parse_size("k").is_err());
        assert_eq!(size_label(10_000), "10k");
        assert_eq!(size_label(2500), "2500");
    }

    #[test]
    fn flood_latency_line() {
        let text = "  flood: sent 200000 (20000 qps over 10.00 s), not taken by the kernel 0, \
                    replies 199800 (99.9%, NOERROR 199800), no reply 200\n  flood latency: p50 \
                    0.051 ms, p99 0.210 ms, p999 0.987 ms, max 4.100 ms (199800 timed)\n";
        let latency = measure::parse_flood(text).expect("parsed");
        assert_eq!(latency.p50_ms, 0.051);
        assert_eq!(latency.p99_ms, 0.21);
        assert_eq!(latency.p999_ms, 0.987);
        assert_eq!(latency.max_ms, 4.1);
        assert!((latency.answered - 0.999).abs() < 1e-9);
    }
}
