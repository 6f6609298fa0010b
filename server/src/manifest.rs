//! Kubernetes manifests on disk, read into the zone model.
//!
//! This module owns the file source's edge: it finds the files a set of paths stands for, splits
//! them into documents (multi-document YAML, JSON, `kind: List` and typed lists such as
//! `ServiceList`), so that `kubectl get ns,svc,endpointslices,pods -A -o yaml` output loads as
//! it is, and turns the objects DNS cares about into [`clusterdns_zone::model`] types.
//!
//! ```text
//!  paths ──files()──▶ files ──documents──▶ objects ──(apiVersion, kind)──┬─▶ k8s-openapi type ──▶ model
//!                                                                       └─▶ skipped (counted by kind)
//! ```
//!
//! Objects go through the k8s-openapi types with `serde_path_to_error`, so a type error names
//! its field (`spec.ports[0].port`); the conversion then checks what DNS needs (names, IP
//! addresses, ports, protocols) and names the field it rejects. Every error also names the file
//! and the object, in one line.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clusterdns_zone::Cluster;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_yaml::{Mapping, Value};

use crate::objects::{
    endpoint_slice, namespace_name, pod, service, slice_skip_reason, ObjectError, DEFAULT_NAMESPACE,
};

/// File name endings taken from a directory.
const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// Counts of what a load read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Files read.
    pub files: usize,
    /// Objects loaded into the cluster (skipped objects are not counted here).
    pub objects: usize,
    /// Objects left out, by kind (with the reason in parentheses when the kind itself is known).
    pub skipped: BTreeMap<String, usize>,
}

