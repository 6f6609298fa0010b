//! The reverse index: which Services give an address its reverse (PTR) name. One entry per
//! (address, owner), the owner being the hash of the Service's record key in the services table.
//! IPv4 and IPv6 addresses live in separate tables so that an IPv4 entry is 12 bytes, not the 32
//! an `IpAddr` and a `u64` would take: at half a million endpoints this table is most of what the
//! zone holds beside the records.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::table::{Addressed, Sharded};

/// An owner hash split in two, so an entry needs only 4-byte alignment.
type Owner = [u32; 2];

fn split(owner: u64) -> Owner {
    [(owner >> 32) as u32, owner as u32]
}

fn join(owner: Owner) -> u64 {
    (u64::from(owner[0]) << 32) | u64::from(owner[1])
}

/// An IPv4 address and one of its owners.
pub(crate) type V4 = Addressed<u32, Owner>;

/// An IPv6 address and one of its owners.
pub(crate) type V6 = Addressed<[u8; 16], Owner>;

/// The reverse index (see the module docs).
#[derive(Clone)]
pub(crate) struct Reverse {
    v4: Sharded<V4>,
    v6: Sharded<V6>,
}

impl Reverse {
    /// An empty index hashing with `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Reverse {
            v4: Sharded::new(seed),
            v6: Sharded::new(seed.rotate_left(29)),
        }
    }

    /// The owner hashes of `ip`.
    pub(crate) fn owners(&self, ip: IpAddr) -> impl Iterator<Item = u64> + '_ {
        let (v4, v6) = match ip {
            IpAddr::V4(ip) => {
                let ip = u32::from(ip);
                let found = (self.v4.candidates(self.v4.hash(&ip)))
                    .filter(move |e| e.ip == ip)
                    .map(|e| join(e.value));
                (Some(found), None)
            }
            IpAddr::V6(ip) => {
                let ip = ip.octets();
                let found = (self.v6.candidates(self.v6.hash(&ip)))
                    .filter(move |e| e.ip == ip)
                    .map(|e| join(e.value));
                (None, Some(found))
            }
        };
        v4.into_iter().flatten().chain(v6.into_iter().flatten())
    }

    /// Starts loading the pointer to `ip`'s shard (see [`crate::Snapshot::prefetch`]).
    pub(crate) fn prefetch_pointer(&self, ip: IpAddr) {
        match ip {
            IpAddr::V4(ip) => self.v4.prefetch_pointer(self.v4.hash(&u32::from(ip))),
            IpAddr::V6(ip) => self.v6.prefetch_pointer(self.v6.hash(&ip.octets())),
        }
    }

    /// Starts loading the header of `ip`'s shard table, whose pointer
    /// [`Reverse::prefetch_pointer`] started loading.
    pub(crate) fn prefetch_shard(&self, ip: IpAddr) {
        match ip {
            IpAddr::V4(ip) => self.v4.prefetch_shard(self.v4.hash(&u32::from(ip))),
            IpAddr::V6(ip) => self.v6.prefetch_shard(self.v6.hash(&ip.octets())),
        }
    }

    /// Records that `owner` names `ip`; returns whether `ip` had no owner before.
    pub(crate) fn add(&mut self, ip: IpAddr, owner: u64) -> bool {
        match ip {
            IpAddr::V4(ip) => {
                let entry = V4 {
                    ip: u32::from(ip),
                    value: split(owner),
                };
                self.v4.insert_beside(entry)
            }
            IpAddr::V6(ip) => {
                let entry = V6 {
                    ip: ip.octets(),
                    value: split(owner),
                };
                self.v6.insert_beside(entry)
            }
        }
    }

    /// Records that `owner` no longer names `ip`; returns whether `ip` has no owner left.
    pub(crate) fn remove(&mut self, ip: IpAddr, owner: u64) -> bool {
        let owner = split(owner);
        match ip {
            IpAddr::V4(v4) => {
                let key = u32::from(v4);
                let hash = self.v4.hash(&key);
                self.v4.remove_by(hash, |e| e.ip == key && e.value == owner);
            }
            IpAddr::V6(v6) => {
                let key = v6.octets();
                let hash = self.v6.hash(&key);
                self.v6.remove_by(hash, |e| e.ip == key && e.value == owner);
            }
        }
        self.owners(ip).next().is_none()
    }

    /// Every address with an owner (once per owner).
    pub(crate) fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        (self.v4.iter().map(|e| IpAddr::V4(Ipv4Addr::from(e.ip))))
            .chain(self.v6.iter().map(|e| IpAddr::V6(Ipv6Addr::from(e.ip))))
    }
}
