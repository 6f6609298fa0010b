//! Reading a master file (RFC 1035 §5) into records, each with the file and line it came from.
//!
//! The record data is parsed by hickory-proto's zone-file parser, one entry at a time. What this
//! module does itself is what that parser cannot report: where each entry starts. It splits the
//! text into entries (a line, or several joined by parentheses; quotes, escapes and `;`
//! comments respected), keeps the context the entries depend on (`$ORIGIN`, `$TTL`, the owner
//! of the previous entry, the last explicit TTL), follows `$INCLUDE`, and hands each entry to
//! the parser with that context written out. So an error names the file and the line its entry
//! starts on, as CoreDNS's parser (miekg/dns) does.
//!
//! As miekg/dns reads a zone for CoreDNS: an omitted TTL is `$TTL`'s, else the last explicit
//! one, else 3600; a relative `$INCLUDE` path is relative to the including file's directory
//! and nests at most 7 deep; `$ORIGIN` may be relative. Refused, naming the line: DNSSEC
//! records (clusterdns serves zones unsigned), classes other than IN, `$GENERATE`, and the
//! types hickory-proto cannot read (DNAME, the generic `TYPEnnn \# ...` syntax among them).

use std::path::{Path, PathBuf};

use hickory_proto::rr::{DNSClass, Name, RData};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_proto::serialize::txt::{parse_ttl, Parser};

/// The TTL of a record when neither it, `$TTL` nor an earlier record gives one (miekg/dns's).
const DEFAULT_TTL: u32 = 3600;
/// How deep `$INCLUDE`s may nest (miekg/dns's `maxIncludeDepth`).
const MAX_INCLUDE_DEPTH: usize = 7;

/// One record read from a zone file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRecord {
    /// The owner, lowercase wire format.
    pub owner: Vec<u8>,
    /// The type code.
    pub rtype: u16,
    /// The TTL.
    pub ttl: u32,
    /// The RDATA in wire format, uncompressed; names lowercase in the types whose names
    /// RFC 4034 §6.2 lowercases (NS, CNAME, SOA, PTR, MX, SRV, ...).
    pub rdata: Vec<u8>,
    /// Where it was read: an index into [`Source::files`] and a line from 1.
    pub at: (usize, u32),
}

/// What a zone file held: its records in file order and every file read (the first is the
/// zone file, then its `$INCLUDE`s).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Source {
    /// The records.
    pub records: Vec<FileRecord>,
    /// The files read.
    pub files: Vec<PathBuf>,
}

/// Why a zone file cannot be served: the file, the line (0: the file as a whole) and what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct LoadError {
    /// The file.
    pub file: PathBuf,
    /// The line the entry starts on; 0 when the file as a whole is at fault.
    pub line: u32,
    /// What is wrong.
    pub message: String,
}

/// How a file is read: the real file system, or text a test gives.
pub type ReadFile<'a> = &'a mut dyn FnMut(&Path) -> std::io::Result<String>;

/// Reads the zone file at `path` for the zone `origin` (dotted, fully qualified), following
/// its `$INCLUDE`s through `read`.
pub fn read_zone(path: &Path, origin: &str, read: ReadFile<'_>) -> Result<Source, LoadError> {
    let whole = |message: String| LoadError {
        file: path.to_path_buf(),
        line: 0,
        message,
    };
    let origin = Name::from_ascii(origin).map_err(|e| whole(format!("zone {origin:?}: {e}")))?;
    let mut reader = Reader {
        source: Source::default(),
        read,
        ttl: TtlState::default(),
    };
    reader.file(path, origin, 0)?;
    Ok(reader.source)
}

/// The TTL an entry without one gets.
#[derive(Clone, Copy, Debug, Default)]
struct TtlState {
    /// `$TTL`, once given.
    directive: Option<u32>,
    /// The last TTL a record gave.
    last: Option<u32>,
}

impl TtlState {
    fn default_ttl(&self) -> u32 {
        self.directive.or(self.last).unwrap_or(DEFAULT_TTL)
    }
}

struct Reader<'a> {
    source: Source,
    read: ReadFile<'a>,
    ttl: TtlState,
}

