//! Table tests of the `kubernetes` directive: reverse zones from CIDRs (cases from CoreDNS's
//! README and `plugin/normalize_test.go`), and the options `endpoint_pod_names`, `ignore
//! empty_service`, `labels` and `namespace_labels` (cases from CoreDNS's `setup_test.go`),
//! each refusal naming its line.

use std::path::Path;

use crate::config::corefile::parse::parse;
use crate::config::plan::{KubernetesPlan, KubernetesRoute, Plan};

use super::super::plan;

const FILE: &str = "/etc/coredns/Corefile";

fn no_env(_: &str) -> Option<String> {
    None
}

/// The plan of `text`, or its error as `FILE:LINE: message`.
fn plan_of(text: &str) -> Result<Plan, String> {
    let corefile = parse(Path::new(FILE), text, &no_env).map_err(|e| e.to_string())?;
    plan(&corefile).map_err(|e| e.to_string())
}

/// The `kubernetes` plan and route of a block `.` holding `kubernetes` with `args` and the
/// option lines `options`.
fn kubernetes(args: &str, options: &[&str]) -> Result<(KubernetesPlan, KubernetesRoute), String> {
    let block: String = options.iter().map(|o| format!("        {o}\n")).collect();
    let plan = plan_of(&format!(
        ".:53 {{\n    kubernetes {args} {{\n{block}    }}\n}}\n"
    ))?;
    let route = plan.ports[0].blocks[0].kubernetes.clone().expect("a route");
    Ok((plan.kubernetes.expect("a kubernetes plan"), route))
}

fn reverse(args: &str) -> Vec<String> {
    let (_, route) = kubernetes(args, &[]).unwrap_or_else(|e| panic!("{args}: {e}"));
    route.reverse.iter().map(|z| z.to_dotted()).collect()
}

fn nibbles(zeros: usize, rest: &str) -> String {
    format!("{}{rest}", "0.".repeat(zeros))
}

#[test]
fn cidrs_become_the_reverse_zones_they_cover() {
    // On octet and nibble boundaries: one zone each.
    assert_eq!(
        reverse("cluster.local 10.0.0.0/24 fd00::/120"),
        [
            "0.0.10.in-addr.arpa.".to_owned(),
            nibbles(28, "d.f.ip6.arpa."),
        ]
    );
    assert_eq!(reverse("cluster.local 10.0.0.0/8"), ["10.in-addr.arpa."]);
    assert_eq!(
        reverse("cluster.local 172.16.0.0/16"),
        ["16.172.in-addr.arpa."]
    );
    assert_eq!(reverse("cluster.local fd00::/8"), ["d.f.ip6.arpa."]);
    // Host bits are ignored, as Go's ParseCIDR does.
    assert_eq!(
        reverse("cluster.local 192.168.1.77/24"),
        ["1.168.192.in-addr.arpa."]
    );
    // Off a boundary: every zone one boundary down. CoreDNS's README example (10.0.0.0/17).
    let split = reverse("cluster.local 10.0.0.0/17");
    assert_eq!(split.len(), 128);
    assert_eq!(split[0], "0.0.10.in-addr.arpa.");
    assert_eq!(split[127], "127.0.10.in-addr.arpa.");
    assert_eq!(
        reverse("cluster.local 10.0.0.0/15"),
        ["0.10.in-addr.arpa.", "1.10.in-addr.arpa."]
    );
    assert_eq!(
        reverse("cluster.local fd00::/118"),
        ["0", "1", "2", "3"].map(|n| format!("{n}.{}", nibbles(27, "d.f.ip6.arpa.")))
    );
    // CoreDNS's normalize tests.
    assert_eq!(
        reverse("cluster.local 2001:db8::/29"),
        ["8", "9", "a", "b", "c", "d", "e", "f"].map(|n| format!("{n}.b.d.0.1.0.0.2.ip6.arpa."))
    );
    assert_eq!(
        reverse("cluster.local 2001:db8::/114"),
        ["0", "1", "2", "3"].map(|n| format!("{n}.{}8.b.d.0.1.0.0.2.ip6.arpa.", "0.".repeat(20)))
    );
    // Mixed with reverse zone names, in the order written.
    assert_eq!(
        reverse("cluster.local in-addr.arpa 10.96.0.0/16"),
        ["in-addr.arpa.", "96.10.in-addr.arpa."]
    );
    // The zone stays the cluster zone whatever the order.
    let (source, _) = kubernetes("10.0.0.0/24 cluster.local", &[]).expect("valid");
    assert_eq!(source.domain.to_dotted(), "cluster.local.");
}

