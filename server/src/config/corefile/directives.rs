//! A parsed Corefile's directives, interpreted as CoreDNS 1.13 documents them, into a [`Plan`].
//! Every directive and option is either carried out or refused here with the file, line and
//! token: nothing is silently ignored. The plugin order is CoreDNS's, not the file's; the
//! supported directives are [`SUPPORTED`].
//!
//! This file reads a server block and the directives of the server itself (`bind`, `health`,
//! `ready`, `prometheus`, `errors`, `loop`, `reload`...), with the argument helpers every
//! directive shares; [`kubernetes`], [`forward`] (with `cache`), [`rewrite`] and [`plugins`]
//! (`log`, `hosts`, `template`, `autopath`) read the directives of their names, as do [`chaos`],
//! [`bufsize`], [`debug`], [`dns64`], [`file`] (with `root`) and [`whoami`], one file each, and
//! [`acl`], [`header`], [`k8s_external`], [`local`], [`minimal`] and [`nsid`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clusterdns_zone::{PodsMode, Rcode, WireName};

use super::parse::{reverse_zones, Corefile, CorefileError, Directive, ServerBlock, Token};
use crate::chain::plugins::hosts::HostsTable;
use crate::chain::plugins::template::{Template, TemplateConfig};
use crate::chain::querylog::{COMBINED_FORMAT, COMMON_FORMAT, PLACEHOLDERS};
use crate::config::plan::{
    BlockPlan, BlockZone, Fallthrough, ForwardPlan, HostsPlan, KubernetesPlan, KubernetesRoute,
    LogClasses, LogPlan, Plan, PortPlan, Timeouts,
};
use crate::forward::config::{check_no_loop, CacheConfig, CacheScope, ForwardConfig, Policy};
use crate::forward::resolv::{parse_upstream, read_nameservers};

mod acl;
mod bufsize;
mod chaos;
mod debug;
mod dns64;
mod file;
mod forward;
mod header;
mod k8s_external;
mod kubernetes;
mod local;
mod minimal;
mod nsid;
mod plugins;
mod rewrite;
mod timeouts;
mod whoami;

use acl::acl;
use bufsize::bufsize;
use chaos::chaos;
use debug::debug;
use dns64::dns64;
use file::{file, root};
use forward::{cache_config, forward};
use header::header;
use k8s_external::k8s_external;
use kubernetes::kubernetes;
use local::local;
use minimal::minimal;
use nsid::nsid;
pub use plugins::hosts_table;
use plugins::{autopath, hosts, log, template};
use rewrite::rewrite;
use timeouts::timeouts;
use whoami::whoami;

/// The directives clusterdns carries out; any other stops startup.
pub const SUPPORTED: &str = "acl, any, autopath, bind, bufsize, cache, chaos, debug, dns64, \
     errors, file, forward, header, health, hosts, k8s_external, kubernetes, loadbalance, local, \
     log, loop, minimal, nsid, prometheus, ready, reload, rewrite, root, template, timeouts, whoami";

/// CoreDNS's default ports of the operations endpoints.
const HEALTH_DEFAULT: &str = ":8080";
const READY_DEFAULT: &str = ":8181";
const PROMETHEUS_DEFAULT: &str = "localhost:9153";

