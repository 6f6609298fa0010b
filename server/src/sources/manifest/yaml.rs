//! YAML manifests, streamed. saphyr-parser reads the file on a thread of its own and sends its
//! events, a batch at a time, to the loading thread, which builds one `yaml_serde::Value` per
//! document and, for a list, one per item of its top-level `items` sequence, handing each item
//! over as soon as it is complete:
//!
//! ```text
//!  file ──UTF-8──▶ parser thread ──event batches (bounded)──▶ loading thread ──▶ Loader
//!
//! apiVersion: v1          ─┐
//! items:                   │ the list's own keys: kept until the document ends
//! - apiVersion: v1        ─┐
//!   kind: Service          │ items[0]: built, handed over and dropped as soon as it ends
//!   ...                   ─┘
//! - apiVersion: v1           items[1] ...
//! kind: List              ─┐
//! metadata: {}            ─┘ (kubectl sorts keys: the list's kind comes after its items)
//! ```
//!
//! Events carry no layout, so block and flow style stream alike. An anchor may be used in a
//! later item: the anchored nodes of the document being read are kept until it ends, and what
//! anchors and aliases copy is bounded, as is the nesting an alias brings. Memory follows the
//! largest object, those anchors and the batches in flight (bounded in events and in bytes),
//! not the file. The two threads parse and build side by side, so a large file takes about as
//! long as its parse.
//!
//! Plain scalars are resolved as yaml_serde resolves them (YAML 1.2's core schema: `null`,
//! `true`, `0x1F`, `.inf`; `0123` stays a string). A syntax error names the file's line and
//! column and, inside a list, the item.

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{self, Read};
use std::mem;
use std::path::Path;
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;

use saphyr_parser::{BufferedInput, Event, Marker, Parser, ScalarStyle, ScanError, Tag};
use yaml_serde::mapping::Entry;
use yaml_serde::value::{Tag as ValueTag, TaggedValue};
use yaml_serde::{Mapping, Number, Sequence, Value};

use super::{
    api_version, object_kind, read_error, syntax_error, ListKind, Loader, ManifestError,
    READ_BUFFER,
};

/// Events the parser sends at a time.
const BATCH: usize = 4096;

/// Batches in flight between the threads: how far the parser may run ahead of the loader.
const IN_FLIGHT: usize = 2;

/// How deep collections may nest (yaml_serde's limit too): deeper is refused, not recursed into.
const MAX_DEPTH: usize = 128;

/// What the anchors of one document may copy in all, kept and aliased, counted as the bytes of
/// their strings and 32 a node, so that aliases of aliases cannot fill memory (a Kubernetes
/// object that uses anchors copies a few kilobytes).
const MAX_COPIED: usize = 64 << 20;

/// Bytes of scalar text after which a batch is sent however few its events.
const BATCH_BYTES: usize = 256 << 10;

