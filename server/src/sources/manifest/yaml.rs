//! YAML manifests, streamed. yaml_serde parses a whole document at a time, so this module cuts
//! the text first: it reads the file line by line and gives yaml_serde one document at a time
//! and, for a list in the block style kubectl writes, one item of the top-level `items:`
//! sequence at a time:
//!
//! ```text
//! apiVersion: v1          ─┐
//! items:                   │ the list's own keys: kept, parsed at the document's end
//! - apiVersion: v1        ─┐
//!   kind: Service          │ items[0]: parsed, converted and dropped as soon as items[1] starts
//!   ...                   ─┘
//! - apiVersion: v1           items[1] ...
//! kind: List              ─┐
//! metadata: {}            ─┘ (kubectl sorts keys: the list's kind comes after its items)
//! ```
//!
//! An item's text keeps its lines and columns (its `-` becomes a space), so a parser's message
//! names the file's line once the text's first line is added. A document that is not a block
//! mapping of plain keys, or whose `items:` is not a block sequence, is parsed whole, as
//! yaml_serde would parse it in the file. So is one that turns out mid-way to need it (a line the
//! splitter cannot place, an alias of an anchor in another item): it is read again from the file,
//! leaving out the items already handed over.
//!
//! An object whose text names its kind and apiVersion on plain lines is parsed straight into its
//! k8s-openapi type, which skips building a `yaml_serde::Value`; when that fails it is parsed
//! again the general way, so errors read as they always did.
//!
//! At about 780 lines this is the largest file of the server, by choice: the splitter is one
//! line-driven state machine (document, list keys, item) whose states share one cursor into the
//! file; cut into files, each part would need the whole of it.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::mem;
use std::path::Path;

use serde::de::IgnoredAny;
use serde::Deserialize;
use yaml_serde::{Mapping, Value};

use super::{
    object_kind, read_error, relocate, relocate_with, syntax_error, ListKind, Loader,
    ManifestError, Typed, READ_BUFFER,
};

/// What yaml_serde says of an alias whose anchor is not in the text it was given.
const UNKNOWN_ANCHOR: &str = "unknown anchor";

/// Reads every YAML document of the file `reader` reads.
pub(super) fn read(
    loader: &mut Loader<'_>,
    path: &Path,
    mut reader: impl BufRead,
) -> Result<(), ManifestError> {
    let mut splitter = Splitter {
        loader,
        path,
        documents: 0,
        document: None,
    };
    let mut line = String::new();
    let mut number = 0;
    let mut offset = 0u64;
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .map_err(|error| read_error(path, error))?;
        if read == 0 {
            break;
        }
        number += 1;
        splitter.line(&line, number, offset)?;
        offset += read as u64;
    }
    splitter.end_document(offset)
}

/// A text cut from the file, with where its lines came from.
#[derive(Default)]
struct Chunk {
    text: String,
    /// Runs of consecutive file lines: (first line in `text`, counted from 0; its line in the
    /// file, from 1). One run, but for a list's own keys before and after its items.
    runs: Vec<(usize, usize)>,
    lines: usize,
}

impl Chunk {
    fn push(&mut self, line: &str, number: usize) {
        let follows = self
            .runs
            .last()
            .is_some_and(|&(first, file_line)| file_line + (self.lines - first) == number);
        if !follows {
            self.runs.push((self.lines, number));
        }
        self.text.push_str(line);
        if !line.ends_with('\n') {
            self.text.push('\n');
        }
        self.lines += 1;
    }

    /// A parser's message about this text, with the file's line numbers.
    fn relocate(&self, message: &str) -> String {
        relocate_with(message, |line| {
            let index = line.saturating_sub(1);
            let run = self.runs.iter().rev().find(|(first, _)| *first <= index);
            run.map_or(line, |&(first, file_line)| file_line + (index - first))
        })
    }

