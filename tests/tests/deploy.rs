//! deploy/ as an operator applies it: every document of `deploy/*.yaml` is a Kubernetes object of a
//! known kind with no field the API server would drop, and the files agree with each other, with
//! the flags the real binary accepts, and with the Dockerfile. And the Deployment's pod as a
//! kubelet starts it: port 53 opened by its sysctl for its non-root user, without a capability
//! (in a network namespace of the host's user namespace as root, and in a user namespace of its
//! own), and ready before its first readiness probe.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clusterdns_testkit::client::{read_framed, send_framed};
use clusterdns_testkit::dns::{query, Reply};
use clusterdns_testkit::process::{clusterdns_binary, Process};
use clusterdns_testkit::temp::TempDir;
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
    // Port 53 as a non-root user comes from the pod's sysctl, whatever way the image was built;
    // an image whose binary carries the file capability (ours does, for runtimes without the
    // sysctl) execs only with the capability in the bounding set.
    let port_start = (pod.security_context.as_ref())
        .and_then(|s| s.sysctls.as_ref())
        .and_then(|sysctls| {
            (sysctls.iter()).find(|s| s.name == "net.ipv4.ip_unprivileged_port_start")
        })
        .map(|s| s.value.parse::<u16>().expect("a port number"))
        .expect("the pod sets net.ipv4.ip_unprivileged_port_start");
    assert!(
        port_start <= 53,
        "port 53 is below net.ipv4.ip_unprivileged_port_start={port_start}"
    );
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

// Port 53 without a file capability: the binary as the Deployment's user, in namespaces of its
// own, with the pod's sysctl set as the container runtime sets it (or not).

/// Where the test's client sockets sit in the server process, made in its network namespace
/// before exec and taken back with pidfd_getfd(2): the test's way into that namespace, which
/// needs no privilege over it.
const UDP_CLIENT_FD: libc::c_int = 200;
const TCP_CLIENT_FD: libc::c_int = 201;

/// How the pod's namespaces are made.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Namespaces {
    /// A network namespace in the host's user namespace, as a container runtime makes one for a
    /// pod: made as root, then the process becomes the pod's user (so the test needs root).
    Pod,
    /// A user namespace and the network namespace it owns, made by the pod's user itself, as for
    /// a pod with `hostUsers: false`; only the pod's user is mapped in it.
    User,
}

/// What the child does between fork and exec, all prepared before the fork (nothing may
/// allocate after it).
struct Confinement {
    namespaces: Namespaces,
    /// Whether the test runs as root (asked before the fork: the child changes users).
    as_root: bool,
    uid: libc::uid_t,
    gid: libc::gid_t,
    /// `uid_map` and `gid_map` lines: the pod's user as the test's outer user (the pod's user
    /// itself when the test runs as root, which becomes that user first).
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
    /// The value of net.ipv4.ip_unprivileged_port_start to set, as the runtime would.
    port_start: Option<Vec<u8>>,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn os_result(result: libc::c_int) -> std::io::Result<()> {
    match result {
        -1 => Err(std::io::Error::last_os_error()),
        _ => Ok(()),
    }
}

/// Writes `data` to the file at `path` (a NUL-terminated literal) with raw system calls.
fn write_proc(path: &[u8], data: &[u8]) -> std::io::Result<()> {
    // SAFETY: `path` is NUL-terminated; `data` is valid for its length.
    unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC);
        os_result(fd)?;
        let written = libc::write(fd, data.as_ptr().cast(), data.len());
        let error = std::io::Error::last_os_error();
        libc::close(fd);
        match written {
            n if n == data.len() as isize => Ok(()),
            _ => Err(error),
        }
    }
}

impl Confinement {
    fn new(namespaces: Namespaces, uid: u32, gid: u32, port_start: Option<&str>) -> Confinement {
        // SAFETY: geteuid and getegid have no preconditions.
        let (outer_uid, outer_gid) = match is_root() {
            true => (uid, gid),
            false => unsafe { (libc::geteuid(), libc::getegid()) },
        };
        Confinement {
            namespaces,
            as_root: is_root(),
            uid,
            gid,
            uid_map: format!("{uid} {outer_uid} 1\n").into_bytes(),
            gid_map: format!("{gid} {outer_gid} 1\n").into_bytes(),
            port_start: port_start.map(|value| format!("{value}\n").into_bytes()),
        }
    }

