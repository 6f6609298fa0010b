//! The directives of the plugins that answer from configuration or shape the answer:
//! `log`, `hosts`, `template` and `autopath` (`rewrite` has a file of its own).

use super::*;
use crate::chain::plugins::autopath::{search_domains, SearchPath};

/// The `log` directive: which names, the line format, which classes of response.
pub(super) fn log(d: &Directive) -> Result<LogPlan, CorefileError> {
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

/// Refuses a `log` format with a placeholder clusterdns does not fill.
pub(super) fn check_format(arg: &Token) -> Result<(), CorefileError> {
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

/// The `hosts` directive for a block with zones `block_zones`.
pub(super) fn hosts(d: &Directive, block_zones: &[String]) -> Result<HostsPlan, CorefileError> {
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

/// The `template` directive for a block with zones `block_zones`.
pub(super) fn template(d: &Directive, block_zones: &[String]) -> Result<Template, CorefileError> {
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

/// Where `autopath @kubernetes` reads the search domains that follow the cluster's.
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The `autopath RESOLV-CONF` directive. `@kubernetes` makes the search path the client Pod's:
/// its namespace's, then `svc.<zone>`, `<zone>` (`cluster_zone`, the block's `kubernetes`
/// zone), then the search domains of /etc/resolv.conf, as CoreDNS's `kubernetes` plugin builds
/// it. A file makes it that file's search list for every client.
pub(super) fn autopath(
    d: &Directive,
    cluster_zone: Option<&WireName>,
) -> Result<SearchPath, CorefileError> {
    no_block(d)?;
    let [source] = d.args.as_slice() else {
        return Err(CorefileError::at(
            &d.name,
            "autopath: one argument, @kubernetes or a resolv.conf (zones before it are not \
             supported: the block's zones apply)",
        ));
    };
    if source.text == "@kubernetes" {
        let Some(zone) = cluster_zone else {
            return Err(CorefileError::at(
                source,
                "autopath @kubernetes needs the kubernetes plugin in the same server block",
            ));
        };
        return Ok(SearchPath {
            cluster_zone: Some(zone.clone()),
            // Without the file (outside a pod), only the cluster's own domains.
            domains: search_domains(&std::fs::read_to_string(RESOLV_CONF).unwrap_or_default()),
        });
    }
    if let Some(plugin) = source.text.strip_prefix('@') {
        return Err(CorefileError::at(
            source,
            format!("autopath @{plugin}: only @kubernetes provides a search path"),
        ));
    }
    let path = PathBuf::from(&source.text);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        CorefileError::at(
            source,
            format!("autopath: cannot read {}: {e}", path.display()),
        )
    })?;
    let domains = search_domains(&text);
    if domains.is_empty() {
        return Err(CorefileError::at(
            source,
            format!("autopath: {} has no search domains", path.display()),
        ));
    }
    Ok(SearchPath {
        cluster_zone: None,
        domains,
    })
}
