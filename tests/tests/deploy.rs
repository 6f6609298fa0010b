//! deploy/ as an operator applies it: every document of `deploy/*.yaml` is a Kubernetes object of a
//! known kind with no field the API server would drop, and the files agree with each other, with
//! the flags the real binary accepts, and with the Dockerfile.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use clusterdns_testkit::process::clusterdns_binary;
use clusterdns_testkit::yaml::{strict, Document, FromYaml};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// What the Dockerfile adds to the documented build command: a static musl binary.
const IMAGE_TARGET: &str = "--target x86_64-unknown-linux-musl";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The objects of the deploy files, by kind.
#[derive(Default)]
struct Objects {
    service_accounts: Vec<ServiceAccount>,
    cluster_roles: Vec<ClusterRole>,
    bindings: Vec<ClusterRoleBinding>,
    deployments: Vec<Deployment>,
    services: Vec<Service>,
}

impl Objects {
    /// Every document of every `deploy/*.yaml` (not subdirectories); panics naming the file,
    /// the object and the field of the first problem.
    fn load() -> Objects {
        Objects::load_dir(&workspace().join("deploy"), "deploy")
    }

    fn deployment(&self) -> &Deployment {
        one(&self.deployments, "Deployment")
    }

    fn container(&self) -> &Container {
        let pod = pod_spec(self.deployment());
        assert_eq!(pod.containers.len(), 1, "the Deployment runs one container");
        &pod.containers[0]
    }

    fn kube_dns(&self) -> &Service {
        one(&self.services, "Service")
    }
}

impl FromYaml for Objects {
    fn add(&mut self, Document { what, kind, value }: Document) -> Result<(), String> {
        match kind.as_str() {
            "ServiceAccount" => self.service_accounts.push(strict(&what, value)?),
            "ClusterRole" => self.cluster_roles.push(strict(&what, value)?),
            "ClusterRoleBinding" => self.bindings.push(strict(&what, value)?),
            "Deployment" => self.deployments.push(strict(&what, value)?),
            "Service" => self.services.push(strict(&what, value)?),
            _ => {
                return Err(format!(
                    "{what}: a kind this test does not check; add it here"
                ))
            }
        }
        Ok(())
    }
}

fn one<'a, T>(objects: &'a [T], kind: &str) -> &'a T {
    assert_eq!(objects.len(), 1, "deploy/*.yaml holds exactly one {kind}");
    &objects[0]
}

fn pod_spec(deployment: &Deployment) -> &k8s_openapi::api::core::v1::PodSpec {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("Deployment has a pod spec")
}

/// `clusterdns --help`: every long flag, with the default it shows, if any.
struct Help(BTreeMap<String, Option<String>>);

impl Help {
    fn of_binary() -> Help {
        let output = Command::new(clusterdns_binary())
            .arg("--help")
            .output()
            .expect("binary runs");
        assert!(output.status.success(), "clusterdns --help failed");
        Help::parse(&String::from_utf8_lossy(&output.stdout))
    }

    /// Option blocks start with a line indented at most 6 columns whose text starts with `--` or
    /// `-x, --` (`      --ttl <SECONDS>`, `  -h, --help`); descriptions and possible values are
    /// indented further. clap writes the default as `[default: ...]` inside the block.
    fn parse(help: &str) -> Help {
        let mut flags = BTreeMap::new();
        let mut current: Option<String> = None;
        for line in help.lines() {
            let text = line.trim_start();
            let option_line = line.len() - text.len() <= 6;
            let long = text.strip_prefix("--").filter(|_| option_line).or_else(|| {
                let rest = text.strip_prefix('-').filter(|_| option_line)?;
                rest.get(1..).and_then(|r| r.strip_prefix(", --"))
            });
            if let Some(long) = long {
                let name = long.split([' ', '<', '=']).next().unwrap_or_default();
                let flag = format!("--{name}");
                flags.insert(flag.clone(), None);
                current = Some(flag);
            } else if let (Some(flag), Some(start)) = (&current, text.find("[default: ")) {
                let rest = &text[start + "[default: ".len()..];
                let end = rest.rfind(']').unwrap_or(rest.len());
                flags.insert(flag.clone(), Some(rest[..end].to_owned()));
            }
        }
        Help(flags)
    }

    /// The values `args` give `flag` (`--flag=value`, repeatable), else its default.
    fn values(&self, args: &[(String, String)], flag: &str) -> Vec<String> {
        let given: Vec<String> = args
            .iter()
            .filter(|(name, _)| name == flag)
            .map(|(_, value)| value.clone())
            .collect();
        if !given.is_empty() {
            return given;
        }
        match self.0.get(flag) {
            Some(Some(default)) => default.split_whitespace().map(str::to_owned).collect(),
            _ => panic!("{flag} is neither in the container args nor has a default in --help"),
        }
    }

