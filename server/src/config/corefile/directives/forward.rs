//! The `forward` and `cache` directives: upstreams (plain, or DNS over TLS with `tls` and
//! `tls_servername`), their options and health checks, and the cache's capacities, TTL bounds,
//! prefetch and stale serving.

use std::path::Path;

use rustls::pki_types::ServerName;

use super::*;
use crate::forward::resolv::parse_upstream_on;
use crate::forward::tls::{TlsClient, TlsUpstreams, DOT_PORT};

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
    let mut over_tls = Vec::new();
    for target in to {
        let text = target.text.as_str();
        if let Some(bare) = text.strip_prefix("tls://") {
            // An address only: CoreDNS 1.13 reads a file after tls:// as plain DNS
            // nameservers, which would send in the clear what was meant to be encrypted.
            let addr = parse_upstream_on(bare, DOT_PORT).map_err(|_| {
                CorefileError::at(
                    target,
                    format!("forward {text:?}: expected tls://IP[:PORT] (port 853 unless given)"),
                )
            })?;
            upstreams.push(addr);
            over_tls.push(addr);
            continue;
        }
        if let Some(scheme) = ["https://", "grpc://", "quic://", "h3://"]
            .iter()
            .find(|s| text.starts_with(*s))
        {
            return Err(CorefileError::at(
                target,
                format!(
                    "forward {text:?}: {scheme} upstreams are not supported (only dns:// and \
                     tls://)"
                ),
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
    // Which upstreams are asked over TLS is told by address: one address cannot be both.
    if let Some(both) = over_tls
        .iter()
        .find(|a| upstreams.iter().filter(|u| u == a).count() > 1)
    {
        return Err(CorefileError::at(
            &d.name,
            format!("forward: {both} is given twice (as tls:// and as plain DNS, or twice)"),
        ));
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
    let mut tls_client = None;
    let mut server_name = None;
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
            // A plain upstream's UDP sockets and a TLS upstream's connections; TCP retries of
            // truncated answers use a connection each.
            "expire" => config.expire = duration(arg()?)?,
            "tls" => tls_client = Some(tls(option)?),
            "tls_servername" => {
                let name = arg()?;
                let parsed = ServerName::try_from(name.text.clone()).map_err(|_| {
                    CorefileError::at(
                        name,
                        format!(
                            "forward tls_servername {:?}: not a DNS name or IP address",
                            name.text
                        ),
                    )
                })?;
                server_name = Some(parsed);
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
    // As in CoreDNS, `tls` and `tls_servername` concern the tls:// upstreams only; the files
    // are read (and refused when bad) even when there is none.
    if !over_tls.is_empty() {
        config.tls = Some(TlsUpstreams {
            upstreams: over_tls,
            client: tls_client.unwrap_or_else(TlsClient::system),
            server_name,
        });
    }
    Ok(ForwardPlan {
        from,
        except,
        config,
        loop_check: false,
    })
}

/// The `tls [CERT KEY] [CA]` option of `forward`: no file, the system's roots; one, a CA file;
/// two, a client certificate and key; three, both. A file that cannot be used is refused at
/// its own token.
fn tls(option: &Directive) -> Result<TlsClient, CorefileError> {
    no_block(option)?;
    let path = |token: &Token| Path::new(&token.text).to_owned();
    let (ca, identity) = match option.args.as_slice() {
        [] => return Ok(TlsClient::system()),
        [ca] => (Some(ca), None),
        [cert, key] => (None, Some((cert, key))),
        [cert, key, ca] => (Some(ca), Some((cert, key))),
        [_, _, _, extra, ..] => {
            return Err(CorefileError::at(
                extra,
                "forward tls: at most three files (CERT KEY CA)",
            ))
        }
    };
    let ca_path = ca.map(path);
    let identity_paths = identity.map(|(cert, key)| (path(cert), path(key)));
    TlsClient::from_files(
        ca_path.as_deref(),
        identity_paths
            .as_ref()
            .map(|(c, k)| (c.as_path(), k.as_path())),
    )
    .map_err(|error| {
        // The token of the file the message names.
        let token = [ca, identity.map(|i| i.0), identity.map(|i| i.1)]
            .into_iter()
            .flatten()
            .find(|t| Path::new(&t.text) == error.path())
            .unwrap_or(&option.name);
        CorefileError::at(token, format!("forward tls: {error}"))
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

#[cfg(test)]
mod tests {
    use super::super::tests::{block_of, refused};
    use super::*;
    use crate::forward::config::DEFAULT_EXPIRE;

    /// A file of server/testdata/tls/.
    fn testdata(name: &str) -> String {
        format!("{}/testdata/tls/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    fn config_of(directive: &str) -> ForwardConfig {
        block_of(directive).forward.expect("forward planned").config
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn tls_upstreams_as_coredns_readme_writes_them() {
        // "Proxy all requests to 9.9.9.9 using the DNS-over-TLS (DoT) protocol".
        let config = config_of(
            "forward . tls://9.9.9.9 {\n       tls_servername dns.quad9.net\n       \
             health_check 5s\n    }",
        );
        assert_eq!(config.upstreams, [addr("9.9.9.9:853")]);
        assert_eq!(config.health_check, Duration::from_secs(5));
        let tls = config.tls.expect("over TLS");
        assert_eq!(tls.upstreams, [addr("9.9.9.9:853")]);
        assert_eq!(
            tls.server_name,
            Some(ServerName::try_from("dns.quad9.net").unwrap())
        );
        assert_eq!(tls.client, TlsClient::system());
        assert_eq!(config.expire, DEFAULT_EXPIRE);

        // "Or with multiple upstreams from the same provider".
        let config = config_of(
            "forward . tls://1.1.1.1 tls://1.0.0.1 {\n       tls_servername cloudflare-dns.com\n    }",
        );
        let tls = config.tls.expect("over TLS");
        assert_eq!(tls.upstreams, [addr("1.1.1.1:853"), addr("1.0.0.1:853")]);
        assert_eq!(tls.name_for(addr("1.0.0.1:853")), tls.server_name.unwrap());
    }

    #[test]
    fn tls_and_plain_upstreams_ports_and_names() {
        // OpenShift's dns-operator: a port of its own, an IPv6 upstream, bare `tls`.
        let config = config_of(
            "forward . tls://1.1.1.1 tls://[2001:db8::2]:5353 10.0.0.10 dns://10.0.0.11:5353 {\n        \
             tls_servername dns.foo.com\n        tls\n        policy round_robin\n    }",
        );
        assert_eq!(
            config.upstreams,
            [
                addr("1.1.1.1:853"),
                addr("[2001:db8::2]:5353"),
                addr("10.0.0.10:53"),
                addr("10.0.0.11:5353"),
            ]
        );
        let tls = config.tls.expect("over TLS");
        assert_eq!(
            tls.upstreams,
            [addr("1.1.1.1:853"), addr("[2001:db8::2]:5353")]
        );
        assert_eq!(config.policy, Policy::RoundRobin);

        // Without tls_servername, the address is what the certificate must name.
        let tls = config_of("forward . tls://192.0.2.53")
            .tls
            .expect("over TLS");
        assert_eq!(
            tls.name_for(addr("192.0.2.53:853")),
            ServerName::IpAddress(addr("192.0.2.53:853").ip().into())
        );
        assert!(config_of("forward . 192.0.2.53").tls.is_none());
    }

    #[test]
    fn tls_files_and_expire() {
        let ca = testdata("ca.pem");
        let (cert, key) = (testdata("client.pem"), testdata("client.key"));
        let client = |line: &str| {
            let text = format!("forward . tls://192.0.2.53 {{\n        {line}\n    }}");
            config_of(&text).tls.expect("over TLS").client
        };
        let trusting = TlsClient::from_files(Some(Path::new(&ca)), None).unwrap();
        let identity = Some((Path::new(&cert), Path::new(&key)));
        assert_eq!(client(&format!("tls {ca}")), trusting);
        assert_eq!(
            client(&format!("tls {cert} {key}")),
            TlsClient::from_files(None, identity).unwrap()
        );
        assert_eq!(
            client(&format!("tls {cert} {key} {ca}")),
            TlsClient::from_files(Some(Path::new(&ca)), identity).unwrap()
        );
        assert_eq!(client("tls"), TlsClient::system());

        let config = config_of("forward . tls://192.0.2.53 {\n        expire 30s\n    }");
        assert_eq!(config.expire, Duration::from_secs(30));
        // A plain upstream's sockets expire the same way.
        assert_eq!(
            config_of("forward . 192.0.2.53 {\n        expire 1m\n    }").expire,
            Duration::from_secs(60)
        );
        // `tls` without a tls:// upstream is accepted and does nothing, as in CoreDNS.
        assert!(config_of(&format!(
            "forward . 192.0.2.53 {{\n        tls {ca}\n    }}"
        ))
        .tls
        .is_none());
    }

    #[test]
    fn bad_tls_settings_are_refused_naming_the_token() {
        let missing = testdata("missing-ca.pem");
        refused(
            &format!("forward . tls://192.0.2.53 {{\n        tls {missing}\n    }}"),
            &missing,
        );
        // A key file given as the CA.
        let key = testdata("client.key");
        refused(
            &format!("forward . tls://192.0.2.53 {{\n        tls {key}\n    }}"),
            "no PEM certificate",
        );
        // A key that is not the certificate's.
        let (cert, other) = (testdata("client.pem"), testdata("other.key"));
        refused(
            &format!("forward . tls://192.0.2.53 {{\n        tls {cert} {other}\n    }}"),
            &cert,
        );
        refused(
            "forward . tls://192.0.2.53 {\n        tls a b c d\n    }",
            "at most three files",
        );
        refused(
            "forward . tls://192.0.2.53 {\n        tls_servername not_a*name\n    }",
            "not_a*name",
        );
        refused("forward . tls://dns.quad9.net", "tls://dns.quad9.net");
        refused(
            "forward . tls://9.9.9.9%dns.quad9.net",
            "tls://9.9.9.9%dns.quad9.net",
        );
        refused("forward . https://9.9.9.9", "https://9.9.9.9");
        refused(
            "forward . tls://192.0.2.53 192.0.2.53:853",
            "192.0.2.53:853",
        );
    }
}