impl Reader<'_> {
    /// Reads one file (the zone file, or an `$INCLUDE`d one at `depth`) with `origin`.
    fn file(&mut self, path: &Path, mut origin: Name, depth: usize) -> Result<(), LoadError> {
        let text = (self.read)(path).map_err(|e| LoadError {
            file: path.to_path_buf(),
            line: 0,
            message: format!("cannot read the zone file: {e}"),
        })?;
        let index = self.source.files.len();
        self.source.files.push(path.to_path_buf());
        let fail = |line: u32, message: String| LoadError {
            file: path.to_path_buf(),
            line,
            message,
        };
        let mut owner: Option<Name> = None;
        for entry in entries(&text) {
            let entry = entry.map_err(|(line, message)| fail(line, message.into()))?;
            let at =
                |message: String| fail(entry.line, format!("{message}: {}", shown(entry.text)));
            let mut words = words(entry.text);
            if entry.text.starts_with('$') {
                let (_, control) = words.next().unwrap_or_default();
                let args: Vec<&str> = words.map(|(_, w)| w).collect();
                match (control.to_ascii_uppercase().as_str(), args.as_slice()) {
                    ("$ORIGIN", [name]) => {
                        origin = Name::parse(name, Some(&origin))
                            .map_err(|e| at(format!("$ORIGIN {name:?}: {e}")))?;
                    }
                    ("$TTL", [ttl]) => {
                        let ttl = parse_ttl(ttl).map_err(|e| at(format!("$TTL: {e}")))?;
                        self.ttl.directive = Some(ttl);
                    }
                    ("$INCLUDE", [file, rest @ ..]) if rest.len() <= 1 => {
                        if depth >= MAX_INCLUDE_DEPTH {
                            return Err(at(format!(
                                "$INCLUDE {file}: nested more than {MAX_INCLUDE_DEPTH} deep"
                            )));
                        }
                        let included = match rest.first() {
                            Some(name) => Name::parse(name, Some(&origin))
                                .map_err(|e| at(format!("$INCLUDE origin {name:?}: {e}")))?,
                            None => origin.clone(),
                        };
                        let file = Path::new(file);
                        let file = match (file.is_absolute(), path.parent()) {
                            (false, Some(dir)) => dir.join(file),
                            _ => file.to_path_buf(),
                        };
                        // The included file's $TTL does not outlive it.
                        let saved = self.ttl;
                        self.file(&file, included, depth + 1)?;
                        self.ttl = saved;
                    }
                    ("$GENERATE", _) => {
                        return Err(at(
                            "$GENERATE is not supported: write the records out".into()
                        ))
                    }
                    _ => return Err(at(format!("unknown or malformed control entry {control}"))),
                }
                continue;
            }
            let (record, name) = self.record(&entry, &origin, owner.as_ref()).map_err(at)?;
            owner = Some(name);
            self.source.records.push(FileRecord {
                at: (index, entry.line),
                ..record
            });
        }
        Ok(())
    }

    /// One record entry: its record and owner name (for the entries after it that omit theirs).
    fn record(
        &mut self,
        entry: &Entry<'_>,
        origin: &Name,
        previous: Option<&Name>,
    ) -> Result<(FileRecord, Name), String> {
        let blank_owner = entry.text.starts_with([' ', '\t']);
        let mut words = words(entry.text);
        if !blank_owner {
            words.next();
        } else if previous.is_none() {
            return Err("the first record has no owner name".into());
        }
        let (mut ttl, mut class) = (None, None);
        let rtype = loop {
            let Some((_, word)) = words.next() else {
                return Err("the record has no type".into());
            };
            let upper = word.to_ascii_uppercase();
            if ttl.is_none() && word.starts_with(|c: char| c.is_ascii_digit()) {
                ttl = Some(parse_ttl(word).map_err(|e| format!("TTL {word:?}: {e}"))?);
            } else if class.is_none() && is_class(&upper) {
                class = Some(upper);
            } else {
                break upper;
            }
        };
        if class.as_deref().is_some_and(|c| c != "IN") {
            return Err(format!(
                "class {}: only class IN is served",
                class.unwrap_or_default()
            ));
        }
        if is_dnssec(&rtype) {
            return Err(format!(
                "{rtype} record: DNSSEC is not supported; clusterdns serves zones unsigned \
                 (remove the DNSSEC records, or serve the signed zone with another server)"
            ));
        }
        if rtype.starts_with("TYPE") || entry.text.contains("\\#") {
            return Err(format!(
                "{rtype}: the generic record syntax (RFC 3597) is not supported"
            ));
        }
        // The entry, with the context it depends on written out for the parser.
        let mut text = format!("$ORIGIN {origin}\n");
        if ttl.is_none() {
            text.push_str(&format!("$TTL {}\n", self.ttl.default_ttl()));
        }
        if let (true, Some(owner)) = (blank_owner, previous) {
            text.push_str(&owner.to_string());
        }
        text.push_str(entry.text);
        text.push('\n');
        let (_, sets) = Parser::new(text, None, None)
            .parse()
            .map_err(|e| parse_message(&rtype, &e.to_string()))?;
        let record = sets
            .values()
            .flat_map(|set| set.records_without_rrsigs())
            .next()
            .ok_or("the entry holds no record")?;
        if record.dns_class != DNSClass::IN {
            return Err(format!(
                "class {}: only class IN is served",
                record.dns_class
            ));
        }
        if ttl.is_some() {
            self.ttl.last = Some(record.ttl);
        }
        let rdata = encode_rdata(&record.data).map_err(|e| format!("{rtype} record: {e}"))?;
        let name = record.name.clone();
        Ok((
            FileRecord {
                owner: wire_lowercase(&name),
                rtype: u16::from(record.record_type()),
                ttl: record.ttl,
                rdata,
                at: (0, entry.line),
            },
            name,
        ))
    }
}

