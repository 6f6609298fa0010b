//! The node's network setup for node-local mode: the dummy interface that holds the listen
//! addresses and the iptables rules that take their DNS traffic out of connection tracking, made
//! with the `ip` and `iptables`/`ip6tables` commands, and removed again on exit. It runs those
//! commands and nothing else: which addresses and rules come from the flags ([`super`]).
//!
//! Where the kernel has no `dummy` link type (built without it, or the module cannot be loaded),
//! the addresses go on `lo` instead, with `scope host` for IPv4 ([`Placement::Loopback`]). The
//! kernel delivers a packet to any local address whatever interface holds it, so pods reach
//! the cache the same way; the scope keeps the kernel from choosing these addresses as the
//! source of the node's other traffic, which it would otherwise prefer from `lo` for an
//! interface without an IPv4 address of its own. On exit only those addresses are removed
//! from `lo`.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::serving::handover::others_bound;

/// Time one `ip` or `iptables` command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Seconds iptables waits for the xtables lock another process holds.
const XTABLES_WAIT: &str = "5";

/// One command line: a program and its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandLine {
    /// `ip`, `iptables` or `ip6tables`.
    pub program: &'static str,
    /// Its arguments.
    pub args: Vec<String>,
}

impl CommandLine {
    pub(super) fn new(program: &'static str, args: &[&str]) -> CommandLine {
        CommandLine {
            program,
            args: args.iter().map(|&a| a.to_owned()).collect(),
        }
    }
}

impl std::fmt::Display for CommandLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.program, self.args.join(" "))
    }
}

/// A command that failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// It could not be started.
    #[error("`{step}` could not run: {source}{hint}")]
    Spawn {
        /// The command.
        step: CommandLine,
        /// Why.
        #[source]
        source: std::io::Error,
        /// What to install, when the program is missing.
        hint: &'static str,
    },
    /// It ran and failed.
    #[error("`{step}` failed ({status}): {stderr}")]
    Failed {
        /// The command.
        step: CommandLine,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// It did not finish in time and was killed.
    #[error("`{step}` did not finish within {}s", COMMAND_TIMEOUT.as_secs())]
    Timeout {
        /// The command.
        step: CommandLine,
    },
}

/// Runs `step`; `Ok(true)` when it exits 0, `Ok(false)` for another exit code (for checks such
/// as `iptables -C`), an error when it cannot run or hangs.
pub(super) fn run(step: &CommandLine) -> Result<bool, StepError> {
    Ok(run_output(step, false)?.0)
}

/// Runs `step`, which must exit 0, and returns what it printed on stdout.
fn run_stdout(step: &CommandLine) -> Result<String, StepError> {
    match run_output(step, true)? {
        (true, output) => Ok(output.stdout),
        (false, output) => Err(output.failed(step)),
    }
}

/// Runs `step` and fails unless it exits 0.
pub(super) fn run_ok(step: &CommandLine) -> Result<(), StepError> {
    match run_output(step, false)? {
        (true, _) => Ok(()),
        (false, output) => Err(output.failed(step)),
    }
}

/// What a command that ran printed, and how it exited.
struct Output {
    status: String,
    stdout: String,
    stderr: String,
}

impl Output {
    fn failed(self, step: &CommandLine) -> StepError {
        StepError::Failed {
            step: step.clone(),
            status: self.status,
            stderr: self.stderr,
        }
    }
}

/// Runs `step` (with its stdout read when `stdout`, which must then be small: it is read after
/// the exit, and a command that fills the pipe would wait until the timeout).
fn run_output(step: &CommandLine, stdout: bool) -> Result<(bool, Output), StepError> {
    let mut child = Command::new(step.program)
        .args(&step.args)
        .stdin(Stdio::null())
        .stdout(if stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| StepError::Spawn {
            step: step.clone(),
            hint: match (source.kind(), step.program) {
                (std::io::ErrorKind::NotFound, "ip") => " (install iproute2)",
                (std::io::ErrorKind::NotFound, _) => " (install iptables)",
                _ => "",
            },
            source,
        })?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < COMMAND_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(StepError::Timeout { step: step.clone() });
            }
        }
    };
    let (mut out, mut stderr) = (String::new(), String::new());
    if let Some(mut pipe) = child.stdout.take() {
        let _ = pipe.read_to_string(&mut out);
    }
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    let output = Output {
        status: status.to_string(),
        stdout: out,
        stderr: stderr.trim().to_owned(),
    };
    Ok((status.success(), output))
}

/// The loopback interface, which every network namespace has and nothing may delete.
const LOOPBACK: &str = "lo";

/// Where the listen addresses are put.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// On the `--setup-interface` interface: a dummy one made for them, or one that existed;
    /// deleted on exit.
    Interface(String),
    /// On `lo`, IPv4 with `scope host`: where no dummy interface can be made, or when
    /// `--setup-interface` is `lo`; only the addresses are removed on exit.
    Loopback,
}

