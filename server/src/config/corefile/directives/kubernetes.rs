//! The `kubernetes` directive: the cluster zone and its reverse zones (names or CIDRs), the
//! API endpoint and kubeconfig, namespaces, pods, ttl, fallthrough, noendpoints,
//! endpoint_pod_names, `ignore empty_service`, and the label selectors `labels` and
//! `namespace_labels`.
//!
//! Stricter than CoreDNS, which ignores what follows `ignore empty_service` and an `ignore`
//! with nothing, and reads an argument that is not a valid CIDR as a zone name: those are
//! refused here. `labels a!=b` is taken, which CoreDNS refuses (see `sources::selector`).

use super::*;
use crate::sources::selector::LabelSelector;

/// The options CoreDNS's `kubernetes` takes that clusterdns carries out.
const SUPPORTED_OPTIONS: &str = "endpoint, kubeconfig, namespaces, labels, namespace_labels, \
     pods, endpoint_pod_names, ttl, noendpoints, fallthrough, ignore empty_service";

/// The `kubernetes` directive of a block with zones `block_zones`.
pub(super) fn kubernetes(
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
        pod_addresses: false,
        endpoint_pod_names: false,
        ignore_empty_service: false,
        labels: None,
        namespace_labels: None,
    };
    // Whether `namespaces` was given, and where `namespace_labels` was: CoreDNS refuses both.
    let (mut has_namespaces, mut namespace_labels_at) = (false, None);
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
                if option.args.is_empty() {
                    return Err(CorefileError::at(
                        &option.name,
                        "kubernetes namespaces: at least one namespace is needed",
                    ));
                }
                source.namespaces = option.args.iter().map(|a| a.text.clone()).collect();
                has_namespaces = true;
            }
            "labels" => source.labels = Some(selector(option)?),
            "namespace_labels" => {
                source.namespace_labels = Some(selector(option)?);
                namespace_labels_at = Some(&option.name);
            }
            "endpoint_pod_names" => {
                no_args(option)?;
                no_block(option)?;
                source.endpoint_pod_names = true;
            }
            "ignore" => {
                let what = arg()?;
                if what.text != "empty_service" {
                    return Err(CorefileError::at(
                        what,
                        format!(
                            "kubernetes ignore {:?}: only `ignore empty_service` exists",
                            what.text
                        ),
                    ));
                }
                source.ignore_empty_service = true;
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
            "multicluster"
            | "tls"
            | "startup_timeout"
            | "zonal"
            | "apiserver_qps"
            | "apiserver_burst"
            | "apiserver_max_inflight" => {
                return Err(CorefileError::at(
                    &option.name,
                    format!(
                        "kubernetes {}: not supported yet; supported options: {SUPPORTED_OPTIONS}",
                        option.name.text
                    ),
                ))
            }
            _ => return Err(unknown_option(d, option)),
        }
    }
    if let (true, Some(at)) = (has_namespaces, namespace_labels_at) {
        return Err(CorefileError::at(
            at,
            "kubernetes: namespaces and namespace_labels cannot both be set",
        ));
    }
    Ok((source, route))
}

/// The label selector of `labels` or `namespace_labels`: its arguments joined by spaces, as
/// CoreDNS reads them (`labels environment in (production, qa),app=web`).
fn selector(option: &Directive) -> Result<LabelSelector, CorefileError> {
    no_block(option)?;
    let Some(first) = option.args.first() else {
        return Err(CorefileError::at(
            &option.name,
            format!(
                "kubernetes {}: a label selector is needed (e.g. app=web)",
                option.name.text
            ),
        ));
    };
    let text = (option.args.iter())
        .map(|a| a.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    LabelSelector::parse(&text).map_err(|error| {
        CorefileError::at(
            first,
            format!("kubernetes {} {text:?}: {error}", option.name.text),
        )
    })
}

#[cfg(test)]
mod tests;
