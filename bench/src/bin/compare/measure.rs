//! Measuring a running server: its answers checked against clusterdns's, a load client's
//! run parsed, CPU time and memory read from /proc.

use super::*;

/// Sends one query (no EDNS, as dnsperf) and decodes the answer.
pub(super) fn ask(
    server: SocketAddr,
    name: &str,
    qtype: &str,
    timeout: Duration,
) -> Result<AnswerSet, String> {
    let code = qtype_code(qtype).ok_or_else(|| format!("unknown type {qtype}"))?;
    let id = (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(7)
        & 0xFFFF) as u16;
    let query = query_packet(id, name, code, None).ok_or_else(|| format!("bad name {name}"))?;
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    socket.send_to(&query, server).map_err(|e| e.to_string())?;
    let mut buffer = [0u8; 65535];
    loop {
        let (len, _) = socket.recv_from(&mut buffer).map_err(|e| e.to_string())?;
        if len >= 2 && buffer[..2] == id.to_be_bytes() {
            return answer_set(&buffer[..len]);
        }
    }
}

/// CPU time (utime + stime, clock ticks) of a process and all its descendants.
pub(super) fn cpu_ticks(pid: u32) -> u64 {
    tree(pid)
        .iter()
        .map(|&p| stat_fields(p).map_or(0, |f| f.1))
        .sum()
}

