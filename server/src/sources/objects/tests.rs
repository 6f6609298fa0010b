//! The Pod conversions: which Pods are clients of the client index (not host-network ones, not
//! those without an address), their state from phase and deletion, `podIPs` over `podIP`, and
//! the changes each way of seeing a Pod makes; and how `endpoint_pod_names` names endpoints.

use super::*;
use serde_json::json;

fn object(value: serde_json::Value) -> core::Pod {
    match serde_json::from_value(value) {
        Ok(pod) => pod,
        Err(error) => panic!("test Pod: {error}"),
    }
}

/// A Pod in `apps` with `status` and `spec`.
fn pod_with(spec: serde_json::Value, status: serde_json::Value) -> core::Pod {
    object(json!({
        "metadata": {"name": "web-1", "namespace": "Apps"},
        "spec": spec,
        "status": status,
    }))
}

fn running(ips: serde_json::Value) -> core::Pod {
    pod_with(
        json!({"containers": []}),
        json!({"phase": "Running", "podIPs": ips}),
    )
}

fn ip(text: &str) -> IpAddr {
    match text.parse() {
        Ok(ip) => ip,
        Err(error) => panic!("{text}: {error}"),
    }
}

#[test]
fn a_running_pod_holds_its_addresses_in_its_lowercase_namespace() {
    let pod = running(json!([{"ip": "10.244.0.5"}, {"ip": "fd00::5"}]));
    let expected = PodAddresses {
        namespace: "apps".into(),
        ips: vec![ip("10.244.0.5"), ip("fd00::5")],
        state: PodState::Holding,
    };
    assert_eq!(pod_addresses(&pod), Ok(Some(expected)));
}

#[test]
fn pod_ips_win_over_pod_ip_which_is_taken_alone() {
    let both = pod_with(
        json!({}),
        json!({"podIP": "10.244.0.9", "podIPs": [{"ip": "10.244.0.5"}]}),
    );
    let only_pod_ip = pod_with(json!({}), json!({"podIP": "10.244.0.9", "podIPs": []}));
    let ips = |pod: &core::Pod| match pod_addresses(pod) {
        Ok(Some(addresses)) => addresses.ips,
        other => panic!("{other:?}"),
    };
    assert_eq!(ips(&both), vec![ip("10.244.0.5")]);
    assert_eq!(ips(&only_pod_ip), vec![ip("10.244.0.9")]);
    // The verified Pod reads the same fields.
    assert_eq!(pod(only_pod_ip).map(|p| p.ips), Ok(vec![ip("10.244.0.9")]));
}

#[test]
fn host_network_pods_and_pods_without_an_address_are_no_clients() {
    let host = pod_with(
        json!({"hostNetwork": true}),
        json!({"phase": "Running", "podIP": "192.168.1.10"}),
    );
    assert_eq!(pod_addresses(&host), Ok(None));
    let pending = pod_with(json!({}), json!({"phase": "Pending"}));
    assert_eq!(pod_addresses(&pending), Ok(None));
    let no_status = object(json!({"metadata": {"name": "web-1"}}));
    assert_eq!(pod_addresses(&no_status), Ok(None));
    // `hostNetwork: false` is a client like any other.
    let not_host = pod_with(
        json!({"hostNetwork": false}),
        json!({"phase": "Running", "podIP": "10.244.0.5"}),
    );
    assert!(matches!(pod_addresses(&not_host), Ok(Some(_))));
}

#[test]
fn the_state_follows_the_phase_and_the_deletion() {
    let state = |phase: &str, deleting: bool| {
        let mut pod = pod_with(json!({}), json!({"phase": phase, "podIP": "10.244.0.5"}));
        if deleting {
            pod.metadata.deletion_timestamp =
                Some(serde_json::from_value(json!("2025-01-01T00:00:00Z")).expect("timestamp"));
        }
        pod_addresses(&pod).map(|a| a.map(|a| a.state))
    };
    assert_eq!(state("Pending", false), Ok(Some(PodState::Holding)));
    assert_eq!(state("Running", false), Ok(Some(PodState::Holding)));
    assert_eq!(state("Unknown", false), Ok(Some(PodState::Holding)));
    assert_eq!(state("Running", true), Ok(Some(PodState::Terminating)));
    assert_eq!(state("Succeeded", false), Ok(Some(PodState::Finished)));
    assert_eq!(state("Failed", false), Ok(Some(PodState::Finished)));
    assert_eq!(state("Failed", true), Ok(Some(PodState::Finished)));
}

#[test]
fn a_bad_address_names_its_field() {
    let pod = running(json!([{"ip": "10.244.0.5"}, {"ip": "not-an-ip"}]));
    let error = pod_addresses(&pod).err().map(|e| e.field);
    assert_eq!(error.as_deref(), Some("status.podIPs[1].ip"));
}