    /// The `kind` and `apiVersion` of the mapping whose keys are at `indent`, as the text
    /// shows them.
    fn names(&self, indent: usize) -> Names<'_> {
        let mut names = Names::default();
        for line in self.text.lines() {
            let shape = Shape::of(line);
            if shape.indent != indent {
                continue;
            }
            let slot = match plain_key(shape.rest) {
                Some(("kind", value)) => (&mut names.kind, value),
                Some(("apiVersion", value)) => (&mut names.api_version, value),
                _ => continue,
            };
            *slot.0 = match slot.0 {
                Name::Absent => Name::of(slot.1),
                // A key twice: the general path reports it.
                Name::Plain(_) | Name::Unknown => Name::Unknown,
            };
        }
        names
    }

    /// The column of the keys of this text's node: that of its first line with content.
    fn indent(&self) -> usize {
        (self.text.lines().map(Shape::of))
            .find(|shape| !shape.is_blank())
            .map_or(0, |shape| shape.indent)
    }
}

/// An object's kind or apiVersion as its text shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Name<'a> {
    /// No such key.
    #[default]
    Absent,
    /// A plain word.
    Plain(&'a str),
    /// Something only a parser can read (quoted, empty, a flow value, a key given twice).
    Unknown,
}

impl<'a> Name<'a> {
    /// The name a value spells, when it is a plain word YAML reads as a string (a letter
    /// first, and not a boolean or null).
    fn of(value: &'a str) -> Name<'a> {
        let special = ["true", "false", "null"]
            .iter()
            .any(|word| value.eq_ignore_ascii_case(word));
        let letter = value
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic());
        if letter && !special && value.bytes().all(is_word) {
            Name::Plain(value)
        } else {
            Name::Unknown
        }
    }

    /// This name, or `default` when the key is absent (as a typed list's items inherit).
    fn or(self, default: &'a str) -> Name<'a> {
        match self {
            Name::Absent => Name::Plain(default),
            other => other,
        }
    }

    fn plain(self) -> Option<&'a str> {
        match self {
            Name::Plain(value) => Some(value),
            Name::Absent | Name::Unknown => None,
        }
    }
}

/// An object's kind and apiVersion as its text shows them.
#[derive(Clone, Copy, Debug, Default)]
struct Names<'a> {
    kind: Name<'a>,
    api_version: Name<'a>,
}

impl<'a> Names<'a> {
    /// An item's names with what its list gives items that leave them out.
    fn inherit(self, list: &'a ListKind) -> Names<'a> {
        match &list.item_kind {
            Some(kind) => Names {
                kind: self.kind.or(kind),
                api_version: self.api_version.or(&list.api_version),
            },
            None => self,
        }
    }
}

/// A character of a plain key or name.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b'-' | b'_')
}

/// `key: value` with a plain key at the start of `line`: (key, value without its comment).
fn plain_key(line: &str) -> Option<(&str, &str)> {
    let key_len = line.bytes().take_while(|b| is_word(*b)).count();
    let (key, rest) = line.split_at(key_len);
    let value = rest.strip_prefix(':')?;
    if key.is_empty() || !(value.is_empty() || value.starts_with([' ', '\t'])) {
        return None;
    }
    let value = value.trim();
    let value = match value.find(" #") {
        _ if value.starts_with('#') => "",
        Some(comment) => value[..comment].trim_end(),
        None => value,
    };
    Some((key, value))
}

/// A line as the splitter sees it.
struct Shape<'a> {
    /// Leading spaces.
    indent: usize,
    /// The line after them, without its line break.
    rest: &'a str,
}

