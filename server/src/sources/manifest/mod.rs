//! Kubernetes manifests on disk, streamed into the zone model.
//!
//! This module owns the file source's edge: it finds the files a set of paths stands for, splits
//! them into documents (multi-document YAML, JSON, `kind: List` and typed lists such as
//! `ServiceList`), so that `kubectl get ns,svc,endpointslices,pods -A -o yaml` output loads as
//! it is, and turns the objects DNS cares about into [`clusterdns_zone::model`] types, handed
//! one [`Change`] at a time to a sink ([`read`]) or collected into a [`Cluster`] ([`load`]).
//!
//! ```text
//!  paths ──files()──▶ files ──documents, list items──▶ objects ──(apiVersion, kind)──┬─▶ k8s-openapi type ──▶ model ──▶ sink
//!                                                                                   └─▶ skipped (counted by kind)
//! ```
//!
//! Reading streams: a file is never held whole, nor a list document, nor the converted cluster.
//! Memory follows the largest single object, however large the file, except for the YAML the
//! splitter leaves to a whole parse (below), which costs what it always did.
//!
//! - JSON ([`json`]) is read through a `BufReader` by serde visitors; the `items` of a list are
//!   visited one element at a time, each decoded, converted and dropped.
//! - YAML ([`yaml`]) is read line by line and cut into one text per document and, in the block
//!   style kubectl writes, one text per item of a list's top-level `items:` sequence; each text is
//!   parsed alone. A document the splitter does not recognise (flow style, an alias of an anchor
//!   in another item, directives, a scalar or sequence at the top) is parsed whole, as it always
//!   was.
//!
//! In both, an item that carries its own `kind` and `apiVersion` is converted as soon as it is
//! read, even before the list's own `kind` (kubectl writes `items` first); only items that
//! leave them out, as typed lists' items may, wait for the list's `kind` (and so reach the sink
//! after the items read while they waited). So a top-level `items` sequence is taken as a list's
//! even in an object whose `kind` turns out not to be one.
//!
//! Objects go through the k8s-openapi types, so a type error names its field
//! (`spec.ports[0].port`, with `serde_path_to_error`); the conversion then checks what DNS needs
//! (names, IP addresses, ports, protocols) and names the field it rejects. Every error also names
//! the file and the object, in one line. A YAML object whose kind can be read off its text is
//! parsed straight into its type; when that fails for any reason it takes the general path
//! (a `serde_yaml::Value` first), which makes the error message.

mod json;
mod yaml;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use clusterdns_zone::{Change, Cluster};
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use serde::de::DeserializeOwned;
use serde::Deserializer;
use serde_yaml::{Mapping, Value};

use crate::objects::{
    endpoint_slice, namespace_name, pod, service, slice_skip_reason, ObjectError, DEFAULT_NAMESPACE,
};

/// File name endings taken from a directory.
const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// Bytes read from a file at a time.
const READ_BUFFER: usize = 64 << 10;

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
    #[error("{}: document {document}{}: not valid {format}: {message}", path.display(), item_suffix(*item))]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The document's position in the file, from 1.
        document: usize,
        /// The list item the error is in (`items[i]`), when it is in one read on its own.
        item: Option<usize>,
        /// `"YAML"` or `"JSON"`.
        format: &'static str,
        /// The parser's message (with the line and column in the file).
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

/// `, items[i]` for a syntax error inside a list item, else nothing.
fn item_suffix(item: Option<usize>) -> String {
    item.map(|i| format!(", items[{i}]")).unwrap_or_default()
}

/// Reads every object in `paths`, handing each one DNS loads to `sink` as an upsert as soon as
/// it is read; Pods are kept only when `keep_pods`. On an error, the objects before it have
/// already been handed over.
pub fn read(
    paths: &[PathBuf],
    keep_pods: bool,
    sink: &mut dyn FnMut(Change),
) -> Result<LoadReport, ManifestError> {
    let mut loader = Loader {
        keep_pods,
        sink,
        report: LoadReport::default(),
    };
    for file in files(paths)? {
        loader.file(&file)?;
    }
    Ok(loader.report)
}

