use super::*;
use clusterdns_zone::{ExternalAddress, Port, Protocol, Service, ServiceKind};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::sources::selector::LabelSelector;

/// A scratch directory under the system temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("clusterdns-manifest-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Loads one file with this text (named `name`), keeping pods.
fn load_text(name: &str, text: &str) -> Result<(Cluster, LoadReport), ManifestError> {
    let scratch = Scratch::new();
    let path = scratch.write(name, text);
    load(&[path], true)
}

fn load_ok(text: &str) -> (Cluster, LoadReport) {
    load_text("m.yaml", text).unwrap()
}

/// The error message of loading `text`, with the scratch directory cut from the path.
fn load_err(text: &str) -> String {
    let error = load_text("m.yaml", text).unwrap_err().to_string();
    let (_, rest) = error.split_once("m.yaml").unwrap();
    format!("m.yaml{rest}")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/manifests")
        .join(name)
}

const WEB: &str = "
apiVersion: v1
kind: Service
metadata: {name: Web, namespace: Shop}
spec:
  clusterIP: 10.96.0.10
  ports:
  - {name: http, port: 80}
  - {port: 53, protocol: UDP}
";

#[test]
fn service_with_cluster_ip_and_ports() {
    let (cluster, report) = load_ok(WEB);
    assert_eq!(
        cluster.services,
        vec![Service {
            namespace: "shop".into(),
            name: "web".into(),
            kind: ServiceKind::ClusterIp(vec![ip("10.96.0.10")]),
            ports: vec![
                Port {
                    name: "http".into(),
                    protocol: Protocol::Tcp,
                    port: 80
                },
                Port {
                    name: "".into(),
                    protocol: Protocol::Udp,
                    port: 53
                },
            ],
            external: Vec::new(),
        }]
    );
    assert_eq!((report.files, report.objects), (1, 1));
    assert!(report.skipped.is_empty());
}

/// `spec.externalIPs`, then the load balancer's ingress (an IP, or a host name), in order, as
/// CoreDNS's `k8s_external` reads them; a bad address names its field.
#[test]
fn external_addresses_of_a_service() {
    let text = "
apiVersion: v1
kind: Service
metadata: {name: lb, namespace: shop}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.11
  externalIPs: [192.0.2.10, 2001:db8::10]
status:
  loadBalancer:
    ingress:
    - {ip: 198.51.100.7}
    - {hostname: LB-1.Elb.Example.COM.}
    - {}
";
    let (cluster, _) = load_ok(text);
    assert_eq!(
        cluster.services[0].external,
        vec![
            ExternalAddress::Ip(ip("192.0.2.10")),
            ExternalAddress::Ip(ip("2001:db8::10")),
            ExternalAddress::Ip(ip("198.51.100.7")),
            ExternalAddress::Hostname("lb-1.elb.example.com".into()),
        ]
    );
    let bad = text.replace("192.0.2.10", "nope");
    assert_eq!(
        load_err(&bad),
        "m.yaml: Service shop/lb: spec.externalIPs[0]: \"nope\" is not an IP address"
    );
    let bad = text.replace("hostname: LB-1.Elb.Example.COM.", "hostname: a..b");
    assert!(load_err(&bad).contains("status.loadBalancer.ingress[1].hostname"));
}

#[test]
fn multi_document_yaml_with_empty_documents() {
    let text = format!(
        "---\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: Shop}}\n---\n# only a comment\n---{WEB}---\n"
    );
    let (cluster, report) = load_ok(&text);
    assert_eq!(cluster.namespaces, vec![Box::<str>::from("shop")]);
    assert_eq!(cluster.services.len(), 1);
    assert_eq!(report.objects, 2);
}

#[test]
fn namespace_defaults_to_default() {
    let (cluster, _) = load_ok(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: 10.0.0.1}\n",
    );
    assert_eq!(&*cluster.services[0].namespace, "default");
}

#[test]
fn dual_stack_cluster_ips() {
    let (cluster, _) = load_ok(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  clusterIP: 10.0.0.1\n  clusterIPs: [10.0.0.1, 'fd00::1']\n",
    );
    assert_eq!(
        cluster.services[0].kind,
        ServiceKind::ClusterIp(vec![ip("10.0.0.1"), ip("fd00::1")])
    );
}

#[test]
fn headless_and_unassigned_cluster_ip() {
    let (cluster, _) = load_ok(
        "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec: {clusterIP: None}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: db2}\nspec: {clusterIPs: [None]}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: pending}\nspec: {clusterIP: ''}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: bare}\n",
    );
    let kinds: Vec<_> = cluster.services.iter().map(|s| s.kind.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            ServiceKind::Headless,
            ServiceKind::Headless,
            ServiceKind::ClusterIp(vec![]),
            ServiceKind::ClusterIp(vec![])
        ]
    );
}

#[test]
fn external_name_lowercased_without_trailing_dot() {
    let (cluster, _) = load_ok(
        "apiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec: {type: ExternalName, externalName: DB.Example.COM.}\n",
    );
    assert_eq!(
        cluster.services[0].kind,
        ServiceKind::ExternalName("db.example.com".into())
    );
}

