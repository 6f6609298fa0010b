//! Node-local cache mode (`--mode node-local`), the job of NodeLocal DNSCache: a caching
//! forwarder on every node, in front of the cluster DNS.
//!
//! ```text
//!  pod ──UDP──▶ 169.254.20.10:53 / kube-dns IP:53 (dummy interface, conntrack off)
//!                   │ cache hit ──▶ answer
//!                   │ cluster domain, in-addr.arpa, ip6.arpa ──TCP pool──▶ --cluster-dns
//!                   └ anything else ──UDP──▶ --upstream / resolv.conf (the node's resolvers)
//! ```
//!
//! This module owns the mode's flags ([`NodeLocalArgs`]), the route they make for the forwarder
//! ([`NodeLocalArgs::route`]), and the node's network setup ([`NodeSetup`]): the dummy
//! interface that holds the listen addresses and the iptables rules that take their DNS traffic
//! out of connection tracking, made with the `ip` and `iptables`/`ip6tables` commands, and
//! removed again on exit. The rules are NodeLocal DNSCache's: NOTRACK in the raw table for
//! queries to and answers from each listen address on its port over UDP and TCP, and ACCEPT in
//! the filter table for the same packets. NOTRACK on the kube-dns Service IP is what lets the
//! node take that IP's queries: without conntrack, kube-proxy's DNAT does not apply and the
//! packets are delivered to the local address.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;

use crate::forward::config::ClusterRoute;
use crate::forward::resolv::parse_upstream;

/// The reverse zones a node-local cache sends to the cluster DNS with the cluster domain.
const REVERSE_ZONES: [&[u8]; 2] = [b"\x07in-addr\x04arpa\x00", b"\x03ip6\x04arpa\x00"];
/// Time one `ip` or `iptables` command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Seconds iptables waits for the xtables lock another process holds.
const XTABLES_WAIT: &str = "5";

/// Flags of node-local mode.
#[derive(Clone, Debug, Default, Args)]
#[command(next_help_heading = "Node-local cache (--mode node-local)")]
pub struct NodeLocalArgs {
    /// The cluster DNS as ip[:port] (the kube-dns-upstream Service): names of --domain,
    /// in-addr.arpa and ip6.arpa are sent there over TCP. Required with --mode node-local.
    #[arg(long, value_name = "ADDR", value_parser = parse_upstream)]
    pub cluster_dns: Option<SocketAddr>,

    /// Persistent TCP connections to --cluster-dns, each carrying many queries at once.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub cluster_dns_connections: u16,

    /// Create this dummy interface and give it the --listen addresses before binding (needs
    /// CAP_NET_ADMIN); deleted on exit unless --skip-teardown.
    #[arg(long, value_name = "NAME")]
    pub setup_interface: Option<String>,

    /// Install iptables rules that exempt DNS to and from the --listen addresses from connection
    /// tracking (raw NOTRACK, filter ACCEPT; needs CAP_NET_ADMIN); removed on exit unless
    /// --skip-teardown.
    #[arg(long)]
    pub setup_iptables: bool,

    /// Leave the interface and the iptables rules in place on exit.
    #[arg(long)]
    pub skip_teardown: bool,
}

/// A node-local setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NodeLocalError {
    /// No --cluster-dns in node-local mode.
    #[error("--mode node-local needs --cluster-dns ADDR (the kube-dns-upstream Service's IP)")]
    NoClusterDns,
    /// A flag of the other mode.
    #[error("{flag} is only for --mode {mode}")]
    WrongMode {
        /// The flag.
        flag: &'static str,
        /// The mode it belongs to.
        mode: &'static str,
    },
    /// A wildcard listen address where the setup needs a real one.
    #[error("--listen {0}: --setup-interface and --setup-iptables need specific addresses (e.g. 169.254.20.10:53), not a wildcard")]
    WildcardListen(SocketAddr),
    /// An interface name the kernel would refuse.
    #[error("--setup-interface {0:?}: an interface name is 1-15 characters without '/', ':' or whitespace")]
    InterfaceName(String),
}

