//! The Markdown tables a run prints, and the line that says which machine ran it.

use super::*;

/// The CPU model and core count, for the header.
pub(super) fn machine_line() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    format!("machine: {cores} cores, {model}")
}

/// The steady-rate latency table: a row per server, the median over rounds of each quantile.
pub(super) fn write_latency_table(
    out: &mut String,
    latencies: &BTreeMap<ServerKind, Vec<Latency>>,
    kinds: &[ServerKind],
    args: &Args,
) {
    let _ = writeln!(
        out,
        "\n### latency at {} qps (service-mix, `loadgen --flood`, {} s a run)\n",
        args.latency_at, args.latency_secs
    );
    let _ = writeln!(out, "| server | p50 | p99 | p999 | max | answered |");
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: |");
    for kind in kinds {
        let Some(runs) = latencies.get(kind) else {
            continue;
        };
        let pick = |f: &dyn Fn(&Latency) -> f64| {
            let mut values: Vec<f64> = runs.iter().map(f).collect();
            median(&mut values)
        };
        let _ = writeln!(
            out,
            "| {} | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {:.2}% |",
            kind.name(),
            pick(&|l| l.p50_ms),
            pick(&|l| l.p99_ms),
            pick(&|l| l.p999_ms),
            pick(&|l| l.max_ms),
            100.0 * pick(&|l| l.answered),
        );
    }
}

/// One table: a row per (server, client), medians over rounds, ratios to clusterdns.
pub(super) fn write_table(
    out: &mut String,
    file: &str,
    runs: &Runs,
    rss: &BTreeMap<ServerKind, (u64, u64)>,
    kinds: &[ServerKind],
    args: &Args,
) {
    let _ = writeln!(out, "\n### {file}\n");
    let _ = writeln!(
        out,
        "| client | server | qps | qps ÷ clusterdns | p50 | p99 | lost | server CPU µs/answer | CPU ÷ clusterdns | peak RSS | RSS ÷ clusterdns | client CPU µs/query |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let reference_rss = rss.get(&ServerKind::Clusterdns).map_or(0, |r| r.0).max(1) as f64;
    for &client in &args.clients {
        let name = client_name(client);
        let summary = |kind: ServerKind| {
            let measured = runs.get(&(file.to_owned(), kind, name))?;
            let pick = |f: &dyn Fn(&Measured) -> f64| {
                let mut values: Vec<f64> = measured.iter().map(f).collect();
                median(&mut values)
            };
            Some((
                pick(&|m| m.qps),
                pick(&|m| m.p50_us.unwrap_or(m.mean_us)),
                pick(&|m| m.p99_us.unwrap_or(f64::NAN)),
                measured.iter().map(|m| m.lost).sum::<u64>(),
                pick(&|m| m.cpu_us_per_query),
                measured.iter().filter(|m| m.disturbed).count(),
                pick(&|m| m.client_cpu_us_per_query),
            ))
        };
        let Some(reference) = summary(ServerKind::Clusterdns) else {
            continue;
        };
        for &kind in kinds {
            let Some((qps, p50, p99, lost, cpu, disturbed, client_cpu)) = summary(kind) else {
                continue;
            };
            let peak = rss.get(&kind).map_or(0, |r| r.0) as f64;
            let p50_label = match client {
                ClientKind::Loadgen => format!("{:.3} ms", p50 / 1e3),
                ClientKind::Dnsperf => format!("{:.3} ms avg", p50 / 1e3),
            };
            let p99_label = if p99.is_nan() {
                "–".to_owned()
            } else {
                format!("{:.3} ms", p99 / 1e3)
            };
            let flag = if disturbed > 0 {
                format!(" ({disturbed} rounds with rustc)")
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "| {name} | {}{flag} | {:.0} | {:.2} | {p50_label} | {p99_label} | {lost} | {:.2} | {:.2} | {:.0} MiB | {:.2} | {client_cpu:.2} |",
                kind.name(),
                qps,
                qps / reference.0.max(1.0),
                cpu,
                cpu / reference.4.max(1e-9),
                peak / 1024.0,
                peak / reference_rss
            );
        }
    }
    if kinds.contains(&ServerKind::Clusterdns2) {
        let _ = writeln!(
            out,
            "\n\\* clusterdns 2w: two workers pinned to CPUs {} and {}; the machine has 2 cores, so the load client shares one of them.",
            args.server_cpu, args.client_cpu
        );
    }
}
