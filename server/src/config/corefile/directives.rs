//! A parsed Corefile's directives, interpreted as CoreDNS 1.13 documents them, into a [`Plan`].
//! Every directive and option is either carried out or refused here with the file, line and
//! token: nothing is silently ignored. The plugin order is CoreDNS's, not the file's; the
//! supported directives are [`SUPPORTED`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clusterdns_zone::{PodsMode, Rcode, WireName};

use super::parse::{Corefile, CorefileError, Directive, ServerBlock, Token};
use crate::chain::plugins::hosts::HostsTable;
use crate::chain::plugins::rewrite::{AnswerRewrite, NameRule, Processing, RegexRewrite};
use crate::chain::plugins::template::{Template, TemplateConfig};
use crate::chain::querylog::{COMBINED_FORMAT, COMMON_FORMAT, PLACEHOLDERS};
use crate::config::plan::{
    BlockPlan, BlockZone, Fallthrough, ForwardPlan, HostsPlan, KubernetesPlan, KubernetesRoute,
    LogClasses, LogPlan, Plan, PortPlan,
};
use crate::forward::config::{check_no_loop, CacheConfig, CacheScope, ForwardConfig, Policy};
use crate::forward::resolv::{parse_upstream, read_nameservers};

/// The directives clusterdns carries out; any other stops startup.
pub const SUPPORTED: &str = "any, bind, cache, errors, forward, health, hosts, kubernetes, \
     loadbalance, log, loop, prometheus, ready, reload, rewrite (name), template";

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
    let block_zones: Vec<String> = out.zones.iter().map(|z| z.zone_label.clone()).collect();
    for d in &block.directives {
        let name = d.name.text.as_str();
        let repeatable = matches!(name, "rewrite" | "template" | "bind");
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
            "autopath" => {
                return Err(CorefileError::at(
                    &d.name,
                    "autopath is not supported yet: remove it (clients then walk their search \
                     path themselves, as without autopath)",
                ))
            }
            other => {
                return Err(CorefileError::at(
                    &d.name,
                    format!("unknown or unsupported directive {other:?}; supported: {SUPPORTED}"),
                ))
            }
        }
    }
    if let Some(forward) = &mut out.forward {
        forward.loop_check = loop_check;
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

fn log(d: &Directive) -> Result<LogPlan, CorefileError> {
    let mut names = Vec::new();
    let mut format = COMMON_FORMAT.to_owned();
    for arg in &d.args {
        match arg.text.as_str() {
            "{common}" => format = COMMON_FORMAT.to_owned(),
            "{combined}" => format = COMBINED_FORMAT.to_owned(),
            text if text.contains('{') => {
                check_format(arg)?;
                format = text.to_owned();
            }
            text => names.push(zone_name(arg, text)?),
        }
    }
    if names.is_empty() {
        names.push(WireName::root());
    }
    let mut classes = LogClasses {
        success: true,
        denial: true,
        error: true,
    };
    for option in &d.block {
        match option.name.text.as_str() {
            "class" => {
                classes = LogClasses {
                    success: false,
                    denial: false,
                    error: false,
                };
                for class in &option.args {
                    match class.text.as_str() {
                        "all" => {
                            classes = LogClasses {
                                success: true,
                                denial: true,
                                error: true,
                            }
                        }
                        "success" => classes.success = true,
                        "denial" => classes.denial = true,
                        "error" => classes.error = true,
                        other => {
                            return Err(CorefileError::at(
                                class,
                                format!(
                                    "log class {other:?}: expected all, success, denial or error"
                                ),
                            ))
                        }
                    }
                }
            }
            _ => return Err(unknown_option(d, option)),
        }
    }
    Ok(LogPlan {
        names,
        format,
        classes,
    })
}

fn check_format(arg: &Token) -> Result<(), CorefileError> {
    let mut rest = arg.text.as_str();
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| CorefileError::at(arg, "log format: unclosed '{'"))?;
        let placeholder = &rest[open..open + close + 1];
        if !PLACEHOLDERS.contains(&placeholder)
            && placeholder != "{common}"
            && placeholder != "{combined}"
        {
            return Err(CorefileError::at(
                arg,
                format!(
                    "log format: unsupported placeholder {placeholder}; supported: {}",
                    PLACEHOLDERS.join(" ")
                ),
            ));
        }
        rest = &rest[open + close + 1..];
    }
    Ok(())
}

