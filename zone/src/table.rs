//! Sharded copy-on-write hash tables: what the builder edits and what readers see. A table is
//! split into shards behind `Arc`s; cloning the table (a publish) copies only the shard
//! pointers, and the builder's next edit of a shard copies that shard alone (`Arc::make_mut`).
//! So a snapshot never changes, and the cost of publishing one change follows the size of a
//! shard, not of the cluster.
//!
//! Two kinds: [`Sharded`] hash tables, and [`SortedShards`] for small fixed-size values that
//! many objects have (the client index's one per Pod), whose shards are sorted arrays of
//! exactly their length, so a value costs its own size and nothing for a hash table's load.

use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use foldhash::fast::FixedState;
use hashbrown::HashTable;

/// log2 of the number of shards: 4096 keeps a shard small (a few hundred entries at a million
/// entries) so a publish copies little.
const SHARD_BITS: u32 = 12;

/// The shard a hash picks. The middle bits pick it; hashbrown uses the low bits for the slot and
/// the top seven for its tag, so a shard's entries still spread over both.
fn shard_of(hash: u64) -> usize {
    ((hash >> 32) as usize) & ((1 << SHARD_BITS) - 1)
}

/// An address (a `u32` for IPv4, 16 bytes for IPv6) and what an address table keeps for it:
/// the entry of the reverse index and of the client index.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Addressed<A, T> {
    /// The address, the key.
    pub(crate) ip: A,
    /// What is kept for it.
    pub(crate) value: T,
}

impl<A: Hash + Eq, T> Keyed for Addressed<A, T> {
    type Key = A;
    fn key(&self) -> &A {
        &self.ip
    }
}

/// A value stored in a [`Sharded`] table, found by its key.
pub(crate) trait Keyed {
    /// The key type.
    type Key: ?Sized + Hash + Eq;
    /// The key this value is stored under.
    fn key(&self) -> &Self::Key;
}

/// A sharded copy-on-write hash table (see the module docs). Several values may share a key
/// (the reverse index keeps one entry per owner of an address).
#[derive(Clone)]
pub(crate) struct Sharded<T> {
    hasher: FixedState,
    shards: Vec<Arc<HashTable<T>>>,
}

impl<T: Keyed + Clone> Sharded<T> {
    /// An empty table hashing with `seed`. Every shard starts as the same empty table, so a
    /// table nothing is put in costs its 4096 pointers only; the first insert into a shard gives
    /// it its own (`Arc::make_mut` copies a shared shard).
    pub(crate) fn new(seed: u64) -> Self {
        Sharded {
            hasher: FixedState::with_seed(seed),
            shards: {
                let empty = Arc::new(HashTable::new());
                vec![empty; 1 << SHARD_BITS]
            },
        }
    }

    /// The hash of `key` in this table.
    pub(crate) fn hash(&self, key: &T::Key) -> u64 {
        self.hasher.hash_one(key)
    }

    fn shard(hash: u64) -> usize {
        shard_of(hash)
    }

    /// The first value with hash `hash` for which `eq` holds.
    pub(crate) fn find(&self, hash: u64, eq: impl FnMut(&T) -> bool) -> Option<&T> {
        self.shards[Self::shard(hash)].find(hash, eq)
    }

    /// The value stored under `key`.
    pub(crate) fn get(&self, key: &T::Key) -> Option<&T> {
        self.find(self.hash(key), |v| v.key() == key)
    }

    /// Starts loading the pointer to the shard `hash` falls in, without waiting for it (see
    /// [`crate::Snapshot::prefetch`]); [`Sharded::prefetch_shard`] comes next.
    pub(crate) fn prefetch_pointer(&self, hash: u64) {
        prefetch(
            std::ptr::from_ref(&self.shards[Self::shard(hash)]).cast(),
            1,
        );
    }

    /// Starts loading the header of the shard table `hash` falls in (whose pointer
    /// [`Sharded::prefetch_pointer`] started loading), without waiting for it;
    /// [`Sharded::prefetch_values`] comes next.
    pub(crate) fn prefetch_shard(&self, hash: u64) {
        prefetch(Arc::as_ptr(&self.shards[Self::shard(hash)]).cast(), 1);
    }

    /// Probes the shard table for `hash` (whose header [`Sharded::prefetch_shard`] started
    /// loading; the probe itself waits for the control bytes) and starts loading `lines` cache
    /// lines from where `target` points for each value that may have that hash, waiting for
    /// none of them.
    pub(crate) fn prefetch_values(
        &self,
        hash: u64,
        lines: usize,
        target: impl Fn(&T) -> *const u8,
    ) {
        self.shards[Self::shard(hash)].find(hash, |value| {
            prefetch(target(value), lines);
            false
        });
    }

    /// Every value that may have hash `hash` (callers check the key).
    pub(crate) fn candidates(&self, hash: u64) -> impl Iterator<Item = &T> {
        self.shards[Self::shard(hash)].iter_hash(hash)
    }