/// An event and where it starts in the file.
type Located = (Event<'static>, Marker);

/// What the parser thread sends: events, or why it stopped before the end.
type Batch = Result<Vec<Located>, Stop>;

/// Why the parser stopped before the end of the file.
enum Stop {
    /// The file could not be read, or is not UTF-8.
    Read(io::Error),
    /// The text is not YAML.
    Syntax(ScanError),
}

/// Reads every YAML document of `file`.
pub(super) fn read(
    loader: &mut Loader<'_>,
    path: &Path,
    file: impl Read + Send,
) -> Result<(), ManifestError> {
    let (sender, receiver) = mpsc::sync_channel(IN_FLIGHT);
    thread::scope(|scope| {
        thread::Builder::new()
            .name("manifest-yaml".to_owned())
            .spawn_scoped(scope, move || parse(file, &sender))
            .map_err(|error| read_error(path, error))?;
        // The reader owns the receiving end: when it returns early, the parser's next send
        // fails and the parser stops, before the scope waits for it.
        let mut reader = Reader {
            loader,
            path,
            events: Events {
                receiver,
                batch: Vec::new().into_iter(),
            },
            documents: 0,
            inside: false,
            item: None,
            anchors: HashMap::new(),
            copied: 0,
        };
        reader.stream()
    })
}

/// Parses the text of `file`, sending its events until the end of the stream, the first
/// failure, or a loader that stopped listening.
fn parse(file: impl Read, sender: &SyncSender<Batch>) {
    let failure = Rc::new(Cell::new(None));
    let chars = Chars {
        reader: file,
        text: String::new(),
        at: 0,
        partial: Vec::new(),
        failure: Rc::clone(&failure),
    };
    let mut parser = Parser::new(BufferedInput::new(chars));
    let mut batch = Vec::with_capacity(BATCH);
    let mut bytes = 0;
    loop {
        let next = parser.next_event();
        // A failure to read ends the characters: what the parser makes of that end is not sent.
        if let Some(error) = failure.take() {
            let _ = sender.send(Err(Stop::Read(error)));
            return;
        }
        let (last, stop) = match next {
            Some(Ok((event, span))) => {
                let last = matches!(event, Event::StreamEnd);
                if let Event::Scalar(text, ..) = &event {
                    bytes += text.len();
                }
                batch.push((event, span.start));
                (last, None)
            }
            Some(Err(error)) => (true, Some(Stop::Syntax(error))),
            None => (true, None),
        };
        if batch.len() == BATCH || bytes >= BATCH_BYTES || last {
            bytes = 0;
            let full = mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if sender.send(Ok(full)).is_err() {
                return;
            }
        }
        if last {
            if let Some(stop) = stop {
                let _ = sender.send(Err(stop));
            }
            return;
        }
    }
}

/// The characters of a UTF-8 file, read a block at a time. The first failure (a read error,
/// bytes that are not UTF-8) ends them and is left in `failure`.
struct Chars<R> {
    reader: R,
    /// The block being read.
    text: String,
    /// Byte offset of the next character in `text`.
    at: usize,
    /// The bytes of a character cut by the end of the last block.
    partial: Vec<u8>,
    failure: Rc<Cell<Option<io::Error>>>,
}

impl<R: Read> Chars<R> {
    /// Reads the next block into `text`; false at the end of the file or on a failure.
    fn refill(&mut self) -> bool {
        let mut bytes = mem::take(&mut self.text).into_bytes();
        bytes.clear();
        self.at = 0;
        bytes.append(&mut self.partial);
        let start = bytes.len();
        bytes.resize(start + READ_BUFFER, 0);
        let read = loop {
            match self.reader.read(&mut bytes[start..]) {
                Ok(read) => break read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return self.fail(error),
            }
        };
        bytes.truncate(start + read);
        if read == 0 {
            if !bytes.is_empty() {
                return self.fail(not_utf8());
            }
            return false;
        }
        if let Err(error) = std::str::from_utf8(&bytes) {
            if error.error_len().is_some() {
                return self.fail(not_utf8());
            }
            // A character cut by the block's end: completed by the next block.
            self.partial = bytes.split_off(error.valid_up_to());
        }
        match String::from_utf8(bytes) {
            Ok(text) => self.text = text,
            Err(_) => return self.fail(not_utf8()),
        }
        true
    }

    fn fail(&mut self, error: io::Error) -> bool {
        self.failure.set(Some(error));
        false
    }
}

impl<R: Read> Iterator for Chars<R> {
    type Item = char;

    #[inline]
    fn next(&mut self) -> Option<char> {
        loop {
            if let Some(c) = self.text[self.at..].chars().next() {
                self.at += c.len_utf8();
                return Some(c);
            }
            if !self.refill() {
                return None;
            }
        }
    }
}

/// The error of a file that is not UTF-8, worded as the standard library words it.
fn not_utf8() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "stream did not contain valid UTF-8",
    )
}

/// The loading thread's end of the parser's events.
struct Events {
    receiver: Receiver<Batch>,
    batch: std::vec::IntoIter<Located>,
}

impl Events {
    fn next(&mut self) -> Result<Located, Stop> {
        loop {
            if let Some(event) = self.batch.next() {
                return Ok(event);
            }
            match self.receiver.recv() {
                Ok(Ok(batch)) => self.batch = batch.into_iter(),
                Ok(Err(stop)) => return Err(stop),
                // The parser sends the end of the stream or why it stopped before it hangs up.
                Err(_) => return Err(Stop::Read(io::Error::other("the YAML parser stopped"))),
            }
        }
    }
}

/// Builds documents and list items from the parser's events and hands them to the loader.
struct Reader<'a, 'l> {
    loader: &'a mut Loader<'l>,
    path: &'a Path,
    events: Events,
    /// Documents started so far.
    documents: usize,
    /// Whether the last of them has not ended yet.
    inside: bool,
    /// The list item being built, which a syntax error names.
    item: Option<usize>,
    /// The anchored nodes of the document being read, by the parser's anchor id.
    anchors: HashMap<usize, Anchored>,
    /// What the document's anchors have copied so far (see [`MAX_COPIED`]).
    copied: usize,
}

/// A document's list items that wait for the list's kind.
type Waiting = Vec<(usize, Value)>;

