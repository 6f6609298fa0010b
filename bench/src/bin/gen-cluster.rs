//! `gen-cluster`: writes a synthetic cluster, its dnsperf query files and its zone files.
//!
//! ```text
//! gen-cluster --services 10000 --endpoints 100000 --seed 1 --out DIR
//!   DIR/cluster.yaml      Namespaces, Services, EndpointSlices (clusterdns --manifests DIR/cluster.yaml)
//!   DIR/service-mix.txt   dnsperf data: A/AAAA/SRV/headless/PTR/NXDOMAIN mix
//!   DIR/search-storm.txt  dnsperf data: ndots:5 search-path expansions of external names
//!   DIR/zones/<origin>.zone  the same records as RFC 1035 zone files: the cluster zone and one
//!                         reverse zone per IPv4 /8 and IPv6 /48 (for Knot DNS, NSD, Unbound)
//! ```

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use clusterdns_bench::zonefile::{write_zone_files, ZoneParams};
use clusterdns_bench::{generate, search_storm, service_mix, write_manifests, write_queries, Spec};

/// Writes a deterministic synthetic Kubernetes cluster (manifests) and dnsperf query files.
#[derive(Debug, Parser)]
#[command(name = "gen-cluster", version, about, long_about = None)]
struct Args {
    /// Number of Services.
    #[arg(long, default_value_t = 10_000)]
    services: usize,
    /// Total endpoints over all EndpointSlices [default: 10 per ClusterIP and headless Service].
    #[arg(long)]
    endpoints: Option<usize>,
    /// Seed: the same seed and sizes give the same files.
    #[arg(long, default_value_t = clusterdns_bench::generate::DEFAULT_SEED)]
    seed: u64,
    /// Cluster domain.
    #[arg(long, default_value = clusterdns_bench::generate::DEFAULT_DOMAIN)]
    domain: String,
    /// Lines of each query file.
    #[arg(long, default_value_t = 100_000)]
    queries: usize,
    /// SOA serial of the zone files.
    #[arg(long, default_value_t = 1)]
    serial: u32,
    /// Output directory (created when missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gen-cluster: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let spec = match args.endpoints {
        Some(total) => Spec::with_total_endpoints(args.services, total),
        None => Spec::new(args.services),
    }
    .seed(args.seed)
    .domain(&args.domain);
    let started = Instant::now();
    let cluster = generate(&spec).map_err(|e| e.to_string())?;
    fs::create_dir_all(&args.out)
        .map_err(|e| format!("{}: cannot create: {e}", args.out.display()))?;
    let mix = service_mix(&cluster, &spec.domain, args.queries, spec.seed);
    let storm = search_storm(&cluster, &spec.domain, args.queries, spec.seed);
    let manifests = args.out.join("cluster.yaml");
    write_file(&manifests, |out| write_manifests(&cluster, out))?;
    write_file(&args.out.join("service-mix.txt"), |out| {
        write_queries(out, &mix)
    })?;
    write_file(&args.out.join("search-storm.txt"), |out| {
        write_queries(out, &storm)
    })?;
    let zones_dir = args.out.join("zones");
    fs::create_dir_all(&zones_dir)
        .map_err(|e| format!("{}: cannot create: {e}", zones_dir.display()))?;
    let params = ZoneParams {
        domain: spec.domain.clone(),
        ttl: spec.zone_config().map_err(|e| e.to_string())?.ttl,
        serial: args.serial,
    };
    let zones = write_zone_files(&cluster, &params, &zones_dir)
        .map_err(|e| format!("{}: cannot write zone files: {e}", zones_dir.display()))?;
    let records: usize = zones.iter().map(|z| z.records).sum();
    let endpoints: usize = cluster.slices.iter().map(|s| s.endpoints.len()).sum();
    println!(
        "gen-cluster: {} namespaces, {} services, {} endpoint slices, {} endpoints, {} zones of {records} records (seed {}, {}) -> {} in {:.1?}",
        cluster.namespaces.len(),
        cluster.services.len(),
        cluster.slices.len(),
        endpoints,
        zones.len(),
        spec.seed,
        spec.domain,
        args.out.display(),
        started.elapsed()
    );
    Ok(())
}

/// Creates `path` and fills it with `write`, naming the file in any error.
fn write_file(
    path: &Path,
    write: impl FnOnce(BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), String> {
    let file = File::create(path).map_err(|e| format!("{}: cannot create: {e}", path.display()))?;
    write(BufWriter::with_capacity(1 << 20, file))
        .map_err(|e| format!("{}: cannot write: {e}", path.display()))
}