#[test]
fn external_name_required() {
    assert_eq!(
        load_err(
            "apiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec: {type: ExternalName}\n"
        ),
        "m.yaml: Service default/ext: spec.externalName: required for type ExternalName"
    );
}

const SLICE: &str = "
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-abc12
  namespace: shop
  labels: {kubernetes.io/service-name: db}
addressType: IPv4
ports:
- {name: pg, port: 5432}
- {name: metrics, port: 9187, protocol: TCP}
- {name: nonumber}
endpoints:
- addresses: [10.1.0.1]
  hostname: db-0
- addresses: [10.1.0.2]
  conditions: {ready: true}
- addresses: [10.1.0.3]
  conditions: {ready: false, serving: true}
";

#[test]
fn endpoint_slice_ready_unset_true_false() {
    let (cluster, report) = load_ok(SLICE);
    let slice = &cluster.slices[0];
    assert_eq!(
        (&*slice.namespace, &*slice.name, &*slice.service),
        ("shop", "db-abc12", "db")
    );
    assert_eq!(
        slice.ports,
        vec![
            Port {
                name: "pg".into(),
                protocol: Protocol::Tcp,
                port: 5432
            },
            Port {
                name: "metrics".into(),
                protocol: Protocol::Tcp,
                port: 9187
            },
        ]
    );
    let ready: Vec<bool> = slice.endpoints.iter().map(|e| e.ready).collect();
    assert_eq!(ready, vec![true, true, false]);
    assert_eq!(slice.endpoints[0].hostname.as_deref(), Some("db-0"));
    assert_eq!(slice.endpoints[1].hostname, None);
    assert_eq!(slice.endpoints[2].addresses, vec![ip("10.1.0.3")]);
    assert_eq!(report.objects, 1);
}

#[test]
fn slices_without_label_or_with_fqdn_are_skipped() {
    let text = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: a}\naddressType: IPv4\n---\n\
                apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: b, labels: {kubernetes.io/service-name: x}}\n\
                addressType: FQDN\nendpoints: [{addresses: [db.example.com]}]\n";
    let (cluster, report) = load_ok(text);
    assert!(cluster.slices.is_empty());
    assert_eq!(
        report.skipped.get("EndpointSlice (no service-name label)"),
        Some(&1)
    );
    assert_eq!(
        report.skipped.get("EndpointSlice (addressType FQDN)"),
        Some(&1)
    );
    assert_eq!(report.objects, 0);
}

#[test]
fn other_kinds_and_api_versions_are_skipped_and_counted() {
    let text = "apiVersion: v1\nkind: Endpoints\nmetadata: {name: a}\n---\n\
                apiVersion: v1\nkind: Endpoints\nmetadata: {name: b}\n---\n\
                apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: c}\nspec: {replicas: many}\n---\n\
                apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: d}\n";
    let (cluster, report) = load_ok(text);
    assert_eq!(cluster, Cluster::default());
    let skipped: Vec<(&str, usize)> = report
        .skipped
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        skipped,
        vec![
            ("Deployment", 1),
            ("EndpointSlice (discovery.k8s.io/v1beta1)", 1),
            ("Endpoints", 2)
        ]
    );
}

const POD: &str = "
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: shop}
spec:
  containers: [{name: web, image: nginx}]
status:
  podIP: 10.2.0.5
  podIPs: [{ip: 10.2.0.5}, {ip: 'fd00::5'}]
---
apiVersion: v1
kind: Pod
metadata: {name: single}
status: {podIP: 10.2.0.6}
---
apiVersion: v1
kind: Pod
metadata: {name: pending}
status: {phase: Pending}
";

#[test]
fn pods_kept() {
    let (cluster, report) = load_ok(POD);
    let ips: Vec<(&str, Vec<IpAddr>)> = cluster
        .pods
        .iter()
        .map(|p| (&*p.name, p.ips.clone()))
        .collect();
    assert_eq!(
        ips,
        vec![
            ("web-0", vec![ip("10.2.0.5"), ip("fd00::5")]),
            ("single", vec![ip("10.2.0.6")]),
            ("pending", vec![]),
        ]
    );
    assert_eq!(&*cluster.pods[1].namespace, "default");
    assert_eq!(report.objects, 3);
}

#[test]
fn pods_skipped_unless_kept() {
    let scratch = Scratch::new();
    let path = scratch.write("pods.yaml", POD);
    let (cluster, report) = load(&[path], false).unwrap();
    assert!(cluster.pods.is_empty());
    assert_eq!(report.skipped.get("Pod"), Some(&3));
    assert_eq!(report.objects, 0);
}

/// Pods as clients: running, finished, terminating, host-network.
const CLIENT_PODS: &str = "
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: Shop}
status:
  phase: Running
  podIP: 10.2.0.5
  podIPs: [{ip: 10.2.0.5}, {ip: 'fd00::5'}]
---
apiVersion: v1
kind: Pod
metadata: {name: job-1, namespace: shop}
status: {phase: Succeeded, podIP: 10.2.0.7}
---
apiVersion: v1
kind: Pod
metadata: {name: old, namespace: shop, deletionTimestamp: '2025-01-01T00:00:00Z'}
status: {phase: Running, podIP: 10.2.0.8}
---
apiVersion: v1
kind: Pod
metadata: {name: kube-proxy-a, namespace: kube-system}
spec: {hostNetwork: true, containers: []}
status: {phase: Running, podIP: 192.168.1.10}
---
apiVersion: v1
kind: Pod
metadata: {name: single}
status: {podIP: 10.2.0.6}
";