impl Reader<'_, '_> {
    /// Every document of the stream.
    fn stream(&mut self) -> Result<(), ManifestError> {
        loop {
            let (event, _) = self.next()?;
            match event {
                Event::DocumentStart(_) => self.document()?,
                Event::StreamEnd => return Ok(()),
                _ => {}
            }
        }
    }

    /// One document, after its start: a mapping is read key by key (its `items` streamed),
    /// anything else is built whole.
    fn document(&mut self) -> Result<(), ManifestError> {
        self.documents += 1;
        self.inside = true;
        self.anchors.clear();
        self.copied = 0;
        let at = format!("document {}", self.documents);
        let (event, mark) = self.next()?;
        match event {
            Event::MappingStart(0, None) => self.object(&at)?,
            event => {
                let value = self.node(event, mark, 0)?;
                self.loader.document(self.path, &at, value)?;
            }
        }
        // Its end.
        self.next()?;
        self.inside = false;
        Ok(())
    }

    /// A document's top-level mapping, after its start.
    fn object(&mut self, at: &str) -> Result<(), ManifestError> {
        let mut keys = Mapping::new();
        let mut waiting = None;
        while let Some((event, mark)) = self.entry()? {
            let key = self.node(event, mark, 1)?;
            let (event, value_mark) = self.next()?;
            let items = key.as_str() == Some("items");
            if items && waiting.is_some() {
                return Err(self.error("duplicate key \"items\"", mark));
            }
            let streamed = matches!(event, Event::SequenceStart(0, None))
                && !keys.contains_key("items")
                && may_be_list(&keys);
            if items && streamed {
                waiting = Some(self.items(at, &keys)?);
                continue;
            }
            let value = self.node(event, value_mark, 1)?;
            self.insert(&mut keys, key, value, mark)?;
        }
        match waiting {
            None => self.loader.object(self.path, at, keys),
            Some(waiting) => self.end_list(at, keys, waiting),
        }
    }

    /// The items of a top-level `items` sequence, after its start: each handed over as soon
    /// as it is built when the list's kind came before them or the item names its own kind
    /// and apiVersion; the others, returned, wait for the list's kind.
    fn items(&mut self, at: &str, keys: &Mapping) -> Result<Waiting, ManifestError> {
        let list = match keys.get("kind").and_then(Value::as_str) {
            Some(kind) if keys.contains_key("apiVersion") => ListKind::of(kind, api_version(keys)),
            _ => None,
        };
        let mut waiting = Vec::new();
        let mut i = 0;
        loop {
            // Set before the item's first event, whose error is the item's too.
            self.item = Some(i);
            let Some((event, mark)) = self.entry()? else {
                break;
            };
            let item = self.node(event, mark, 2)?;
            self.item = None;
            match &list {
                Some(list) => self.loader.list_item(self.path, at, i, item, list)?,
                None if item.get("kind").is_some() && item.get("apiVersion").is_some() => {
                    (self.loader).document(self.path, &format!("{at}, items[{i}]"), item)?
                }
                None => waiting.push((i, item)),
            }
            i += 1;
        }
        self.item = None;
        Ok(waiting)
    }

    /// The end of a document whose items were streamed: the items that waited for its kind,
    /// or, when it is no list after all, its own keys as the object.
    fn end_list(&mut self, at: &str, keys: Mapping, waiting: Waiting) -> Result<(), ManifestError> {
        let kind = object_kind(self.path, at, &keys)?;
        let Some(list) = ListKind::of(kind, api_version(&keys)) else {
            // Its items went out as a list's.
            return self.loader.object(self.path, at, keys);
        };
        for (i, item) in waiting {
            self.loader.list_item(self.path, at, i, item, &list)?;
        }
        Ok(())
    }