#[test]
fn a_cidr_server_block_key_gives_its_reverse_zones_to_kubernetes() {
    let plan = plan_of("cluster.local 10.0.0.0/17 {\n    kubernetes\n}\n").expect("valid");
    let route = plan.ports[0].blocks[0].kubernetes.clone().expect("a route");
    assert_eq!(route.reverse.len(), 128);
    assert_eq!(
        plan.kubernetes.expect("kubernetes").domain.to_dotted(),
        "cluster.local."
    );
}

#[test]
fn bad_cidrs_are_refused_naming_the_line() {
    for (args, says) in [
        (
            "cluster.local 10.0.0.0/33",
            "\"10.0.0.0/33\" is not a valid CIDR",
        ),
        ("cluster.local 10.0.0/24", "is not a valid CIDR"),
        ("cluster.local 10.0.0.0/", "is not a valid CIDR"),
        ("cluster.local ::1/64", "is not a valid CIDR"),
        ("cluster.local 0::1/64", "is not a valid CIDR"),
        ("cluster.local example.com/8", "is not a valid CIDR"),
        ("cluster.local fd00::/129", "is not a valid CIDR"),
    ] {
        let error = kubernetes(args, &[]).expect_err(args);
        assert!(
            error.starts_with(&format!("{FILE}:2: ")) && error.contains(says),
            "{args}: {error}"
        );
    }
}

#[test]
fn options_are_carried_into_the_plan() {
    let (source, _) = kubernetes("cluster.local", &[]).expect("valid");
    assert!(!source.endpoint_pod_names && !source.ignore_empty_service);
    assert_eq!((source.labels, source.namespace_labels), (None, None));

    let (source, _) = kubernetes(
        "cluster.local",
        &[
            "endpoint_pod_names",
            "ignore empty_service",
            "labels environment in (production, staging, qa),application=nginx",
            "namespace_labels istio-injection=enabled",
        ],
    )
    .expect("valid");
    assert!(source.endpoint_pod_names);
    assert!(source.ignore_empty_service);
    assert_eq!(
        source.labels.map(|s| s.to_string()).as_deref(),
        Some("application=nginx,environment in (production,qa,staging)")
    );
    assert_eq!(
        source.namespace_labels.map(|s| s.to_string()).as_deref(),
        Some("istio-injection=enabled")
    );
    // CoreDNS's own test of `labels` with the other options (its second zone left out:
    // clusterdns serves one cluster zone).
    let (source, route) = kubernetes(
        "coredns.local",
        &[
            "namespaces demo test",
            "labels environment in (production, staging, qa),application=nginx",
            "fallthrough",
        ],
    )
    .expect("valid");
    assert_eq!(route.fallthrough, crate::config::plan::Fallthrough::all());
    assert_eq!(source.namespaces, ["demo", "test"]);
    assert!(source.labels.is_some());
}

#[test]
fn bad_options_are_refused_naming_the_line() {
    for (options, line, says) in [
        (
            &["endpoint_pod_names giant_seed"][..],
            3,
            "unexpected argument",
        ),
        (&["ignore ixnay on the endpointsay"], 3, "exactly one value"),
        (&["ignore ixnay"], 3, "only `ignore empty_service` exists"),
        (&["ignore empty_service extra"], 3, "exactly one value"),
        (&["ignore"], 3, "exactly one value"),
        (&["labels"], 3, "a label selector is needed"),
        (&["namespace_labels"], 3, "a label selector is needed"),
        (
            &["labels environment in (production, qa"],
            3,
            "kubernetes labels \"environment in (production, qa\"",
        ),
        (
            &["namespace_labels a>1"],
            3,
            "isn't supported in label selectors",
        ),
        (&["labels -bad=x"], 3, "label key"),
        (
            &[
                "namespaces foo bar",
                "namespace_labels istio-injection=enabled",
            ],
            4,
            "namespaces and namespace_labels cannot both be set",
        ),
        (&["namespaces"], 3, "at least one namespace"),
        (&["zonal"], 3, "not supported yet"),
    ] {
        let error = kubernetes("cluster.local", options).expect_err(&format!("{options:?}"));
        assert!(
            error.starts_with(&format!("{FILE}:{line}: ")) && error.contains(says),
            "{options:?}: {error}"
        );
    }
}