/// Turns a parsed Corefile into a plan.
pub fn plan(corefile: &Corefile) -> Result<Plan, CorefileError> {
    let mut plan = Plan {
        ports: Vec::new(),
        kubernetes: None,
        health: None,
        lameduck: Duration::ZERO,
        ready: None,
        metrics: None,
        reload: None,
        files: corefile.files.clone(),
        debug: false,
        timeouts: Timeouts::default(),
    };
    let mut globals = Globals::default();
    for block in &corefile.blocks {
        let binds = binds(block)?;
        let ports = {
            let mut ports: Vec<u16> = block.keys.iter().map(|k| k.port).collect();
            ports.dedup();
            ports
        };
        for port in ports {
            let listen: Vec<SocketAddr> = match &binds {
                Some(ips) => ips.iter().map(|&ip| SocketAddr::new(ip, port)).collect(),
                None => vec![
                    SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
                    SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port),
                ],
            };
            let server_label = match &binds {
                Some(ips) => format!("dns://{}", SocketAddr::new(ips[0], port)),
                None => format!("dns://:{port}"),
            };
            let mut zones = Vec::new();
            for key in block.keys.iter().filter(|k| k.port == port) {
                for zone in &key.zones {
                    let wire = WireName::from_dotted(zone).ok_or_else(|| {
                        CorefileError::at(&key.token, format!("{zone:?} is not a domain name"))
                    })?;
                    zones.push(BlockZone {
                        zone: wire,
                        server_label: server_label.clone(),
                        zone_label: zone.clone(),
                    });
                }
            }
            let block_plan = block_plan(block, zones, &listen, &mut globals, &mut plan)?;
            match plan.ports.iter_mut().find(|p| port_of(p) == Some(port)) {
                Some(existing) if existing.listen != listen => {
                    return Err(CorefileError::at(
                        &block.keys[0].token,
                        format!(
                            "port {port}: every server block on one port must `bind` the same \
                             addresses"
                        ),
                    ))
                }
                Some(existing) => existing.blocks.push(block_plan),
                None => plan.ports.push(PortPlan {
                    listen,
                    blocks: vec![block_plan],
                }),
            }
        }
    }
    if plan.ports.is_empty() {
        return Err(CorefileError {
            file: corefile.files.first().cloned().unwrap_or_default(),
            line: 1,
            message: "no server block: nothing to serve".into(),
        });
    }
    Ok(plan)
}

fn port_of(port: &PortPlan) -> Option<u16> {
    port.listen.first().map(SocketAddr::port)
}

/// What may be said once for the whole server, and where it was said first.
#[derive(Default)]
struct Globals {
    kubernetes: Option<Token>,
}

/// The addresses of a block's `bind`, if it has one.
fn binds(block: &ServerBlock) -> Result<Option<Vec<IpAddr>>, CorefileError> {
    let mut found: Option<Vec<IpAddr>> = None;
    for directive in block.directives.iter().filter(|d| d.name.text == "bind") {
        no_block(directive)?;
        if directive.args.is_empty() {
            return Err(CorefileError::at(
                &directive.name,
                "bind: an address is needed",
            ));
        }
        for arg in &directive.args {
            let ip = arg.text.parse::<IpAddr>().map_err(|_| {
                CorefileError::at(
                    arg,
                    format!(
                        "bind {:?}: only IP addresses are supported (not interface names or \
                         `except`)",
                        arg.text
                    ),
                )
            })?;
            found.get_or_insert_with(Vec::new).push(ip);
        }
    }
    Ok(found)
}