/// An entry as an error quotes it: on one line, blanks collapsed, cut after 100 characters.
fn shown(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut line = words.join(" ");
    if let Some((cut, _)) = line.char_indices().nth(100) {
        line.truncate(cut);
        line.push_str("...");
    }
    format!("{line:?}")
}

/// The message for a parser error about a record of `rtype`.
fn parse_message(rtype: &str, error: &str) -> String {
    if error.contains("RecordType") || error.contains("record type") {
        return format!("record type {rtype} is not supported ({error})");
    }
    format!("{rtype} record: {error}")
}

/// Whether a word is a class mnemonic (in a record, before its type).
fn is_class(upper: &str) -> bool {
    matches!(upper, "IN" | "CH" | "CS" | "HS" | "NONE" | "ANY") || upper.starts_with("CLASS")
}

/// Whether a type is one of the records a signed zone carries (RFC 4034, RFC 5155, RFC 7344).
fn is_dnssec(upper: &str) -> bool {
    matches!(
        upper,
        "RRSIG"
            | "NSEC"
            | "NSEC3"
            | "NSEC3PARAM"
            | "DNSKEY"
            | "DS"
            | "CDS"
            | "CDNSKEY"
            | "SIG"
            | "KEY"
    )
}

/// `name` in wire format, lowercase.
pub fn wire_lowercase(name: &Name) -> Vec<u8> {
    let mut wire = Vec::with_capacity(usize::from(name.len() as u8) + 2);
    for label in name.iter() {
        wire.push(label.len() as u8);
        wire.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    wire.push(0);
    wire
}

/// RDATA in wire format, uncompressed, with the names of the standard types lowercase.
fn encode_rdata(data: &RData) -> Result<Vec<u8>, String> {
    let mut rdata = Vec::new();
    let mut encoder = BinEncoder::new(&mut rdata);
    encoder.set_canonical_form(true);
    data.emit(&mut encoder).map_err(|e| e.to_string())?;
    if rdata.len() > usize::from(u16::MAX) {
        return Err("the record data is longer than 65535 bytes".into());
    }
    Ok(rdata)
}

/// One entry of a master file: a line, or the lines a pair of parentheses joins.
#[derive(Clone, Copy, Debug)]
struct Entry<'t> {
    /// The line it starts on, from 1.
    line: u32,
    /// Its text, comments and the line end included.
    text: &'t str,
}

/// The entries of `text` that hold something (blank and comment-only lines are left out); an
/// error gives the line and what is wrong (an unbalanced parenthesis, an unclosed quote).
fn entries(text: &str) -> impl Iterator<Item = Result<Entry<'_>, (u32, &'static str)>> {
    let bytes = text.as_bytes();
    let mut at = 0usize;
    let mut line = 1u32;
    std::iter::from_fn(move || loop {
        if at >= bytes.len() {
            return None;
        }
        let (start, first_line) = (at, line);
        let (mut depth, mut quoted, mut content) = (0u32, false, false);
        while let Some(&byte) = bytes.get(at) {
            at += 1;
            match byte {
                b'\n' => {
                    line += 1;
                    if depth == 0 && !quoted {
                        break;
                    }
                }
                b'\\' => {
                    content = true;
                    if bytes.get(at) == Some(&b'\n') {
                        line += 1;
                    }
                    at += 1;
                }
                b'"' => {
                    content = true;
                    quoted = !quoted;
                }
                _ if quoted => {}
                b';' => {
                    while bytes.get(at).is_some_and(|&b| b != b'\n') {
                        at += 1;
                    }
                }
                b'(' => depth += 1,
                b')' => match depth.checked_sub(1) {
                    Some(d) => depth = d,
                    None => return Some(Err((line, "')' without '('"))),
                },
                b' ' | b'\t' | b'\r' => {}
                _ => content = true,
            }
        }
        if quoted {
            return Some(Err((first_line, "a quoted string is not closed")));
        }
        if depth > 0 {
            return Some(Err((first_line, "'(' is not closed")));
        }
        if content {
            let end = at.min(bytes.len());
            let text = text.get(start..end).unwrap_or_default().trim_end();
            return Some(Ok(Entry {
                line: first_line,
                text,
            }));
        }
    })
}

