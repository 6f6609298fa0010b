//! deploy/node-local/ as an operator applies it: every document of `deploy/node-local/*.yaml` is a
//! Kubernetes object of a known kind with no field the API server would drop, the DaemonSet's
//! args are a node-local configuration the binary accepts, and its probe, ports, capabilities and
//! the kube-dns-upstream Service agree with those args.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use clusterdns::config::{Config, Mode};
use clusterdns_testkit::yaml::{strict, Document, FromYaml};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Container, PodSpec, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The Service the DaemonSet reaches the cluster DNS through, and the variable Kubernetes sets
/// from it (service links: the name upper-cased, `-` as `_`, then `_SERVICE_HOST`).
const UPSTREAM_SERVICE: &str = "kube-dns-upstream";
const UPSTREAM_VARIABLE: &str = "$(KUBE_DNS_UPSTREAM_SERVICE_HOST)";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .join("deploy/node-local")
}

/// The objects of the files, by kind.
#[derive(Default)]
struct Objects {
    daemon_sets: Vec<DaemonSet>,
    services: Vec<Service>,
}

impl Objects {
    fn load() -> Objects {
        Objects::load_dir(&dir(), "deploy/node-local")
    }

    fn daemon_set(&self) -> &DaemonSet {
        assert_eq!(self.daemon_sets.len(), 1, "one DaemonSet");
        &self.daemon_sets[0]
    }

    fn pod(&self) -> &PodSpec {
        (self.daemon_set().spec.as_ref())
            .and_then(|s| s.template.spec.as_ref())
            .expect("a pod spec")
    }

    fn container(&self) -> &Container {
        assert_eq!(self.pod().containers.len(), 1, "one container");
        &self.pod().containers[0]
    }

    fn upstream_service(&self) -> &Service {
        assert_eq!(self.services.len(), 1, "one Service");
        &self.services[0]
    }
}

impl FromYaml for Objects {
    fn add(&mut self, Document { what, kind, value }: Document) -> Result<(), String> {
        match kind.as_str() {
            "DaemonSet" => self.daemon_sets.push(strict(&what, value)?),
            "Service" => self.services.push(strict(&what, value)?),
            _ => return Err(format!("{what}: a kind this test does not check")),
        }
        Ok(())
    }
}

/// The container args with the service link variable replaced by an address, as the kubelet
/// does, parsed as the binary parses them.
fn config(container: &Container) -> Config {
    let args = container.args.iter().flatten().map(|arg| {
        arg.replace(UPSTREAM_VARIABLE, "10.96.0.11")
            .replace("$(", "unexpanded $(")
    });
    Config::try_parse_from(std::iter::once("clusterdns".to_owned()).chain(args))
        .unwrap_or_else(|e| panic!("clusterdns rejects the container args: {e}"))
}

#[test]
fn every_document_is_a_kubernetes_object_without_unknown_fields() {
    let objects = Objects::load();
    objects.daemon_set();
    objects.upstream_service();

    let typo = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\n\
                spec: {selector: {matchLabels: {a: b}}, template: {spec: {hostNetwrok: true, containers: []}}}\n";
    let error = Objects::default()
        .add_file("typo.yaml", typo)
        .expect_err("a typo");
    assert!(
        error.contains("unknown fields") && error.contains("hostNetwrok"),
        "{error}"
    );
}

#[test]
fn the_args_are_a_valid_node_local_configuration() {
    let objects = Objects::load();
    let config = config(objects.container());
    assert_eq!(config.mode, Mode::NodeLocal);
    // The node's resolvers come from its resolv.conf; give the check one.
    let resolv = std::env::temp_dir().join(format!(
        "clusterdns-deploy-node-local-{}",
        std::process::id()
    ));
    std::fs::write(&resolv, "nameserver 192.0.2.53\n").expect("resolv.conf");
    let mut checked = config.clone();
    checked.forward.resolv_conf = resolv.clone();
    let validated = checked.validate();
    let _ = std::fs::remove_file(&resolv);
    validated.unwrap_or_else(|e| panic!("the DaemonSet's args do not validate: {e}"));

    let listen: Vec<String> = config.listen.iter().map(SocketAddr::to_string).collect();
    assert_eq!(
        listen[0], "169.254.20.10:53",
        "the link-local address first"
    );
    assert_eq!(
        config.node_local.cluster_dns,
        Some("10.96.0.11:53".parse().expect("addr")),
        "--cluster-dns is {UPSTREAM_SERVICE}'s address"
    );
    assert_eq!(
        UPSTREAM_VARIABLE,
        format!(
            "$({}_SERVICE_HOST)",
            UPSTREAM_SERVICE.to_uppercase().replace('-', "_")
        )
    );
    assert_eq!(
        objects.pod().enable_service_links,
        Some(true),
        "the variable is a service link"
    );
}