    /// The port of the address `flag` is set to.
    fn port(&self, args: &[(String, String)], flag: &str) -> u16 {
        let values = self.values(args, flag);
        assert_eq!(values.len(), 1, "{flag}: one address");
        values[0]
            .parse::<SocketAddr>()
            .unwrap_or_else(|e| panic!("{flag}={}: {e}", values[0]))
            .port()
    }
}

/// The container args as (`--flag`, value) pairs; every arg must be written `--flag=value`.
fn split_args(container: &Container) -> Vec<(String, String)> {
    container
        .args
        .iter()
        .flatten()
        .map(|arg| {
            let (flag, value) = arg
                .split_once('=')
                .filter(|(flag, _)| flag.starts_with("--"))
                .unwrap_or_else(|| panic!("container arg {arg:?} is not --flag=value"));
            (flag.to_owned(), value.to_owned())
        })
        .collect()
}

/// The container port a probe or Service target names: a number, or a container port's name.
fn container_port(container: &Container, port: &IntOrString) -> i32 {
    match port {
        IntOrString::Int(number) => *number,
        IntOrString::String(name) => {
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("no container port named {name}"))
                .container_port
        }
    }
}

fn labels_match(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}

/// `namespace/name`, or `name` for a cluster-scoped object.
fn id(meta: &ObjectMeta) -> String {
    let name = meta.name.clone().unwrap_or_default();
    match &meta.namespace {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name,
    }
}

#[test]
fn every_document_is_a_kubernetes_object_without_unknown_fields() {
    let objects = Objects::load();
    let ids = [
        id(&one(&objects.service_accounts, "ServiceAccount").metadata),
        id(&one(&objects.cluster_roles, "ClusterRole").metadata),
        id(&one(&objects.bindings, "ClusterRoleBinding").metadata),
        id(&objects.deployment().metadata),
        id(&objects.kube_dns().metadata),
    ];
    assert_eq!(
        ids,
        [
            "kube-system/clusterdns",
            "system:clusterdns",
            "system:clusterdns",
            "kube-system/clusterdns",
            "kube-system/kube-dns",
        ]
    );
}

#[test]
fn an_unknown_field_is_reported_with_file_object_and_path() {
    let text = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: ok, namespace: x}\n---\n\
                apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: typo}\n\
                spec:\n  replica: 2\n  selector: {matchLabels: {a: b}}\n  template:\n    \
                metadata: {labels: {a: b}}\n    spec:\n      containers:\n      \
                - {name: c, image: i, imagePullPolcy: Always}\n";
    let error = Objects::default()
        .add_file("deploy/typo.yaml", text)
        .expect_err("typos are rejected");
    assert_eq!(
        error,
        "deploy/typo.yaml: document 1 (Deployment \"typo\"): unknown fields: spec.replica, \
         spec.template.spec.containers[0].imagePullPolcy"
    );
    let wrong_group = "apiVersion: v1\nkind: Deployment\nmetadata: {name: old}\n";
    let error = Objects::default()
        .add_file("deploy/old.yaml", wrong_group)
        .expect_err("apiVersion is checked");
    assert!(
        error.starts_with("deploy/old.yaml: document 0 (Deployment \"old\"): "),
        "{error}"
    );
}

#[test]
fn the_kube_dns_service_selects_the_pods_and_the_deployment_only_its_own() {
    let objects = Objects::load();
    let deployment = objects.deployment();
    let spec = deployment.spec.as_ref().expect("Deployment spec");
    let pod_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let service_selector = objects
        .kube_dns()
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    assert_eq!(
        service_selector,
        BTreeMap::from([("k8s-app".to_owned(), "kube-dns".to_owned())]),
        "the selector every kube-dns Service has"
    );
    assert!(
        labels_match(&service_selector, &pod_labels),
        "pods {pod_labels:?} not selected by kube-dns"
    );

    let own = spec.selector.match_labels.clone().unwrap_or_default();
    assert!(
        spec.selector.match_expressions.is_none(),
        "selector by labels only"
    );
    assert!(
        labels_match(&own, &pod_labels),
        "the Deployment does not select its own pods"
    );
    // CoreDNS's pods carry k8s-app: kube-dns (and a pod-template-hash): they must not match.
    let coredns_pod = BTreeMap::from([
        ("k8s-app".to_owned(), "kube-dns".to_owned()),
        ("pod-template-hash".to_owned(), "5d78c9869d".to_owned()),
    ]);
    assert!(
        !labels_match(&own, &coredns_pod),
        "the Deployment's selector {own:?} selects CoreDNS's pods"
    );
}