#[test]
fn pods_as_clients_are_their_addresses_only() {
    let changes = read_pods(
        "pods.yaml",
        CLIENT_PODS,
        PodChanges {
            verified: false,
            addresses: true,
        },
    );
    assert_eq!(
        changes.unwrap(),
        vec![
            Change::PodAddressUpsert("shop".into(), ip("10.2.0.5")),
            Change::PodAddressUpsert("shop".into(), ip("fd00::5")),
            Change::PodAddressUpsert("default".into(), ip("10.2.0.6")),
        ]
    );
}

#[test]
fn pods_verified_and_as_clients_make_both() {
    let changes = read_pods("pods.yaml", CLIENT_PODS, BOTH).unwrap();
    let whole: Vec<&str> = (changes.iter())
        .filter_map(|c| match c {
            Change::PodUpsert(pod) => Some(&*pod.name),
            _ => None,
        })
        .collect();
    // Every Pod is a verified one, as before; only three addresses are clients.
    assert_eq!(whole, ["web-0", "job-1", "old", "kube-proxy-a", "single"]);
    let clients = changes
        .iter()
        .filter(|c| matches!(c, Change::PodAddressUpsert(..)));
    assert_eq!(clients.count(), 3);
    // Only verified Pods: no client address.
    let verified = read_pods("pods.yaml", CLIENT_PODS, VERIFIED).unwrap();
    assert!(verified.iter().all(|c| matches!(c, Change::PodUpsert(_))));
}

#[test]
fn a_bad_pod_address_stops_the_load_naming_the_field() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: web-0, namespace: shop}\n\
                status: {podIPs: [{ip: 10.2.0.5}, {ip: nope}]}\n";
    let pods = PodChanges {
        verified: false,
        addresses: true,
    };
    let error = read_pods("pods.yaml", text, pods).unwrap_err().to_string();
    let expected = "pods.yaml: Pod shop/web-0: status.podIPs[1].ip: \"nope\" is not an IP address";
    assert!(error.ends_with(expected), "{error}");
}

#[test]
fn a_reread_deletes_the_addresses_the_files_no_longer_hold() {
    use crate::sources::Publisher;
    use clusterdns_zone::{ObjectKind, ZoneConfig};
    let scratch = Scratch::new();
    let path = scratch.write("pods.yaml", CLIENT_PODS);
    let pods = PodChanges {
        verified: false,
        addresses: true,
    };
    let mut publisher = Publisher::new(ZoneConfig::default());
    read(std::slice::from_ref(&path), pods, &mut |c| {
        publisher.apply(c)
    })
    .unwrap();
    publisher.set_synced();
    publisher.publish();
    let snapshot = publisher.store().load_full();
    assert_eq!(snapshot.client_namespace(ip("fd00::5")), Some("shop"));
    assert_eq!(snapshot.client_namespace(ip("10.2.0.7")), None);
    assert_eq!(snapshot.client_namespace(ip("192.168.1.10")), None);
    // web-0 is gone; single moved to `shop`; as the manifest source re-reads.
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: single, namespace: shop}\n\
                status: {podIP: 10.2.0.6}\n";
    fs::write(&path, text).unwrap();
    publisher.begin_list(ObjectKind::Pod);
    read(std::slice::from_ref(&path), pods, &mut |c| {
        publisher.apply_listed(c)
    })
    .unwrap();
    assert_eq!(
        publisher
            .end_list(ObjectKind::Pod)
            .map(|(_, deleted)| deleted),
        Some(2)
    );
    publisher.publish();
    let snapshot = publisher.store().load_full();
    let mut clients: Vec<_> = snapshot.client_addresses().collect();
    clients.sort();
    assert_eq!(clients, vec![(ip("10.2.0.6"), "shop")]);
}

#[test]
fn kind_list_items() {
    let text = "apiVersion: v1\nkind: List\nmetadata: {resourceVersion: ''}\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: shop}\n\
                - apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: x}\n";
    let (cluster, report) = load_ok(text);
    assert_eq!(cluster.namespaces, vec![Box::<str>::from("shop")]);
    assert_eq!(report.skipped.get("ConfigMap"), Some(&1));
    let (cluster, _) = load_ok("apiVersion: v1\nkind: List\nitems: []\n");
    assert_eq!(cluster, Cluster::default());
}

#[test]
fn typed_list_items_inherit_kind() {
    let (cluster, _) = load_ok(
        "apiVersion: v1\nkind: ServiceList\nmetadata: {resourceVersion: '42'}\nitems:\n- metadata: {name: a}\n  spec: {clusterIP: 10.0.0.1}\n",
    );
    assert_eq!(&*cluster.services[0].name, "a");
}