/// A zone or name argument, normalized.
fn zone_name(token: &Token, text: &str) -> Result<WireName, CorefileError> {
    WireName::from_dotted(text)
        .ok_or_else(|| CorefileError::at(token, format!("{text:?} is not a domain name")))
}

/// Zones given as arguments, or the block's.
fn zones_or_block(args: &[Token], block: &[String]) -> Result<Vec<String>, CorefileError> {
    if args.is_empty() {
        return Ok(block.to_vec());
    }
    args.iter()
        .map(|a| zone_name(a, &a.text).map(|w| w.to_dotted()))
        .collect()
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

fn kubernetes(
    d: &Directive,
    block_zones: &[String],
) -> Result<(KubernetesPlan, KubernetesRoute), CorefileError> {
    let zones = zones_or_block(&d.args, block_zones)?;
    let (reverse, forward): (Vec<&String>, Vec<&String>) =
        zones.iter().partition(|z| is_reverse(z));
    let domain = match forward.as_slice() {
        [one] => zone_name(&d.name, one)?,
        [] => {
            return Err(CorefileError::at(
                &d.name,
                "kubernetes: no cluster zone (e.g. cluster.local) among its zones",
            ))
        }
        [first, second, ..] => {
            return Err(CorefileError::at(
                &d.name,
                format!("kubernetes: clusterdns serves one cluster zone, not {first} and {second}"),
            ))
        }
    };
    if domain.as_bytes().len() <= 1 {
        return Err(CorefileError::at(
            &d.name,
            "kubernetes: the root cannot be the cluster zone; name it (e.g. cluster.local)",
        ));
    }
    let mut source = KubernetesPlan {
        domain,
        ttl: 5,
        pods: PodsMode::Disabled,
        endpoint: None,
        kubeconfig: None,
        namespaces: Vec::new(),
        no_endpoints: false,
    };
    let mut route = KubernetesRoute {
        reverse: (reverse.iter())
            .map(|z| zone_name(&d.name, z))
            .collect::<Result<_, _>>()?,
        fallthrough: Fallthrough::default(),
    };
    for option in &d.block {
        let arg = || one_arg(d, option);
        match option.name.text.as_str() {
            "endpoint" => source.endpoint = Some(arg()?.text.clone()),
            "kubeconfig" => {
                no_block(option)?;
                source.kubeconfig = match option.args.as_slice() {
                    [file] => Some((PathBuf::from(&file.text), None)),
                    [file, context] => {
                        Some((PathBuf::from(&file.text), Some(context.text.clone())))
                    }
                    _ => {
                        return Err(CorefileError::at(
                            &option.name,
                            "kubernetes kubeconfig: expected FILE [CONTEXT]",
                        ))
                    }
                }
            }
            "namespaces" => {
                no_block(option)?;
                source.namespaces = option.args.iter().map(|a| a.text.clone()).collect();
            }
            "pods" => {
                let mode = arg()?;
                source.pods = match mode.text.as_str() {
                    "disabled" => PodsMode::Disabled,
                    "insecure" => PodsMode::Insecure,
                    "verified" => PodsMode::Verified,
                    other => {
                        return Err(CorefileError::at(
                            mode,
                            format!(
                                "kubernetes pods {other:?}: expected disabled, insecure or verified"
                            ),
                        ))
                    }
                }
            }
            "ttl" => {
                let ttl = arg()?;
                source.ttl = number(ttl, "kubernetes ttl")?;
                if source.ttl > 3600 {
                    return Err(CorefileError::at(ttl, "kubernetes ttl: at most 3600"));
                }
            }
            "fallthrough" => route.fallthrough = fallthrough(option)?,
            "noendpoints" => {
                no_args(option)?;
                source.no_endpoints = true;
            }
            "labels" | "endpoint_pod_names" | "ignore" | "namespace_labels" | "multicluster"
            | "tls" | "startup_timeout" => {
                return Err(CorefileError::at(
                    &option.name,
                    format!(
                        "kubernetes {}: not supported yet; supported options: endpoint, \
                         kubeconfig, namespaces, pods, ttl, fallthrough, noendpoints",
                        option.name.text
                    ),
                ))
            }
            _ => return Err(unknown_option(d, option)),
        }
    }
    Ok((source, route))
}

fn forward(d: &Directive, listen: &[SocketAddr]) -> Result<ForwardPlan, CorefileError> {
    let Some((from, to)) = d.args.split_first().filter(|(_, to)| !to.is_empty()) else {
        return Err(CorefileError::at(
            &d.name,
            "forward: expected FROM TO... (e.g. forward . /etc/resolv.conf)",
        ));
    };
    let from = zone_name(from, &from.text)?;
    let mut upstreams = Vec::new();
    for target in to {
        let text = target.text.as_str();
        if let Some(scheme) = ["tls://", "https://", "grpc://", "quic://", "h3://"]
            .iter()
            .find(|s| text.starts_with(*s))
        {
            return Err(CorefileError::at(
                target,
                format!("forward {text:?}: {scheme} upstreams are not supported (only dns://)"),
            ));
        }
        let bare = text.strip_prefix("dns://").unwrap_or(text);
        match parse_upstream(bare) {
            Ok(addr) => upstreams.push(addr),
            Err(_) if !text.starts_with("dns://") => {
                let found = read_nameservers(std::path::Path::new(bare))
                    .map_err(|e| CorefileError::at(target, format!("forward {text:?}: {e}")))?;
                if found.is_empty() {
                    return Err(CorefileError::at(
                        target,
                        format!("forward {text:?}: no nameserver line in the file"),
                    ));
                }
                upstreams.extend(found);
            }
            Err(message) => return Err(CorefileError::at(target, message)),
        }
    }
    if upstreams.len() > 15 {
        return Err(CorefileError::at(&d.name, "forward: at most 15 upstreams"));
    }
    check_no_loop(&upstreams, listen).map_err(|e| CorefileError::at(&d.name, e.to_string()))?;
    let mut config = ForwardConfig::new(upstreams);
    // CoreDNS puts no bound on concurrent queries unless told.
    config.max_concurrent = usize::MAX;
    let mut except = Vec::new();
    let mut prefer_udp = None;
    for option in &d.block {
        let arg = || one_arg(d, option);
        match option.name.text.as_str() {
            "except" => {
                no_block(option)?;
                for name in &option.args {
                    except.push(zone_name(name, &name.text)?);
                }
            }
            "force_tcp" => {
                no_args(option)?;
                config.force_tcp = true;
            }
            "prefer_udp" => {
                no_args(option)?;
                prefer_udp = Some(&option.name);
            }
            "max_fails" => {
                let fails: u32 = number(arg()?, "forward max_fails")?;
                config.max_fails = if fails == 0 { u32::MAX } else { fails };
            }
            // clusterdns keeps no idle upstream connections, so there is nothing to expire.
            "expire" => {
                duration(arg()?)?;
            }
            "health_check" => {
                no_block(option)?;
                let [interval] = option.args.as_slice() else {
                    let at = option.args.get(1).unwrap_or(&option.name);
                    return Err(CorefileError::at(
                        at,
                        "forward health_check: only DURATION is supported (not no_rec or domain)",
                    ));
                };
                config.health_check = duration(interval)?.max(Duration::from_millis(10));
            }
            "policy" => {
                let policy = arg()?;
                config.policy = match policy.text.as_str() {
                    "random" => Policy::Random,
                    "round_robin" => Policy::RoundRobin,
                    "sequential" => Policy::Sequential,
                    other => {
                        return Err(CorefileError::at(
                            policy,
                            format!(
                                "forward policy {other:?}: expected random, round_robin or \
                                 sequential"
                            ),
                        ))
                    }
                }
            }
            "max_concurrent" => {
                let max: usize = number(arg()?, "forward max_concurrent")?;
                config.max_concurrent = if max == 0 { usize::MAX } else { max };
            }
            _ => return Err(unknown_option(d, option)),
        }
    }
    if let (Some(token), true) = (prefer_udp, config.force_tcp) {
        return Err(CorefileError::at(
            token,
            "forward: force_tcp and prefer_udp contradict each other",
        ));
    }
    Ok(ForwardPlan {
        from,
        except,
        config,
        loop_check: false,
    })
}

fn cache_config(d: &Directive, block_zones: &[String]) -> Result<CacheConfig, CorefileError> {
    // CoreDNS's defaults: 3600 s for answers, 1800 s for denials, 9984 entries each, minimum
    // TTL 5 s, SERVFAIL cached 5 s.
    let mut config = CacheConfig {
        max_ttl: 3600,
        max_denial_ttl: 1800,
        servfail_ttl: 5,
        capacity: 2 * 9984,
        prefetch_hits: 0,
        serve_stale: Duration::ZERO,
        min_ttl: 5,
        min_denial_ttl: 5,
        keep_ttl: false,
        scope: CacheScope::everything(),
    };
    let mut args = d.args.as_slice();
    if let Some((first, rest)) = args.split_first() {
        if let Ok(ttl) = first.text.parse::<u32>() {
            config.max_ttl = ttl;
            config.max_denial_ttl = ttl;
            args = rest;
        }
    }
    let zones = zones_or_block(args, block_zones)?;
    config.scope.zones = (zones.iter())
        .filter_map(|z| WireName::from_dotted(z))
        .collect();
    let (mut success_capacity, mut denial_capacity) = (9984usize, 9984usize);
    for option in &d.block {
        no_block(option)?;
        let args = &option.args;
        match option.name.text.as_str() {
            "success" | "denial" => {
                let what = format!("cache {}", option.name.text);
                let [capacity, rest @ ..] = args.as_slice() else {
                    return Err(CorefileError::at(
                        &option.name,
                        format!("{what}: expected CAPACITY [TTL] [MINTTL]"),
                    ));
                };
                let capacity: usize = number(capacity, &what)?;
                let ttl: Option<u32> = rest.first().map(|t| number(t, &what)).transpose()?;
                let min: Option<u32> = rest.get(1).map(|t| number(t, &what)).transpose()?;
                if let Some(extra) = rest.get(2) {
                    return Err(CorefileError::at(extra, format!("{what}: too many values")));
                }
                if option.name.text == "success" {
                    success_capacity = capacity;
                    config.max_ttl = ttl.unwrap_or(config.max_ttl);
                    config.min_ttl = min.unwrap_or(config.min_ttl);
                } else {
                    denial_capacity = capacity;
                    config.max_denial_ttl = ttl.unwrap_or(config.max_denial_ttl);
                    config.min_denial_ttl = min.unwrap_or(config.min_denial_ttl);
                }
            }
            "prefetch" => {
                let [amount, rest @ ..] = args.as_slice() else {
                    return Err(CorefileError::at(
                        &option.name,
                        "cache prefetch: expected AMOUNT",
                    ));
                };
                config.prefetch_hits = number(amount, "cache prefetch")?;
                if let Some(extra) = rest.first() {
                    return Err(CorefileError::at(
                        extra,
                        "cache prefetch: only AMOUNT is supported (clusterdns prefetches an \
                         answer hit AMOUNT times with less than 10% of its TTL left)",
                    ));
                }
            }
            "serve_stale" => {
                config.serve_stale = match args.first() {
                    Some(limit) => duration(limit)?,
                    None => Duration::from_secs(3600),
                };
                match args.get(1) {
                    Some(mode) if mode.text != "verify" => {
                        return Err(CorefileError::at(
                            mode,
                            "cache serve_stale: only the verify refresh mode is supported (a \
                             stale answer is served only when every upstream fails)",
                        ))
                    }
                    _ => max_args(option, 2)?,
                }
            }
            "servfail" => {
                let ttl = duration(one_arg(d, option)?)?;
                config.servfail_ttl = ttl.as_secs().min(300) as u32;
            }
            "disable" => {
                let [kind, zones @ ..] = args.as_slice() else {
                    return Err(CorefileError::at(
                        &option.name,
                        "cache disable: expected success|denial [ZONES...]",
                    ));
                };
                let zones: Vec<WireName> = if zones.is_empty() {
                    vec![WireName::root()]
                } else {
                    (zones.iter())
                        .map(|z| zone_name(z, &z.text))
                        .collect::<Result<_, _>>()?
                };
                match kind.text.as_str() {
                    "success" => config.scope.no_success.extend(zones),
                    "denial" => config.scope.no_denial.extend(zones),
                    other => {
                        return Err(CorefileError::at(
                            kind,
                            format!("cache disable {other:?}: expected success or denial"),
                        ))
                    }
                }
            }
            "keepttl" => {
                no_args(option)?;
                config.keep_ttl = true;
            }
            _ => return Err(unknown_option(d, option)),
        }
    }
    config.capacity = (success_capacity + denial_capacity).max(1);
    Ok(config)
}

fn hosts(d: &Directive, block_zones: &[String]) -> Result<HostsPlan, CorefileError> {
    let file = PathBuf::from(d.args.first().map_or("/etc/hosts", |a| a.text.as_str()));
    let zones = zones_or_block(d.args.get(1..).unwrap_or(&[]), block_zones)?;
    let (mut ttl, mut no_reverse, mut reload) = (3600, false, Duration::from_secs(5));
    let mut fall = Fallthrough::default();
    let mut inline = Vec::new();
    for option in &d.block {
        match option.name.text.as_str() {
            "ttl" => ttl = number(one_arg(d, option)?, "hosts ttl")?,
            "no_reverse" => {
                no_args(option)?;
                no_reverse = true;
            }
            "reload" => reload = duration(one_arg(d, option)?)?,
            "fallthrough" => fall = fallthrough(option)?,
            first if first.parse::<IpAddr>().is_ok() => {
                no_block(option)?;
                let words: Vec<&str> = std::iter::once(first)
                    .chain(option.args.iter().map(|a| a.text.as_str()))
                    .collect();
                inline.push(words.join(" "));
            }
            _ => return Err(unknown_option(d, option)),
        }
    }
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => Some(text),
        // CoreDNS starts without the file and reads it once it appears.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(CorefileError::at(
                d.args.first().unwrap_or(&d.name),
                format!("hosts {}: {e}", file.display()),
            ))
        }
    };
    let table = HostsTable::new(text.as_deref(), &inline, &zones, ttl, no_reverse)
        .map_err(|message| CorefileError::at(&d.name, format!("hosts: {message}")))?;
    Ok(HostsPlan {
        file: Some(file),
        inline,
        zones,
        ttl,
        no_reverse,
        reload,
        fallthrough: fall,
        text,
        table,
    })
}