    /// Inserts `value` beside the values already under its key, unless an equal one is there;
    /// returns whether its key had no value before. One probe of the shard does both.
    pub(crate) fn insert_beside(&mut self, value: T) -> bool
    where
        T: PartialEq,
    {
        let hash = self.hash(value.key());
        let hasher = self.hasher.clone();
        let table = Arc::make_mut(&mut self.shards[Self::shard(hash)]);
        let mut key_seen = false;
        let mut equal_seen = false;
        for stored in table.iter_hash(hash) {
            if stored.key() == value.key() {
                key_seen = true;
                equal_seen |= *stored == value;
            }
        }
        if !equal_seen {
            table.insert_unique(hash, value, |v| hasher.hash_one(v.key()));
        }
        !key_seen
    }

    /// Inserts or replaces the value stored under its key.
    pub(crate) fn insert(&mut self, value: T) {
        let hash = self.hash(value.key());
        let hasher = self.hasher.clone();
        let table = Arc::make_mut(&mut self.shards[Self::shard(hash)]);
        match table.find_mut(hash, |v| v.key() == value.key()) {
            Some(slot) => *slot = value,
            None => {
                table.insert_unique(hash, value, |v| hasher.hash_one(v.key()));
            }
        }
    }

    /// Removes the first value with hash `hash` for which `eq` holds; returns it.
    pub(crate) fn remove_by(&mut self, hash: u64, eq: impl FnMut(&T) -> bool) -> Option<T> {
        let shard = Self::shard(hash);
        let mut eq = eq;
        self.shards[shard].find(hash, &mut eq)?;
        let table = Arc::make_mut(&mut self.shards[shard]);
        table.find_entry(hash, eq).ok().map(|slot| slot.remove().0)
    }

    /// Removes the value stored under `key`; returns it.
    pub(crate) fn remove(&mut self, key: &T::Key) -> Option<T> {
        let hash = self.hash(key);
        self.remove_by(hash, |v| v.key() == key)
    }

    /// The number of values.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.len()).sum()
    }

    /// Every value, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.shards.iter().flat_map(|shard| shard.iter())
    }
}

/// Starts loading the `lines` cache lines from `at` and returns at once: a hint, which never
/// faults whatever the address (and does nothing on other architectures).
fn prefetch(at: *const u8, lines: usize) {
    #[cfg(target_arch = "x86_64")]
    for line in 0..lines {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: the intrinsic is unsafe for its target feature, SSE, which every x86_64
        // processor has. A prefetch reads nothing the program sees and cannot fault, valid
        // address or not (the processor drops it); `wrapping_add` makes no claim about the
        // address either.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(64 * line).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (at, lines);
}

/// A sharded copy-on-write table of `Copy` values with distinct keys, each shard an array sorted
/// by key and exactly as long as it holds (see the module docs). An edit builds the shard anew
/// in one allocation (the copy a shared shard needs anyway), and a lookup is a binary search in
/// one shard: a few hundred values at a million.
#[derive(Clone)]
pub(crate) struct SortedShards<T> {
    hasher: FixedState,
    shards: Vec<Arc<[T]>>,
}

impl<T: Keyed + Copy> SortedShards<T>
where
    T::Key: Ord,
{
    /// An empty table hashing with `seed`; every shard starts as the same empty array.
    pub(crate) fn new(seed: u64) -> Self {
        let empty: Arc<[T]> = Arc::new([]);
        SortedShards {
            hasher: FixedState::with_seed(seed),
            shards: vec![empty; 1 << SHARD_BITS],
        }
    }

    /// The shard `key` lives in, and where in it `key` is (`Err`: where it would go).
    fn position(&self, key: &T::Key) -> (usize, Result<usize, usize>) {
        let shard = shard_of(self.hasher.hash_one(key));
        let at = self.shards[shard].binary_search_by(|v| v.key().cmp(key));
        (shard, at)
    }

    /// The value stored under `key`.
    pub(crate) fn get(&self, key: &T::Key) -> Option<&T> {
        let (shard, at) = self.position(key);
        at.ok().map(|at| &self.shards[shard][at])
    }

    /// Inserts or replaces the value stored under its key.
    pub(crate) fn insert(&mut self, value: T) {
        let (shard, at) = self.position(value.key());
        let old = &self.shards[shard];
        let (before, after) = match at {
            Ok(at) => (&old[..at], &old[at + 1..]),
            Err(at) => (&old[..at], &old[at..]),
        };
        let new: Arc<[T]> = (before.iter().copied())
            .chain(std::iter::once(value))
            .chain(after.iter().copied())
            .collect();
        self.shards[shard] = new;
    }

    /// Removes the value stored under `key` if `remove` holds for it; returns it.
    pub(crate) fn remove_if(&mut self, key: &T::Key, remove: impl FnOnce(&T) -> bool) -> Option<T> {
        let (shard, Ok(at)) = self.position(key) else {
            return None;
        };
        let old = &self.shards[shard];
        let value = old[at];
        if !remove(&value) {
            return None;
        }
        let new: Arc<[T]> = (old[..at].iter().copied())
            .chain(old[at + 1..].iter().copied())
            .collect();
        self.shards[shard] = new;
        Some(value)
    }

    /// Every value, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.shards.iter().flat_map(|shard| shard.iter())
    }
}