#[test]
fn json_stream_and_list() {
    let text = r#"{"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"clusterIP": "10.0.0.1", "ports": [{"name": "http", "port": 80}]}}
    ]}
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}"#;
    let (cluster, report) = load_text("m.json", text).unwrap();
    assert_eq!(cluster.services[0].ports[0].port, 80);
    assert_eq!(cluster.namespaces, vec![Box::<str>::from("default")]);
    assert_eq!(report.objects, 2);
}

#[test]
fn json_syntax_error_names_document() {
    let error = load_text("m.json", "{\"kind\": \"Service\",}").unwrap_err();
    assert!(
        matches!(
            error,
            ManifestError::Syntax {
                document: 1,
                format: "JSON",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn directory_takes_manifest_files_sorted() {
    let scratch = Scratch::new();
    scratch.write(
        "b.yml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n",
    );
    scratch.write(
        "a.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
    );
    scratch.write(
        "c.json",
        r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "c"}}"#,
    );
    scratch.write("notes.txt", "not a manifest");
    scratch.write(".hidden.yaml", "not: [valid");
    fs::create_dir(scratch.0.join("sub.yaml")).unwrap();
    let names: Vec<String> = files(std::slice::from_ref(&scratch.0))
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["a.yaml", "b.yml", "c.json"]);
    let (cluster, report) = load(std::slice::from_ref(&scratch.0), false).unwrap();
    assert_eq!(
        cluster.namespaces,
        vec![Box::<str>::from("a"), "b".into(), "c".into()]
    );
    assert_eq!(report.files, 3);
}

#[test]
fn missing_path_is_an_error() {
    let scratch = Scratch::new();
    let missing = scratch.0.join("missing.yaml");
    let error = files(std::slice::from_ref(&missing)).unwrap_err();
    assert!(matches!(&error, ManifestError::Read { path, .. } if *path == missing));
    let message = error.to_string();
    assert!(
        message.ends_with("missing.yaml: cannot read: No such file or directory (os error 2)"),
        "{message}"
    );
    assert!(load(&[missing], false).is_err());
}

#[test]
fn bad_port_type_names_file_object_and_field() {
    assert_eq!(
        load_err("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports:\n  - {port: http}\n"),
        "m.yaml: Service default/web: spec.ports[0].port: invalid type: string \"http\", expected i32"
    );
}

#[test]
fn bad_port_number_and_protocol() {
    assert_eq!(
        load_err("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{port: 80}, {port: 70000}]\n"),
        "m.yaml: Service default/web: spec.ports[1].port: 70000 is not a port number (1-65535)"
    );
    assert_eq!(
        load_err("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{port: 80, protocol: QUIC}]\n"),
        "m.yaml: Service default/web: spec.ports[0].protocol: unknown protocol \"QUIC\" (expected TCP, UDP or SCTP)"
    );
}

#[test]
fn bad_cluster_ip_names_the_entry() {
    assert_eq!(
        load_err("apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {clusterIPs: [10.0.0.1, 10.0.0.300]}\n"),
        "m.yaml: Service shop/web: spec.clusterIPs[1]: \"10.0.0.300\" is not an IP address"
    );
    assert_eq!(
        load_err("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: nope}\n"),
        "m.yaml: Service default/web: spec.clusterIP: \"nope\" is not an IP address"
    );
}

#[test]
fn bad_endpoint_address_names_the_entry() {
    let text = SLICE.replace("[10.1.0.3]", "[10.1.0.3, bogus]");
    assert_eq!(
        load_err(&text),
        "m.yaml: EndpointSlice shop/db-abc12: endpoints[2].addresses[1]: \"bogus\" is not an IP address"
    );
}

#[test]
fn missing_name_names_the_position() {
    assert_eq!(
        load_err("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\nmetadata: {namespace: shop}\n"),
        "m.yaml: Service <unnamed> (document 2): metadata.name: required"
    );
    assert_eq!(
        load_err("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace}\n"),
        "m.yaml: Namespace <unnamed> (document 1, items[0]): metadata.name: required"
    );
}

#[test]
fn names_must_be_dns_labels() {
    assert_eq!(
        load_err("apiVersion: v1\nkind: Service\nmetadata: {name: a.b}\n"),
        "m.yaml: Service default/a.b: metadata.name: \"a.b\" is not a DNS label (letters, digits and inner '-', at most 63)"
    );
}

#[test]
fn documents_that_are_not_objects() {
    assert_eq!(
        load_err("just a string\n"),
        "m.yaml: document 1: expected a Kubernetes object, found a string"
    );
    assert_eq!(
        load_err("metadata: {name: x}\n"),
        "m.yaml: document 1: kind: missing (not a Kubernetes object)"
    );
    let error =
        load_err("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkind: [unclosed\n");
    assert!(
        error.starts_with("m.yaml: document 2: not valid YAML: "),
        "{error}"
    );
}

/// Whole Pods, as `pods verified` reads them.
const VERIFIED: PodChanges = PodChanges {
    verified: true,
    addresses: false,
};

/// Every change `read` hands over for one file with this text (named `name`), pods kept.
fn read_text(name: &str, text: &str) -> Result<Vec<Change>, ManifestError> {
    read_pods(name, text, VERIFIED)
}

/// Every change `read` hands over for one file with this text (named `name`), Pods read for
/// `pods`.
fn read_pods(name: &str, text: &str, pods: PodChanges) -> Result<Vec<Change>, ManifestError> {
    let scratch = Scratch::new();
    let path = scratch.write(name, text);
    let mut changes = Vec::new();
    read(&[path], pods, &mut |change| changes.push(change))?;
    Ok(changes)
}

/// The objects of a kubectl `kind: List`, one document each.
const OBJECTS: [&str; 4] = [
    "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n",
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  clusterIP: 10.0.0.1\n  ports:\n  - name: http\n    port: 80\n",
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n",
    "addressType: IPv4\napiVersion: discovery.k8s.io/v1\nendpoints:\n- addresses:\n  - 10.1.0.1\n  hostname: web-0\nkind: EndpointSlice\nmetadata:\n  labels:\n    kubernetes.io/service-name: web\n  name: web-1\n  namespace: shop\nports:\n- name: http\n  port: 8080\n",
];

/// `OBJECTS` as one `kind: List` with its items indented by `indent` after `items:`.
fn kubectl_list(indent: &str) -> String {
    let mut text = String::from("apiVersion: v1\nitems:\n");
    for object in OBJECTS {
        for (i, line) in object.lines().enumerate() {
            let prefix = if i == 0 { "- " } else { "  " };
            text.push_str(&format!("{indent}{prefix}{line}\n"));
        }
    }
    text + "kind: List\nmetadata:\n  resourceVersion: \"\"\n"
}

/// The changes of `OBJECTS` read one document each.
fn objects_as_documents() -> Vec<Change> {
    read_text("docs.yaml", &OBJECTS.join("---\n")).unwrap()
}

#[test]
fn yaml_list_streams_the_objects_of_its_documents() {
    let want = objects_as_documents();
    assert_eq!(want.len(), 3);
    assert_eq!(read_text("m.yaml", &kubectl_list("")).unwrap(), want);
    assert_eq!(read_text("m.yaml", &kubectl_list("  ")).unwrap(), want);
    let (cluster, report) = load_ok(&kubectl_list(""));
    assert_eq!((cluster.services.len(), cluster.slices.len()), (1, 1));
    assert_eq!(report.skipped.get("ConfigMap"), Some(&1));
}

#[test]
fn json_list_streams_the_objects_of_its_documents() {
    let items: Vec<serde_json::Value> = OBJECTS
        .iter()
        .map(|object| yaml_serde::from_str(object).unwrap())
        .collect();
    // kubectl's key order: items before kind.
    let text = format!(
        "{{\"apiVersion\": \"v1\", \"items\": {}, \"kind\": \"List\", \"metadata\": {{}}}}",
        serde_json::to_string_pretty(&items).unwrap()
    );
    assert_eq!(read_text("m.json", &text).unwrap(), objects_as_documents());
}

#[test]
fn typed_list_items_wait_for_a_kind_that_comes_after_them() {
    let json = r#"{"items": [
        {"metadata": {"name": "a"}, "spec": {"clusterIP": "10.0.0.1"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
        {"kind": "Service", "metadata": {"name": "b"}}
    ], "metadata": {"resourceVersion": "7"}, "kind": "ServiceList", "apiVersion": "v1"}"#;
    let (cluster, report) = load_text("m.json", json).unwrap();
    let names: Vec<&str> = cluster.services.iter().map(|s| &*s.name).collect();
    assert_eq!(names, vec!["a", "b"]);
    assert_eq!(cluster.namespaces, vec![Box::<str>::from("shop")]);
    assert_eq!(report.objects, 3);
    let yaml = "items:\n- metadata: {name: a}\n  spec: {clusterIP: 10.0.0.1}\n- kind: Service\n  metadata: {name: b}\nkind: ServiceList\napiVersion: v1\n";
    let (cluster, _) = load_ok(yaml);
    let names: Vec<&str> = cluster.services.iter().map(|s| &*s.name).collect();
    assert_eq!(names, vec!["a", "b"]);
}

#[test]
fn items_go_to_the_sink_before_the_list_ends() {
    let text = kubectl_list("").replace("port: 8080", "port: [8080");
    let scratch = Scratch::new();
    let path = scratch.write("m.yaml", &text);
    let mut changes = Vec::new();
    let error = read(&[path], VERIFIED, &mut |change| changes.push(change)).unwrap_err();
    assert!(
        matches!(
            error,
            ManifestError::Syntax {
                document: 1,
                item: Some(3),
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(changes.len(), 2);
}

#[test]
fn yaml_syntax_error_in_an_item_names_it_and_its_line() {
    let text = kubectl_list("").replace("port: 8080", "port: [8080");
    let line = text.lines().position(|l| l.contains("[8080")).unwrap() + 1;
    let error = load_err(&text);
    assert!(
        error.starts_with("m.yaml: document 1, items[3]: not valid YAML: "),
        "{error}"
    );
    assert!(
        error.contains(&format!("at line {}", line + 1)),
        "line {line}: {error}"
    );
    let message =
        load_err("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n\nkind: [unclosed\n");
    assert!(message.contains("at line 7"), "{message}");
}

#[test]
fn json_syntax_error_in_an_item_names_it_and_its_line() {
    let text = "{\"kind\": \"List\", \"items\": [\n{\"kind\": \"Namespace\", \"apiVersion\": \"v1\", \"metadata\": {\"name\": \"a\"}},\n{\"kind\": }\n]}";
    let error = load_text("m.json", text).unwrap_err();
    assert!(
        matches!(&error, ManifestError::Syntax { document: 1, item: Some(1), format: "JSON", message, .. } if message.contains("line 3")),
        "{error}"
    );
}

#[test]
fn flow_style_and_anchors_stream_too() {
    let flow = "apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: Namespace, metadata: {name: a}},\n  {apiVersion: v1, kind: Namespace, metadata: {name: b}}]\n";
    let (cluster, _) = load_ok(flow);
    assert_eq!(cluster.namespaces, vec![Box::<str>::from("a"), "b".into()]);
    // An alias in items[2] of an anchor in items[1]: the anchor outlives its item.
    let anchors = "apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: a}\n\
                   - apiVersion: v1\n  kind: Service\n  metadata: {name: web}\n  spec: &spec {clusterIP: 10.0.0.1}\n\
                   - apiVersion: v1\n  kind: Service\n  metadata: {name: api}\n  spec: *spec\n\
                   - apiVersion: v1\n  kind: Namespace\n  metadata: {name: b}\nkind: List\n";
    let (cluster, report) = load_ok(anchors);
    assert_eq!(cluster.namespaces, vec![Box::<str>::from("a"), "b".into()]);
    let services: Vec<(&str, &ServiceKind)> = cluster
        .services
        .iter()
        .map(|s| (&*s.name, &s.kind))
        .collect();
    let ip = ServiceKind::ClusterIp(vec![ip("10.0.0.1")]);
    assert_eq!(services, vec![("web", &ip), ("api", &ip)]);
    assert_eq!(report.objects, 4);
    // A list's own keys aliasing the list's: the same.
    let (cluster, _) = load_ok(
        "apiVersion: &v v1\nkind: NamespaceList\nitems:\n- apiVersion: *v\n  metadata: {name: c}\n",
    );
    assert_eq!(cluster.namespaces, vec![Box::<str>::from("c")]);
}

#[test]
fn flow_text_carried_on_at_the_left_margin_is_an_error_naming_its_line() {
    // YAML 1.2 wants a flow collection's lines indented past its block's: libyaml let this
    // pass, saphyr-parser names the line.
    let text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: a}}\n- apiVersion: v1\n  kind: Service\n  metadata: {name: web}\n  spec: {clusterIPs: [10.0.0.1,\n10.0.0.2]}\n";
    assert_eq!(
        load_err(text),
        "m.yaml: document 1, items[1]: not valid YAML: invalid indentation at line 9 column 1"
    );
}

#[test]
fn a_byte_order_mark_is_no_part_of_the_first_key() {
    let (cluster, _) = load_ok("\u{feff}apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n");
    assert_eq!(cluster.namespaces, vec![Box::<str>::from("a")]);
}

#[test]
fn hostile_yaml_gets_an_error_not_a_crash() {
    let deep = |n| format!("{}{}", "[".repeat(n), "]".repeat(n));
    assert_eq!(
        load_err(&deep(200)),
        "m.yaml: document 1: not valid YAML: nested more than 128 deep at line 1 column 129"
    );
    // Deeper still, the parser stops first.
    let error = load_err(&deep(100_000));
    assert!(
        error.starts_with("m.yaml: document 1: not valid YAML: recursion limit exceeded at line 1"),
        "{error}"
    );
    // Each alias doubles what the next copies: 2^30 nodes.
    let mut laughs = String::from("a0: &a0 [x, x]\n");
    for i in 1..30 {
        laughs.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}]\n", p = i - 1));
    }
    let copies = "m.yaml: document 1: not valid YAML: anchors and aliases copy more than 67108864 bytes at line ";
    let error = load_err(&laughs);
    assert!(error.starts_with(copies), "{error}");
    // Few nodes, long strings: 100 copies of 1 MB.
    let long = format!(
        "s: &s {}\nl: [{}]\n",
        "x".repeat(1 << 20),
        ["*s"; 100].join(", ")
    );
    let error = load_err(&long);
    assert!(error.starts_with(copies), "{error}");
    // An alias counts the nesting it copies where it is used.
    let nested = |n| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let deep = format!("a: &a {}\nb: [[[[[[[[[[*a]]]]]]]]]]\n", nested(120));
    assert_eq!(
        load_err(&deep),
        "m.yaml: document 1: not valid YAML: nested more than 128 deep at line 2 column 14"
    );
    assert_eq!(
        load_err("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\nkind: Service\n"),
        "m.yaml: document 1: not valid YAML: duplicate key \"kind\" at line 4 column 1"
    );
    assert_eq!(
        load_err("apiVersion: v1\nitems:\n- kind: Namespace\n  apiVersion: v1\n  metadata: *m\n"),
        "m.yaml: document 1, items[0]: not valid YAML: while parsing node, found unknown anchor at line 5 column 13"
    );
    // An error in an item's first event is the item's.
    assert_eq!(
        load_err("apiVersion: v1\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: a}}\n- *m\n"),
        "m.yaml: document 1, items[1]: not valid YAML: while parsing node, found unknown anchor at line 4 column 3"
    );
}

