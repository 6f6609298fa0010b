//! How a manifest error names its file, object and field: the error constructors, the
//! parser messages moved to the file's own line numbers, and the typed deserialization that
//! names the field of a type error.

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

/// A parser's message with every `at line N` moved down by `lines`, for text that started
/// `lines` lines into the file.
pub(super) fn relocate(message: &str, lines: usize) -> String {
    relocate_with(message, |line| line + lines)
}

/// A parser's message with every `at line N` made `file_line(N)`.
pub(super) fn relocate_with(message: &str, file_line: impl Fn(usize) -> usize) -> String {
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
    pub(super) fn field<T: DeserializeOwned>(
        context: &Context<'_>,
        value: Value,
    ) -> Result<T, ManifestError> {
        serde_path_to_error::deserialize(value).map_err(|error| {
            let field = error.path().to_string();
            context.error(field, error.into_inner().to_string())
        })
    }
    Ok(match kind {
        ObjectKind::Namespace => Typed::Namespace(field(context, value)?),
        ObjectKind::Service => Typed::Service(field(context, value)?),
        ObjectKind::EndpointSlice => Typed::EndpointSlice(field(context, value)?),
        ObjectKind::Pod => Typed::Pod(field(context, value)?),
    })
}