#[test]
fn help_is_read_as_flags_and_defaults() {
    let text = [
        "Usage: clusterdns [OPTIONS]",
        "",
        "Options:",
        "      --listen <ADDR>",
        "          Address to answer DNS on (repeatable)",
        "",
        "          [default: 0.0.0.0:53 [::]:53]",
        "",
        "      --pods <PODS>",
        "          Pod records",
        "",
        "          Possible values:",
        "          - disabled: No pod records",
        "",
        "          [default: insecure]",
        "",
        "      --kubeconfig <PATH>",
        "          Watch the API [default without --manifests: $KUBECONFIG]",
        "",
        "  -h, --help",
        "          Print help",
    ]
    .join("\n");
    let help = Help::parse(&text);
    let flags: Vec<(&str, Option<&str>)> = help
        .0
        .iter()
        .map(|(flag, default)| (flag.as_str(), default.as_deref()))
        .collect();
    assert_eq!(
        flags,
        [
            ("--help", None),
            ("--kubeconfig", None),
            ("--listen", Some("0.0.0.0:53 [::]:53")),
            ("--pods", Some("insecure")),
        ]
    );
    assert_eq!(help.values(&[], "--listen"), ["0.0.0.0:53", "[::]:53"]);
    let args = [("--pods".to_owned(), "verified".to_owned())];
    assert_eq!(help.values(&args, "--pods"), ["verified"]);
}

#[test]
fn container_args_are_flags_the_binary_accepts() {
    let objects = Objects::load();
    let help = Help::of_binary();
    let args = split_args(objects.container());
    for (flag, _) in &args {
        assert!(
            help.0.contains_key(flag),
            "{flag} is not a flag `clusterdns --help` lists"
        );
    }
    // clap parses and checks every value before it acts on a trailing --help.
    let output = Command::new(clusterdns_binary())
        .args(objects.container().args.iter().flatten())
        .arg("--help")
        .output()
        .expect("binary runs");
    assert!(
        output.status.success(),
        "clusterdns rejects the container args: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn probes_ports_and_service_agree_with_the_flags() {
    let objects = Objects::load();
    let help = Help::of_binary();
    let container = objects.container();
    let args = split_args(container);

    let probe = |probe: &Option<k8s_openapi::api::core::v1::Probe>, kind: &str| {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("{kind} probe is an httpGet"));
        (
            get.path.clone().unwrap_or_default(),
            container_port(container, &get.port),
        )
    };
    assert_eq!(
        probe(&container.liveness_probe, "liveness"),
        (
            "/health".to_owned(),
            i32::from(help.port(&args, "--health"))
        )
    );
    assert_eq!(
        probe(&container.readiness_probe, "readiness"),
        ("/ready".to_owned(), i32::from(help.port(&args, "--ready")))
    );

    let ports: BTreeMap<(String, String), i32> = container
        .ports
        .iter()
        .flatten()
        .map(|p| {
            let name = p.name.clone().unwrap_or_default();
            (
                (name, p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                p.container_port,
            )
        })
        .collect();
    let dns_port = {
        let listen = help.values(&args, "--listen");
        let ports: Vec<u16> = listen
            .iter()
            .map(|a| {
                a.parse::<SocketAddr>()
                    .unwrap_or_else(|e| panic!("--listen {a}: {e}"))
                    .port()
            })
            .collect();
        assert!(
            ports.windows(2).all(|w| w[0] == w[1]),
            "--listen on one port: {listen:?}"
        );
        i32::from(ports[0])
    };
    let metrics_port = i32::from(help.port(&args, "--metrics"));
    assert_eq!(
        ports,
        BTreeMap::from([
            (("dns".to_owned(), "UDP".to_owned()), dns_port),
            (("dns-tcp".to_owned(), "TCP".to_owned()), dns_port),
            (("metrics".to_owned(), "TCP".to_owned()), metrics_port),
        ])
    );

    // The Service sends each port to the container port of the same protocol.
    let service = objects.kube_dns();
    for port in service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .expect("Service ports")
    {
        let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
        let target = container_port(
            container,
            port.target_port
                .as_ref()
                .unwrap_or(&IntOrString::Int(port.port)),
        );
        assert!(
            ports
                .iter()
                .any(|((_, p), number)| *p == protocol && *number == target),
            "Service port {:?} targets {target}/{protocol}, which the container does not expose",
            port.name
        );
    }
    let annotations = service.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get("prometheus.io/port"),
        Some(&metrics_port.to_string())
    );
    assert_eq!(
        annotations.get("prometheus.io/scrape").map(String::as_str),
        Some("true")
    );

    let lameduck: i64 = help.values(&args, "--lameduck")[0]
        .parse()
        .expect("--lameduck seconds");
    let grace = pod_spec(objects.deployment())
        .termination_grace_period_seconds
        .unwrap_or(30);
    assert!(
        grace > lameduck,
        "terminationGracePeriodSeconds {grace} <= --lameduck {lameduck}"
    );
}