/// Loads every object in `paths` into a [`Cluster`]; Pods are kept only when `keep_pods`.
pub fn load(paths: &[PathBuf], keep_pods: bool) -> Result<(Cluster, LoadReport), ManifestError> {
    let mut cluster = Cluster::default();
    let report = read(paths, keep_pods, &mut |change| match change {
        Change::NamespaceUpsert(name) => cluster.namespaces.push(name),
        Change::ServiceUpsert(service) => cluster.services.push(service),
        Change::SliceUpsert(slice) => cluster.slices.push(slice),
        Change::PodUpsert(pod) => cluster.pods.push(pod),
        // `read` reports what a file holds, never a deletion.
        Change::NamespaceDelete(..)
        | Change::ServiceDelete(..)
        | Change::SliceDelete(..)
        | Change::PodDelete(..) => {}
    })?;
    Ok((cluster, report))
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

/// An object of a kind we load, in its k8s-openapi type.
// One lives at a time, moved once into its conversion: the variants' sizes cost nothing.
#[allow(clippy::large_enum_variant)]
enum Typed {
    Namespace(core::Namespace),
    Service(core::Service),
    EndpointSlice(discovery::EndpointSlice),
    Pod(core::Pod),
}

impl Typed {
    /// Deserializes an object of `kind` from `deserializer`.
    fn deserialize<'de, D: Deserializer<'de>>(
        kind: Kind,
        deserializer: D,
    ) -> Result<Typed, D::Error> {
        Ok(match kind {
            Kind::Namespace => Typed::Namespace(serde::Deserialize::deserialize(deserializer)?),
            Kind::Service => Typed::Service(serde::Deserialize::deserialize(deserializer)?),
            Kind::EndpointSlice => {
                Typed::EndpointSlice(serde::Deserialize::deserialize(deserializer)?)
            }
            Kind::Pod => Typed::Pod(serde::Deserialize::deserialize(deserializer)?),
        })
    }
}

/// What a list says of its items: the kind and apiVersion that typed lists' items inherit.
struct ListKind {
    /// `Service` for a `ServiceList`; `None` for `kind: List`, whose items name their own.
    item_kind: Option<String>,
    /// The list's apiVersion.
    api_version: String,
}

impl ListKind {
    /// The list an object of `kind` is, if it is one.
    fn of(kind: &str, api_version: &str) -> Option<ListKind> {
        let item_kind = kind.strip_suffix("List")?;
        Some(ListKind {
            item_kind: Some(item_kind).filter(|k| !k.is_empty()).map(str::to_owned),
            api_version: api_version.to_owned(),
        })
    }
}

/// Reads files, handing what it converts to the sink.
struct Loader<'s> {
    keep_pods: bool,
    sink: &'s mut dyn FnMut(Change),
    report: LoadReport,
}