impl Placement {
    fn device(&self) -> &str {
        match self {
            Placement::Interface(name) => name,
            Placement::Loopback => LOOPBACK,
        }
    }
}

impl std::fmt::Display for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Placement::Interface(name) => write!(f, "interface {name}"),
            Placement::Loopback => write!(f, "{LOOPBACK} (scope host)"),
        }
    }
}

/// The node's network setup for node-local mode: what to create, and how to undo it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSetup {
    /// The dummy interface to create, if any.
    pub(super) interface: Option<String>,
    /// Whether to add the NOTRACK and ACCEPT rules.
    pub(super) iptables: bool,
    /// The listen addresses, each once.
    pub(super) addrs: Vec<SocketAddr>,
}

/// One iptables rule: the program, the table, the chain and the match and target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// `iptables` or `ip6tables`.
    pub program: &'static str,
    /// `raw` or `filter`.
    pub table: &'static str,
    /// The chain.
    pub chain: &'static str,
    /// Match and target.
    pub spec: Vec<String>,
}

impl Rule {
    /// The command that checks (`-C`), inserts (`-I`) or deletes (`-D`) it.
    pub fn step(&self, action: &str) -> CommandLine {
        let mut args = vec!["-w", XTABLES_WAIT, "-t", self.table, action, self.chain];
        args.extend(self.spec.iter().map(String::as_str));
        CommandLine::new(self.program, &args)
    }
}

impl NodeSetup {
    /// Whether there is anything to do.
    pub fn is_empty(&self) -> bool {
        self.interface.is_none() && !self.iptables
    }

    /// The command that creates the interface, when there is one to create (`lo` is never
    /// created); run only when it does not exist yet.
    pub fn create_step(&self) -> Option<CommandLine> {
        let name = self.interface.as_deref().filter(|&name| name != LOOPBACK)?;
        Some(CommandLine::new(
            "ip",
            &["link", "add", name, "type", "dummy"],
        ))
    }

