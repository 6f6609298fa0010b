//! JSON manifests, streamed: each document is decoded by a serde visitor straight from the
//! file's reader, and the `items` array of a list is visited one element at a time, each
//! element decoded on its own (into a `yaml_serde::Value`, as whole documents were before),
//! converted and dropped.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader};
use std::path::Path;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use yaml_serde::{Mapping, Value};

use super::{
    api_version, items_not_a_list, object_kind, syntax_error, ListKind, Loader, ManifestError,
};

/// Reads every JSON document of the file `reader` reads.
pub(super) fn read(
    loader: &mut Loader<'_>,
    path: &Path,
    reader: BufReader<File>,
) -> Result<(), ManifestError> {
    // One deserializer for the whole file, owning its reader: serde_json reads a byte at a time,
    // fastest from a `BufReader` it owns, and counts the file's lines for its messages.
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    let mut document = 0;
    loop {
        // `end` looks past whitespace without taking what follows: nothing left, or another
        // document.
        match deserializer.end() {
            Ok(()) => return Ok(()),
            Err(error) if error.is_io() => return Err(io_error(path, error)),
            Err(_) => {}
        }
        document += 1;
        let mut state = Document {
            loader: &mut *loader,
            path,
            at: format!("document {document}"),
            failure: None,
            item: None,
        };
        let result = DocumentSeed(&mut state).deserialize(&mut deserializer);
        if let Some(failure) = state.failure {
            return Err(failure);
        }
        match result {
            Ok(()) => {}
            Err(error) if error.is_io() => return Err(io_error(path, error)),
            Err(error) => {
                return Err(syntax_error(
                    path,
                    document,
                    state.item,
                    "JSON",
                    error.to_string(),
                ))
            }
        }
    }
}

/// A [`ManifestError::Read`] of an error serde_json met reading the file.
fn io_error(path: &Path, error: serde_json::Error) -> ManifestError {
    let error = io::Error::from(error);
    super::read_error(path, error)
}

/// One document being read: where it is, and the error that stopped it (serde's own error
/// type cannot carry a [`ManifestError`], so the visitors leave it here and return a bare
/// serde error to unwind).
struct Document<'a, 'l> {
    loader: &'a mut Loader<'l>,
    path: &'a Path,
    /// `document N`.
    at: String,
    failure: Option<ManifestError>,
    /// The list item being decoded, for a syntax error inside it.
    item: Option<usize>,
}

impl Document<'_, '_> {
    /// Keeps `result`'s error and turns it into a serde error that stops the parse.
    fn check<E: de::Error>(&mut self, result: Result<(), ManifestError>) -> Result<(), E> {
        result.map_err(|failure| {
            self.failure = Some(failure);
            E::custom("stopped")
        })
    }
}

/// A top-level document: an object, or nothing.
struct DocumentSeed<'d, 'a, 'l>(&'d mut Document<'a, 'l>);

impl<'de> DeserializeSeed<'de> for DocumentSeed<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl DocumentSeed<'_, '_, '_> {
    /// A document that is not an object.
    fn not_an_object<E: de::Error>(self, found: &str) -> Result<(), E> {
        let failure = ManifestError::Document {
            path: self.0.path.to_path_buf(),
            at: self.0.at.clone(),
            message: format!("expected a Kubernetes object, found {found}"),
        };
        self.0.check(Err(failure))
    }
}

impl<'de> Visitor<'de> for DocumentSeed<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.not_an_object("a boolean")
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.not_an_object("a number")
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.not_an_object("a number")
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.not_an_object("a number")
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.not_an_object("a string")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.not_an_object("a list")
    }

    /// An object, key by key: `items` is streamed, every other key is kept (they are small)
    /// to convert the object, or to learn the list's kind, at its end.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.0;
        let mut fields = Mapping::new();
        let mut items = Items::default();
        while let Some(key) = map.next_key::<String>()? {
            if key != "items" {
                let value: Value = map.next_value()?;
                fields.insert(Value::String(key), value);
                continue;
            }
            let list = match fields.get("kind").map(Value::as_str) {
                // The kind is known: a list's items stream with its defaults, another
                // object's `items` is no field DNS reads.
                Some(kind) => match ListKind::of(kind.unwrap_or_default(), api_version(&fields)) {
                    Some(list) => Some(list),
                    None => {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                },
                None => None,
            };
            map.next_value_seed(ItemsSeed {
                state: &mut *state,
                list: list.as_ref(),
                items: &mut items,
            })?;
        }
        let result = finish(state, fields, items);
        state.check(result)
    }
}

/// What an object's `items` held, as far as its end needs to know.
#[derive(Default)]
struct Items {
    /// Items read before the list's kind was known that need it: (index, item).
    waiting: Vec<(usize, Value)>,
    /// What `items` was when it is not a sequence (for the error, if the object is a list).
    not_a_list: Option<&'static str>,
}

/// The end of an object: a list's waiting items, or the object itself.
fn finish(
    state: &mut Document<'_, '_>,
    fields: Mapping,
    items: Items,
) -> Result<(), ManifestError> {
    let kind = object_kind(state.path, &state.at, &fields)?;
    match ListKind::of(kind, api_version(&fields)) {
        Some(list) => {
            if let Some(found) = items.not_a_list {
                return Err(items_not_a_list(state.path, &state.at, found));
            }
            for (i, item) in items.waiting {
                state
                    .loader
                    .list_item(state.path, &state.at, i, item, &list)?;
            }
            Ok(())
        }
        None => state.loader.object(state.path, &state.at, fields),
    }
}

/// An object's `items`: streamed when a sequence.
struct ItemsSeed<'s, 'a, 'l> {
    state: &'s mut Document<'a, 'l>,
    /// The list, when its kind came before its items.
    list: Option<&'s ListKind>,
    items: &'s mut Items,
}

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl ItemsSeed<'_, '_, '_> {
    fn other<E>(self, found: &'static str) -> Result<(), E> {
        self.items.not_a_list = Some(found);
        Ok(())
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of Kubernetes objects")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.other("a boolean")
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.other("a number")
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.other("a number")
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.other("a number")
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.other("a string")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        IgnoredAny.visit_map(map)?;
        self.other("a mapping")
    }

    /// Each element is decoded, converted and dropped before the next is read.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let state = self.state;
        for i in 0.. {
            state.item = Some(i);
            let Some(item) = seq.next_element::<Value>()? else {
                break;
            };
            state.item = None;
            let result = match self.list {
                Some(list) => state.loader.list_item(state.path, &state.at, i, item, list),
                // The list's kind is still to come: an item naming its own kind and apiVersion
                // takes nothing from it, so it can go now.
                None if names_itself(&item) => {
                    let at = format!("{}, items[{i}]", state.at);
                    state.loader.document(state.path, &at, item)
                }
                None => {
                    self.items.waiting.push((i, item));
                    Ok(())
                }
            };
            state.check(result)?;
        }
        state.item = None;
        Ok(())
    }
}

/// Whether a list item has its own `kind` and `apiVersion`, so a list's defaults change nothing.
fn names_itself(item: &Value) -> bool {
    match item {
        Value::Mapping(fields) => fields.contains_key("kind") && fields.contains_key("apiVersion"),
        _ => true,
    }
}