fn block_plan(
    block: &ServerBlock,
    zones: Vec<BlockZone>,
    listen: &[SocketAddr],
    globals: &mut Globals,
    plan: &mut Plan,
) -> Result<BlockPlan, CorefileError> {
    let mut out = BlockPlan::new(zones, Rcode::ServFail);
    let mut seen: Vec<&str> = Vec::new();
    let mut cache: Option<CacheConfig> = None;
    let mut loop_check = false;
    let mut search: Option<&Directive> = None;
    // `file` reads its files after the block's `root`, wherever that is (CoreDNS sets `root` up
    // first).
    let (mut files, mut root_dir) = (Vec::new(), None);
    let mut external: Option<&Directive> = None;
    let block_zones: Vec<String> = out.zones.iter().map(|z| z.zone_label.clone()).collect();
    for d in &block.directives {
        let name = d.name.text.as_str();
        let repeatable = matches!(name, "rewrite" | "template" | "bind" | "file" | "acl");
        if !repeatable && seen.contains(&name) {
            return Err(CorefileError::at(
                &d.name,
                format!("{name}: given twice in one server block"),
            ));
        }
        seen.push(name);
        match name {
            "bind" => {}
            "errors" => {
                no_args(d)?;
                no_block(d)?;
                out.errors = true;
            }
            "log" => out.log = Some(log(d)?),
            "health" => {
                let (addr, lameduck) = health(d)?;
                set_once(&mut plan.health, addr, d)?;
                plan.lameduck = plan.lameduck.max(lameduck);
            }
            "ready" => {
                no_block(d)?;
                let addr = address(d, READY_DEFAULT)?;
                set_once(&mut plan.ready, addr, d)?;
            }
            "prometheus" => {
                no_block(d)?;
                let addr = address(d, PROMETHEUS_DEFAULT)?;
                set_once(&mut plan.metrics, addr, d)?;
            }
            "reload" => {
                no_block(d)?;
                let interval = match d.args.first() {
                    Some(arg) => duration(arg)?,
                    None => Duration::from_secs(30),
                };
                if let Some(jitter) = d.args.get(1) {
                    duration(jitter)?;
                }
                max_args(d, 2)?;
                plan.reload = Some(plan.reload.map_or(interval, |r| r.min(interval)));
            }
            "loop" => {
                no_args(d)?;
                no_block(d)?;
                loop_check = true;
            }
            "any" => {
                no_args(d)?;
                no_block(d)?;
                out.any = true;
            }
            "loadbalance" => {
                no_block(d)?;
                if let Some(arg) = d.args.first().filter(|a| a.text != "round_robin") {
                    return Err(CorefileError::at(
                        arg,
                        format!("loadbalance {:?}: only round_robin is supported", arg.text),
                    ));
                }
                max_args(d, 1)?;
                out.loadbalance = true;
            }
            "chaos" => out.chaos = Some(chaos(d)?),
            "timeouts" => {
                let given = timeouts(d)?;
                if plan.timeouts != Timeouts::default() && plan.timeouts != given {
                    return Err(CorefileError::at(
                        &d.name,
                        "timeouts: differ from those of another server block; clusterdns has \
                         one TCP configuration for every block",
                    ));
                }
                plan.timeouts = given;
            }
            "rewrite" => out.rewrite.push(rewrite(d)?),
            "template" => out.templates.push(template(d, &block_zones)?),
            "hosts" => out.hosts = Some(hosts(d, &block_zones)?),
            "kubernetes" => {
                if let Some(first) = &globals.kubernetes {
                    if first != &d.name {
                        return Err(CorefileError::at(
                            &d.name,
                            format!(
                                "kubernetes: clusterdns serves one cluster zone; it is already \
                                 configured at {}:{}",
                                first.at.file.display(),
                                first.at.line
                            ),
                        ));
                    }
                }
                globals.kubernetes = Some(d.name.clone());
                let (source, route) = kubernetes(d, &block_zones)?;
                if plan.kubernetes.as_ref().is_some_and(|k| k != &source) {
                    return Err(CorefileError::at(
                        &d.name,
                        "kubernetes: a second, different configuration",
                    ));
                }
                plan.kubernetes = Some(source);
                out.kubernetes = Some(route);
            }
            "cache" => cache = Some(cache_config(d, &block_zones)?),
            "forward" => out.forward = Some(forward(d, listen)?),
            "autopath" => search = Some(d),
            "file" => files.push(d),
            "root" => root_dir = Some(root(d)?),
            "bufsize" => out.bufsize = Some(bufsize(d)?),
            "debug" => {
                debug(d)?;
                plan.debug = true;
            }
            "dns64" => out.dns64 = Some(dns64(d)?),
            "whoami" => {
                whoami(d)?;
                out.whoami = true;
            }
            "nsid" => out.extra.nsid = Some(nsid(d)?),
            "local" => out.extra.local = Some(local(d)?),
            "acl" => out.extra.acl.push(acl(d, &block_zones)?),
            "header" => out.extra.header = Some(header(d)?),
            "minimal" => {
                minimal(d)?;
                out.extra.minimal = true;
            }
            "k8s_external" => external = Some(d),
            other => {
                return Err(CorefileError::at(
                    &d.name,
                    format!("unknown or unsupported directive {other:?}; supported: {SUPPORTED}"),
                ))
            }
        }
    }
    for d in files {
        let plan = out.file.get_or_insert_with(Default::default);
        file(d, &block_zones, root_dir.as_deref(), plan)?;
    }
    if let Some(d) = external {
        let with_kubernetes = out.kubernetes.is_some();
        out.extra.k8s_external = Some(k8s_external(d, &block_zones, with_kubernetes)?);
    }
    if let Some(d) = search {
        let cluster = out.kubernetes.as_ref().and(plan.kubernetes.as_mut());
        let path = autopath(d, cluster.as_ref().map(|k| &k.domain))?;
        if let (Some(cluster), Some(_)) = (cluster, &path.cluster_zone) {
            // @kubernetes: the client's namespace comes from the Pod address index.
            cluster.pod_addresses = true;
        }
        out.autopath = Some(path);
    }
    if let Some(forward) = &mut out.forward {
        forward.loop_check = loop_check;
        // CoreDNS's forward sends the client's OPT record, as `bufsize` left it, upstream; ours
        // advertises our own size, which `bufsize` may only lower.
        if let Some(size) = out.bufsize {
            forward.config.edns_payload = forward.config.edns_payload.min(size);
        }
        forward.config.cache = cache.unwrap_or_else(|| CacheConfig {
            scope: CacheScope {
                zones: Vec::new(),
                no_success: Vec::new(),
                no_denial: Vec::new(),
            },
            ..CacheConfig::default()
        });
    }
    Ok(out)
}

