//! The client index: the namespace of the Pod that holds an address, so that the address a query
//! comes from names the asking Pod's namespace (server-side search-path completion, CoreDNS
//! `autopath`) with one lock-free, allocation-free lookup. Only the address and a namespace id
//! are kept per Pod, never the Pod, in two sharded copy-on-write tables (IPv4 and IPv6, as the
//! reverse index splits them), whose shards are sorted arrays of exactly their length
//! ([`SortedShards`]): one Pod change builds one shard anew, not the index.
//!
//! - an IPv4 entry is 8 bytes (the address as a `u32`, a `u32` namespace id), an IPv6 entry
//!   20, and nothing is lost to a hash table's load: with the shards' own headers, under
//!   9 bytes per IPv4 Pod at 100,000 Pods (zone/README.md, `tests/tests/client_memory.rs`);
//! - the names are interned once each ([`NamespaceIds`]). The builder counts the entries of
//!   each id and reuses the id of a namespace that has none left, so namespace churn does not
//!   grow the table.
//!
//! What an entry means follows the latest event: an upsert gives the address to its namespace,
//! whatever held it before (an address released by a Pod and given to a Pod of another namespace
//! follows the new Pod); a delete removes the address only while it still belongs to the deleted
//! Pod's namespace, so the late delete of an address's earlier holder leaves the newer entry
//! alone. Within one namespace the entry does not say which Pod holds the address, so such a
//! late delete removes it: the newer Pod then gets no search-path completion (plain answers,
//! never wrong ones) until its next event or the next re-list puts it back.
//!
//! An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, how a dual-stack socket reports an IPv4
//! client) is the IPv4 address, when stored and when looked up.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use foldhash::HashMap;

use crate::table::{Addressed, SortedShards};

/// An IPv4 address and the id of its namespace.
pub(crate) type V4 = Addressed<u32, u32>;

/// An IPv6 address and the id of its namespace.
pub(crate) type V6 = Addressed<[u8; 16], u32>;

/// The published index (see the module docs): what a snapshot reads.
#[derive(Clone)]
pub(crate) struct Clients {
    v4: SortedShards<V4>,
    v6: SortedShards<V6>,
    /// Namespace id → name. An id with no entry left keeps its last name until it is reused;
    /// no entry reaches it meanwhile.
    names: Arc<Vec<Arc<str>>>,
}

/// The builder's interning of namespace ids: which id a namespace has, and how many entries
/// use each id.
#[derive(Default)]
pub(crate) struct NamespaceIds {
    ids: HashMap<Box<str>, u32>,
    /// Entries per id.
    entries: Vec<u32>,
    /// Ids with no entry, to reuse.
    free: Vec<u32>,
}

impl Clients {
    /// An empty index hashing with `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Clients {
            v4: SortedShards::new(seed),
            v6: SortedShards::new(seed.rotate_left(23)),
            names: Arc::default(),
        }
    }

    /// The namespace id `ip` belongs to.
    fn id(&self, ip: IpAddr) -> Option<u32> {
        match ip.to_canonical() {
            IpAddr::V4(ip) => self.v4.get(&u32::from(ip)).map(|e| e.value),
            IpAddr::V6(ip) => self.v6.get(&ip.octets()).map(|e| e.value),
        }
    }

    /// The namespace of the Pod holding `ip`.
    pub(crate) fn namespace(&self, ip: IpAddr) -> Option<&str> {
        let id = self.id(ip)?;
        self.names.get(id as usize).map(|name| &**name)
    }

    /// Gives `ip` to `namespace`; returns whether the index changed (not when `ip` already
    /// belongs to it, which copies nothing).
    pub(crate) fn upsert(&mut self, ids: &mut NamespaceIds, namespace: &str, ip: IpAddr) -> bool {
        let before = self.id(ip);
        if before.is_some() && before == ids.ids.get(namespace).copied() {
            return false;
        }
        let namespace = ids.acquire(namespace, &mut self.names);
        match ip.to_canonical() {
            IpAddr::V4(ip) => self.v4.insert(V4 {
                ip: u32::from(ip),
                value: namespace,
            }),
            IpAddr::V6(ip) => self.v6.insert(V6 {
                ip: ip.octets(),
                value: namespace,
            }),
        }
        if let Some(before) = before {
            ids.release(before, &self.names);
        }
        true
    }

    /// Removes `ip` if it belongs to `namespace`; returns whether it did.
    pub(crate) fn delete(&mut self, ids: &mut NamespaceIds, namespace: &str, ip: IpAddr) -> bool {
        let Some(&id) = ids.ids.get(namespace) else {
            return false;
        };
        let removed = match ip.to_canonical() {
            IpAddr::V4(ip) => (self.v4.remove_if(&u32::from(ip), |e| e.value == id)).is_some(),
            IpAddr::V6(ip) => (self.v6.remove_if(&ip.octets(), |e| e.value == id)).is_some(),
        };
        if removed {
            ids.release(id, &self.names);
        }
        removed
    }

    /// Every address and its namespace, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (IpAddr, &str)> + '_ {
        let name = |id: u32| self.names.get(id as usize).map_or("", |name| &**name);
        (self.v4.iter())
            .map(move |e| (IpAddr::V4(Ipv4Addr::from(e.ip)), name(e.value)))
            .chain((self.v6.iter()).map(move |e| (IpAddr::V6(Ipv6Addr::from(e.ip)), name(e.value))))
    }
}

impl NamespaceIds {
    /// The id of `namespace`, interned into `names` when it has none, counting one more entry.
    fn acquire(&mut self, namespace: &str, names: &mut Arc<Vec<Arc<str>>>) -> u32 {
        let id = match self.ids.get(namespace) {
            Some(&id) => id,
            None => {
                let name: Arc<str> = namespace.into();
                // Copies the names (pointers) when a snapshot shares them: once per publish
                // that brings a new namespace, never per Pod.
                let names = Arc::make_mut(names);
                let id = match self.free.pop() {
                    Some(id) => {
                        names[id as usize] = name;
                        id
                    }
                    None => {
                        names.push(name);
                        self.entries.push(0);
                        (names.len() - 1) as u32
                    }
                };
                self.ids.insert(namespace.into(), id);
                id
            }
        };
        self.entries[id as usize] += 1;
        id
    }

    /// Counts one entry of `id` fewer; frees the id when none is left.
    fn release(&mut self, id: u32, names: &[Arc<str>]) {
        let Some(count) = self
            .entries
            .get_mut(id as usize)
            .filter(|count| **count > 0)
        else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            if let Some(name) = names.get(id as usize) {
                self.ids.remove(&**name);
            }
            self.free.push(id);
        }
    }
}
