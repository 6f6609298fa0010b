//! The Pod conversions: which Pods are clients of the client index (not host-network ones, not
//! those without an address), their state from phase and deletion, `podIPs` over `podIP`, and
//! the changes each way of seeing a Pod makes.

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