    /// Becomes the pod's user: no supplementary groups, and (leaving uid 0) no capabilities.
    fn become_user(&self) -> std::io::Result<()> {
        // SAFETY: plain system calls on values owned by `self`.
        unsafe {
            os_result(libc::setgroups(0, std::ptr::null()))?;
            os_result(libc::setgid(self.gid))?;
            os_result(libc::setuid(self.uid))
        }
    }

    /// Makes the new namespaces: the step that fails where the kernel forbids them.
    fn unshare(&self) -> std::io::Result<()> {
        match self.namespaces {
            // SAFETY: unshare has no memory preconditions.
            Namespaces::Pod => os_result(unsafe { libc::unshare(libc::CLONE_NEWNET) }),
            Namespaces::User => {
                if self.as_root {
                    self.become_user()?;
                }
                // SAFETY: as above.
                os_result(unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) })
            }
        }
    }

    /// Maps the pod's user (and group) in the new user namespace, if there is one.
    fn map(&self) -> std::io::Result<()> {
        if self.namespaces == Namespaces::Pod {
            return Ok(());
        }
        if self.as_root {
            // setuid(2) made the process non-dumpable, which gives its /proc/self files to
            // root: the maps could not be written by the pod's user.
            // SAFETY: prctl with integer arguments.
            os_result(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) })?;
        }
        // An unprivileged process may map only itself, and must give up setgroups(2) before it
        // maps its group (user_namespaces(7)).
        write_proc(b"/proc/self/setgroups\0", b"deny")?;
        write_proc(b"/proc/self/uid_map\0", &self.uid_map)?;
        write_proc(b"/proc/self/gid_map\0", &self.gid_map)
    }

    /// Everything between fork and exec, in the child (async-signal-safe system calls only).
    fn apply(&self) -> std::io::Result<()> {
        self.unshare()?;
        self.map()?;
        bring_loopback_up()?;
        if let Some(value) = &self.port_start {
            write_proc(b"/proc/sys/net/ipv4/ip_unprivileged_port_start\0", value)?;
        }
        for (kind, fd) in [
            (libc::SOCK_DGRAM, UDP_CLIENT_FD),
            (libc::SOCK_STREAM, TCP_CLIENT_FD),
        ] {
            // SAFETY: plain system calls; the new descriptor is left open across exec.
            unsafe {
                let socket = libc::socket(libc::AF_INET, kind, 0);
                os_result(socket)?;
                os_result(libc::dup2(socket, fd))?;
                libc::close(socket);
            }
        }
        if self.namespaces == Namespaces::Pod {
            self.become_user()?;
        }
        Ok(())
    }
}

/// Sets `lo` up in the current network namespace (SIOCSIFFLAGS: no allocation, no program).
fn bring_loopback_up() -> std::io::Result<()> {
    // SAFETY: `request` is a zeroed ifreq with a NUL-terminated name; the socket is closed.
    unsafe {
        let socket = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        os_result(socket)?;
        let mut request: libc::ifreq = std::mem::zeroed();
        request.ifr_name[0] = b'l' as libc::c_char;
        request.ifr_name[1] = b'o' as libc::c_char;
        let result = match libc::ioctl(socket, libc::SIOCGIFFLAGS, &mut request as *mut libc::ifreq)
        {
            -1 => -1,
            _ => {
                request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
                libc::ioctl(socket, libc::SIOCSIFFLAGS, &request as *const libc::ifreq)
            }
        };
        let error = std::io::Error::last_os_error();
        libc::close(socket);
        match result {
            -1 => Err(error),
            _ => Ok(()),
        }
    }
}

