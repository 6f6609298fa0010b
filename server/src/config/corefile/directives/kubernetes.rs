//! The `kubernetes` directive: the cluster zone and its reverse zones, the API endpoint
//! and kubeconfig, namespaces, pods, ttl, fallthrough.

use super::*;

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