#[test]
fn text_is_decoded_across_read_blocks_and_must_be_utf8() {
    // A two-byte character on each side of every 64 KiB block boundary.
    let note = "é".repeat(70_000);
    let text = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  annotations: {{note: {note}}}\n"
    );
    let (cluster, _) = load_ok(&text);
    assert_eq!(cluster.namespaces, vec![Box::<str>::from("a")]);
    let scratch = Scratch::new();
    let path = scratch.0.join("bad.yaml");
    fs::write(
        &path,
        b"apiVersion: v1\nkind: Namespace\nmetadata: {name: \xff}\n",
    )
    .unwrap();
    let error = load(&[path], true).unwrap_err().to_string();
    assert!(
        error.ends_with("bad.yaml: cannot read: stream did not contain valid UTF-8"),
        "{error}"
    );
}

/// Whole Pods and client addresses.
const BOTH: PodChanges = PodChanges {
    verified: true,
    addresses: true,
};

/// What reading `text` whole, one `yaml_serde::Value` per document (as before streaming),
/// hands over and reports; or the error's message.
fn read_whole(text: &str) -> Result<(Vec<Change>, LoadReport), String> {
    let mut changes = Vec::new();
    let mut sink = |change| changes.push(change);
    let mut loader = Loader {
        pods: BOTH,
        selection: &Selection::default(),
        sink: &mut sink,
        report: LoadReport::default(),
    };
    let path = Path::new("m.yaml");
    for (i, document) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let value = serde::Deserialize::deserialize(document).map_err(|e| e.to_string())?;
        loader
            .document(path, &format!("document {}", i + 1), value)
            .map_err(|e| e.to_string())?;
    }
    loader.report.files = 1;
    let report = loader.report;
    Ok((changes, report))
}

