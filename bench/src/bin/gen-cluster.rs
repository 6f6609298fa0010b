//! `gen-cluster`: writes a synthetic cluster, its dnsperf query files and its zone files.
//!
//! ```text
//! gen-cluster --services 10000 --endpoints 100000 --seed 1 --out DIR
//!   DIR/cluster.yaml      Namespaces, Services, EndpointSlices (clusterdns --manifests DIR/cluster.yaml)
//!   DIR/cluster-list.yaml the same as one `kind: List` document (with --format yaml-list)
//!   DIR/cluster.json      the same as a JSON `kind: List` (with --format json)
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

use clap::{Parser, ValueEnum};
use clusterdns_bench::zonefile::{write_zone_files, ZoneParams};
use clusterdns_bench::{
    generate, search_storm, service_mix, write_json_list, write_manifests_as, write_queries,
    Layout, Spec,
};
use clusterdns_zone::Cluster;

/// A manifest file layout `gen-cluster` can write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// `cluster.yaml`: one YAML document per object.
    Yaml,
    /// `cluster-list.yaml`: one `kind: List` YAML document, as `kubectl get -o yaml` writes.
    YamlList,
    /// `cluster.json`: one JSON `kind: List`, as `kubectl get -o json` writes.
    Json,
}

impl Format {
    /// The file this format is written to.
    fn file_name(self) -> &'static str {
        match self {
            Format::Yaml => "cluster.yaml",
            Format::YamlList => "cluster-list.yaml",
            Format::Json => "cluster.json",
        }
    }

    /// Writes `cluster` in this format.
    fn write(self, cluster: &Cluster, out: BufWriter<File>) -> std::io::Result<()> {
        match self {
            Format::Yaml => write_manifests_as(cluster, Layout::Documents, out),
            Format::YamlList => write_manifests_as(cluster, Layout::List, out),
            Format::Json => write_json_list(cluster, out),
        }
    }
}

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
    /// Manifest files to write (repeatable or comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "yaml")]
    format: Vec<Format>,
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
    for format in &args.format {
        write_file(&args.out.join(format.file_name()), |out| {
            format.write(&cluster, out)
        })?;
    }
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
