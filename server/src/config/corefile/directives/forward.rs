//! The `forward` and `cache` directives: upstreams, their options and health checks,
//! and the cache's capacities, TTL bounds, prefetch and stale serving.

use super::*;

/// The `forward` directive; `listen` is the block's own addresses, which an upstream may not be.
pub(super) fn forward(d: &Directive, listen: &[SocketAddr]) -> Result<ForwardPlan, CorefileError> {
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

/// The `cache` directive for a block with zones `block_zones`.
pub(super) fn cache_config(
    d: &Directive,
    block_zones: &[String],
) -> Result<CacheConfig, CorefileError> {
    // CoreDNS's defaults: 3600 s for answers, 1800 s for denials, 9984 entries each, minimum
    // TTL 5 s, SERVFAIL cached 5 s.
    let mut config = CacheConfig {
        max_ttl: 3600,
        max_denial_ttl: 1800,
        servfail_ttl: 5,
        capacity: 2 * 9984,
        prefetch_hits: 0,
        prefetch_window: Duration::from_secs(60),
        prefetch_percent: 10,
        serve_stale: Duration::ZERO,
        stale_refresh: crate::forward::config::StaleRefresh::Immediate,
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
            "prefetch" => prefetch(option, &mut config)?,
            "serve_stale" => serve_stale(option, &mut config)?,
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

/// `prefetch AMOUNT [DURATION [PERCENTAGE%]]`, as CoreDNS's `cache` reads it: PERCENTAGE is a
/// whole number from 10 to 90 with its percent sign.
fn prefetch(option: &Directive, config: &mut CacheConfig) -> Result<(), CorefileError> {
    const WHAT: &str = "cache prefetch";
    let [amount, rest @ ..] = option.args.as_slice() else {
        return Err(CorefileError::at(
            &option.name,
            "cache prefetch: expected AMOUNT [DURATION [PERCENTAGE%]]",
        ));
    };
    config.prefetch_hits = number(amount, WHAT)?;
    if let Some(window) = rest.first() {
        config.prefetch_window = go_duration(window, WHAT)?;
    }
    if let Some(percent) = rest.get(1) {
        let Some(digits) = percent.text.strip_suffix('%') else {
            return Err(CorefileError::at(
                percent,
                format!("{WHAT}: {:?} must end with %", percent.text),
            ));
        };
        config.prefetch_percent = match digits.parse::<u8>() {
            Ok(value @ 10..=90) => value,
            _ => {
                return Err(CorefileError::at(
                    percent,
                    format!(
                        "{WHAT}: {:?} is not a percentage from 10% to 90%",
                        percent.text
                    ),
                ))
            }
        };
    }
    if let Some(extra) = rest.get(2) {
        return Err(CorefileError::at(extra, format!("{WHAT}: too many values")));
    }
    Ok(())
}

/// `serve_stale [DURATION] [immediate|verify]`: DURATION defaults to 1h, the mode to
/// `immediate`, as in CoreDNS. The values CoreDNS reads after the mode (`RESPONSE_TTL`,
/// `FAILURE_RECHECK`, verify's `VERIFY_TIMEOUT`) are refused: a stale answer carries TTL 30 (RFC
/// 8767 §4), a failed refresh is tried again at the next hit, and `verify` waits for the
/// upstreams' own timeout.
fn serve_stale(option: &Directive, config: &mut CacheConfig) -> Result<(), CorefileError> {
    use crate::forward::config::StaleRefresh;
    const WHAT: &str = "cache serve_stale";
    let args = option.args.as_slice();
    config.serve_stale = match args.first() {
        Some(limit) => go_duration(limit, WHAT)?,
        None => Duration::from_secs(3600),
    };
    config.stale_refresh = match args.get(1) {
        None => StaleRefresh::Immediate,
        Some(mode) => match mode.text.to_ascii_lowercase().as_str() {
            "immediate" => StaleRefresh::Immediate,
            "verify" => StaleRefresh::Verify,
            _ => {
                return Err(CorefileError::at(
                    mode,
                    format!(
                        "{WHAT}: refresh mode {:?}: expected immediate or verify",
                        mode.text
                    ),
                ))
            }
        },
    };
    if let Some(extra) = args.get(2) {
        return Err(CorefileError::at(
            extra,
            format!(
                "{WHAT}: {:?}: nothing after the refresh mode is supported (stale answers carry \
                 TTL 30, RFC 8767 §4)",
                extra.text
            ),
        ));
    }
    Ok(())
}

/// A Go duration as `time.ParseDuration` reads it: a bare number other than 0 has no unit and
/// is refused, as CoreDNS refuses it for these options.
fn go_duration(token: &Token, what: &str) -> Result<Duration, CorefileError> {
    if token.text != "0" && token.text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CorefileError::at(
            token,
            format!("{what}: {:?} needs a unit (e.g. 30s, 1m)", token.text),
        ));
    }
    duration(token)
}

#[cfg(test)]
mod cache_tests;
