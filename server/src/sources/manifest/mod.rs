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
//! Memory follows the largest single object, however large the file (and, in YAML, the anchored
//! nodes of the document being read).
//!
//! - JSON ([`json`]) is read through a `BufReader` by serde visitors; the `items` of a list are
//!   visited one element at a time, each decoded, converted and dropped.
//! - YAML ([`yaml`]) is parsed by saphyr-parser on a thread of its own, whose events build one
//!   value per document and, for a list, one per item of its top-level `items` sequence.
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
//! the file and the object, in one line.

pub mod watch;

mod json;
mod messages;
mod yaml;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use clusterdns_zone::{Change, Cluster, ObjectKind};
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use serde::Deserializer;
use yaml_serde::{Mapping, Value};

use crate::sources::objects::{
    endpoint_slice, namespace_name, pod, pod_addresses, service, slice_skip_reason, ObjectError,
    Seen, DEFAULT_NAMESPACE,
};
use crate::sources::{PodChanges, Selection};

use messages::{
    api_version, default_field, describe, items_not_a_list, object_kind, syntax_error, typed,
    value_type, Context,
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
/// it is read; Pods become what `pods` asks for (whole Pods, client addresses), or are skipped.
/// The files are a full list: a Pod that is not a client (finished, terminating, host-network)
/// makes no change. On an error, the objects before it have already been handed over.
pub fn read(
    paths: &[PathBuf],
    pods: PodChanges,
    sink: &mut dyn FnMut(Change),
) -> Result<LoadReport, ManifestError> {
    read_selected(paths, pods, &Selection::default(), sink)
}

/// [`read`], leaving out the objects `selection`'s label selectors do not match (counted as
/// skipped) and naming endpoints as it says.
pub fn read_selected(
    paths: &[PathBuf],
    pods: PodChanges,
    selection: &Selection,
    sink: &mut dyn FnMut(Change),
) -> Result<LoadReport, ManifestError> {
    let mut loader = Loader {
        pods,
        selection,
        sink,
        report: LoadReport::default(),
    };
    for file in files(paths)? {
        loader.file(&file)?;
    }
    Ok(loader.report)
}

/// Loads every object in `paths` into a [`Cluster`]; Pods are kept only when `keep_pods` (a
/// `Cluster` has no client addresses).
pub fn load(paths: &[PathBuf], keep_pods: bool) -> Result<(Cluster, LoadReport), ManifestError> {
    let mut cluster = Cluster::default();
    let pods = PodChanges {
        verified: keep_pods,
        addresses: false,
    };
    let report = read(paths, pods, &mut |change| match change {
        Change::NamespaceUpsert(name) => cluster.namespaces.push(name),
        Change::ServiceUpsert(service) => cluster.services.push(service),
        Change::SliceUpsert(slice) => cluster.slices.push(slice),
        Change::PodUpsert(pod) => cluster.pods.push(pod),
        // `read` reports what a file holds, never a deletion, and no client address here.
        Change::NamespaceDelete(..)
        | Change::ServiceDelete(..)
        | Change::SliceDelete(..)
        | Change::PodDelete(..)
        | Change::PodAddressUpsert(..)
        | Change::PodAddressDelete(..) => {}
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

/// The kind an object is loaded as, or the key it is counted under when skipped.
fn classify(api_version: &str, kind: &str) -> Result<ObjectKind, String> {
    match ObjectKind::ALL.into_iter().find(|k| k.name() == kind) {
        Some(known) if known.api_version() == api_version => Ok(known),
        Some(known) if api_version.is_empty() => Err(format!("{} (no apiVersion)", known.name())),
        Some(known) => Err(format!("{} ({api_version})", known.name())),
        None => Err(kind.to_owned()),
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
        kind: ObjectKind,
        deserializer: D,
    ) -> Result<Typed, D::Error> {
        Ok(match kind {
            ObjectKind::Namespace => {
                Typed::Namespace(serde::Deserialize::deserialize(deserializer)?)
            }
            ObjectKind::Service => Typed::Service(serde::Deserialize::deserialize(deserializer)?),
            ObjectKind::EndpointSlice => {
                Typed::EndpointSlice(serde::Deserialize::deserialize(deserializer)?)
            }
            ObjectKind::Pod => Typed::Pod(serde::Deserialize::deserialize(deserializer)?),
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
    pods: PodChanges,
    selection: &'s Selection,
    sink: &'s mut dyn FnMut(Change),
    report: LoadReport,
}

impl Loader<'_> {
    /// Reads one file, YAML or JSON by its name, document by document.
    fn file(&mut self, path: &Path) -> Result<(), ManifestError> {
        let file = File::open(path).map_err(|error| read_error(path, error))?;
        let before = self.report.objects;
        if has_extension(path, &["json"]) {
            json::read(self, path, BufReader::with_capacity(READ_BUFFER, file))?;
        } else {
            yaml::read(self, path, file)?;
        }
        self.report.files += 1;
        tracing::debug!(file = %path.display(), objects = self.report.objects - before, "manifest file read");
        Ok(())
    }

    /// The kind an object whose text says `kind` and `apiVersion` is loaded as, when it is one
    /// we load (and want: Pods only when something is made of them).
    fn wanted(&self, kind: &str, api_version: &str) -> Option<ObjectKind> {
        classify(api_version, kind)
            .ok()
            .filter(|kind| *kind != ObjectKind::Pod || self.pods.any())
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
        let kind = object_kind(path, at, &map)?.to_owned();
        let api_version = api_version(&map).to_owned();
        if let Some(list) = ListKind::of(&kind, &api_version) {
            return self.list(path, at, &list, map);
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
    ) -> Result<(), ManifestError> {
        let items = match map.remove("items") {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::Sequence(items)) => items,
            Some(other) => return Err(items_not_a_list(path, at, value_type(&other))),
        };
        for (i, item) in items.into_iter().enumerate() {
            self.list_item(path, at, i, item, list)?;
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
        let (kind, labels) = match &object {
            Typed::Namespace(o) => (ObjectKind::Namespace, o.metadata.labels.as_ref()),
            Typed::Service(o) => (ObjectKind::Service, o.metadata.labels.as_ref()),
            Typed::EndpointSlice(o) => (ObjectKind::EndpointSlice, o.metadata.labels.as_ref()),
            Typed::Pod(o) => (ObjectKind::Pod, o.metadata.labels.as_ref()),
        };
        if !self.selection.admits(kind, labels) {
            // As the API server leaves it out of a list with the selector.
            let option = match kind {
                ObjectKind::Namespace => "namespace_labels",
                _ => "labels",
            };
            self.skip(&format!("{} (not selected by {option})", kind.name()));
            return Ok(());
        }
        let change = match object {
            Typed::Namespace(object) => Change::NamespaceUpsert(namespace_name(&object.metadata)?),
            Typed::Service(object) => Change::ServiceUpsert(service(object)?),
            Typed::EndpointSlice(object) => {
                if let Some(reason) = slice_skip_reason(&object) {
                    self.skip(reason);
                    return Ok(());
                }
                Change::SliceUpsert(endpoint_slice(object, self.selection.endpoint_pod_names)?)
            }
            Typed::Pod(object) => {
                // Both converted before either is handed over.
                let addresses = if self.pods.addresses {
                    pod_addresses(&object)?
                } else {
                    None
                };
                let whole = if self.pods.verified {
                    Some(pod(object)?)
                } else {
                    None
                };
                let listed = addresses.map(|a| a.changes(Seen::Listed));
                let whole = whole.map(Change::PodUpsert);
                listed
                    .into_iter()
                    .flatten()
                    .chain(whole)
                    .for_each(&mut *self.sink);
                self.report.objects += 1;
                return Ok(());
            }
        };
        (self.sink)(change);
        self.report.objects += 1;
        Ok(())
    }

    /// Counts an object of a kind that is not loaded (or a Pod, when nothing is made of Pods).
    fn skip_kind(&mut self, kind: &str, api_version: &str) {
        match classify(api_version, kind) {
            Ok(kind) => self.skip(kind.name()),
            Err(key) => self.skip(&key),
        }
    }

    fn skip(&mut self, key: &str) {
        *self.report.skipped.entry(key.to_owned()).or_default() += 1;
    }
}

#[cfg(test)]
mod tests;