impl<'a> Shape<'a> {
    fn of(line: &'a str) -> Shape<'a> {
        let line = line.trim_end_matches(['\n', '\r']);
        let rest = line.trim_start_matches(' ');
        Shape {
            indent: line.len() - rest.len(),
            rest,
        }
    }

    /// Blank or only a comment.
    fn is_blank(&self) -> bool {
        let rest = self.rest.trim_start_matches(['\t', ' ']);
        rest.is_empty() || rest.starts_with('#')
    }

    /// A block sequence entry (`- ...` or a lone `-`).
    fn is_entry(&self) -> bool {
        self.rest == "-" || self.rest.starts_with("- ")
    }

    /// A plain top-level key (`key:` or `key: value`) at the start of the line.
    fn is_key(&self) -> bool {
        self.indent == 0 && plain_key(self.rest).is_some()
    }

    /// A document marker at the start of a line (`---` or `...`), alone or before a space.
    fn is_marker(&self, marker: &str) -> bool {
        self.indent == 0
            && (self.rest.strip_prefix(marker))
                .is_some_and(|after| after.is_empty() || after.starts_with([' ', '\t']))
    }
}

/// The document being read.
struct Document {
    /// Its position in the file, from 1.
    number: usize,
    /// Byte offset of its first line (a directive, its `---`, or its first line of content).
    offset: u64,
    /// That line's number.
    first_line: usize,
    /// Parsed whole: every line; else the lines that are not items (the list's own keys).
    text: Chunk,
    state: State,
}

impl Document {
    fn at(&self) -> String {
        format!("document {}", self.number)
    }
}

/// How far into a document the splitter is.
enum State {
    /// Directives read; its `---` is still to come.
    Directives,
    /// Nothing read yet after its `---`.
    Start,
    /// Top-level keys; no `items:` sequence yet.
    Keys,
    /// Just after a top-level `items:` with nothing after it, held back until the next line
    /// shows whether a sequence starts.
    ItemsKey { line: String, number: usize },
    /// Inside the `items:` sequence.
    Items(Items),
    /// Top-level keys after the sequence.
    After(Items),
    /// Not a document the splitter reads: parsed whole at its end.
    Whole,
    /// Found mid-way to need a whole parse: read again from the file at its end, leaving out
    /// the items already handed over.
    Again(Items),
}

/// The items of a document's `items:` sequence.
struct Items {
    /// Column of the entries' `-`.
    indent: usize,
    /// The list, when its kind and apiVersion came before its items.
    list: Option<ListKind>,
    /// The entry being read.
    current: Option<Chunk>,
    /// Entries handed over or waiting.
    count: usize,
    /// Entries that need the list's kind, still to come: (index, text).
    waiting: Vec<(usize, Chunk)>,
}

impl Items {
    /// Whether item `i` went out already (a whole re-read leaves it out).
    fn handled(&self, i: usize) -> bool {
        i < self.count && !self.waiting.iter().any(|(w, _)| *w == i)
    }
}

/// Cuts a file into documents and items and hands them to the loader.
struct Splitter<'a, 'l> {
    loader: &'a mut Loader<'l>,
    path: &'a Path,
    /// Documents started so far.
    documents: usize,
    document: Option<Document>,
}

impl Splitter<'_, '_> {
    /// One line of the file (`number` from 1, starting at byte `offset`).
    fn line(&mut self, line: &str, number: usize, offset: u64) -> Result<(), ManifestError> {
        let shape = Shape::of(line);
        if shape.is_marker("---") {
            if let Some(document) = &mut self.document {
                if matches!(document.state, State::Directives) {
                    document.text.push(line, number);
                    document.state = State::Whole;
                    return Ok(());
                }
            }
            self.end_document(offset)?;
            let mut document = self.start(offset, number, State::Start);
            document.text.push(line, number);
            // Content after the marker (`--- {a: 1}`, `--- |`) is for a parser to read.
            let after = shape.rest[3..].trim_start_matches([' ', '\t']);
            if !(after.is_empty() || after.starts_with('#')) {
                document.state = State::Whole;
            }
            self.document = Some(document);
            return Ok(());
        }
        if shape.is_marker("...") {
            return self.end_document(offset);
        }
        let mut document = match self.document.take() {
            Some(document) => document,
            None if shape.is_blank() => return Ok(()),
            None if shape.indent == 0 && shape.rest.starts_with('%') => {
                self.start(offset, number, State::Directives)
            }
            None => self.start(offset, number, State::Start),
        };
        let state = mem::replace(&mut document.state, State::Whole);
        let result = self.content(&mut document, state, line, &shape, number);
        self.document = Some(document);
        result
    }

    fn start(&mut self, offset: u64, number: usize, state: State) -> Document {
        self.documents += 1;
        Document {
            number: self.documents,
            offset,
            first_line: number,
            text: Chunk::default(),
            state,
        }
    }

