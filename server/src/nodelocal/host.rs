//! The node's network setup for node-local mode: the dummy interface that holds the listen
//! addresses and the iptables rules that take their DNS traffic out of connection tracking, made
//! with the `ip` and `iptables`/`ip6tables` commands, and removed again on exit. It runs those
//! commands and nothing else: which addresses and rules come from the flags ([`super`]).

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
    Ok(run_output(step)?.0)
}

/// Runs `step` and fails unless it exits 0.
pub(super) fn run_ok(step: &CommandLine) -> Result<(), StepError> {
    match run_output(step)? {
        (true, _) => Ok(()),
        (false, (status, stderr)) => Err(StepError::Failed {
            step: step.clone(),
            status,
            stderr,
        }),
    }
}

fn run_output(step: &CommandLine) -> Result<(bool, (String, String)), StepError> {
    let mut child = Command::new(step.program)
        .args(&step.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
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
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    Ok((
        status.success(),
        (status.to_string(), stderr.trim().to_owned()),
    ))
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

    /// The commands that create the interface and give it the addresses (`ip addr replace` is
    /// idempotent); the first is only run when the interface does not exist yet.
    pub fn interface_steps(&self) -> Vec<CommandLine> {
        let Some(name) = &self.interface else {
            return Vec::new();
        };
        let mut steps = vec![CommandLine::new(
            "ip",
            &["link", "add", name, "type", "dummy"],
        )];
        let mut ips: Vec<IpAddr> = Vec::new();
        for addr in &self.addrs {
            if !ips.contains(&addr.ip()) {
                ips.push(addr.ip());
            }
        }
        for ip in ips {
            let prefix = if ip.is_ipv4() { 32 } else { 128 };
            let cidr = format!("{ip}/{prefix}");
            steps.push(CommandLine::new(
                "ip",
                &["addr", "replace", &cidr, "dev", name],
            ));
        }
        steps.push(CommandLine::new("ip", &["link", "set", name, "up"]));
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

    /// Creates the interface with the addresses, then installs the rules not already there;
    /// the result undoes both when dropped, unless `keep`. On failure, what was done is undone
    /// (unless `keep`) and the error says which command failed and why.
    pub fn apply(self, keep: bool) -> Result<Applied, StepError> {
        let applied = Applied { setup: self, keep };
        applied.setup.apply_interface()?;
        applied.setup.apply_rules()?;
        Ok(applied)
    }

    fn apply_interface(&self) -> Result<(), StepError> {
        let Some(name) = &self.interface else {
            return Ok(());
        };
        let steps = self.interface_steps();
        let exists = run(&CommandLine::new("ip", &["link", "show", "dev", name]))?;
        for (i, step) in steps.iter().enumerate() {
            if i == 0 && exists {
                continue;
            }
            run_ok(step)?;
        }
        tracing::info!(interface = %name, addrs = ?self.addrs, "node-local: interface ready");
        Ok(())
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

    /// Deletes the interface (and so its addresses), if it exists; failures are logged.
    pub fn remove_interface(&self) {
        let Some(name) = &self.interface else {
            return;
        };
        let removed =
            run(&CommandLine::new("ip", &["link", "show", "dev", name])).and_then(|exists| {
                if exists {
                    run_ok(&CommandLine::new("ip", &["link", "del", name]))
                } else {
                    Ok(())
                }
            });
        if let Err(error) = removed {
            tracing::warn!(%error, "node-local: cannot delete the interface");
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
            self.setup.remove_interface();
            tracing::info!("node-local: network setup removed");
        }
    }
}