    /// The node `event` starts, built whole; `depth` collections enclose it.
    fn node(
        &mut self,
        event: Event<'static>,
        mark: Marker,
        depth: usize,
    ) -> Result<Value, ManifestError> {
        let (value, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar(text.into_owned(), style, tag.as_deref())
                    .map_err(|message| self.error(&message, mark))?;
                (value, anchor)
            }
            Event::SequenceStart(anchor, tag) => {
                self.check_depth(depth, mark)?;
                let mut items = Sequence::new();
                while let Some((event, mark)) = self.entry()? {
                    items.push(self.node(event, mark, depth + 1)?);
                }
                (tagged(Value::Sequence(items), tag.as_deref()), anchor)
            }
            Event::MappingStart(anchor, tag) => {
                self.check_depth(depth, mark)?;
                let mut map = Mapping::new();
                while let Some((event, mark)) = self.entry()? {
                    let key = self.node(event, mark, depth + 1)?;
                    let (event, value_mark) = self.next()?;
                    let value = self.node(event, value_mark, depth + 1)?;
                    self.insert(&mut map, key, value, mark)?;
                }
                (tagged(Value::Mapping(map), tag.as_deref()), anchor)
            }
            Event::Alias(anchor) => return self.alias(anchor, mark, depth),
            _ => return Err(self.error("unexpected parser event", mark)),
        };
        if anchor != 0 {
            let (size, height) = measure(&value);
            self.copy(size, mark)?;
            let anchored = Anchored {
                value: value.clone(),
                size,
                height,
            };
            self.anchors.insert(anchor, anchored);
        }
        Ok(value)
    }

    /// A copy of the node anchored as `anchor`, used `depth` collections deep, within the
    /// document's budget of copies and nesting.
    fn alias(&mut self, anchor: usize, mark: Marker, depth: usize) -> Result<Value, ManifestError> {
        let Some(anchored) = self.anchors.get(&anchor) else {
            return Err(self.error("alias of an unknown anchor", mark));
        };
        let (size, height, value) = (anchored.size, anchored.height, anchored.value.clone());
        self.check_depth(depth + height, mark)?;
        self.copy(size, mark)?;
        Ok(value)
    }

    /// Counts a copy of `size` against the document's budget.
    fn copy(&mut self, size: usize, mark: Marker) -> Result<(), ManifestError> {
        self.copied += size;
        if self.copied <= MAX_COPIED {
            return Ok(());
        }
        let message = format!("anchors and aliases copy more than {MAX_COPIED} bytes");
        Err(self.error(&message, mark))
    }

    /// Refuses a collection `depth` collections deep beyond [`MAX_DEPTH`].
    fn check_depth(&self, depth: usize, mark: Marker) -> Result<(), ManifestError> {
        if depth < MAX_DEPTH {
            return Ok(());
        }
        Err(self.error(&format!("nested more than {MAX_DEPTH} deep"), mark))
    }

    /// Adds a key to a mapping; a key given twice is an error, as it is to kubectl.
    fn insert(
        &self,
        map: &mut Mapping,
        key: Value,
        value: Value,
        mark: Marker,
    ) -> Result<(), ManifestError> {
        match map.entry(key) {
            Entry::Vacant(entry) => {
                entry.insert(value);
                Ok(())
            }
            Entry::Occupied(entry) => {
                let message = match entry.key().as_str() {
                    Some(key) => format!("duplicate key {key:?}"),
                    None => "duplicate key".to_owned(),
                };
                Err(self.error(&message, mark))
            }
        }
    }

    /// The next event inside a collection: none at its end.
    fn entry(&mut self) -> Result<Option<Located>, ManifestError> {
        let (event, mark) = self.next()?;
        Ok(match event {
            Event::SequenceEnd | Event::MappingEnd => None,
            event => Some((event, mark)),
        })
    }

    fn next(&mut self) -> Result<Located, ManifestError> {
        self.events.next().map_err(|stop| match stop {
            Stop::Read(error) => read_error(self.path, error),
            Stop::Syntax(error) => self.error(error.info(), *error.marker()),
        })
    }

    /// A syntax error at `mark` in the document (and item) being read.
    fn error(&self, message: &str, mark: Marker) -> ManifestError {
        let message = located(message, mark.line(), mark.col());
        syntax_error(
            self.path,
            self.document_number(),
            self.item,
            "YAML",
            message,
        )
    }

    /// The number of the document being read: between two, the next one.
    fn document_number(&self) -> usize {
        self.documents + usize::from(!self.inside)
    }
}

/// A message with the line (from 1) and column (from 0) it is about, both as an editor counts.
fn located(message: &str, line: usize, column: usize) -> String {
    format!("{message} at line {line} column {}", column + 1)
}

/// Whether a top-level `items` after these keys is read as a list's: the kind is still to
/// come, or names a list.
fn may_be_list(keys: &Mapping) -> bool {
    match keys.get("kind") {
        None => true,
        Some(Value::String(kind)) => ListKind::of(kind, api_version(keys)).is_some(),
        Some(_) => false,
    }
}