#[test]
fn streaming_reads_what_a_whole_parse_reads() {
    let list = kubectl_list("");
    let cases = [
        list.clone(),
        kubectl_list("    "),
        list.replace('\n', "\r\n"),
        list.replace("- apiVersion", "# a comment\n\n- apiVersion"),
        format!("---\n{list}---\n{}...\n---\n{list}", OBJECTS[1]),
        format!("kind: List\napiVersion: v1\nitems:\n{}", &list["apiVersion: v1\nitems:\n".len()..]),
        "apiVersion: v1\nitems: []\nkind: List\n".to_owned(),
        "apiVersion: v1\nitems:\nkind: List\n".to_owned(),
        "apiVersion: v1\nitems:\n".to_owned(),
        "apiVersion: v1\nkind: ServiceList\nitems:\n- metadata: {name: a}\n  spec:\n    clusterIP: 10.0.0.1\n".to_owned(),
        "kind: Service\napiVersion: v1\nmetadata: {name: a}\nitems:\n- kind: Service\n  apiVersion: v1\n  metadata: {name: b}\n".to_owned(),
        "apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: a\n    annotations:\n      note: |\n        - not an item\n        kind: Service\nkind: List\n".to_owned(),
        "%YAML 1.2\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n".to_owned(),
        "--- {apiVersion: v1, kind: Namespace, metadata: {name: a}}\n".to_owned(),
        "apiVersion: v1\nkind: true\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Deployment\n".to_owned(),
        "items:\n- metadata: {name: a}\n  spec: &s {clusterIP: 10.0.0.1}\n- metadata: {name: b}\n  spec: *s\nkind: ServiceList\napiVersion: v1\n".to_owned(),
        // What the fast path reads straight into a type, and what it leaves to the general path.
        "apiVersion: v1\nkind: \"Service\"\nmetadata: {name: a, labels: {x: \"1\"}, annotations: ~}\nspec:\n  clusterIP: 10.0.0.1\n  ports:\n  - {port: 80, targetPort: http}\n  - {port: 81, targetPort: 8081, protocol: UDP}\n  unknown: {deep: [1, {x: y}], more: ~}\n".to_owned(),
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {clusterIP: 10.0.0.1, ports: [{port: \"80\"}]}\n".to_owned(),
        "apiVersion: v1\nkind: Service\nmetadata: {name: a, name: b}\nspec: {clusterIP: 10.0.0.1}\n".to_owned(),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\nkind: Namespace\n".to_owned(),
        "apiVersion: v1\nkind: 7\nmetadata: {name: a}\n".to_owned(),
        "apiVersion: v1\nkind: \"\"\nmetadata: {name: a}\n".to_owned(),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {a: !!binary aGk=}\n".to_owned(),
        "apiVersion: v1\nkind: Service\nmetadata: !!map {name: a}\nspec: {clusterIP: 10.0.0.1}\n".to_owned(),
        "apiVersion: v1\nkind: ServiceList\nitems:\n- metadata: {name: a}\n  spec: {clusterIP: 10.0.0.1, clusterIPs: [10.0.0.1]}\n- \n- metadata: {name: b}\n  spec: ~\n".to_owned(),
        fs::read_to_string(fixture("kubectl-get-all.yaml")).unwrap(),
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/cluster.yaml")).unwrap(),
    ];
    for text in cases {
        let scratch = Scratch::new();
        let path = scratch.write("m.yaml", &text);
        let mut changes = Vec::new();
        let streamed = read(&[path], BOTH, &mut |change| changes.push(change))
            .map(|report| (changes, report))
            .map_err(|e| e.to_string());
        let whole = read_whole(&text);
        match (streamed, whole) {
            (Ok(streamed), Ok(whole)) => assert_eq!(streamed, whole, "{text}"),
            (Err(_), Err(_)) => {}
            (streamed, whole) => panic!("{text}\nstreamed: {streamed:?}\nwhole: {whole:?}"),
        }
    }
}

#[test]
fn json_items_of_an_object_that_is_no_list_are_no_objects() {
    let text = r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"},
                   "items": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "b"}}]}"#;
    let (cluster, _) = load_text("m.json", text).unwrap();
    assert_eq!(cluster.namespaces, vec![Box::<str>::from("a")]);
    let error = load_text("m.json", r#"{"kind": "List", "items": "none"}"#).unwrap_err();
    assert_eq!(
        error.to_string().rsplit_once("m.json: ").map(|(_, m)| m),
        Some("document 1: items: expected a list, found a string")
    );
}