/// A manifest that cannot be loaded: names the file, the object (kind, namespace/name) and the field.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A path or file could not be read.
    #[error("{}: cannot read: {error}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
    /// A document is not well-formed YAML or JSON.
    #[error("{}: document {document}: not valid {format}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The document's position in the file, from 1.
        document: usize,
        /// `"YAML"` or `"JSON"`.
        format: &'static str,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A document (or list item) is not a Kubernetes object.
    #[error("{}: {at}: {message}", path.display())]
    Document {
        /// The file.
        path: PathBuf,
        /// Where in the file: `document 2`, or `document 1, items[4]`.
        at: String,
        /// What is wrong.
        message: String,
    },
    /// An object of a kind we load has a field DNS cannot use.
    #[error("{}: {kind} {object}: {field}: {message}", path.display())]
    Object {
        /// The file.
        path: PathBuf,
        /// The object's kind.
        kind: &'static str,
        /// `namespace/name` (`name` for a Namespace; the position when the name is missing).
        object: String,
        /// The field's path, as in `spec.ports[0].port`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// Loads every object in `paths` into a [`Cluster`]; Pods are kept only when `keep_pods`.
pub fn load(paths: &[PathBuf], keep_pods: bool) -> Result<(Cluster, LoadReport), ManifestError> {
    let mut loader = Loader {
        keep_pods,
        cluster: Cluster::default(),
        report: LoadReport::default(),
    };
    for file in files(paths)? {
        loader.file(&file)?;
    }
    Ok((loader.cluster, loader.report))
}

/// Every file `paths` stands for (a file, or the .yaml/.yml/.json files directly inside a directory, sorted), for change polling.
pub fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ManifestError> {
    let mut out = Vec::new();
    for path in paths {
        let meta = fs::metadata(path).map_err(|error| read_error(path, error))?;
        if meta.is_dir() {
            out.extend(directory_files(path)?);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

/// The manifest files directly inside `dir`, sorted by name. Hidden entries are left out, which
/// also leaves out the `..data` machinery of a mounted ConfigMap.
fn directory_files(dir: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|error| read_error(dir, error))? {
        let path = entry.map_err(|error| read_error(dir, error))?.path();
        if !is_manifest_name(&path) {
            continue;
        }
        match fs::metadata(&path) {
            Ok(meta) if meta.is_file() => out.push(path),
            Ok(_) => {}
            // Removed since the listing (or a dangling symlink): nothing to read.
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(read_error(&path, error)),
        }
    }
    out.sort();
    Ok(out)
}

/// Whether a directory entry's name looks like a manifest: not hidden, ending .yaml/.yml/.json.
fn is_manifest_name(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.') && has_extension(path, &EXTENSIONS)
}

/// Whether `path` ends with one of `extensions` (case-insensitive).
fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| extensions.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// A [`ManifestError::Read`] for `path`.
fn read_error(path: &Path, error: io::Error) -> ManifestError {
    ManifestError::Read {
        path: path.to_path_buf(),
        error,
    }
}

/// The kinds we load, with the apiVersion each must carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Namespace,
    Service,
    EndpointSlice,
    Pod,
}

impl Kind {
    const ALL: [Kind; 4] = [
        Kind::Namespace,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Pod,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Pod => "Pod",
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            Kind::EndpointSlice => "discovery.k8s.io/v1",
            Kind::Namespace | Kind::Service | Kind::Pod => "v1",
        }
    }

    fn namespaced(self) -> bool {
        self != Kind::Namespace
    }

    /// The kind an object is loaded as, or the key it is counted under when skipped.
    fn classify(api_version: &str, kind: &str) -> Result<Kind, String> {
        match Kind::ALL.into_iter().find(|k| k.name() == kind) {
            Some(known) if known.api_version() == api_version => Ok(known),
            Some(known) if api_version.is_empty() => {
                Err(format!("{} (no apiVersion)", known.name()))
            }
            Some(known) => Err(format!("{} ({api_version})", known.name())),
            None => Err(kind.to_owned()),
        }
    }
}

/// Accumulates a load.
struct Loader {
    keep_pods: bool,
    cluster: Cluster,
    report: LoadReport,
}

impl Loader {
    /// Reads one file, YAML or JSON by its name, document by document.
    fn file(&mut self, path: &Path) -> Result<(), ManifestError> {
        let text = fs::read_to_string(path).map_err(|error| read_error(path, error))?;
        let before = self.report.objects;
        if has_extension(path, &["json"]) {
            let stream = serde_json::Deserializer::from_str(&text).into_iter::<Value>();
            for (i, document) in stream.enumerate() {
                let value =
                    document.map_err(|e| syntax_error(path, i + 1, "JSON", e.to_string()))?;
                self.document(path, &format!("document {}", i + 1), value)?;
            }
        } else {
            for (i, document) in serde_yaml::Deserializer::from_str(&text).enumerate() {
                let value = Value::deserialize(document)
                    .map_err(|e| syntax_error(path, i + 1, "YAML", e.to_string()))?;
                self.document(path, &format!("document {}", i + 1), value)?;
            }
        }
        self.report.files += 1;
        tracing::debug!(file = %path.display(), objects = self.report.objects - before, "manifest file read");
        Ok(())
    }

    /// One document or list item: nothing (an empty document) or an object.
    fn document(&mut self, path: &Path, at: &str, value: Value) -> Result<(), ManifestError> {
        match value {
            Value::Null => Ok(()),
            Value::Mapping(map) => self.object(path, at, map),
            other => Err(ManifestError::Document {
                path: path.to_path_buf(),
                at: at.to_owned(),
                message: format!("expected a Kubernetes object, found {}", value_type(&other)),
            }),
        }
    }

    /// An object: a list to open, a kind to load, or a kind to count as skipped.
    fn object(&mut self, path: &Path, at: &str, map: Mapping) -> Result<(), ManifestError> {
        let kind = match map.get("kind").and_then(Value::as_str) {
            Some(kind) if !kind.is_empty() => kind.to_owned(),
            _ => {
                return Err(ManifestError::Document {
                    path: path.to_path_buf(),
                    at: at.to_owned(),
                    message: "kind: missing (not a Kubernetes object)".to_owned(),
                })
            }
        };
        let api_version = map
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if kind.ends_with("List") {
            return self.list(path, at, &kind, &api_version, map);
        }
        let kind = match Kind::classify(&api_version, &kind) {
            Ok(kind) if kind != Kind::Pod || self.keep_pods => kind,
            Ok(pod) => {
                self.skip(pod.name());
                return Ok(());
            }
            Err(key) => {
                self.skip(&key);
                return Ok(());
            }
        };
        let context = Context {
            path,
            kind: kind.name(),
            object: describe(&map, kind.namespaced(), at),
        };
        self.convert(&context, kind, Value::Mapping(map))
    }

    /// The items of `kind: List`, or of a typed list (`ServiceList`), whose items may leave out
    /// their kind and apiVersion.
    fn list(
        &mut self,
        path: &Path,
        at: &str,
        kind: &str,
        api_version: &str,
        mut map: Mapping,
    ) -> Result<(), ManifestError> {
        let items = match map.remove("items") {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::Sequence(items)) => items,
            Some(other) => {
                return Err(ManifestError::Document {
                    path: path.to_path_buf(),
                    at: at.to_owned(),
                    message: format!("items: expected a list, found {}", value_type(&other)),
                })
            }
        };
        let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty());
        for (i, mut item) in items.into_iter().enumerate() {
            if let (Some(item_kind), Value::Mapping(fields)) = (item_kind, &mut item) {
                default_field(fields, "kind", item_kind);
                default_field(fields, "apiVersion", api_version);
            }
            self.document(path, &format!("{at}, items[{i}]"), item)?;
        }
        Ok(())
    }

    /// Deserializes and converts an object of a kind we load.
    fn convert(
        &mut self,
        context: &Context<'_>,
        kind: Kind,
        value: Value,
    ) -> Result<(), ManifestError> {
        match kind {
            Kind::Namespace => {
                let object: core::Namespace = typed(context, value)?;
                let name = namespace_name(&object.metadata).map_err(|e| context.object(e))?;
                self.cluster.namespaces.push(name);
            }
            Kind::Service => {
                let service = service(typed(context, value)?).map_err(|e| context.object(e))?;
                self.cluster.services.push(service);
            }
            Kind::EndpointSlice => {
                let object: discovery::EndpointSlice = typed(context, value)?;
                if let Some(reason) = slice_skip_reason(&object) {
                    self.skip(reason);
                    return Ok(());
                }
                let slice = endpoint_slice(object).map_err(|e| context.object(e))?;
                self.cluster.slices.push(slice);
            }
            Kind::Pod => {
                let pod = pod(typed(context, value)?).map_err(|e| context.object(e))?;
                self.cluster.pods.push(pod);
            }
        }
        self.report.objects += 1;
        Ok(())
    }

    fn skip(&mut self, key: &str) {
        *self.report.skipped.entry(key.to_owned()).or_default() += 1;
    }
}