/// A scalar's value: a plain one resolved by YAML 1.2's core schema, a quoted or block one a
/// string, a tagged one as its tag says.
fn scalar(text: String, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    let Some(tag) = tag.filter(|tag| tag.is_yaml_core_schema()) else {
        let value = match style {
            ScalarStyle::Plain => resolve(text),
            _ => Value::String(text),
        };
        return Ok(tagged(value, tag));
    };
    if !matches!(tag.suffix.as_str(), "null" | "bool" | "int" | "float") {
        return Ok(Value::String(text));
    }
    match (tag.suffix.as_str(), resolve(text)) {
        ("null", Value::Null) => Ok(Value::Null),
        ("bool", value @ Value::Bool(_)) => Ok(value),
        ("int", Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Value::Number(n)),
        ("float", Value::Number(n)) => Ok(Value::Number(n.as_f64().map_or(n, Number::from))),
        (_, value) => Err(format!("{value:?} is not a valid {tag}")),
    }
}

/// A plain scalar's value, as yaml_serde resolves it.
fn resolve(text: String) -> Value {
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ if text.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '.')) => {
            match text.parse::<Number>() {
                Ok(number) => Value::Number(number),
                Err(_) => Value::String(text),
            }
        }
        _ => Value::String(text),
    }
}

/// `value` under a tag that is not the core schema's (which only resolve).
fn tagged(value: Value, tag: Option<&Tag>) -> Value {
    match tag {
        Some(tag) if !tag.is_yaml_core_schema() => Value::Tagged(Box::new(TaggedValue {
            tag: ValueTag::new(tag.to_string()),
            value,
        })),
        _ => value,
    }
}

/// A node kept for the aliases to it.
struct Anchored {
    value: Value,
    /// What a copy costs (see [`MAX_COPIED`]).
    size: usize,
    /// The collections nested in it (0 for a scalar), which an alias adds to its own depth.
    height: usize,
}

/// A value's size, as [`MAX_COPIED`] counts it, and the collections nested in it. Its nesting
/// was bounded as it was built, so the recursion is too.
fn measure(value: &Value) -> (usize, usize) {
    const NODE: usize = 32;
    let inner = |values: &mut dyn Iterator<Item = &Value>| {
        values.map(measure).fold((0, 0), |(size, height), (s, h)| {
            (size + s, height.max(h + 1))
        })
    };
    let (size, height) = match value {
        Value::Sequence(items) => inner(&mut items.iter()),
        Value::Mapping(map) => inner(&mut map.iter().flat_map(|(k, v)| [k, v])),
        Value::Tagged(tagged) => measure(&tagged.value),
        Value::String(text) => (text.len(), 0),
        Value::Null | Value::Bool(_) | Value::Number(_) => (0, 0),
    };
    (size + NODE, height)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every scalar resolves as yaml_serde resolves the same text.
    #[test]
    fn scalars_resolve_as_yaml_serde_resolves_them() {
        let plain = [
            "", "~", "null", "Null", "NULL", "nULL", "true", "True", "TRUE", "tRUE", "false",
            "yes", "no", "on", "0", "80", "-1", "+7", "0123", "-0123", "00", "0x1F", "0o17",
            "0b101", "-0x1F", "1.5", "-2.5e3", ".5", "1e3", ".inf", "-.Inf", ".NaN", "1_000",
            "10.0.0.1", "8080/TCP", ".", "+", "web", "kube-dns",
        ];
        for text in plain {
            let ours = scalar(text.to_owned(), ScalarStyle::Plain, None).unwrap();
            let theirs: Value = yaml_serde::from_str(&format!("v: {text}\n")).unwrap();
            assert_eq!(Some(&ours), theirs.get("v"), "{text:?}");
        }
        let quoted = scalar("80".to_owned(), ScalarStyle::DoubleQuoted, None).unwrap();
        assert_eq!(quoted, Value::String("80".to_owned()));
        let tag = |suffix: &str| Tag {
            handle: "tag:yaml.org,2002:".to_owned(),
            suffix: suffix.to_owned(),
        };
        let text = |t: &str| t.to_owned();
        assert_eq!(
            scalar(text("80"), ScalarStyle::Plain, Some(&tag("str"))),
            Ok(Value::String(text("80")))
        );
        assert_eq!(
            scalar(text("80"), ScalarStyle::SingleQuoted, Some(&tag("int"))),
            Ok(Value::Number(80.into()))
        );
        assert!(scalar(text("web"), ScalarStyle::Plain, Some(&tag("int"))).is_err());
        assert_eq!(
            scalar(text("1"), ScalarStyle::Plain, Some(&tag("float"))),
            Ok(Value::Number(1.0.into()))
        );
        let custom = Tag {
            handle: "!".to_owned(),
            suffix: "thing".to_owned(),
        };
        assert!(matches!(
            scalar(text("x"), ScalarStyle::Plain, Some(&custom)),
            Ok(Value::Tagged(tagged)) if tagged.tag == ValueTag::new("!thing")
        ));
    }
}
