//! `api-scale --soak MINUTES`: clusterdns under steady load for a long time, with the zone
//! changing every second. Not for CI: a 30-minute run is the acceptance figure.
//!
//! The load is dnsperf at 80% of the rate it reaches against the server on its one core
//! (measured first, over 10 s, with the same query file; the server's own CPU use per minute is
//! reported beside it, since dnsperf on its one core may be the limit); each minute is one
//! dnsperf run, so its sent, completed and lost counts are per minute. Every second a headless Service's EndpointSlice changes in the
//! fake API and the answer must show it within a second. Every minute the server's resident
//! memory is read, and the Services no write touches must still answer as at the start.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clusterdns::ops::process::ProcessStats;
use clusterdns_bench::{service_mix, write_queries};
use clusterdns_testkit::fakeapi::FakeApi;
use clusterdns_zone::Cluster;

use super::{Memory, Plan, Resolver, Server};

/// The share of the measured capacity the soak runs at.
const LOAD: f64 = 0.8;
/// Queries in the dnsperf query file.
const QUERIES: usize = 100_000;
/// Seconds of the capacity measurement.
const CAPACITY_SECONDS: u64 = 10;

/// What one minute of the soak saw.
struct Minute {
    sent: u64,
    completed: u64,
    lost: u64,
    rss_kib: u64,
    peak_kib: u64,
    changes: usize,
    changes_late: usize,
    slowest_change: Duration,
    steady_ok: bool,
    /// The server's CPU time over the minute, as a share of one core.
    cpu: f64,
}

/// Runs the soak for `minutes` and prints a row per minute and a summary; fails when a query
/// was lost, a change did not show within a second, or a steady answer changed.
pub fn soak(
    minutes: u64,
    cluster: &Cluster,
    api: &FakeApi,
    server: &Server,
    plan: &mut Plan,
    resolver: &mut Resolver,
) -> Result<(), String> {
    let dir = clusterdns_testkit::temp::TempDir::new("api-scale-soak");
    let queries = dir.path().join("service-mix.txt");
    let file =
        std::fs::File::create(&queries).map_err(|e| format!("{}: {e}", queries.display()))?;
    write_queries(
        std::io::BufWriter::new(file),
        &service_mix(cluster, "cluster.local", QUERIES, 7),
    )
    .map_err(|e| format!("{}: {e}", queries.display()))?;

    let capacity = dnsperf(server, &queries, CAPACITY_SECONDS, None)?;
    let capacity = capacity
        .wait_with_output()
        .map_err(|e| format!("dnsperf: {e}"))?;
    let capacity = parse(&String::from_utf8_lossy(&capacity.stdout))
        .ok_or("dnsperf: no summary in its output")?;
    let qps = capacity.completed as f64 / CAPACITY_SECONDS as f64;
    let rate = (qps * LOAD) as u64;
    println!(
        "soak: capacity {qps:.0} qps on one core; {minutes} minutes at {rate} qps ({:.0}%), \
         one EndpointSlice change a second",
        LOAD * 100.0
    );
    println!(
        "| minute | server CPU | sent | completed | lost | RSS MiB | peak MiB | changes | late \
         | slowest change | steady answers |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut all = Vec::new();
    let mut round = 0usize;
    for minute in 1..=minutes {
        let cpu_before = cpu_seconds(server.pid());
        let load = dnsperf(server, &queries, 60, Some(rate))?;
        let started = Instant::now();
        let (mut changes, mut late, mut slowest) = (0usize, 0usize, Duration::ZERO);
        for second in 1..=59u32 {
            match plan.change_headless(api, resolver, round) {
                Ok(latency) if latency <= Duration::from_secs(1) => slowest = slowest.max(latency),
                Ok(latency) => {
                    late += 1;
                    slowest = slowest.max(latency);
                }
                Err(_) => late += 1,
            }
            changes += 1;
            round += 1;
            let next = Duration::from_secs(u64::from(second));
            std::thread::sleep(next.saturating_sub(started.elapsed()));
        }
        let output = load
            .wait_with_output()
            .map_err(|e| format!("dnsperf: {e}"))?;
        let counts = parse(&String::from_utf8_lossy(&output.stdout))
            .ok_or("dnsperf: no summary in its output")?;
        let cpu = (cpu_seconds(server.pid()) - cpu_before) / started.elapsed().as_secs_f64();
        server.check_alive()?;
        let memory = Memory::of(server.pid())?;
        let steady_ok = plan.check_before(resolver).is_ok();
        let row = Minute {
            sent: counts.sent,
            completed: counts.completed,
            lost: counts.lost,
            rss_kib: memory.current_kib,
            peak_kib: memory.peak_kib,
            changes,
            changes_late: late,
            slowest_change: slowest,
            steady_ok,
            cpu,
        };
        println!(
            "| {minute} | {:.0}% | {} | {} | {} | {:.1} | {:.1} | {} | {} | {:.1} ms | {} |",
            row.cpu * 100.0,
            row.sent,
            row.completed,
            row.lost,
            row.rss_kib as f64 / 1024.0,
            row.peak_kib as f64 / 1024.0,
            row.changes,
            row.changes_late,
            row.slowest_change.as_secs_f64() * 1e3,
            if row.steady_ok {
                "as at the start"
            } else {
                "CHANGED"
            },
        );
        all.push(row);
    }
    summary(&all)
}

/// The totals, and whether the soak held.
fn summary(minutes: &[Minute]) -> Result<(), String> {
    let sent: u64 = minutes.iter().map(|m| m.sent).sum();
    let lost: u64 = minutes.iter().map(|m| m.lost).sum();
    let late: usize = minutes.iter().map(|m| m.changes_late).sum();
    let changes: usize = minutes.iter().map(|m| m.changes).sum();
    let wrong = minutes.iter().filter(|m| !m.steady_ok).count();
    let rss: Vec<u64> = minutes.iter().map(|m| m.rss_kib).collect();
    let (first, last) = (rss.first().copied(), rss.last().copied());
    let (low, high) = (rss.iter().min().copied(), rss.iter().max().copied());
    println!(
        "soak: {sent} queries sent, {lost} lost; {changes} changes, {late} not seen within 1 s; \
         steady answers changed in {wrong} minutes; RSS first {} / last {} / min {} / max {} MiB",
        mib_of(first),
        mib_of(last),
        mib_of(low),
        mib_of(high)
    );
    if lost > 0 || late > 0 || wrong > 0 {
        return Err("the soak lost queries, missed changes or changed answers".into());
    }
    Ok(())
}

/// KiB as MiB with one decimal, or `-`.
fn mib_of(kib: Option<u64>) -> String {
    kib.map_or_else(|| "-".into(), |k| format!("{:.1}", k as f64 / 1024.0))
}

/// The user and system CPU time of process `pid` so far, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    ProcessStats::of(&pid.to_string()).map_or(0.0, |stats| stats.cpu_seconds)
}

