//! What /proc says about a process: CPU time, memory and open descriptors for the `process_*`
//! metrics, and the `VmXxx:` figures of `/proc/PID/status` (peak and current RSS) that the
//! benchmark tools report. Read at a scrape or a measurement, never on the query path.

/// CPU time, memory and descriptors of a process, from /proc.
pub struct ProcessStats {
    /// User and system CPU time.
    pub cpu_seconds: f64,
    /// Resident set size.
    pub resident_bytes: u64,
    /// Virtual memory size.
    pub virtual_bytes: u64,
    /// Open file descriptors.
    pub open_fds: usize,
}

impl ProcessStats {
    /// The figures of process `pid` (a number, or `self`), or `None` where /proc cannot be
    /// read.
    pub fn of(pid: &str) -> Option<ProcessStats> {
        let fields = stat_fields(pid)?;
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        // SAFETY: as above.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
        let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
        Some(ProcessStats {
            cpu_seconds: (field(11)? + field(12)?) as f64 / ticks,
            virtual_bytes: field(20)?,
            resident_bytes: field(21)? * page,
            open_fds: std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count()),
        })
    }
}

/// The fields of `/proc/<pid>/stat` after the command name (`pid` is a number or `self`):
/// index 0 is the state, 1 the parent pid, 11 and 12 the user and system ticks.
pub fn stat_fields(pid: &str) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    let after_name = stat.rsplit_once(')')?.1;
    Some(after_name.split_whitespace().map(str::to_owned).collect())
}

/// A `VmXxx:` figure of `/proc/<pid>/status` in KiB (`field` with its colon, `pid` a number or
/// `self`), or `None` where the process or the field is not there.
pub fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        line.strip_prefix(field)?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}
