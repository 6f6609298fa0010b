//! The `k8s_external [ZONES...] { apex APEX; ttl TTL; headless; fallthrough [ZONES...] }`
//! directive, as CoreDNS's setup reads it: the block's zones unless given; apex `dns` and TTL 5
//! (0-3600) unless given. It answers from the `kubernetes` plugin's objects, so the server
//! block must have one (CoreDNS refuses to start without it too).

use super::*;
use crate::chain::plugins::k8s_external::{K8sExternal, DEFAULT_APEX, DEFAULT_TTL};
use crate::chain::plugins::Zones;

/// The largest TTL accepted, as CoreDNS's setup bounds it.
const MAX_TTL: u32 = 3600;

/// The `k8s_external` directive of a block that has `kubernetes` (`with_kubernetes`) or not.
pub(super) fn k8s_external(
    d: &Directive,
    block_zones: &[String],
    with_kubernetes: bool,
) -> Result<K8sExternal, CorefileError> {
    let zones = zones_or_block(&d.args, block_zones)?;
    let zones: Vec<WireName> = (zones.iter())
        .map(|z| zone_name(&d.name, z))
        .collect::<Result<_, _>>()?;
    let (mut apex, mut ttl, mut headless, mut through) = (None, DEFAULT_TTL, false, None);
    for option in &d.block {
        match option.name.text.as_str() {
            "ttl" => {
                let value = one_arg(d, option)?;
                ttl = number(value, "k8s_external ttl")?;
                if ttl > MAX_TTL {
                    return Err(CorefileError::at(
                        value,
                        format!("k8s_external: ttl must be in range [0, {MAX_TTL}]: {ttl}"),
                    ));
                }
            }
            "apex" => apex = Some(one_arg(d, option)?),
            "headless" => {
                no_args(option)?;
                no_block(option)?;
                headless = true;
            }
            "fallthrough" => {
                let zones = fallthrough(option)?.zones;
                let dotted: Vec<String> = zones.iter().map(WireName::to_dotted).collect();
                let zones = Zones::parse(&dotted)
                    .map_err(|e| CorefileError::at(&option.name, format!("k8s_external: {e}")))?;
                through = Some(zones);
            }
            _ => return Err(unknown_option(d, option)),
        }
    }
    if !with_kubernetes {
        return Err(CorefileError::at(
            &d.name,
            "k8s_external: the kubernetes plugin is not in this server block; it answers from \
             kubernetes's objects",
        ));
    }
    let apex_text = apex.map_or(DEFAULT_APEX, |a| a.text.as_str());
    K8sExternal::new(&zones, apex_text, ttl, headless, through)
        .map_err(|e| CorefileError::at(apex.unwrap_or(&d.name), format!("k8s_external: {e}")))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{block_of, refused};
    use super::*;

    fn external(text: &str) -> K8sExternal {
        let block = block_of(&format!("kubernetes cluster.local\n    {text}"));
        block.extra.k8s_external.expect("planned")
    }

    fn zones(names: &[&str]) -> Vec<WireName> {
        names
            .iter()
            .filter_map(|z| WireName::from_dotted(z))
            .collect()
    }

    // The README's examples and CoreDNS's setup_test.go.
    #[test]
    fn k8s_external_as_coredns_reads_it() {
        let plain = K8sExternal::new(&zones(&["example.org"]), "dns", 5, false, None).unwrap();
        assert_eq!(external("k8s_external example.org"), plain);
        // The block's zone (`.`) when none is given.
        let root = K8sExternal::new(&zones(&["."]), "dns", 5, false, None).unwrap();
        assert_eq!(external("k8s_external"), root);
        let options = external(
            "k8s_external example.org {\n        apex testdns\n        ttl 10\n        headless\n        fallthrough\n    }",
        );
        let fall = Some(Zones::parse(["."]).unwrap());
        let expected =
            K8sExternal::new(&zones(&["example.org"]), "testdns", 10, true, fall).unwrap();
        assert_eq!(options, expected);
        let some = external("k8s_external example.org {\n        fallthrough example.org\n    }");
        let fall = Some(Zones::parse(["example.org"]).unwrap());
        let expected = K8sExternal::new(&zones(&["example.org"]), "dns", 5, false, fall).unwrap();
        assert_eq!(some, expected);
        assert!(block_of("errors").extra.k8s_external.is_none());
    }

    #[test]
    fn malformed_lines_are_refused_naming_the_token() {
        let k8s = "kubernetes cluster.local\n    ";
        refused(
            &format!("{k8s}k8s_external example.org {{\n        ttl -1\n    }}"),
            "\"-1\"",
        );
        refused(
            &format!("{k8s}k8s_external example.org {{\n        ttl 3601\n    }}"),
            "3601",
        );
        refused(
            &format!("{k8s}k8s_external example.org {{\n        ttl\n    }}"),
            "exactly one value",
        );
        refused(
            &format!("{k8s}k8s_external example.org {{\n        apex\n    }}"),
            "exactly one value",
        );
        refused(
            &format!("{k8s}k8s_external example.org {{\n        apex a..b\n    }}"),
            "a..b",
        );
        refused(
            &format!("{k8s}k8s_external example.org {{\n        headless yes\n    }}"),
            "\"yes\"",
        );
        refused(
            &format!("{k8s}k8s_external example.org {{\n        magic\n    }}"),
            "\"magic\"",
        );
        refused(
            "k8s_external example.org",
            "kubernetes plugin is not in this server block",
        );
    }
}