/// Why this machine cannot make `namespaces` for the pod's user, if it cannot: the test then
/// says so and skips that case.
fn cannot_confine(namespaces: Namespaces, uid: u32, gid: u32) -> Option<String> {
    if namespaces == Namespaces::Pod && !is_root() {
        return Some("a pod's network namespace is made as root, and this test is not".into());
    }
    let confinement = Confinement::new(namespaces, uid, gid, None);
    let mut probe = Command::new("true");
    // Only the namespaces themselves: any later step that fails fails the test.
    // SAFETY: `unshare` makes only async-signal-safe system calls.
    unsafe { probe.pre_exec(move || confinement.unshare()) };
    match probe.status() {
        Ok(status) if status.success() => None,
        Ok(status) => Some(format!("`true` in the namespaces exited with {status}")),
        Err(error) => Some(format!(
            "the kernel refuses the namespaces ({error}; unprivileged user namespaces may be \
             turned off: sysctl kernel.unprivileged_userns_clone, user.max_user_namespaces, or \
             an AppArmor restriction)"
        )),
    }
}

/// A copy of the binary without file capabilities, if the built one has any (it has none
/// unless someone ran setcap on it).
fn binary_without_file_capabilities(dir: &TempDir) -> PathBuf {
    let has_capability = |path: &Path| {
        let path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("a path");
        // SAFETY: both strings are NUL-terminated; a null buffer of size 0 asks for the size.
        let size = unsafe {
            libc::getxattr(
                path.as_ptr(),
                c"security.capability".as_ptr(),
                std::ptr::null_mut(),
                0,
            )
        };
        size >= 0
    };
    let built = clusterdns_binary();
    if !has_capability(&built) {
        return built;
    }
    let copy = dir.path().join("clusterdns");
    std::fs::copy(&built, &copy).expect("copy the binary");
    assert!(!has_capability(&copy), "the copy kept the file capability");
    copy
}

/// The server's descriptor `fd`, duplicated into this process.
fn take_fd(pid: u32, fd: libc::c_int) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: plain system calls; the returned descriptor is new and ours.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) as libc::c_int;
        assert!(
            pidfd >= 0,
            "pidfd_open: {}",
            std::io::Error::last_os_error()
        );
        let taken = libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) as libc::c_int;
        let error = std::io::Error::last_os_error();
        libc::close(pidfd);
        assert!(taken >= 0, "pidfd_getfd {fd}: {error}");
        std::os::fd::OwnedFd::from_raw_fd(taken)
    }
}