/// dnsperf's counts.
struct Counts {
    sent: u64,
    completed: u64,
    lost: u64,
}

/// Starts dnsperf on `queries` against the server for `seconds`, at `rate` queries a second
/// (as fast as it can without).
fn dnsperf(
    server: &Server,
    queries: &Path,
    seconds: u64,
    rate: Option<u64>,
) -> Result<Child, String> {
    let program = ["/usr/bin/dnsperf", "/usr/local/bin/dnsperf"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or("dnsperf is not installed (apt-get install dnsperf)")?;
    let mut command = Command::new(program);
    command
        .args(["-s", &server.dns.ip().to_string()])
        .args(["-p", &server.dns.port().to_string()])
        .arg("-d")
        .arg(queries)
        .args(["-l", &seconds.to_string()])
        .args(["-c", "8", "-q", "500", "-t", "2"])
        .args(["-Q", &rate.unwrap_or(2_000_000).to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    command.spawn().map_err(|e| format!("dnsperf: {e}"))
}

/// The counts of a dnsperf summary (`Queries sent:`, `Queries completed:`, `Queries lost:`).
fn parse(output: &str) -> Option<Counts> {
    let count = |label: &str| -> Option<u64> {
        let line = output.lines().find(|l| l.trim_start().starts_with(label))?;
        line.trim_start()
            .strip_prefix(label)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some(Counts {
        sent: count("Queries sent:")?,
        completed: count("Queries completed:")?,
        lost: count("Queries lost:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dnsperf_summaries() {
        let output = "Statistics:\n\n  Queries sent:         600000\n  Queries completed:    \
                      599990 (100.00%)\n  Queries lost:         10 (0.00%)\n";
        let counts = parse(output).expect("parses");
        assert_eq!(
            (counts.sent, counts.completed, counts.lost),
            (600000, 599990, 10)
        );
        assert!(parse("nothing").is_none());
    }
}