/// The hosts table of `plan` with `text` as its file's content.
pub fn hosts_table(plan: &HostsPlan, text: Option<&str>) -> Result<HostsTable, String> {
    HostsTable::new(text, &plan.inline, &plan.zones, plan.ttl, plan.no_reverse)
}

fn rewrite(d: &Directive) -> Result<NameRule, CorefileError> {
    let mut args = d.args.as_slice();
    let mut mode = Processing::Stop;
    if let Some((flow, rest)) = args.split_first() {
        match flow.text.as_str() {
            "continue" => {
                mode = Processing::Continue;
                args = rest;
            }
            "stop" => args = rest,
            _ => {}
        }
    }
    let Some((kind, rest)) = args.split_first() else {
        return Err(CorefileError::at(&d.name, "rewrite: expected name ..."));
    };
    if kind.text != "name" {
        return Err(CorefileError::at(
            kind,
            format!(
                "rewrite {:?}: only `rewrite name` is supported (not type, class, edns0, ttl, \
                 cname or rcode)",
                kind.text
            ),
        ));
    }
    let (match_kind, rest) = match rest.split_first() {
        Some((m, rest))
            if matches!(
                m.text.to_ascii_lowercase().as_str(),
                "exact" | "prefix" | "suffix" | "substring" | "regex"
            ) =>
        {
            (m.text.as_str(), rest)
        }
        _ => ("exact", rest),
    };
    let [from, to, answer @ ..] = rest else {
        return Err(CorefileError::at(
            &d.name,
            "rewrite name: expected [exact|prefix|suffix|substring|regex] FROM TO",
        ));
    };
    let mut answer_words: Vec<&Token> = answer.iter().collect();
    for option in &d.block {
        answer_words.push(&option.name);
        answer_words.extend(option.args.iter());
    }
    let answers = answer_rewrites(d, &answer_words)?;
    NameRule::new(mode, match_kind, &from.text, &to.text, answers)
        .map_err(|message| CorefileError::at(to, format!("rewrite name: {message}")))
}

