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
//! interface that holds the listen addresses (or `lo`, where the kernel has no dummy interfaces)
//! and the iptables rules that take their DNS traffic out of connection tracking, made with the
//! `ip` and `iptables`/`ip6tables` commands, and removed again on exit. The rules are NodeLocal DNSCache's: NOTRACK in the raw table for
//! queries to and answers from each listen address on its port over UDP and TCP, and ACCEPT in
//! the filter table for the same packets. NOTRACK on the kube-dns Service IP is what lets the
//! node take that IP's queries: without conntrack, kube-proxy's DNAT does not apply and the
//! packets are delivered to the local address.

pub mod host;

use std::net::SocketAddr;

use clap::Args;

use crate::forward::config::ClusterRoute;
use crate::forward::resolv::parse_upstream;
use host::NodeSetup;

/// The reverse zones a node-local cache sends to the cluster DNS with the cluster domain.
const REVERSE_ZONES: [&[u8]; 2] = [b"\x07in-addr\x04arpa\x00", b"\x03ip6\x04arpa\x00"];

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
    /// CAP_NET_ADMIN); deleted on exit unless --skip-teardown. Where the kernel has no dummy
    /// interfaces (or with `lo`), the addresses go on lo with scope host and only they are
    /// removed on exit.
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

#[cfg(test)]
mod tests;