fn set_once(
    slot: &mut Option<SocketAddr>,
    addr: SocketAddr,
    d: &Directive,
) -> Result<(), CorefileError> {
    match slot {
        Some(existing) if *existing != addr => Err(CorefileError::at(
            &d.name,
            format!(
                "{}: {addr} differs from {existing} given in another server block; clusterdns \
                 serves each endpoint on one address",
                d.name.text
            ),
        )),
        _ => {
            *slot = Some(addr);
            Ok(())
        }
    }
}

fn no_args(d: &Directive) -> Result<(), CorefileError> {
    max_args(d, 0)
}

fn max_args(d: &Directive, max: usize) -> Result<(), CorefileError> {
    match d.args.get(max) {
        Some(extra) => Err(CorefileError::at(
            extra,
            format!("{}: unexpected argument {:?}", d.name.text, extra.text),
        )),
        None => Ok(()),
    }
}

fn no_block(d: &Directive) -> Result<(), CorefileError> {
    match d.block.first() {
        Some(option) => Err(unknown_option(d, option)),
        None => Ok(()),
    }
}

fn unknown_option(d: &Directive, option: &Directive) -> CorefileError {
    CorefileError::at(
        &option.name,
        format!(
            "{}: unknown or unsupported option {:?}",
            d.name.text, option.name.text
        ),
    )
}

/// The one argument an option takes.
fn one_arg<'a>(d: &Directive, option: &'a Directive) -> Result<&'a Token, CorefileError> {
    no_block(option)?;
    match option.args.as_slice() {
        [arg] => Ok(arg),
        _ => Err(CorefileError::at(
            &option.name,
            format!(
                "{} {}: exactly one value is needed",
                d.name.text, option.name.text
            ),
        )),
    }
}

fn number<T: std::str::FromStr>(token: &Token, what: &str) -> Result<T, CorefileError> {
    token
        .text
        .parse()
        .map_err(|_| CorefileError::at(token, format!("{what}: {:?} is not a number", token.text)))
}

/// A Go duration: `500ms`, `5s`, `1m30s`, `2h`; a bare number is seconds (as CoreDNS's options
/// that take either).
pub fn duration(token: &Token) -> Result<Duration, CorefileError> {
    parse_duration(&token.text)
        .ok_or_else(|| CorefileError::at(token, format!("{:?} is not a duration", token.text)))
}

fn parse_duration(text: &str) -> Option<Duration> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(value * unit).ok()?;
    }
    Some(total)
}

/// An operations endpoint address: `[host]:port`, host empty for every interface.
fn address(d: &Directive, default: &str) -> Result<SocketAddr, CorefileError> {
    max_args(d, 1)?;
    let text = d.args.first().map_or(default, |a| a.text.as_str());
    parse_address(text).ok_or_else(|| {
        CorefileError::at(
            d.args.first().unwrap_or(&d.name),
            format!(
                "{}: {text:?} is not an address like :8080 or 127.0.0.1:8080",
                d.name.text
            ),
        )
    })
}

fn parse_address(text: &str) -> Option<SocketAddr> {
    let (host, port) = text.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let ip: IpAddr = match host.trim_start_matches('[').trim_end_matches(']') {
        "" => Ipv4Addr::UNSPECIFIED.into(),
        "localhost" => Ipv4Addr::LOCALHOST.into(),
        other => other.parse().ok()?,
    };
    Some(SocketAddr::new(ip, port))
}