/// `CapPrm`, `CapEff` and the `Uid` line of a process, as /proc shows them to this test.
fn credentials(pid: u32) -> (String, String, String) {
    let status = read(Path::new(&format!("/proc/{pid}/status")));
    let field = |name: &str| {
        (status.lines())
            .find_map(|line| line.strip_prefix(name))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    (field("CapPrm:"), field("CapEff:"), field("Uid:"))
}

/// The Deployment's container, started as its pod would start it but in namespaces of the
/// test's own: its user, its args (the cluster served from `deploy/examples/cluster.yaml` with
/// kubeadm's default Corefile, for want of an API server in the namespace), its sysctl when
/// `with_sysctl`.
fn start_like_the_pod(namespaces: Namespaces, with_sysctl: bool, dir: &TempDir) -> Process {
    let objects = Objects::load();
    let pod = pod_spec(objects.deployment());
    let context = pod
        .security_context
        .as_ref()
        .expect("a pod securityContext");
    let (uid, gid) = (
        context.run_as_user.expect("runAsUser"),
        context.run_as_group.expect("runAsGroup"),
    );
    let port_start = (context.sysctls.iter().flatten())
        .find(|s| s.name == "net.ipv4.ip_unprivileged_port_start")
        .map(|s| s.value.clone())
        .expect("the pod sets net.ipv4.ip_unprivileged_port_start");
    let confinement = Confinement::new(
        namespaces,
        u32::try_from(uid).expect("a uid"),
        u32::try_from(gid).expect("a gid"),
        with_sysctl.then_some(port_start.as_str()),
    );
    let root = workspace();
    let args: Vec<String> = (objects.container().args.iter().flatten())
        .map(|arg| match arg.split_once('=') {
            Some(("--corefile", _)) => format!(
                "--corefile={}",
                root.join("tests/corefiles/kubeadm.Corefile").display()
            ),
            _ => arg.clone(),
        })
        .chain([
            "--manifests".to_owned(),
            root.join("deploy/examples/cluster.yaml")
                .display()
                .to_string(),
        ])
        .collect();
    let mut command = Command::new(binary_without_file_capabilities(dir));
    command.args(&args);
    // SAFETY: `apply` makes only async-signal-safe system calls.
    unsafe { command.pre_exec(move || confinement.apply()) };
    Process::spawn(&mut command)
}

/// One UDP query from inside the server's namespace; the reply, if one came within 300 ms.
fn ask_inside(socket: &std::net::UdpSocket, name: &str) -> Option<Reply> {
    let server: SocketAddr = "127.0.0.1:53".parse().expect("addr");
    socket.send_to(&query(53, name, 1, None), server).ok()?;
    let mut buf = [0u8; 512];
    let len = socket.recv(&mut buf).ok()?;
    Reply::parse(&buf[..len]).ok()
}

/// Over TCP from inside the server's namespace.
fn ask_inside_tcp(socket: std::os::fd::OwnedFd, name: &str) -> Reply {
    use std::os::fd::AsRawFd;
    let address = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 53u16.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `address` is a valid sockaddr_in of the size given.
    let connected = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            (&address as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    os_result(connected).expect("connect to 127.0.0.1:53 over TCP");
    let mut stream = std::net::TcpStream::from(socket);
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    send_framed(&mut stream, &query(54, name, 1, None)).expect("send over TCP");
    let answer = read_framed(&mut stream).expect("an answer over TCP");
    Reply::parse(&answer).expect("a well-formed answer")
}

/// The Deployment's user, without a file capability on the binary and without any capability,
/// binds port 53 and answers with the pod's sysctl; without it, stops with a message that says
/// what to set.
fn port_53_as_the_pods_user(namespaces: Namespaces, test: &str) {
    let objects = Objects::load();
    let context = (pod_spec(objects.deployment()).security_context.clone()).expect("context");
    let (uid, gid) = (
        u32::try_from(context.run_as_user.expect("runAsUser")).expect("uid"),
        u32::try_from(context.run_as_group.expect("runAsGroup")).expect("gid"),
    );
    if let Some(why) = cannot_confine(namespaces, uid, gid) {
        eprintln!("{test}: skipped: {why}");
        return;
    }
    let dir = TempDir::new("deploy-port-53");
    const KUBERNETES: &str = "kubernetes.default.svc.cluster.local";

    let server = start_like_the_pod(namespaces, true, &dir);
    let (permitted, effective, uids) = credentials(server.pid());
    assert_eq!(
        (permitted.as_str(), effective.as_str()),
        ("0000000000000000", "0000000000000000"),
        "the server runs without capabilities"
    );
    if is_root() {
        let first = uids.split_whitespace().next().unwrap_or_default();
        assert_eq!(first, uid.to_string(), "the server runs as the pod's user");
    }
    let udp = std::net::UdpSocket::from(take_fd(server.pid(), UDP_CLIENT_FD));
    udp.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let started = Instant::now();
    let answered = server.wait_until(started, Duration::from_secs(10), "an answer on :53", || {
        ask_inside(&udp, KUBERNETES).map(drop).ok_or("no answer")
    });
    let reply = ask_inside(&udp, KUBERNETES).expect("an answer over UDP");
    assert!(reply.is(&["A 10.96.0.1"]), "{reply:?}");
    let tcp = ask_inside_tcp(take_fd(server.pid(), TCP_CLIENT_FD), KUBERNETES);
    assert!(tcp.is(&["A 10.96.0.1"]), "over TCP: {tcp:?}");
    eprintln!("{test}: uid {uid}, no capabilities, the sysctl at 53: answering on port 53 after {answered:?}");
    server.terminate();
    assert!(server.wait_exit(Duration::from_secs(15)).success());

    let refused = start_like_the_pod(namespaces, false, &dir);
    let status = refused.wait_exit(Duration::from_secs(10));
    let stderr = refused.stderr();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot bind udp")
            && stderr.contains(":53: Permission denied")
            && stderr.contains("net.ipv4.ip_unprivileged_port_start, 1024 here")
            && stderr.contains("net.ipv4.ip_unprivileged_port_start=53"),
        "{stderr}"
    );
}

#[test]
fn port_53_without_a_file_capability_in_a_pods_network_namespace() {
    port_53_as_the_pods_user(
        Namespaces::Pod,
        "port_53_without_a_file_capability_in_a_pods_network_namespace",
    );
}

#[test]
fn port_53_without_a_file_capability_in_a_user_namespace() {
    port_53_as_the_pods_user(
        Namespaces::User,
        "port_53_without_a_file_capability_in_a_user_namespace",
    );
}

/// Kubeadm's default Corefile as the Deployment mounts it, with its ports moved to free ones on
/// loopback and its `kubernetes` block pointed at `kubeconfig` (the pod would use its service
/// account): the Corefile of a cluster that swapped CoreDNS for clusterdns.
fn kubeadm_corefile(dns: SocketAddr, ops: [SocketAddr; 3], kubeconfig: &Path) -> String {
    let [health, ready, metrics] = ops;
    let text = read(&workspace().join("tests/corefiles/kubeadm.Corefile"));
    let replacements = [
        (
            ".:53 {",
            format!(".:{} {{\n    bind {}", dns.port(), dns.ip()),
        ),
        ("    health {", format!("    health {health} {{")),
        ("    ready\n", format!("    ready {ready}\n")),
        ("    prometheus :9153", format!("    prometheus {metrics}")),
        (
            "       pods insecure",
            format!(
                "       pods insecure\n       kubeconfig {}",
                kubeconfig.display()
            ),
        ),
    ];
    replacements.into_iter().fold(text, |text, (from, to)| {
        assert!(text.contains(from), "kubeadm's Corefile has no {from:?}");
        text.replace(from, &to)
    })
}

/// A normal start logs no failed probe: the Deployment's pod, started with its args against an
/// API server, is ready and healthy before the kubelet first asks (`initialDelaySeconds` after
/// the container starts), and its readiness probe is still the one lameduck fails.
#[test]
fn the_first_probes_find_the_pod_ready() {
    use clusterdns_testkit::fakeapi::FakeApi;
    use clusterdns_testkit::http::status_is;
    use clusterdns_testkit::net::{free_port, loopback};

    let objects = Objects::load();
    let container = objects.container();
    let delay = |probe: &Option<k8s_openapi::api::core::v1::Probe>, kind: &str| {
        let probe = probe.as_ref().unwrap_or_else(|| panic!("a {kind} probe"));
        Duration::from_secs(
            probe
                .initial_delay_seconds
                .unwrap_or(0)
                .try_into()
                .expect("s"),
        )
    };
    let (ready_after, live_after) = (
        delay(&container.readiness_probe, "readiness"),
        delay(&container.liveness_probe, "liveness"),
    );
    assert!(
        ready_after >= Duration::from_secs(1),
        "the readiness probe waits for the first sync (initialDelaySeconds)"
    );
    assert!(
        container.startup_probe.is_none(),
        "no startup probe: its failures are logged as well, and it would restart a pod that \
         cannot reach the API server instead of leaving it unready"
    );
    assert_eq!(
        (container.readiness_probe.as_ref())
            .and_then(|p| p.http_get.as_ref())
            .and_then(|g| g.path.as_deref()),
        Some("/ready"),
        "readiness is /ready, which lameduck fails"
    );

    let api = FakeApi::with_core_services();
    let dir = TempDir::new("deploy-probes");
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let [dns, health, ready, metrics] = [(); 4].map(|()| loopback(free_port()));
    let corefile = dir.write(
        "Corefile",
        &kubeadm_corefile(dns, [health, ready, metrics], &kubeconfig),
    );
    let pod_args: Vec<String> = (container.args.iter().flatten())
        .map(|arg| match arg.split_once('=') {
            Some(("--corefile", _)) => format!("--corefile={}", corefile.display()),
            _ => arg.clone(),
        })
        .collect();
    let started = Instant::now();
    let pod = Process::clusterdns(&pod_args);
    let is_ready = pod.wait_until(started, ready_after, "/ready 200", || {
        status_is(ready, "/ready", 200)
    });
    let is_live = pod.wait_until(started, live_after, "/health 200", || {
        status_is(health, "/health", 200)
    });
    eprintln!(
        "the_first_probes_find_the_pod_ready: ready {is_ready:?} and live {is_live:?} after the \
         start; the kubelet first asks after {ready_after:?} and {live_after:?}"
    );
    // Lameduck fails readiness at once (kubernetes.rs tests the rest of it).
    pod.terminate();
    pod.wait_until(Instant::now(), Duration::from_secs(2), "/ready 503", || {
        status_is(ready, "/ready", 503)
    });
}
