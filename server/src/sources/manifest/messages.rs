//! How a manifest error names its file, object and field: the error constructors and the
//! typed deserialization that names the field of a type error.

use super::*;

/// An object's `kind`, required.
pub(super) fn object_kind<'m>(
    path: &Path,
    at: &str,
    map: &'m Mapping,
) -> Result<&'m str, ManifestError> {
    match map.get("kind").and_then(Value::as_str) {
        Some(kind) if !kind.is_empty() => Ok(kind),
        _ => Err(ManifestError::Document {
            path: path.to_path_buf(),
            at: at.to_owned(),
            message: "kind: missing (not a Kubernetes object)".to_owned(),
        }),
    }
}

/// An object's `apiVersion`, empty when missing.
pub(super) fn api_version(map: &Mapping) -> &str {
    map.get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The error of a list whose `items` is not a sequence (`found` names what it is).
pub(super) fn items_not_a_list(path: &Path, at: &str, found: &str) -> ManifestError {
    ManifestError::Document {
        path: path.to_path_buf(),
        at: at.to_owned(),
        message: format!("items: expected a list, found {found}"),
    }
}

/// A [`ManifestError::Syntax`] for `path`; `item` when the error is inside a list item read
/// on its own.
pub(super) fn syntax_error(
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

/// Sets `key` to `value` unless the object already has it.
pub(super) fn default_field(fields: &mut Mapping, key: &str, value: &str) {
    if !fields.contains_key(key) {
        fields.insert(Value::from(key), Value::from(value));
    }
}

/// A YAML value's type, for messages.
pub(super) fn value_type(value: &Value) -> &'static str {
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
pub(super) fn describe(map: &Mapping, namespaced: bool, at: &str) -> String {
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
pub(super) struct Context<'a> {
    pub(super) path: &'a Path,
    pub(super) kind: &'static str,
    pub(super) object: String,
}

impl Context<'_> {
    pub(super) fn error(
        &self,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ManifestError {
        ManifestError::Object {
            path: self.path.to_path_buf(),
            kind: self.kind,
            object: self.object.clone(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// The error of a converted object, placed in its file.
    pub(super) fn object(&self, error: ObjectError) -> ManifestError {
        self.error(error.field, error.message)
    }
}

/// Deserializes an object into its k8s-openapi type, naming the field of a type error.
pub(super) fn typed(
    context: &Context<'_>,
    kind: ObjectKind,
    value: Value,
) -> Result<Typed, ManifestError> {
    let mut track = serde_path_to_error::Track::new();
    let deserializer = serde_path_to_error::Deserializer::new(value, &mut track);
    Typed::deserialize(kind, deserializer)
        .map_err(|error| context.error(track.path().to_string(), error.to_string()))
}