impl Loader<'_> {
    /// Reads one file, YAML or JSON by its name, document by document.
    fn file(&mut self, path: &Path) -> Result<(), ManifestError> {
        let file = File::open(path).map_err(|error| read_error(path, error))?;
        let reader = BufReader::with_capacity(READ_BUFFER, file);
        let before = self.report.objects;
        if has_extension(path, &["json"]) {
            json::read(self, path, reader)?;
        } else {
            yaml::read(self, path, reader)?;
        }
        self.report.files += 1;
        tracing::debug!(file = %path.display(), objects = self.report.objects - before, "manifest file read");
        Ok(())
    }

    /// The kind an object whose text says `kind` and `apiVersion` is loaded as, when it is one
    /// we load (and want: Pods only when kept).
    fn wanted(&self, kind: &str, api_version: &str) -> Option<Kind> {
        Kind::classify(api_version, kind)
            .ok()
            .filter(|kind| *kind != Kind::Pod || self.keep_pods)
    }

    /// One document or list item: nothing (an empty document) or an object.
    fn document(&mut self, path: &Path, at: &str, value: Value) -> Result<(), ManifestError> {
        self.document_after(path, at, value, &|_| false)
    }

    /// A document, leaving out the list items `handled` says were handed over already (when a
    /// list is re-read whole after its first items were streamed).
    fn document_after(
        &mut self,
        path: &Path,
        at: &str,
        value: Value,
        handled: &dyn Fn(usize) -> bool,
    ) -> Result<(), ManifestError> {
        match value {
            Value::Null => Ok(()),
            Value::Mapping(map) => self.object(path, at, map, handled),
            other => Err(ManifestError::Document {
                path: path.to_path_buf(),
                at: at.to_owned(),
                message: format!("expected a Kubernetes object, found {}", value_type(&other)),
            }),
        }
    }

    /// An object: a list to open, a kind to load, or a kind to count as skipped.
    fn object(
        &mut self,
        path: &Path,
        at: &str,
        map: Mapping,
        handled: &dyn Fn(usize) -> bool,
    ) -> Result<(), ManifestError> {
        let kind = object_kind(path, at, &map)?.to_owned();
        let api_version = map
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if let Some(list) = ListKind::of(&kind, &api_version) {
            return self.list(path, at, &list, map, handled);
        }
        let Some(kind) = self.wanted(&kind, &api_version) else {
            self.skip_kind(&kind, &api_version);
            return Ok(());
        };
        let context = Context {
            path,
            kind: kind.name(),
            object: describe(&map, kind.namespaced(), at),
        };
        let object = typed(&context, kind, Value::Mapping(map))?;
        self.accept(object).map_err(|e| context.object(e))
    }

    /// The items of `kind: List`, or of a typed list (`ServiceList`).
    fn list(
        &mut self,
        path: &Path,
        at: &str,
        list: &ListKind,
        mut map: Mapping,
        handled: &dyn Fn(usize) -> bool,
    ) -> Result<(), ManifestError> {
        let items = match map.remove("items") {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::Sequence(items)) => items,
            Some(other) => return Err(items_not_a_list(path, at, value_type(&other))),
        };
        for (i, item) in items.into_iter().enumerate() {
            if !handled(i) {
                self.list_item(path, at, i, item, list)?;
            }
        }
        Ok(())
    }

    /// Item `i` of the list document at `at`: typed lists' items may leave out their kind and
    /// apiVersion, which they then take from the list.
    fn list_item(
        &mut self,
        path: &Path,
        at: &str,
        i: usize,
        mut item: Value,
        list: &ListKind,
    ) -> Result<(), ManifestError> {
        if let (Some(item_kind), Value::Mapping(fields)) = (&list.item_kind, &mut item) {
            default_field(fields, "kind", item_kind);
            default_field(fields, "apiVersion", &list.api_version);
        }
        self.document(path, &format!("{at}, items[{i}]"), item)
    }

    /// Converts an object of a kind we load and hands it to the sink (or counts an
    /// EndpointSlice DNS leaves out). Nothing is handed over or counted when it fails.
    fn accept(&mut self, object: Typed) -> Result<(), ObjectError> {
        let change = match object {
            Typed::Namespace(object) => Change::NamespaceUpsert(namespace_name(&object.metadata)?),
            Typed::Service(object) => Change::ServiceUpsert(service(object)?),
            Typed::EndpointSlice(object) => {
                if let Some(reason) = slice_skip_reason(&object) {
                    self.skip(reason);
                    return Ok(());
                }
                Change::SliceUpsert(endpoint_slice(object)?)
            }
            Typed::Pod(object) => Change::PodUpsert(pod(object)?),
        };
        (self.sink)(change);
        self.report.objects += 1;
        Ok(())
    }

    /// Counts an object of a kind that is not loaded (or a Pod, when Pods are not kept).
    fn skip_kind(&mut self, kind: &str, api_version: &str) {
        match Kind::classify(api_version, kind) {
            Ok(kind) => self.skip(kind.name()),
            Err(key) => self.skip(&key),
        }
    }

    fn skip(&mut self, key: &str) {
        *self.report.skipped.entry(key.to_owned()).or_default() += 1;
    }
}

/// An object's `kind`, required.
fn object_kind<'m>(path: &Path, at: &str, map: &'m Mapping) -> Result<&'m str, ManifestError> {
    match map.get("kind").and_then(Value::as_str) {
        Some(kind) if !kind.is_empty() => Ok(kind),
        _ => Err(ManifestError::Document {
            path: path.to_path_buf(),
            at: at.to_owned(),
            message: "kind: missing (not a Kubernetes object)".to_owned(),
        }),
    }
}

/// The error of a list whose `items` is not a sequence (`found` names what it is).
fn items_not_a_list(path: &Path, at: &str, found: &str) -> ManifestError {
    ManifestError::Document {
        path: path.to_path_buf(),
        at: at.to_owned(),
        message: format!("items: expected a list, found {found}"),
    }
}

/// A [`ManifestError::Syntax`] for `path`; `item` when the error is inside a list item read
/// on its own.
fn syntax_error(
    path: &Path,
    document: usize,
    item: Option<usize>,
    format: &'static str,
    message: String,
) -> ManifestError {
    ManifestError::Syntax {
        path: path.to_path_buf(),
        document,
        item,
        format,
        message,
    }
}

/// A parser's message with every `at line N` moved down by `lines`, for text that started
/// `lines` lines into the file.
fn relocate(message: &str, lines: usize) -> String {
    relocate_with(message, |line| line + lines)
}