/// (ppid, utime + stime) of a process, from `/proc/<pid>/stat`.
pub(super) fn stat_fields(pid: u32) -> Option<(u32, u64)> {
    let fields = process::stat_fields(&pid.to_string())?;
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// `pid` and its descendants.
pub(super) fn tree(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            if let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() {
                if let Some((ppid, _)) = stat_fields(p) {
                    parents.push((p, ppid));
                }
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    out
}

/// Peak and current resident memory of a server in KiB: the largest of its processes (NSD's
/// serving child shares the zone with its parent, so a sum would count it twice).
pub(super) fn memory_kib(pid: u32) -> (u64, u64) {
    let processes = tree(pid);
    let peak = processes
        .iter()
        .map(|&p| process::status_kib(&p.to_string(), "VmHWM:").unwrap_or(0))
        .max()
        .unwrap_or(0);
    let now = processes
        .iter()
        .map(|&p| process::status_kib(&p.to_string(), "VmRSS:").unwrap_or(0))
        .max()
        .unwrap_or(0);
    (peak, now)
}

/// One measured run.
#[derive(Clone, Debug, Default)]
pub(super) struct Measured {
    pub(super) qps: f64,
    pub(super) p50_us: Option<f64>,
    pub(super) p99_us: Option<f64>,
    pub(super) mean_us: f64,
    pub(super) lost: u64,
    pub(super) completed: u64,
    pub(super) cpu_us_per_query: f64,
    pub(super) client_cpu_us_per_query: f64,
    pub(super) disturbed: bool,
}

/// What dnsperf printed, reduced to the figures of a [`Measured`].
pub(super) fn parse_dnsperf(output: &str) -> Option<Measured> {
    let number = |prefix: &str| -> Option<f64> {
        let line = output
            .lines()
            .find(|l| l.trim_start().starts_with(prefix))?;
        line.trim_start()[prefix.len()..]
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some(Measured {
        qps: number("Queries per second:")?,
        mean_us: number("Average Latency (s):")? * 1e6,
        lost: number("Queries lost:")? as u64,
        completed: number("Queries completed:")? as u64,
        ..Measured::default()
    })
}

/// What loadgen's JSON line says, reduced to the figures of a [`Measured`].
pub(super) fn parse_loadgen(output: &str) -> Option<Measured> {
    let line = output.lines().rev().find(|l| l.starts_with('{'))?;
    let value: Value = serde_json::from_str(line).ok()?;
    Some(Measured {
        qps: value["qps"].as_f64()?,
        p50_us: value["p50_us"].as_f64(),
        p99_us: value["p99_us"].as_f64(),
        mean_us: value["mean_us"].as_f64()?,
        lost: value["lost"].as_u64()?,
        completed: value["completed"].as_u64()?,
        ..Measured::default()
    })
}

/// Runs one client against one server for the configured duration.
pub(super) fn measure(
    args: &Args,
    client: ClientKind,
    server: &Server,
    queries: &Path,
    bin_dir: &Path,
) -> Result<Measured, String> {
    let cpu = args.client_cpu.to_string();
    let duration = format!("{}", args.duration);
    let port = server.port.to_string();
    let mut command = Command::new("taskset");
    command.arg("-c").arg(&cpu);
    match client {
        ClientKind::Loadgen => {
            command
                .arg(bin_dir.join("loadgen"))
                .args(["--server", &server.address().to_string(), "--queries"])
                .arg(queries)
                .args(["--duration", &duration, "--json"]);
        }
        ClientKind::Dnsperf => {
            let seconds = args.duration.ceil().max(1.0).to_string();
            command
                .arg(find_program("dnsperf").ok_or("dnsperf not found")?)
                .args(["-s", "127.0.0.1", "-p", &port, "-d"])
                .arg(queries)
                .args(["-l", &seconds, "-c", "8", "-q", "500", "-Q", "2000000"]);
        }
    }
    let before = cpu_ticks(server.pid());
    let client_before = children_cpu();
    let output = command.output().map_err(|e| format!("{client:?}: {e}"))?;
    let after = cpu_ticks(server.pid());
    let client_cpu = children_cpu().saturating_sub(client_before);
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "{client:?} against {} failed: {}\n{stdout}{}",
            server.kind.name(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let mut measured = match client {
        ClientKind::Loadgen => parse_loadgen(&stdout),
        ClientKind::Dnsperf => parse_dnsperf(&stdout),
    }
    .ok_or_else(|| format!("{client:?}: unreadable output:\n{stdout}"))?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu_us = (after.saturating_sub(before)) as f64 * 1e6 / hz;
    measured.cpu_us_per_query = cpu_us / measured.completed.max(1) as f64;
    measured.client_cpu_us_per_query =
        client_cpu.as_secs_f64() * 1e6 / measured.completed.max(1) as f64;
    Ok(measured)
}

/// Latency quantiles of one steady-rate run, in milliseconds, and the share of queries answered.
#[derive(Clone, Copy, Debug)]
pub(super) struct Latency {
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    pub(super) p999_ms: f64,
    pub(super) max_ms: f64,
    pub(super) answered: f64,
}

/// Runs `loadgen --flood` at `args.latency_at` queries a second against `server` for
/// `args.latency_secs` and reads the latency line it prints.
pub(super) fn latency_at(
    args: &Args,
    server: &Server,
    queries: &Path,
    bin_dir: &Path,
) -> Result<Latency, String> {
    let output = Command::new("taskset")
        .arg("-c")
        .arg(args.client_cpu.to_string())
        .arg(bin_dir.join("loadgen"))
        .args(["--server", &server.address().to_string(), "--queries"])
        .arg(queries)
        .args(["--flood", &args.latency_at.to_string()])
        .args(["--duration", &args.latency_secs.to_string()])
        .output()
        .map_err(|e| format!("loadgen --flood: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "loadgen --flood against {}: {}\n{stdout}",
            server.kind.name(),
            output.status
        ));
    }
    parse_flood(&stdout).ok_or_else(|| format!("loadgen --flood: unreadable output:\n{stdout}"))
}

/// The figures of `loadgen --flood`'s report: `sent N (...)`, `replies M (...)` and
/// `flood latency: p50 A ms, p99 B ms, p999 C ms, max D ms`.
pub(super) fn parse_flood(output: &str) -> Option<Latency> {
    let number_after = |key: &str| -> Option<f64> {
        let at = output.find(key)? + key.len();
        let text = output[at..].trim_start();
        let end = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        text[..end].parse().ok()
    };
    let sent = number_after("sent ")?;
    let replies = number_after("replies ")?;
    Some(Latency {
        p50_ms: number_after("p50 ")?,
        p99_ms: number_after("p99 ")?,
        p999_ms: number_after("p999 ")?,
        max_ms: number_after("max ")?,
        answered: replies / sent.max(1.0),
    })
}

/// User + system CPU time of this process's waited-for children so far (the load clients).
pub(super) fn children_cpu() -> Duration {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The median of some values (the mean of the middle two for an even count).
pub(super) fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

pub(super) fn client_name(client: ClientKind) -> &'static str {
    match client {
        ClientKind::Loadgen => "loadgen",
        ClientKind::Dnsperf => "dnsperf",
    }
}

/// Checks a sample of a query file against clusterdns: each other server's answer (rcode and
/// answer-section records) must equal clusterdns's. Returns one report line per server.
pub(super) fn check_answers(
    servers: &[Server],
    queries: &Path,
    sample: usize,
) -> Result<Vec<String>, String> {
    let text = fs::read_to_string(queries).map_err(|e| format!("{}: {e}", queries.display()))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let step = (lines.len() / sample.max(1)).max(1);
    let picked: Vec<(&str, &str)> = lines
        .iter()
        .step_by(step)
        .take(sample)
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some((words.next()?, words.next().unwrap_or("A")))
        })
        .collect();
    let Some(reference) = servers.iter().find(|s| s.kind == ServerKind::Clusterdns) else {
        return Ok(Vec::new());
    };
    let timeout = Duration::from_secs(1);
    let expected: Vec<Result<AnswerSet, String>> = picked
        .iter()
        .map(|(name, qtype)| ask(reference.address(), name, qtype, timeout))
        .collect();
    let mut report = Vec::new();
    for server in servers.iter().filter(|s| {
        !matches!(
            s.kind,
            ServerKind::Clusterdns
                | ServerKind::Clusterdns2
                | ServerKind::ClusterdnsCorefile
                | ServerKind::Responder
        )
    }) {
        let mut same = 0;
        let mut differ: BTreeMap<String, (usize, String)> = BTreeMap::new();
        for ((name, qtype), want) in picked.iter().zip(&expected) {
            let got = ask(server.address(), name, qtype, timeout);
            let kind = match (want, &got) {
                (Ok(w), Ok(g)) if w == g => {
                    same += 1;
                    continue;
                }
                (Ok(w), Ok(g)) if w.rcode != g.rcode => {
                    format!("{qtype} rcode {} vs {}", w.rcode, g.rcode)
                }
                (Ok(_), Ok(_)) => format!("{qtype} records differ"),
                (Err(e), _) => format!("clusterdns: {e}"),
                (_, Err(e)) => format!("{}: {e}", server.kind.name()),
            };
            let example = format!(
                "{name} {qtype}: clusterdns {want:?} / {} {got:?}",
                server.kind.name()
            );
            differ.entry(kind).or_insert((0, example)).0 += 1;
        }
        let mut line = format!(
            "{} vs clusterdns: {same}/{} identical",
            server.kind.name(),
            picked.len()
        );
        for (kind, (count, example)) in &differ {
            let _ = write!(line, "\n    {count} x {kind}, e.g. {example}");
        }
        report.push(line);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dnsperf_output() {
        let output = "Statistics:\n\n  Queries sent:         301526\n  Queries completed:    301520 (100.00%)\n  \
                      Queries lost:         6 (0.00%)\n\n  Response codes:       NOERROR 286440 (95.00%)\n  \
                      Run time (s):         3.000160\n  Queries per second:   100501.3\n\n  \
                      Average Latency (s):  0.001207 (min 0.000021, max 0.010000)\n";
        let measured = parse_dnsperf(output).expect("parses");
        assert_eq!(measured.completed, 301_520);
        assert_eq!(measured.lost, 6);
        assert!((measured.qps - 100_501.3).abs() < 1e-6);
        assert!((measured.mean_us - 1207.0).abs() < 1e-6);
        assert!(parse_dnsperf("nothing").is_none());
    }

    #[test]
    fn loadgen_output() {
        let line = r#"{"label":"","sent":10,"completed":9,"lost":1,"qps":3.0,"p50_us":12.5,"p99_us":40.0,"p999_us":41.0,"mean_us":15.0}"#;
        let measured = parse_loadgen(line).expect("parses");
        assert_eq!((measured.completed, measured.lost), (9, 1));
        assert_eq!(measured.p99_us, Some(40.0));
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}