/// The words of an entry with their offsets: separated by blanks, line ends and parentheses,
/// up to a `;` comment; a quoted string is one word (quotes kept); `\` escapes a character.
fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let bytes = text.as_bytes();
    let mut at = 0usize;
    std::iter::from_fn(move || {
        while let Some(&byte) = bytes.get(at) {
            match byte {
                b' ' | b'\t' | b'\r' | b'\n' | b'(' | b')' => at += 1,
                b';' => {
                    while bytes.get(at).is_some_and(|&b| b != b'\n') {
                        at += 1;
                    }
                }
                _ => break,
            }
        }
        let start = at;
        let mut quoted = false;
        while let Some(&byte) = bytes.get(at) {
            match byte {
                b'\\' => at += 1,
                b'"' => quoted = !quoted,
                b' ' | b'\t' | b'\r' | b'\n' | b'(' | b')' | b';' if !quoted => break,
                _ => {}
            }
            at += 1;
        }
        let at = at.min(bytes.len());
        (at > start).then(|| (start, text.get(start..at).unwrap_or_default()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(files: &[(&str, &str)], origin: &str) -> Result<Source, LoadError> {
        let files: Vec<(PathBuf, String)> = files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), t.to_string()))
            .collect();
        let mut read = |path: &Path| {
            files
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, t)| t.clone())
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        };
        read_zone(&files[0].0, origin, &mut read)
    }

    fn dotted(wire: &[u8]) -> String {
        clusterdns_zone::name::dotted(wire)
    }

    #[test]
    fn reads_the_readme_zone() {
        let text = "$ORIGIN example.org.\n\
            @\t3600 IN\tSOA sns.dns.icann.org. noc.dns.icann.org. 2017042745 7200 3600 1209600 3600\n\
            \t3600 IN NS a.iana-servers.net.\n\
            \t3600 IN NS b.iana-servers.net.\n\
            \n\
            www     IN A     127.0.0.1\n\
            \x20       IN AAAA  ::1\n";
        let source = read_text(&[("/zones/db.example.org", text)], "example.org.").unwrap();
        let got: Vec<(String, u16, u32, u32)> = (source.records.iter())
            .map(|r| (dotted(&r.owner), r.rtype, r.ttl, r.at.1))
            .collect();
        assert_eq!(
            got,
            vec![
                ("example.org.".into(), 6, 3600, 2),
                ("example.org.".into(), 2, 3600, 3),
                ("example.org.".into(), 2, 3600, 4),
                ("www.example.org.".into(), 1, 3600, 6),
                ("www.example.org.".into(), 28, 3600, 7),
            ]
        );
        assert_eq!(source.records[3].rdata, vec![127, 0, 0, 1]);
        assert_eq!(source.files, vec![PathBuf::from("/zones/db.example.org")]);
    }

    #[test]
    fn ttls_default_as_miekg_dns_reads_them() {
        let text = "@ IN SOA ns hostmaster ( 1 ; serial\n 7200 3600\n 1209600 60 )\n\
            a 60 A 192.0.2.1\nb A 192.0.2.2\n$TTL 120\nc A 192.0.2.3\nd 30 A 192.0.2.4\n\
            e A 192.0.2.5\n";
        let source = read_text(&[("db", text)], "example.org.").unwrap();
        let ttls: Vec<(String, u32, u32)> = (source.records.iter())
            .map(|r| (dotted(&r.owner), r.ttl, r.at.1))
            .collect();
        assert_eq!(
            ttls,
            vec![
                ("example.org.".into(), 3600, 1),
                ("a.example.org.".into(), 60, 4),
                ("b.example.org.".into(), 60, 5),
                ("c.example.org.".into(), 120, 7),
                ("d.example.org.".into(), 30, 8),
                ("e.example.org.".into(), 120, 9),
            ]
        );
        // The SOA's names are made absolute with the origin, and lowercase.
        let soa = &source.records[0].rdata;
        assert!(soa.starts_with(b"\x02ns\x07example\x03org\x00\x0ahostmaster\x07example"));
    }

    #[test]
    fn follows_includes_and_origins() {
        let main = "$ORIGIN example.org.\n@ 300 SOA ns hostmaster 1 2 3 4 5\n\
            $INCLUDE sub.db sub\nafter A 192.0.2.9\n$ORIGIN Other\nx TXT \"a b\" c\n";
        let sub = "$TTL 10\nwww A 192.0.2.1\n@ MX 10 mail\n";
        let source =
            read_text(&[("/z/main.db", main), ("/z/sub.db", sub)], "example.org.").unwrap();
        let got: Vec<(String, u32, usize, u32)> = (source.records.iter())
            .map(|r| (dotted(&r.owner), r.ttl, r.at.0, r.at.1))
            .collect();
        assert_eq!(
            got,
            vec![
                ("example.org.".into(), 300, 0, 2),
                ("www.sub.example.org.".into(), 10, 1, 2),
                ("sub.example.org.".into(), 10, 1, 3),
                ("after.example.org.".into(), 300, 0, 4),
                ("x.other.example.org.".into(), 300, 0, 6),
            ]
        );
        assert_eq!(
            source.records[2].rdata,
            b"\x00\x0a\x04mail\x03sub\x07example\x03org\x00"
        );
        assert_eq!(source.records[4].rdata, b"\x03a b\x01c");
        assert_eq!(source.files.len(), 2);
    }

    #[test]
    fn errors_name_the_line_their_entry_starts_on() {
        let cases: &[(&str, u32, &str)] = &[
            ("@ SOA ns h 1 2 3 4 5\nwww A 192.0.2.300\n", 2, "A record"),
            (
                "@ SOA ns h 1 2 3 4 5\n\n; comment\nwww BOGUS x\n",
                4,
                "BOGUS",
            ),
            (
                "@ SOA ns h (1 2\n 3 4 5\nwww A 1.2.3.4\n",
                1,
                "'(' is not closed",
            ),
            ("@ SOA ns h 1 2 3 4 5\nx TXT \"open\n", 2, "quoted string"),
            (
                "@ SOA ns h 1 2 3 4 5\nx RRSIG A 8 2 300 1 2 3 x. abc\n",
                2,
                "DNSSEC",
            ),
            ("@ SOA ns h 1 2 3 4 5\nx CH TXT a\n", 2, "only class IN"),
            ("@ SOA ns h 1 2 3 4 5\nx DNAME y\n", 2, "DNAME"),
            (
                "@ SOA ns h 1 2 3 4 5\nx TYPE65534 \\# 1 00\n",
                2,
                "RFC 3597",
            ),
            (
                "@ SOA ns h 1 2 3 4 5\n$GENERATE 1-2 h$ A 1.2.3.$\n",
                2,
                "$GENERATE",
            ),
            (" A 192.0.2.1\n", 1, "no owner"),
            (
                "@ SOA ns h 1 2 3 4 5\n$INCLUDE missing.db\n",
                0,
                "cannot read",
            ),
        ];
        for (text, line, says) in cases {
            let error = read_text(&[("/z/db", text)], "example.org.").expect_err(text);
            assert_eq!(error.line, *line, "{text}: {error}");
            assert!(error.message.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn splits_entries_around_quotes_escapes_and_comments() {
        let text = "a TXT \"semi;colon (paren\" ; comment (\nb TXT \"multi\nline\"\nc TXT x\\(\n";
        let got: Vec<(u32, &str)> = entries(text)
            .map(|e| e.map(|e| (e.line, e.text)))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            got,
            vec![
                (1, "a TXT \"semi;colon (paren\" ; comment ("),
                (2, "b TXT \"multi\nline\""),
                (4, "c TXT x\\("),
            ]
        );
        let words: Vec<&str> = words("x ( 60 IN\n TXT \"a b\" ) ; c")
            .map(|(_, w)| w)
            .collect();
        assert_eq!(words, vec!["x", "60", "IN", "TXT", "\"a b\""]);
    }
}