    /// A line inside `document`, which was in `state`.
    fn content(
        &mut self,
        document: &mut Document,
        state: State,
        line: &str,
        shape: &Shape<'_>,
        number: usize,
    ) -> Result<(), ManifestError> {
        document.state = match state {
            State::Directives | State::Whole => {
                document.text.push(line, number);
                state
            }
            State::Again(items) => State::Again(items),
            // Read piecewise only when it is a block mapping of plain keys.
            State::Start if !shape.is_blank() && !shape.is_key() => {
                document.text.push(line, number);
                State::Whole
            }
            State::Start | State::Keys => keys_line(document, line, shape, number),
            State::ItemsKey {
                line: held,
                number: held_number,
            } => match sequence_start(document, shape) {
                Start::Comment => State::ItemsKey {
                    line: held,
                    number: held_number,
                },
                Start::Sequence(list) => {
                    let mut items = Items {
                        indent: shape.indent,
                        list,
                        current: None,
                        count: 0,
                        waiting: Vec::new(),
                    };
                    begin_item(&mut items, line, shape, number);
                    State::Items(items)
                }
                Start::Null => {
                    document.text.push(&held, held_number);
                    keys_line(document, line, shape, number)
                }
                Start::Whole => {
                    document.text.push(&held, held_number);
                    document.text.push(line, number);
                    State::Whole
                }
            },
            State::Items(items) => self.item_line(document, items, line, shape, number)?,
            State::After(items) if shape.is_blank() || shape.indent > 0 || shape.is_key() => {
                document.text.push(line, number);
                State::After(items)
            }
            State::After(items) => State::Again(items),
        };
        Ok(())
    }

    /// A line inside the `items:` sequence.
    fn item_line(
        &mut self,
        document: &mut Document,
        mut items: Items,
        line: &str,
        shape: &Shape<'_>,
        number: usize,
    ) -> Result<State, ManifestError> {
        if shape.is_blank() || shape.indent > items.indent {
            if let Some(current) = &mut items.current {
                current.push(line, number);
            }
            return Ok(State::Items(items));
        }
        let entry = shape.indent == items.indent && shape.is_entry();
        if !entry && !shape.is_key() {
            // A line the splitter cannot place (flow or quoted text carried on at the left
            // margin, a bad indent): only a parser of the whole document can.
            return Ok(State::Again(items));
        }
        if !self.end_item(document, &mut items)? {
            return Ok(State::Again(items));
        }
        if entry {
            begin_item(&mut items, line, shape, number);
            return Ok(State::Items(items));
        }
        document.text.push(line, number);
        Ok(State::After(items))
    }

    /// Hands over the entry just read (parsed, converted and dropped), or keeps it until the
    /// list's kind is known; false when the document must be read again whole.
    fn end_item(&mut self, document: &Document, items: &mut Items) -> Result<bool, ManifestError> {
        let Some(chunk) = items.current.take() else {
            return Ok(true);
        };
        let i = items.count;
        let names = chunk.names(chunk.indent());
        let handed = match &items.list {
            Some(list) => self.item(document, i, &chunk, names.inherit(list), Some(list))?,
            // The list's kind is still to come: an item that names its own kind and
            // apiVersion takes nothing from it, so it can go now.
            None if names.kind != Name::Absent && names.api_version != Name::Absent => {
                self.item(document, i, &chunk, names, None)?
            }
            None => {
                items.waiting.push((i, chunk));
                true
            }
        };
        if handed {
            items.count += 1;
        }
        Ok(handed)
    }