/// The `answer auto`, `answer name FROM TO` and `answer value FROM TO` options of a rule.
fn answer_rewrites(d: &Directive, words: &[&Token]) -> Result<Vec<AnswerRewrite>, CorefileError> {
    let mut out = Vec::new();
    let mut rest = words;
    while let Some((first, after)) = rest.split_first() {
        let regex = |from: &Token, to: &Token| {
            RegexRewrite::new(&from.text, &to.text)
                .map_err(|e| CorefileError::at(from, format!("{}: {e}", d.name.text)))
        };
        match (first.text.as_str(), after) {
            ("answer", [auto, tail @ ..]) if auto.text == "auto" => {
                out.push(AnswerRewrite::Auto);
                rest = tail;
            }
            ("answer", [kind, from, to, tail @ ..]) if kind.text == "name" => {
                out.push(AnswerRewrite::Name(regex(from, to)?));
                rest = tail;
            }
            ("answer", [kind, from, to, tail @ ..]) if kind.text == "value" => {
                out.push(AnswerRewrite::Value(regex(from, to)?));
                rest = tail;
            }
            _ => {
                return Err(CorefileError::at(
                    first,
                    format!(
                        "{}: unsupported option {:?}; supported: `answer auto`, `answer name FROM \
                         TO`, `answer value FROM TO`",
                        d.name.text, first.text
                    ),
                ))
            }
        }
    }
    Ok(out)
}

