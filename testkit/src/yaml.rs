//! Kubernetes objects in YAML files, read strictly, as the deploy tests read `deploy/`: every
//! document of every file handed to a [`FromYaml`] collection, each deserialised ([`strict`])
//! into its k8s-openapi type with any field the type does not know (one the API server would
//! drop) named by its path.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use yaml_serde::Value;

/// The documents of every `*.yaml` file directly in `dir` (not in subdirectories), by file name,
/// each file named `LABEL/FILE` in [`Document::what`]; panics when there is no such file or one
/// cannot be read, fails on a document that is not YAML.
fn documents_in(dir: &Path, label: &str) -> Result<Vec<Document>, String> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no {}/*.yaml", dir.display());
    let mut all = Vec::new();
    for path in files {
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        all.extend(documents(&format!("{label}/{name}"), &text)?);
    }
    Ok(all)
}

/// One document of a YAML file.
pub struct Document {
    /// `FILE: document N (KIND "NAME")`, for messages.
    pub what: String,
    /// Its `kind` (empty when it has none).
    pub kind: String,
    /// The document.
    pub value: Value,
}

/// The non-empty documents of `text`, the file named `file`; the error names the document that
/// is not YAML.
fn documents(file: &str, text: &str) -> Result<Vec<Document>, String> {
    let mut documents = Vec::new();
    for (index, document) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document)
            .map_err(|e| format!("{file}: document {index}: not YAML: {e}"))?;
        if value.is_null() {
            continue;
        }
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = (value.get("metadata"))
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        documents.push(Document {
            what: format!("{file}: document {index} ({kind} {name:?})"),
            kind: kind.to_owned(),
            value,
        });
    }
    Ok(documents)
}

/// Objects of the kinds a test checks, collected from YAML documents.
pub trait FromYaml: Default {
    /// Takes one document (deserialised with [`strict`]), or says why not: a kind the test
    /// does not check, a field its type does not know.
    fn add(&mut self, document: Document) -> Result<(), String>;

    /// Takes every document of `text`, the file named `file`.
    fn add_file(&mut self, file: &str, text: &str) -> Result<(), String> {
        documents(file, text)?
            .into_iter()
            .try_for_each(|document| self.add(document))
    }

    /// Every document of every `*.yaml` file directly in `dir` (not in subdirectories), files
    /// named `LABEL/FILE`; panics naming the file, the object and the field of the first problem.
    fn load_dir(dir: &Path, label: &str) -> Self {
        let mut objects = Self::default();
        let added = documents_in(dir, label)
            .and_then(|documents| documents.into_iter().try_for_each(|d| objects.add(d)));
        if let Err(message) = added {
            panic!("{message}");
        }
        objects
    }
}

/// Deserialises `document` into `T` (a k8s-openapi type checks apiVersion and kind); any field
/// `T` does not know, which k8s-openapi skips silently as the API server drops it, is an error
/// naming it by its path as written in YAML (`spec.template.spec.containers[0].name`).
pub fn strict<T: DeserializeOwned>(what: &str, document: Value) -> Result<T, String> {
    let mut unknown = Vec::new();
    let object = serde_ignored::deserialize(document, |path| unknown.push(field_path(&path)))
        .map_err(|e| format!("{what}: {e}"))?;
    if unknown.is_empty() {
        Ok(object)
    } else {
        Err(format!("{what}: unknown fields: {}", unknown.join(", ")))
    }
}

/// `spec.template.spec.containers[0].name`: the path as it is written in YAML.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        P::Map { parent, key } => match field_path(parent) {
            parent if parent.is_empty() => key.clone(),
            parent => format!("{parent}.{key}"),
        },
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            field_path(parent)
        }
    }
}