/// A [`ManifestError::Syntax`] for document `document` of `path`.
fn syntax_error(
    path: &Path,
    document: usize,
    format: &'static str,
    message: String,
) -> ManifestError {
    ManifestError::Syntax {
        path: path.to_path_buf(),
        document,
        format,
        message,
    }
}

/// Sets `key` to `value` unless the object already has it.
fn default_field(fields: &mut Mapping, key: &str, value: &str) {
    if !fields.contains_key(key) {
        fields.insert(Value::from(key), Value::from(value));
    }
}

/// A YAML value's type, for messages.
fn value_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// How an object is named in errors: `namespace/name`, `name`, or its position when unnamed.
fn describe(map: &Mapping, namespaced: bool, at: &str) -> String {
    let metadata = map.get("metadata");
    let field = |key: &str| {
        metadata
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    match (field("name"), namespaced) {
        (Some(name), true) => format!("{}/{name}", field("namespace").unwrap_or(DEFAULT_NAMESPACE)),
        (Some(name), false) => name.to_owned(),
        (None, _) => format!("<unnamed> ({at})"),
    }
}

/// The object being converted, to name it in errors.
struct Context<'a> {
    path: &'a Path,
    kind: &'static str,
    object: String,
}

impl Context<'_> {
    fn error(&self, field: impl Into<String>, message: impl Into<String>) -> ManifestError {
        ManifestError::Object {
            path: self.path.to_path_buf(),
            kind: self.kind,
            object: self.object.clone(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// The error of a converted object, placed in its file.
    fn object(&self, error: ObjectError) -> ManifestError {
        self.error(error.field, error.message)
    }
}

/// Deserializes an object into its k8s-openapi type, naming the field of a type error.
fn typed<T: DeserializeOwned>(context: &Context<'_>, value: Value) -> Result<T, ManifestError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let field = error.path().to_string();
        context.error(field, error.into_inner().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clusterdns_zone::{Port, Protocol, Service, ServiceKind};
    use std::net::IpAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A scratch directory under the system temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("clusterdns-manifest-{}-{n}", std::process::id()));
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
            }]
        );
        assert_eq!((report.files, report.objects), (1, 1));
        assert!(report.skipped.is_empty());
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
            load_err("apiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec: {type: ExternalName}\n"),
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
            load_err(
                "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: nope}\n"
            ),
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
        let error = load_err(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkind: [unclosed\n",
        );
        assert!(
            error.starts_with("m.yaml: document 2: not valid YAML: "),
            "{error}"
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
}