    /// Item `i` of `document`: straight into its type when its names allow, else through a
    /// `Value`; false (and nothing handed over) when it refers to an anchor outside its text.
    fn item(
        &mut self,
        document: &Document,
        i: usize,
        chunk: &Chunk,
        names: Names<'_>,
        list: Option<&ListKind>,
    ) -> Result<bool, ManifestError> {
        if self.fast(chunk, names) {
            return Ok(true);
        }
        let item = match Value::deserialize(yaml_serde::Deserializer::from_str(&chunk.text)) {
            Ok(item) => item,
            Err(error) => {
                let message = error.to_string();
                if message.starts_with(UNKNOWN_ANCHOR) {
                    return Ok(false);
                }
                let message = chunk.relocate(&message);
                return Err(syntax_error(
                    self.path,
                    document.number,
                    Some(i),
                    "YAML",
                    message,
                ));
            }
        };
        let at = document.at();
        match list {
            Some(list) => self.loader.list_item(self.path, &at, i, item, list)?,
            None => self
                .loader
                .document(self.path, &format!("{at}, items[{i}]"), item)?,
        }
        Ok(true)
    }

    /// Parses `chunk` straight into the type its names say, converts it and hands it over, or
    /// only checks that it parses and counts it when its kind is not loaded; whether that
    /// worked (when not, nothing was handed over or counted).
    fn fast(&mut self, chunk: &Chunk, names: Names<'_>) -> bool {
        let (Some(kind), Some(api_version)) = (names.kind.plain(), names.api_version.plain())
        else {
            return false;
        };
        let text = yaml_serde::Deserializer::from_str(&chunk.text);
        match self.loader.wanted(kind, api_version) {
            Some(wanted) => match Typed::deserialize(wanted, text) {
                Ok(object) => self.loader.accept(object).is_ok(),
                Err(_) => false,
            },
            // A list inside a list is opened by the general path.
            None if ListKind::of(kind, api_version).is_some() => false,
            None => {
                let parsed = IgnoredAny::deserialize(text).is_ok();
                if parsed {
                    self.loader.skip_kind(kind, api_version);
                }
                parsed
            }
        }
    }

    /// Ends the current document, if any, at byte `end` of the file.
    fn end_document(&mut self, end: u64) -> Result<(), ManifestError> {
        let Some(mut document) = self.document.take() else {
            return Ok(());
        };
        match mem::replace(&mut document.state, State::Whole) {
            State::Directives | State::Start | State::Keys | State::Whole => {
                self.parse_whole(&document)
            }
            State::ItemsKey { line, number } => {
                document.text.push(&line, number);
                self.parse_whole(&document)
            }
            State::Again(items) => self.read_again(&document, &items, end),
            State::Items(mut items) => {
                if self.end_item(&document, &mut items)? {
                    self.end_list(&document, items, end)
                } else {
                    self.read_again(&document, &items, end)
                }
            }
            State::After(items) => self.end_list(&document, items, end),
        }
    }

    /// The end of a document whose items were streamed: its own keys, then the items that
    /// waited for its kind.
    fn end_list(
        &mut self,
        document: &Document,
        mut items: Items,
        end: u64,
    ) -> Result<(), ManifestError> {
        let keys = match Value::deserialize(yaml_serde::Deserializer::from_str(&document.text.text))
        {
            Ok(Value::Mapping(keys)) => keys,
            Ok(_) => Mapping::new(),
            Err(error) => {
                let message = error.to_string();
                if message.starts_with(UNKNOWN_ANCHOR) {
                    return self.read_again(document, &items, end);
                }
                let message = document.text.relocate(&message);
                return Err(syntax_error(
                    self.path,
                    document.number,
                    None,
                    "YAML",
                    message,
                ));
            }
        };
        let at = document.at();
        let kind = object_kind(self.path, &at, &keys)?;
        let api_version = keys
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(list) = ListKind::of(kind, api_version) else {
            // Not a list after all: its keys are the object (its items went out as a list's).
            return self.loader.object(self.path, &at, keys, &|_| false);
        };
        let waiting = mem::take(&mut items.waiting);
        for (n, (i, chunk)) in waiting.iter().enumerate() {
            let names = chunk.names(chunk.indent()).inherit(&list);
            if !self.item(document, *i, chunk, names, Some(&list))? {
                items.waiting = waiting.into_iter().skip(n).collect();
                return self.read_again(document, &items, end);
            }
        }
        Ok(())
    }