#[test]
fn kubectl_output_loads_unchanged() {
    let (cluster, report) = load(&[fixture("kubectl-get-all.yaml")], true).unwrap();
    assert_eq!(
        cluster.namespaces,
        vec![Box::<str>::from("default"), "kube-system".into()]
    );
    let services: Vec<(&str, &ServiceKind)> = cluster
        .services
        .iter()
        .map(|s| (&*s.name, &s.kind))
        .collect();
    assert_eq!(
        services,
        vec![
            ("kubernetes", &ServiceKind::ClusterIp(vec![ip("10.96.0.1")])),
            ("kube-dns", &ServiceKind::ClusterIp(vec![ip("10.96.0.10")])),
        ]
    );
    assert_eq!(cluster.slices.len(), 2);
    assert_eq!(cluster.slices[1].endpoints.len(), 2);
    assert!(!cluster.slices[1].endpoints[1].ready);
    assert_eq!(cluster.pods.len(), 1);
    assert_eq!(cluster.pods[0].ips, vec![ip("10.244.0.2")]);
    assert_eq!(report.objects, 7);
    assert_eq!(report.skipped.get("Endpoints"), Some(&1));
}

/// Namespaces, Services, an EndpointSlice and a Pod, some labelled `tier: web`, one Namespace
/// labelled `dns: served`; the slice's endpoint has no hostname and targets Pod `web-7d9f`.
const LABELLED: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {dns: served}}
---
apiVersion: v1
kind: Namespace
metadata: {name: lab}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop, labels: {tier: web}}
spec: {clusterIP: 10.0.0.1}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec: {clusterIP: 10.0.0.2}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: shop
  labels: {kubernetes.io/service-name: web, tier: web}