impl NodeLocalArgs {
    /// The flags of this group that were given, for refusing them in cluster mode.
    pub fn given(&self) -> Option<&'static str> {
        if self.cluster_dns.is_some() {
            Some("--cluster-dns")
        } else if self.setup_interface.is_some() {
            Some("--setup-interface")
        } else if self.setup_iptables {
            Some("--setup-iptables")
        } else if self.skip_teardown {
            Some("--skip-teardown")
        } else {
            None
        }
    }

    /// Checks the flags against the listen addresses.
    pub fn validate(&self, listen: &[SocketAddr]) -> Result<(), NodeLocalError> {
        self.cluster_dns.ok_or(NodeLocalError::NoClusterDns)?;
        if let Some(name) = &self.setup_interface {
            let bad = |c: char| c == '/' || c == ':' || c.is_whitespace();
            if name.is_empty() || name.len() > 15 || name.chars().any(bad) {
                return Err(NodeLocalError::InterfaceName(name.clone()));
            }
        }
        if self.setup_interface.is_some() || self.setup_iptables {
            if let Some(&wild) = listen.iter().find(|a| a.ip().is_unspecified()) {
                return Err(NodeLocalError::WildcardListen(wild));
            }
        }
        Ok(())
    }

    /// The forwarder's route to the cluster DNS for `domain` (lowercase wire format) and the
    /// reverse zones.
    pub fn route(&self, domain: &[u8]) -> Result<ClusterRoute, NodeLocalError> {
        let server = self.cluster_dns.ok_or(NodeLocalError::NoClusterDns)?;
        let mut zones: Vec<Box<[u8]>> = vec![domain.to_ascii_lowercase().into()];
        zones.extend(REVERSE_ZONES.iter().map(|&zone| Box::<[u8]>::from(zone)));
        Ok(ClusterRoute {
            zones,
            server,
            connections: usize::from(self.cluster_dns_connections),
        })
    }

    /// The network setup these flags ask for on `listen`.
    pub fn setup(&self, listen: &[SocketAddr]) -> NodeSetup {
        let mut addrs: Vec<SocketAddr> = Vec::new();
        for &addr in listen {
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        NodeSetup {
            interface: self.setup_interface.clone(),
            iptables: self.setup_iptables,
            addrs,
        }
    }
}

/// One command line: a program and its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// `ip`, `iptables` or `ip6tables`.
    pub program: &'static str,
    /// Its arguments.
    pub args: Vec<String>,
}

impl Step {
    fn new(program: &'static str, args: &[&str]) -> Step {
        Step {
            program,
            args: args.iter().map(|&a| a.to_owned()).collect(),
        }
    }
}

impl std::fmt::Display for Step {
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
        step: Step,
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
        step: Step,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// It did not finish in time and was killed.
    #[error("`{step}` did not finish within {}s", COMMAND_TIMEOUT.as_secs())]
    Timeout {
        /// The command.
        step: Step,
    },
}

/// Runs `step`; `Ok(true)` when it exits 0, `Ok(false)` for another exit code (for checks such
/// as `iptables -C`), an error when it cannot run or hangs.
fn run(step: &Step) -> Result<bool, StepError> {
    Ok(run_output(step)?.0)
}

/// Runs `step` and fails unless it exits 0.
fn run_ok(step: &Step) -> Result<(), StepError> {
    match run_output(step)? {
        (true, _) => Ok(()),
        (false, (status, stderr)) => Err(StepError::Failed {
            step: step.clone(),
            status,
            stderr,
        }),
    }
}

fn run_output(step: &Step) -> Result<(bool, (String, String)), StepError> {
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
    interface: Option<String>,
    iptables: bool,
    addrs: Vec<SocketAddr>,
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
    pub fn step(&self, action: &str) -> Step {
        let mut args = vec!["-w", XTABLES_WAIT, "-t", self.table, action, self.chain];
        args.extend(self.spec.iter().map(String::as_str));
        Step::new(self.program, &args)
    }
}

impl NodeSetup {
    /// Whether there is anything to do.
    pub fn is_empty(&self) -> bool {
        self.interface.is_none() && !self.iptables
    }