#[test]
fn the_cluster_role_grants_list_and_watch_on_what_the_zone_is_built_from() {
    let objects = Objects::load();
    let role = one(&objects.cluster_roles, "ClusterRole");
    let rules = role.rules.as_deref().unwrap_or_default();
    for (group, resource) in [
        ("", "services"),
        ("", "namespaces"),
        ("", "pods"),
        ("discovery.k8s.io", "endpointslices"),
    ] {
        for verb in ["list", "watch"] {
            let granted = rules.iter().any(|rule| {
                rule.api_groups.iter().flatten().any(|g| g == group)
                    && rule.resources.iter().flatten().any(|r| r == resource)
                    && rule.verbs.iter().any(|v| v == verb)
            });
            assert!(
                granted,
                "ClusterRole does not grant {verb} on {resource} (API group {group:?})"
            );
        }
    }
    for rule in rules {
        assert!(
            rule.verbs.iter().all(|v| v == "list" || v == "watch"),
            "ClusterRole grants more than list and watch: {:?}",
            rule.verbs
        );
    }

    let binding = one(&objects.bindings, "ClusterRoleBinding");
    assert_eq!(
        (binding.role_ref.kind.as_str(), &binding.role_ref.name),
        ("ClusterRole", role.metadata.name.as_ref().unwrap())
    );
    let sa = one(&objects.service_accounts, "ServiceAccount");
    let subjects: Vec<_> = binding
        .subjects
        .iter()
        .flatten()
        .map(|s| (s.kind.clone(), s.name.clone(), s.namespace.clone()))
        .collect();
    assert_eq!(
        subjects,
        [(
            "ServiceAccount".to_owned(),
            sa.metadata.name.clone().unwrap(),
            sa.metadata.namespace.clone()
        )]
    );
    assert_eq!(
        pod_spec(objects.deployment()).service_account_name,
        sa.metadata.name
    );
}

/// The lines of `text` (a README or Dockerfile) that run `cargo build`, without the shell's
/// line continuation and whatever follows `&&`.
fn cargo_builds(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("cargo build"))
        .map(|rest| {
            let command = rest.split("&&").next().unwrap_or_default();
            format!(
                "cargo build{}",
                command.trim_end().trim_end_matches('\\').trim_end()
            )
        })
        .collect()
}

#[test]
fn the_image_is_built_as_the_readme_documents_and_runs_as_the_deployment_says() {
    let root = workspace();
    let dockerfile = read(&root.join("Dockerfile"));
    let builds = cargo_builds(&dockerfile);
    assert_eq!(
        builds.len(),
        1,
        "one cargo build in the Dockerfile: {builds:?}"
    );
    let image_build = &builds[0];

    let deploy_readme = cargo_builds(&read(&root.join("deploy/README.md")));
    assert!(
        !deploy_readme.is_empty(),
        "deploy/README.md documents the build command"
    );
    for command in &deploy_readme {
        assert_eq!(
            command, image_build,
            "deploy/README.md and the Dockerfile build differently"
        );
    }
    // The top README's build, if it shows one, is the same command for the host's target.
    for command in cargo_builds(&read(&root.join("README.md"))) {
        if command.contains("-p clusterdns") {
            assert_eq!(
                &format!("{command} {IMAGE_TARGET}"),
                image_build,
                "README.md build"
            );
        }
    }

    let objects = Objects::load();
    let pod = pod_spec(objects.deployment());
    let user = pod
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_user)
        .expect("runAsUser");
    let group = pod
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_group)
        .expect("runAsGroup");
    assert!(
        dockerfile
            .lines()
            .any(|line| line.trim() == format!("USER {user}:{group}")),
        "the image's USER is not the Deployment's runAsUser:runAsGroup {user}:{group}"
    );
    // Port 53 as a non-root user: the file capability in the image, the bounding set in the pod.
    assert!(dockerfile.contains("setcap cap_net_bind_service=+ep /clusterdns"));
    let caps = objects
        .container()
        .security_context
        .as_ref()
        .and_then(|s| s.capabilities.clone())
        .expect("capabilities");
    assert_eq!(caps.add, Some(vec!["NET_BIND_SERVICE".to_owned()]));
    assert_eq!(caps.drop, Some(vec!["ALL".to_owned()]));

    let ignored = read(&root.join(".dockerignore"));
    assert!(
        ignored.lines().any(|line| line.trim() == "target"),
        ".dockerignore leaves out target/"
    );
}