addressType: IPv4
endpoints:
- addresses: [10.1.0.1]
  targetRef: {kind: Pod, name: web-7d9f, namespace: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: shop}
status: {podIP: 10.1.0.9}
"#;

/// What `read_selected` hands over for `LABELLED`, and what it skipped.
fn read_labelled(selection: &Selection) -> (Vec<String>, BTreeMap<String, usize>) {
    let scratch = Scratch::new();
    let path = scratch.write("labelled.yaml", LABELLED);
    let mut changes = Vec::new();
    let report = read_selected(&[path], VERIFIED, selection, &mut |change| {
        changes.push(match change {
            Change::NamespaceUpsert(name) => format!("namespace {name}"),
            Change::ServiceUpsert(service) => format!("service {}", service.name),
            Change::SliceUpsert(slice) => format!(
                "slice {} {:?}",
                slice.name,
                slice.endpoints[0].hostname.as_deref()
            ),
            Change::PodUpsert(pod) => format!("pod {}", pod.name),
            other => format!("{other:?}"),
        })
    })
    .expect("reads");
    (changes, report.skipped)
}

#[test]
fn selectors_leave_out_the_objects_they_do_not_match() {
    let all = |things: &[&str]| things.iter().map(|t| t.to_string()).collect::<Vec<_>>();
    let (changes, skipped) = read_labelled(&Selection::default());
    assert_eq!(
        changes,
        all(&[
            "namespace shop",
            "namespace lab",
            "service web",
            "service db",
            "slice web-1 None",
            "pod other",
        ])
    );
    assert!(skipped.is_empty(), "{skipped:?}");

    let selection = Selection {
        labels: Some(LabelSelector::parse("tier in (web, api)").expect("valid")),
        namespace_labels: Some(LabelSelector::parse("dns=served").expect("valid")),
        endpoint_pod_names: true,
    };
    let (changes, skipped) = read_labelled(&selection);
    assert_eq!(
        changes,
        all(&[
            "namespace shop",
            "service web",
            "slice web-1 Some(\"web-7d9f\")"
        ])
    );
    let expected: BTreeMap<String, usize> = [
        ("Namespace (not selected by namespace_labels)".to_owned(), 1),
        ("Service (not selected by labels)".to_owned(), 1),
        ("Pod (not selected by labels)".to_owned(), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(skipped, expected);
}