fn template(d: &Directive, block_zones: &[String]) -> Result<Template, CorefileError> {
    let [class, qtype, zones @ ..] = d.args.as_slice() else {
        return Err(CorefileError::at(
            &d.name,
            "template: expected CLASS TYPE [ZONE...]",
        ));
    };
    let zones = zones_or_block(zones, block_zones)?;
    let mut matches = Vec::new();
    let mut answers = Vec::new();
    let mut additional = Vec::new();
    let mut authority = Vec::new();
    let mut rcode = None;
    let mut fall = None;
    for option in &d.block {
        let values = || option.args.iter().map(|a| a.text.clone());
        match option.name.text.as_str() {
            "match" => matches.extend(values()),
            "answer" => answers.extend(values()),
            "additional" => additional.extend(values()),
            "authority" => authority.extend(values()),
            "rcode" => rcode = Some(one_arg(d, option)?.text.clone()),
            "fallthrough" => {
                no_block(option)?;
                fall = Some(option.args.iter().map(|a| a.text.clone()).collect());
            }
            _ => return Err(unknown_option(d, option)),
        }
    }
    let config = TemplateConfig {
        class: class.text.clone(),
        rtype: qtype.text.clone(),
        zones,
        matches,
        answer: answers,
        additional,
        authority,
        rcode,
        fallthrough: fall,
    };
    Template::new(&config)
        .map_err(|message| CorefileError::at(&d.name, format!("template: {message}")))
}

#[cfg(test)]
mod tests {
    use super::*;

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
