//! The stored form of one fixed owner name (the apex, `ns.dns`, `dns-version`, empty
//! non-terminals, namespaces, ExternalName Services, verified pod names): a single shared
//! allocation holding the lowercase wire name (the lookup key) and the pre-encoded answers per
//! query type. Names under ClusterIP and headless Services are not stored this way; they are
//! derived from their Service's record at query time (see `derived`).
//!
//! Layout: `key_len:u8 key n:u8 (qtype:u16 offset:u32)×n entries…`, where each entry is
//! `an:u16 ns:u16 ar:u16 nrec:u16 end:u16×nrec body` (little endian), `end` being the offset in
//! `body` where each record ends, so a response can be cut at a record boundary.

use std::sync::Arc;

/// The type code a node's catch-all entry is stored under: it answers every query type that has
/// no entry of its own (used for the CNAME of an ExternalName Service).
pub const ANY_TYPE_ENTRY: u16 = 0xFFFF;

/// A stored node (see the module docs).
pub type NodeBlob = Arc<[u8]>;

/// Builds one node blob.
pub struct NodeBuilder<'a> {
    key: &'a [u8],
    entries: Vec<(u16, Vec<u8>)>,
}

impl<'a> NodeBuilder<'a> {
    /// The lowercase wire name this node is for.
    pub fn key(&self) -> &'a [u8] {
        self.key
    }

    /// A node for the lowercase wire name `key`.
    pub fn new(key: &'a [u8]) -> Self {
        NodeBuilder {
            key,
            entries: Vec::new(),
        }
    }

    /// Adds the pre-encoded entry (from [`crate::encode::EntryWriter::finish`]) for `qtype`.
    pub fn entry(&mut self, qtype: u16, entry: Vec<u8>) {
        self.entries.push((qtype, entry));
    }

    /// The finished blob.
    pub fn finish(self) -> NodeBlob {
        let n = self.entries.len().min(255);
        let table_start = 1 + self.key.len() + 1;
        let data_start = table_start + n * 6;
        let total = data_start + self.entries.iter().map(|(_, e)| e.len()).sum::<usize>();
        let mut out = Vec::with_capacity(total);
        out.push(self.key.len() as u8);
        out.extend_from_slice(self.key);
        out.push(n as u8);
        let mut offset = data_start;
        for (qtype, entry) in self.entries.iter().take(n) {
            out.extend_from_slice(&qtype.to_le_bytes());
            out.extend_from_slice(&(offset as u32).to_le_bytes());
            offset += entry.len();
        }
        for (_, entry) in self.entries.iter().take(n) {
            out.extend_from_slice(entry);
        }
        out.into()
    }
}

/// A read view of a stored node.
#[derive(Clone, Copy)]
pub struct Node<'a>(&'a [u8]);

impl<'a> Node<'a> {
    /// Views a blob.
    pub fn new(blob: &'a [u8]) -> Self {
        Node(blob)
    }

    /// The entry stored for exactly `qtype`.
    pub fn entry(&self, qtype: u16) -> Option<Entry<'a>> {
        let blob = self.0;
        let table = 1 + usize::from(blob[0]) + 1;
        let n = usize::from(blob[table - 1]);
        for i in 0..n {
            let at = table + i * 6;
            if u16::from_le_bytes([blob[at], blob[at + 1]]) == qtype {
                let offset =
                    u32::from_le_bytes([blob[at + 2], blob[at + 3], blob[at + 4], blob[at + 5]]);
                return Some(Entry::new(&blob[offset as usize..]));
            }
        }
        None
    }
}

/// The lookup key (lowercase wire name) of a blob.
pub fn key_of(blob: &[u8]) -> &[u8] {
    &blob[1..1 + usize::from(blob[0])]
}

/// A pre-encoded answer: section counts, record boundaries and the body bytes.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    /// Records in the answer, authority and additional sections.
    pub counts: [u16; 3],
    ends: &'a [u8],
    /// The encoded records, ready to follow the question.
    pub body: &'a [u8],
}

impl<'a> Entry<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        let read = |i: usize| u16::from_le_bytes([bytes[i * 2], bytes[i * 2 + 1]]);
        let counts = [read(0), read(1), read(2)];
        let nrec = usize::from(read(3));
        let ends = &bytes[8..8 + nrec * 2];
        let body_len = if nrec == 0 {
            0
        } else {
            usize::from(u16::from_le_bytes([ends[nrec * 2 - 2], ends[nrec * 2 - 1]]))
        };
        let start = 8 + nrec * 2;
        let body = &bytes[start..start + body_len];
        Entry { counts, ends, body }
    }

    /// The number of whole records that fit in `room` bytes, and their length.
    pub fn fit(&self, room: usize) -> (usize, usize) {
        let mut fitted = (0, 0);
        for (i, end) in self.ends.chunks_exact(2).enumerate() {
            let end = usize::from(u16::from_le_bytes([end[0], end[1]]));
            if end > room {
                break;
            }
            fitted = (i + 1, end);
        }
        fitted
    }
}