    /// The commands that create the interface and give it the addresses (`ip addr replace` is
    /// idempotent); the first is only run when the interface does not exist yet.
    pub fn interface_steps(&self) -> Vec<Step> {
        let Some(name) = &self.interface else {
            return Vec::new();
        };
        let mut steps = vec![Step::new("ip", &["link", "add", name, "type", "dummy"])];
        let mut ips: Vec<IpAddr> = Vec::new();
        for addr in &self.addrs {
            if !ips.contains(&addr.ip()) {
                ips.push(addr.ip());
            }
        }
        for ip in ips {
            let prefix = if ip.is_ipv4() { 32 } else { 128 };
            let cidr = format!("{ip}/{prefix}");
            steps.push(Step::new("ip", &["addr", "replace", &cidr, "dev", name]));
        }
        steps.push(Step::new("ip", &["link", "set", name, "up"]));
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
        let exists = run(&Step::new("ip", &["link", "show", "dev", name]))?;
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
        let removed = run(&Step::new("ip", &["link", "show", "dev", name])).and_then(|exists| {
            if exists {
                run_ok(&Step::new("ip", &["link", "del", name]))
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
/// rules and the interface; neither with `--skip-teardown`.
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
        if !self.keep && !self.setup.is_empty() {
            self.setup.remove_rules();
            self.setup.remove_interface();
            tracing::info!("node-local: network setup removed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn args() -> NodeLocalArgs {
        NodeLocalArgs {
            cluster_dns: Some(addr("10.96.0.11:53")),
            cluster_dns_connections: 2,
            setup_interface: Some("nodelocaldns".into()),
            setup_iptables: true,
            skip_teardown: false,
        }
    }

    #[test]
    fn validation() {
        let listen = [addr("169.254.20.10:53"), addr("10.96.0.10:53")];
        assert!(args().validate(&listen).is_ok());
        let mut no_server = args();
        no_server.cluster_dns = None;
        assert!(matches!(
            no_server.validate(&listen),
            Err(NodeLocalError::NoClusterDns)
        ));
        let error = args().validate(&[addr("0.0.0.0:53")]).unwrap_err();
        assert!(error.to_string().contains("0.0.0.0:53"), "{error}");
        let mut plain = args();
        plain.setup_interface = None;
        plain.setup_iptables = false;
        assert!(plain.validate(&[addr("0.0.0.0:53")]).is_ok());
        for name in ["", "a/b", "eth0:1", "has space", "sixteen-chars-xx"] {
            let mut bad = args();
            bad.setup_interface = Some(name.into());
            assert!(bad.validate(&listen).is_err(), "{name:?}");
        }
        assert_eq!(args().given(), Some("--cluster-dns"));
        assert_eq!(NodeLocalArgs::default().given(), None);
    }

    #[test]
    fn route_holds_the_domain_and_reverse_zones() {
        let route = args().route(b"\x07Cluster\x05local\x00").unwrap();
        assert_eq!(route.server, addr("10.96.0.11:53"));
        assert_eq!(route.connections, 2);
        assert!(route.covers(b"\x03web\x07cluster\x05local\x00"));
        assert!(route.covers(b"\x0210\x07in-addr\x04arpa\x00"));
        assert!(route.covers(b"\x011\x03ip6\x04arpa\x00"));
        assert!(!route.covers(b"\x03www\x07example\x03com\x00"));
    }

    #[test]
    fn interface_commands() {
        let listen = [
            addr("169.254.20.10:53"),
            addr("10.96.0.10:53"),
            addr("169.254.20.10:53"),
            addr("[fd00::10]:53"),
        ];
        let lines: Vec<String> = (args().setup(&listen).interface_steps())
            .iter()
            .map(Step::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                "ip link add nodelocaldns type dummy",
                "ip addr replace 169.254.20.10/32 dev nodelocaldns",
                "ip addr replace 10.96.0.10/32 dev nodelocaldns",
                "ip addr replace fd00::10/128 dev nodelocaldns",
                "ip link set nodelocaldns up",
            ]
        );
        let mut none = args();
        none.setup_interface = None;
        assert!(none.setup(&listen).interface_steps().is_empty());
    }

    #[test]
    fn iptables_rules_for_each_address_protocol_and_direction() {
        let setup = args().setup(&[addr("169.254.20.10:53"), addr("[fd00::10]:5353")]);
        let rules = setup.rules();
        assert_eq!(rules.len(), 2 * 2 * 5);
        let lines: Vec<String> = rules.iter().map(|r| r.step("-I").to_string()).collect();
        for line in [
            "iptables -w 5 -t raw -I PREROUTING -p udp -d 169.254.20.10/32 --dport 53 -j NOTRACK",
            "iptables -w 5 -t raw -I OUTPUT -p udp -s 169.254.20.10/32 --sport 53 -j NOTRACK",
            "iptables -w 5 -t raw -I OUTPUT -p tcp -d 169.254.20.10/32 --dport 53 -j NOTRACK",
            "iptables -w 5 -t filter -I INPUT -p tcp -d 169.254.20.10/32 --dport 53 -j ACCEPT",
            "iptables -w 5 -t filter -I OUTPUT -p udp -s 169.254.20.10/32 --sport 53 -j ACCEPT",
            "ip6tables -w 5 -t raw -I PREROUTING -p tcp -d fd00::10/128 --dport 5353 -j NOTRACK",
            "ip6tables -w 5 -t filter -I OUTPUT -p udp -s fd00::10/128 --sport 5353 -j ACCEPT",
        ] {
            assert!(lines.iter().any(|l| l == line), "{line}\nnot in {lines:#?}");
        }
        assert_eq!(
            rules[0].step("-D").to_string(),
            "iptables -w 5 -t raw -D PREROUTING -p udp -d 169.254.20.10/32 --dport 53 -j NOTRACK"
        );
        let mut off = args();
        off.setup_iptables = false;
        assert!(off.setup(&[addr("169.254.20.10:53")]).rules().is_empty());
    }

    #[test]
    fn a_missing_program_is_named_with_what_to_install() {
        let step = Step::new("clusterdns-no-such-program", &["x"]);
        let error = run(&step).unwrap_err().to_string();
        assert!(
            error.contains("clusterdns-no-such-program x") && error.contains("install"),
            "{error}"
        );
        let failed = run_ok(&Step::new("sh", &["-c", "echo nope >&2; exit 3"]));
        let error = failed.unwrap_err().to_string();
        assert!(
            error.contains("`sh -c") && error.contains("exit status: 3") && error.contains("nope"),
            "{error}"
        );
    }
}