    /// Parses a document's text whole: one document (or what yaml_serde finds in it).
    fn parse_whole(&mut self, document: &Document) -> Result<(), ManifestError> {
        let text = &document.text;
        if self.fast(text, text.names(0)) {
            return Ok(());
        }
        let mut found = 0;
        for part in yaml_serde::Deserializer::from_str(&text.text) {
            let number = document.number + found;
            found += 1;
            let value = Value::deserialize(part).map_err(|error| {
                let message = text.relocate(&error.to_string());
                syntax_error(self.path, number, None, "YAML", message)
            })?;
            self.loader
                .document(self.path, &format!("document {number}"), value)?;
        }
        // Keeps later documents' numbers right should the text have held more than one.
        self.documents += found.saturating_sub(1);
        Ok(())
    }

    /// Reads `document` again from the file, whole, leaving out the items already handed
    /// over: as it would have been parsed without the splitter.
    fn read_again(
        &mut self,
        document: &Document,
        items: &Items,
        end: u64,
    ) -> Result<(), ManifestError> {
        let text = self
            .read_range(document.offset, end)
            .map_err(|error| read_error(self.path, error))?;
        let value =
            Value::deserialize(yaml_serde::Deserializer::from_str(&text)).map_err(|error| {
                let message = relocate(&error.to_string(), document.first_line - 1);
                syntax_error(self.path, document.number, None, "YAML", message)
            })?;
        self.loader
            .document_after(self.path, &document.at(), value, &|i| items.handled(i))
    }

    /// Bytes `start..end` of the file.
    fn read_range(&self, start: u64, end: u64) -> io::Result<String> {
        let mut file = BufReader::with_capacity(READ_BUFFER, File::open(self.path)?);
        file.seek(SeekFrom::Start(start))?;
        let mut text = String::new();
        file.take(end - start).read_to_string(&mut text)?;
        Ok(text)
    }
}

/// A top-level line before the `items:` sequence.
fn keys_line(document: &mut Document, line: &str, shape: &Shape<'_>, number: usize) -> State {
    if shape.is_blank() || shape.indent > 0 {
        document.text.push(line, number);
        return State::Keys;
    }
    match plain_key(shape.rest) {
        Some(("items", "")) => State::ItemsKey {
            line: line.to_owned(),
            number,
        },
        Some(_) => {
            document.text.push(line, number);
            State::Keys
        }
        None => {
            document.text.push(line, number);
            State::Whole
        }
    }
}

/// What the line after a bare `items:` starts.
enum Start {
    /// Blank or a comment: the next line will tell.
    Comment,
    /// A block sequence, streamed; with the list, when its kind came first.
    Sequence(Option<ListKind>),
    /// Another top-level key: `items` is null.
    Null,
    /// Something else: the document is parsed whole.
    Whole,
}

fn sequence_start(document: &Document, shape: &Shape<'_>) -> Start {
    if shape.is_blank() {
        return Start::Comment;
    }
    if shape.is_entry() {
        // Streamed when the list's kind is a list or still to come; a kind that only a parser
        // can read, or that is no list, keeps the document whole, as does an apiVersion that
        // could still come after the items.
        let names = document.text.names(0);
        return match (names.kind, names.api_version) {
            (Name::Absent, _) => Start::Sequence(None),
            (Name::Plain(kind), Name::Plain(api_version)) => {
                match ListKind::of(kind, api_version) {
                    Some(list) => Start::Sequence(Some(list)),
                    None => Start::Whole,
                }
            }
            (Name::Plain(kind), Name::Absent) if ListKind::of(kind, "").is_some() => {
                Start::Sequence(None)
            }
            _ => Start::Whole,
        };
    }
    if shape.is_key() {
        return Start::Null;
    }
    Start::Whole
}

/// Starts an entry of the sequence with its first line, its `-` made a space: the entry's
/// node alone, at the same lines and columns.
fn begin_item(items: &mut Items, line: &str, shape: &Shape<'_>, number: usize) {
    let mut text = String::with_capacity(line.len());
    text.push_str(&line[..shape.indent]);
    text.push(' ');
    text.push_str(&line[shape.indent + 1..]);
    let mut chunk = Chunk::default();
    chunk.push(&text, number);
    items.current = Some(chunk);
}