/// A parser's message with every `at line N` made `file_line(N)`.
fn relocate_with(message: &str, file_line: impl Fn(usize) -> usize) -> String {
    const AT_LINE: &str = "at line ";
    let mut out = String::with_capacity(message.len() + 8);
    let mut rest = message;
    while let Some(found) = rest.find(AT_LINE) {
        let (before, after) = rest.split_at(found + AT_LINE.len());
        out.push_str(before);
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        match after[..digits].parse::<usize>() {
            Ok(line) => out.push_str(&file_line(line).to_string()),
            Err(_) => out.push_str(&after[..digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
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
fn typed(context: &Context<'_>, kind: Kind, value: Value) -> Result<Typed, ManifestError> {
    fn field<T: DeserializeOwned>(context: &Context<'_>, value: Value) -> Result<T, ManifestError> {
        serde_path_to_error::deserialize(value).map_err(|error| {
            let field = error.path().to_string();
            context.error(field, error.into_inner().to_string())
        })
    }
    Ok(match kind {
        Kind::Namespace => Typed::Namespace(field(context, value)?),
        Kind::Service => Typed::Service(field(context, value)?),
        Kind::EndpointSlice => Typed::EndpointSlice(field(context, value)?),
        Kind::Pod => Typed::Pod(field(context, value)?),
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

    /// Every change `read` hands over for one file with this text (named `name`), pods kept.
    fn read_text(name: &str, text: &str) -> Result<Vec<Change>, ManifestError> {
        let scratch = Scratch::new();
        let path = scratch.write(name, text);
        let mut changes = Vec::new();
        read(&[path], true, &mut |change| changes.push(change))?;
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
            .map(|object| serde_yaml::from_str(object).unwrap())
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
        let error = read(&[path], true, &mut |change| changes.push(change)).unwrap_err();
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
        let message = load_err(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n\nkind: [unclosed\n",
        );
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
    fn flow_style_and_anchors_are_parsed_whole() {
        let flow = "apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: Namespace, metadata: {name: a}},\n  {apiVersion: v1, kind: Namespace, metadata: {name: b}}]\n";
        let (cluster, _) = load_ok(flow);
        assert_eq!(cluster.namespaces, vec![Box::<str>::from("a"), "b".into()]);
        // An alias in items[2] of an anchor in items[1]: the document is read again whole,
        // leaving out the items already handed over.
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
        let (cluster, _) = load_ok("apiVersion: &v v1\nkind: NamespaceList\nitems:\n- apiVersion: *v\n  metadata: {name: c}\n");
        assert_eq!(cluster.namespaces, vec![Box::<str>::from("c")]);
    }

    #[test]
    fn lines_the_splitter_cannot_place_are_parsed_whole() {
        // A flow sequence carried on at the left margin, after items went out.
        let text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: a}}\n- apiVersion: v1\n  kind: Service\n  metadata: {name: web}\n  spec: {clusterIPs: [10.0.0.1,\n10.0.0.2]}\n";
        let whole: Value = serde_yaml::from_str(text).unwrap();
        assert!(whole.get("items").is_some());
        let (cluster, report) = load_ok(text);
        assert_eq!(cluster.namespaces, vec![Box::<str>::from("a")]);
        assert_eq!(
            cluster.services[0].kind,
            ServiceKind::ClusterIp(vec![ip("10.0.0.1"), ip("10.0.0.2")])
        );
        assert_eq!(report.objects, 2);
    }

    /// What reading `text` whole, one `serde_yaml::Value` per document (as before streaming),
    /// hands over and reports; or the error's message.
    fn read_whole(text: &str) -> Result<(Vec<Change>, LoadReport), String> {
        let mut changes = Vec::new();
        let mut sink = |change| changes.push(change);
        let mut loader = Loader {
            keep_pods: true,
            sink: &mut sink,
            report: LoadReport::default(),
        };
        let path = Path::new("m.yaml");
        for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
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
    fn the_splitter_reads_what_a_whole_parse_reads() {
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
            "\u{feff}apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n".to_owned(),
            fs::read_to_string(fixture("kubectl-get-all.yaml")).unwrap(),
            fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/cluster.yaml")).unwrap(),
        ];
        for text in cases {
            let scratch = Scratch::new();
            let path = scratch.write("m.yaml", &text);
            let mut changes = Vec::new();
            let streamed = read(&[path], true, &mut |change| changes.push(change))
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
    fn relocate_moves_every_line() {
        assert_eq!(
            relocate(
                "did not find key at line 2 column 3, while parsing at line 1 column 1",
                10
            ),
            "did not find key at line 12 column 3, while parsing at line 11 column 1"
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