#[test]
fn each_way_of_seeing_a_pod_makes_its_changes() {
    let addresses = |state| PodAddresses {
        namespace: "apps".into(),
        ips: vec![ip("10.244.0.5"), ip("fd00::5")],
        state,
    };
    let upserts = vec![
        Change::PodAddressUpsert("apps".into(), ip("10.244.0.5")),
        Change::PodAddressUpsert("apps".into(), ip("fd00::5")),
    ];
    let deletes = vec![
        Change::PodAddressDelete("apps".into(), ip("10.244.0.5")),
        Change::PodAddressDelete("apps".into(), ip("fd00::5")),
    ];
    use PodState::*;
    let cases = [
        (Seen::Listed, Holding, upserts.clone()),
        (Seen::Listed, Terminating, vec![]),
        (Seen::Listed, Finished, vec![]),
        (Seen::Applied, Holding, upserts),
        (Seen::Applied, Terminating, deletes.clone()),
        (Seen::Applied, Finished, deletes.clone()),
        (Seen::Deleted, Holding, deletes.clone()),
        (Seen::Deleted, Terminating, deletes),
        (Seen::Deleted, Finished, vec![]),
    ];
    for (seen, state, expected) in cases {
        assert_eq!(
            addresses(state).changes(seen),
            expected,
            "{seen:?} {state:?}"
        );
    }
}

/// An EndpointSlice of `web` in `apps` with `endpoints`.
fn slice(endpoints: serde_json::Value) -> discovery::EndpointSlice {
    match serde_json::from_value(json!({
        "metadata": {
            "name": "web-abcde",
            "namespace": "apps",
            "labels": {"kubernetes.io/service-name": "web"},
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
    })) {
        Ok(slice) => slice,
        Err(error) => panic!("test EndpointSlice: {error}"),
    }
}

/// The endpoint's address, hostname and `targetRef`.
fn endpoint(
    address: &str,
    hostname: Option<&str>,
    target: Option<(&str, &str)>,
) -> serde_json::Value {
    let mut endpoint = json!({"addresses": [address]});
    if let Some(hostname) = hostname {
        endpoint["hostname"] = hostname.into();
    }
    if let Some((kind, name)) = target {
        endpoint["targetRef"] = json!({"kind": kind, "name": name, "namespace": "apps"});
    }
    endpoint
}

/// CoreDNS's `TestEndpointHostname` cases (the hostname each endpoint answers under; `None`
/// for the dashed address), and the names a label cannot spell.
#[test]
fn endpoint_pod_names_names_an_endpoint_without_a_hostname_by_its_pod() {
    let long = "p".repeat(64);
    let cases: [(serde_json::Value, Option<&str>, Option<&str>); 8] = [
        (endpoint("10.11.12.13", None, None), None, None),
        (
            endpoint("10.11.12.13", Some("epname"), None),
            Some("epname"),
            Some("epname"),
        ),
        (
            endpoint("10.11.12.13", None, Some(("Pod", "hello-abcde"))),
            None,
            Some("hello-abcde"),
        ),
        (
            endpoint("10.11.12.13", Some("epname"), Some(("Pod", "hello-abcde"))),
            Some("epname"),
            Some("epname"),
        ),
        // Lowercased, as every name in the zone.
        (
            endpoint("10.11.12.13", None, Some(("Pod", "Hello-ABCDE"))),
            None,
            Some("hello-abcde"),
        ),
        // Any kind of target, as CoreDNS takes its name.
        (
            endpoint(
                "10.11.12.13",
                None,
                Some(("VirtualMachineInstance", "vm-1")),
            ),
            None,
            Some("vm-1"),
        ),
        // 64 characters: too long for a label (CoreDNS's rule); a dotted name: several labels.
        (
            endpoint("10.11.12.13", None, Some(("Pod", &long))),
            None,
            None,
        ),
        (
            endpoint("10.11.12.13", None, Some(("Pod", "web.1"))),
            None,
            None,
        ),
    ];
    for (object, usual, pod_names) in cases {
        for (mode, expected) in [(false, usual), (true, pod_names)] {
            let converted = endpoint_slice(slice(json!([object.clone()])), mode)
                .unwrap_or_else(|e| panic!("{object}: {e}"));
            assert_eq!(
                converted.endpoints[0].hostname.as_deref(),
                expected,
                "{object}, endpoint_pod_names {mode}"
            );
        }
    }
    // A target without a name leaves the address.
    let nameless = json!([{"addresses": ["10.0.0.1"], "targetRef": {"kind": "Pod"}}]);
    let converted = endpoint_slice(slice(nameless), true).expect("converts");
    assert_eq!(converted.endpoints[0].hostname, None);
}