    /// Each listen address once, as `ip/32` or `ip/128`.
    fn cidrs(&self) -> Vec<String> {
        let mut ips: Vec<IpAddr> = Vec::new();
        for addr in &self.addrs {
            if !ips.contains(&addr.ip()) {
                ips.push(addr.ip());
            }
        }
        ips.into_iter()
            .map(|ip| format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 }))
            .collect()
    }

    /// The commands that give `placement` the addresses (`ip addr replace` is idempotent) and
    /// set it up.
    pub fn address_steps(&self, placement: &Placement) -> Vec<CommandLine> {
        let device = placement.device();
        let mut steps: Vec<CommandLine> = (self.cidrs().iter())
            .map(|cidr| {
                let mut args = vec!["addr", "replace", cidr, "dev", device];
                // IPv6 takes its scope from the address itself; the kernel ignores this one.
                if *placement == Placement::Loopback && !cidr.contains(':') {
                    args.extend(["scope", "host"]);
                }
                CommandLine::new("ip", &args)
            })
            .collect();
        steps.push(CommandLine::new("ip", &["link", "set", device, "up"]));
        steps
    }

    /// The iptables rules, in the order they are inserted.
    pub fn rules(&self) -> Vec<Rule> {
        if !self.iptables {
            return Vec::new();
        }
        let mut rules = Vec::new();
        for addr in &self.addrs {
            let (program, prefix) = if addr.is_ipv4() {
                ("iptables", 32)
            } else {
                ("ip6tables", 128)
            };
            let ip = format!("{}/{prefix}", addr.ip());
            let port = addr.port().to_string();
            for proto in ["udp", "tcp"] {
                let to = ["-p", proto, "-d", &ip, "--dport", &port];
                let from = ["-p", proto, "-s", &ip, "--sport", &port];
                for (table, chain, matches, target) in [
                    // Queries from pods and answers to them skip conntrack...
                    ("raw", "PREROUTING", to, "NOTRACK"),
                    ("raw", "OUTPUT", from, "NOTRACK"),
                    // ...as do queries from processes of the node itself.
                    ("raw", "OUTPUT", to, "NOTRACK"),
                    // And a restrictive firewall lets them through.
                    ("filter", "INPUT", to, "ACCEPT"),
                    ("filter", "OUTPUT", from, "ACCEPT"),
                ] {
                    let mut spec: Vec<String> = matches.iter().map(|&m| m.to_owned()).collect();
                    spec.extend(["-j".to_owned(), target.to_owned()]);
                    rules.push(Rule {
                        program,
                        table,
                        chain,
                        spec,
                    });
                }
            }
        }
        rules
    }

    /// Puts the addresses on the interface (made if missing; on `lo` where the kernel cannot
    /// make it), then installs the rules not already there; the result undoes both when
    /// dropped, unless `keep`. On failure, what was done is undone (unless `keep`) and the
    /// error says which command failed and why.
    pub fn apply(self, keep: bool) -> Result<Applied, StepError> {
        let mut applied = Applied {
            setup: self,
            keep,
            placement: None,
        };
        if let Some(placement) = applied.setup.placement()? {
            // Recorded first: from here on, dropping `applied` removes what follows.
            applied.placement = Some(placement.clone());
            for step in applied.setup.address_steps(&placement) {
                run_ok(&step)?;
            }
            let addrs = &applied.setup.addrs;
            tracing::info!(%placement, ?addrs, "node-local: listen addresses in place");
        }
        applied.setup.apply_rules()?;
        Ok(applied)
    }

    /// Where the addresses go: the interface, made as a dummy one unless it exists, or `lo`
    /// when that fails for want of the link type (`Error: Unknown device type.` from a kernel
    /// without it). A command that cannot run at all is an error: `lo` would need it too.
    fn placement(&self) -> Result<Option<Placement>, StepError> {
        let Some(name) = &self.interface else {
            return Ok(None);
        };
        let Some(create) = self.create_step() else {
            return Ok(Some(Placement::Loopback));
        };
        let exists = || run(&CommandLine::new("ip", &["link", "show", "dev", name]));
        if exists()? {
            return Ok(Some(Placement::Interface(name.clone())));
        }
        match run_ok(&create) {
            Ok(()) => Ok(Some(Placement::Interface(name.clone()))),
            Err(error @ StepError::Failed { .. }) => {
                // Another process (the next version, starting beside us) may have made it.
                if exists()? {
                    return Ok(Some(Placement::Interface(name.clone())));
                }
                tracing::warn!(
                    %error,
                    "node-local: no dummy interface can be made here; the listen addresses go \
                     on lo (scope host) instead"
                );
                Ok(Some(Placement::Loopback))
            }
            Err(error) => Err(error),
        }
    }

    fn apply_rules(&self) -> Result<(), StepError> {
        let rules = self.rules();
        for rule in &rules {
            if !run(&rule.step("-C"))? {
                run_ok(&rule.step("-I"))?;
            }
        }
        if !rules.is_empty() {
            tracing::info!(rules = rules.len(), "node-local: iptables rules installed");
        }
        Ok(())
    }

    /// Deletes every rule of [`NodeSetup::rules`] that is present; failures are logged.
    pub fn remove_rules(&self) {
        for rule in self.rules() {
            let deleted = run(&rule.step("-C")).and_then(|present| {
                if present {
                    run_ok(&rule.step("-D"))
                } else {
                    Ok(())
                }
            });
            if let Err(error) = deleted {
                tracing::warn!(%error, "node-local: cannot remove an iptables rule");
            }
        }
    }

    /// Undoes `placement`: deletes the interface (and so its addresses) if it exists, or
    /// removes the addresses from `lo`; failures are logged.
    fn remove_addresses(&self, placement: &Placement) {
        let removed = match placement {
            Placement::Interface(name) => {
                run(&CommandLine::new("ip", &["link", "show", "dev", name])).and_then(|exists| {
                    if exists {
                        run_ok(&CommandLine::new("ip", &["link", "del", name]))
                    } else {
                        Ok(())
                    }
                })
            }
            Placement::Loopback => self.cidrs().iter().try_for_each(|cidr| {
                let show = ["-o", "addr", "show", "dev", LOOPBACK, "to", cidr];
                let present = !run_stdout(&CommandLine::new("ip", &show))?
                    .trim()
                    .is_empty();
                if present {
                    run_ok(&CommandLine::new(
                        "ip",
                        &["addr", "del", cidr, "dev", LOOPBACK],
                    ))?;
                }
                Ok(())
            }),
        };
        if let Err(error) = removed {
            tracing::warn!(%error, %placement, "node-local: cannot remove the listen addresses");
        }
    }
}

/// The node's setup in place: [`Applied::release`] removes the rules, dropping it removes the
/// rules and the interface; neither with `--skip-teardown`, nor when another process (the
/// next version, during an upgrade) serves the same addresses.
#[derive(Debug)]
pub struct Applied {
    setup: NodeSetup,
    keep: bool,
    /// Where the addresses were put, once that was decided.
    placement: Option<Placement>,
}

impl Applied {
    /// Removes the iptables rules, at the start of lameduck: queries to the kube-dns Service IP
    /// are then NATed to the cluster DNS by kube-proxy again instead of reaching this server.
    pub fn release(&self) {
        if !self.keep {
            self.setup.remove_rules();
        }
    }
}

impl Drop for Applied {
    fn drop(&mut self) {
        // Our sockets are closed by now: any socket on our addresses is a successor's, which
        // needs the interface and the rules.
        if !self.keep && !self.setup.is_empty() && others_bound(&self.setup.addrs, &[]) {
            tracing::info!("node-local: a successor serves these addresses; the setup stays");
            return;
        }
        if !self.keep && !self.setup.is_empty() {
            self.setup.remove_rules();
            if let Some(placement) = &self.placement {
                self.setup.remove_addresses(placement);
            }
            tracing::info!("node-local: network setup removed");
        }
    }
}