/// Upgrades drop nothing: the new pod starts beside the old one (maxSurge), which waits for it
/// to bind the addresses, and the new one is ready only once it serves.
#[test]
fn upgrades_start_the_new_pod_before_stopping_the_old_one() {
    let objects = Objects::load();
    let spec = objects.daemon_set().spec.as_ref().expect("a spec");
    let rolling = (spec.update_strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref())
        .expect("a rolling update");
    assert_eq!(rolling.max_surge, Some(IntOrString::Int(1)));
    assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));
    assert!(spec.min_ready_seconds.unwrap_or(0) > 0, "minReadySeconds");
    let container = objects.container();
    let config = config(container);
    assert!(config.handover_wait > 0, "--handover-wait");
    let ready = (container.readiness_probe.as_ref())
        .and_then(|p| p.http_get.as_ref())
        .expect("an httpGet readiness probe");
    assert_eq!(ready.path.as_deref(), Some("/ready"));
    assert_eq!(ready.host.as_deref(), Some(&*config.ready.ip().to_string()));
    // A normal start logs no failed probe: the first waits for the setup (node_local.rs
    // measures the time to the first answer).
    let delay = (container.readiness_probe.as_ref()).and_then(|p| p.initial_delay_seconds);
    assert!(delay.unwrap_or(0) >= 1, "readiness initialDelaySeconds");
    assert!(container.startup_probe.is_none(), "no startup probe");
    assert_eq!(ready.port, IntOrString::Int(i32::from(config.ready.port())));
}

#[test]
fn the_pod_runs_on_the_host_network_with_what_the_setup_needs() {
    let objects = Objects::load();
    let pod = objects.pod();
    let container = objects.container();
    let config = config(container);

    assert_eq!(pod.host_network, Some(true));
    assert_eq!(pod.dns_policy.as_deref(), Some("Default"));
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-node-critical")
    );
    assert!(
        pod.termination_grace_period_seconds.unwrap_or(30)
            > (config.lameduck + config.handover_wait) as i64,
        "the grace period covers --lameduck and --handover-wait"
    );

    // The liveness probe asks /health where --health listens.
    let get = (container.liveness_probe.as_ref())
        .and_then(|p| p.http_get.as_ref())
        .expect("an httpGet liveness probe");
    assert_eq!(get.path.as_deref(), Some("/health"));
    assert_eq!(get.host.as_deref(), Some(&*config.health.ip().to_string()));
    assert_eq!(get.port, IntOrString::Int(i32::from(config.health.port())));

    // No declared ports: on the host network each would be a host port, and the scheduler
    // never places two pods with the same host port on a node, which would keep the surge pod
    // of an upgrade Pending until the old one is gone.
    assert_eq!(container.ports, None, "ports must not be declared");

    // NET_ADMIN exactly when the pod sets up the node itself.
    let capabilities = (container.security_context.as_ref())
        .and_then(|s| s.capabilities.as_ref())
        .expect("capabilities");
    let added = capabilities.add.clone().unwrap_or_default();
    let setup = config.node_local.setup_interface.is_some() || config.node_local.setup_iptables;
    assert_eq!(added.iter().any(|c| c == "NET_ADMIN"), setup, "{added:?}");
    assert!(added.iter().any(|c| c == "NET_BIND_SERVICE"), "{added:?}");
    assert_eq!(capabilities.drop.as_deref(), Some(&["ALL".to_owned()][..]));
    // Port 53 whatever way the image was built: uid 0 keeps the container's capabilities across
    // exec, file capability or not. The Deployment's pod sysctl is not for this pod: in the
    // host network it would be the node's, and the kubelet refuses net.* sysctls with
    // hostNetwork (SysctlForbidden).
    let user = (container.security_context.as_ref()).and_then(|s| s.run_as_user);
    assert_eq!(user, Some(0), "runAsUser");
    let sysctls = (pod.security_context.as_ref()).and_then(|s| s.sysctls.clone());
    assert!(
        sysctls
            .iter()
            .flatten()
            .all(|s| !s.name.starts_with("net.")),
        "{sysctls:?}"
    );
    if config.node_local.setup_iptables {
        let mounted =
            (container.volume_mounts.iter().flatten()).any(|m| m.mount_path == "/run/xtables.lock");
        assert!(mounted, "iptables shares the node's xtables lock");
    }
}

#[test]
fn kube_dns_upstream_selects_the_kube_dns_pods_on_port_53() {
    let objects = Objects::load();
    let service = objects.upstream_service();
    assert_eq!(service.metadata.name.as_deref(), Some(UPSTREAM_SERVICE));
    assert_eq!(service.metadata.namespace.as_deref(), Some("kube-system"));
    let spec = service.spec.as_ref().expect("spec");
    assert_eq!(spec.cluster_ip, None, "the cluster assigns the address");
    let kube_dns = BTreeMap::from([("k8s-app".to_owned(), "kube-dns".to_owned())]);
    assert_eq!(spec.selector.as_ref(), Some(&kube_dns));
    let ports: Vec<(i32, String)> = (spec.ports.iter().flatten())
        .map(|p| (p.port, p.protocol.clone().unwrap_or_else(|| "TCP".into())))
        .collect();
    assert_eq!(ports, [(53, "UDP".to_owned()), (53, "TCP".to_owned())]);
    // The DaemonSet must not select the DNS pods, nor they it.
    let selector = (objects.daemon_set().spec.as_ref())
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    assert!(!selector.contains_key("k8s-app") || selector["k8s-app"] != "kube-dns");
}
