//! `loadgen`: a batching UDP load generator for DNS servers (dnsperf's query files, more
//! queries per second per core than dnsperf).
//!
//! ```text
//! taskset -c 1 loadgen --server 127.0.0.1:5300 --queries service-mix.txt --duration 10 [--json]
//! loadgen --respond 127.0.0.1:5399      # a trivial server that echoes queries, for the ceiling
//! loadgen --server 127.0.0.1:5300 --queries random.txt --flood 20000 --duration 30
//!                                       # 20,000 queries a second, whatever comes back
//! ```
//!
//! Pinning is left to the caller (`taskset`); see the crate README.

use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::Parser;
use clusterdns_bench::flood::{flood, FloodConfig};
use clusterdns_bench::load::{respond, run, LoadConfig};
use clusterdns_bench::queryfile::QueryFile;

/// Sends a dnsperf-format query file to a DNS server over UDP and reports qps, latency
/// percentiles, lost queries and response codes.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, about, long_about = None)]
struct Args {
    /// The server to load.
    #[arg(long, default_value = "127.0.0.1:53", conflicts_with = "respond")]
    server: SocketAddr,
    /// Query file: `name TYPE` per line (dnsperf's format); sent in order, wrapping around.
    #[arg(long, value_name = "FILE", required_unless_present = "respond")]
    queries: Option<PathBuf>,
    /// UDP sockets (source ports).
    #[arg(long, default_value_t = 4)]
    sockets: usize,
    /// Queries in flight per socket at most (a power of two, at most 4096).
    #[arg(long, default_value_t = 32)]
    outstanding: usize,
    /// Queries per sendmmsg/recvmmsg call at most.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Milliseconds after which a query without reply counts as lost.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
    /// A label copied into the report.
    #[arg(long, default_value = "")]
    label: String,
    /// Instead of loading a server, answer queries on this address with their own bytes (QR
    /// set) until killed: the fastest possible server, to measure the generator's ceiling.
    #[arg(long, value_name = "ADDR")]
    respond: Option<SocketAddr>,
    /// Instead of keeping queries in flight, send this many a second, in file order, each
    /// once, whatever the server answers (a flood), and count the replies by rcode.
    #[arg(long, value_name = "QPS")]
    flood: Option<f64>,
    /// With --flood: milliseconds to keep counting replies after the last query.
    #[arg(long, default_value_t = 3000)]
    linger_ms: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match execute(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("loadgen: {message}");
            ExitCode::FAILURE
        }
    }
}

fn execute(args: &Args) -> Result<(), String> {
    if let Some(address) = args.respond {
        let socket = UdpSocket::bind(address).map_err(|e| format!("bind {address}: {e}"))?;
        let never = AtomicBool::new(false);
        respond(&socket, args.batch, &never).map_err(|e| format!("respond: {e}"))?;
        return Ok(());
    }
    let path = args.queries.as_ref().ok_or("--queries is required")?;
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let queries = QueryFile::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if args.duration.is_nan() || args.duration <= 0.0 || args.duration.is_infinite() {
        return Err(format!("--duration {}: must be positive", args.duration));
    }
    if let Some(rate) = args.flood {
        let config = FloodConfig {
            server: args.server,
            rate,
            duration: Duration::from_secs_f64(args.duration),
            linger: Duration::from_millis(args.linger_ms),
        };
        let report = flood(&config, &queries).map_err(|e| format!("{}: {e}", args.server))?;
        print!("{}", report.to_text());
        return Ok(());
    }
    let config = LoadConfig {
        server: args.server,
        sockets: args.sockets,
        outstanding: args.outstanding,
        batch: args.batch,
        duration: Duration::from_secs_f64(args.duration),
        timeout: Duration::from_millis(args.timeout_ms),
    };
    let report = run(&config, &queries).map_err(|e| format!("{}: {e}", args.server))?;
    if args.json {
        println!("{}", report.to_json(&args.label));
    } else {
        println!(
            "loadgen: {} <- {} ({} queries), {} sockets x {} in flight, batches of {}",
            args.server,
            path.display(),
            queries.len(),
            config.sockets,
            config.outstanding.clamp(1, 4096).next_power_of_two(),
            config.batch
        );
        print!("{}", report.to_text());
    }
    Ok(())
}