fn health(d: &Directive) -> Result<(SocketAddr, Duration), CorefileError> {
    let addr = address(d, HEALTH_DEFAULT)?;
    let mut lameduck = Duration::ZERO;
    for option in &d.block {
        match option.name.text.as_str() {
            "lameduck" => lameduck = duration(one_arg(d, option)?)?,
            _ => return Err(unknown_option(d, option)),
        }
    }
    Ok((addr, lameduck))
}

/// A zone or name argument, normalized.
fn zone_name(token: &Token, text: &str) -> Result<WireName, CorefileError> {
    WireName::from_dotted(text)
        .ok_or_else(|| CorefileError::at(token, format!("{text:?} is not a domain name")))
}

/// Zones given as arguments, or the block's. A CIDR argument stands for its reverse zones, as
/// in a server block key (CoreDNS's `OriginsFromArgsOrServerBlock`).
fn zones_or_block(args: &[Token], block: &[String]) -> Result<Vec<String>, CorefileError> {
    if args.is_empty() {
        return Ok(block.to_vec());
    }
    let mut zones = Vec::new();
    for arg in args {
        if arg.text.contains('/') {
            zones.extend(reverse_zones(&arg.text).ok_or_else(|| {
                CorefileError::at(arg, format!("{:?} is not a valid CIDR", arg.text))
            })?);
        } else {
            zones.push(zone_name(arg, &arg.text)?.to_dotted());
        }
    }
    Ok(zones)
}

fn fallthrough(option: &Directive) -> Result<Fallthrough, CorefileError> {
    no_block(option)?;
    if option.args.is_empty() {
        return Ok(Fallthrough::all());
    }
    Ok(Fallthrough {
        zones: (option.args.iter())
            .map(|a| zone_name(a, &a.text))
            .collect::<Result<_, _>>()?,
    })
}

fn is_reverse(zone: &str) -> bool {
    zone.ends_with("in-addr.arpa.") || zone.ends_with("ip6.arpa.")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan of a Corefile given as text (no environment, as /etc/coredns/Corefile).
    pub(super) fn plan_text(text: &str) -> Result<Plan, CorefileError> {
        let file = std::path::Path::new("/etc/coredns/Corefile");
        plan(&super::super::parse::parse(file, text, &|_| None)?)
    }

    /// The plan of a block `.:1053` holding `directive` (one or more lines).
    pub(super) fn block_of(directive: &str) -> BlockPlan {
        let text = format!(".:1053 {{\n    {directive}\n}}\n");
        let mut plan = plan_text(&text).unwrap_or_else(|e| panic!("{directive}: {e}"));
        plan.ports.remove(0).blocks.remove(0)
    }

    /// Checks that a block holding `directive` is refused with a message naming the
    /// Corefile, a line of the directive and `says` (the token, quoted as the message quotes it).
    pub(super) fn refused(directive: &str, says: &str) {
        let text = format!(".:1053 {{\n    {directive}\n}}\n");
        let error = plan_text(&text).expect_err(directive);
        let shown = error.to_string();
        let last_line = 1 + directive.lines().count() as u32;
        assert!(
            (2..=last_line).contains(&error.line)
                && shown.starts_with(&format!("/etc/coredns/Corefile:{}: ", error.line))
                && shown.contains(says),
            "{directive}: {shown} (expected line 2..={last_line}, naming {says})"
        );
    }

    #[test]
    fn go_durations() {
        for (text, want) in [
            ("5s", 5_000),
            ("500ms", 500),
            ("1m30s", 90_000),
            ("2h", 7_200_000),
            ("30", 30_000),
            ("1.5s", 1_500),
        ] {
            assert_eq!(
                parse_duration(text),
                Some(Duration::from_millis(want)),
                "{text}"
            );
        }
        for bad in ["", "s", "5x", "-1s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn endpoint_addresses() {
        assert_eq!(
            parse_address(":8080"),
            Some("0.0.0.0:8080".parse().unwrap())
        );
        assert_eq!(
            parse_address("localhost:9153"),
            Some("127.0.0.1:9153".parse().unwrap())
        );
        assert_eq!(parse_address("[::1]:53"), Some("[::1]:53".parse().unwrap()));
        assert_eq!(parse_address("8080"), None);
    }
}
