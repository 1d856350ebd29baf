//! Which lock group holds a key: consistent hashing (`hashring`, virtual nodes) of
//! `(tenant, key)` over the lock groups `1..=shards`.
//!
//! Every gateway must map a key to the same group, or two groups could grant the same key
//! at once. The mapping therefore depends only on the shard count and on bytes spelled out
//! here (little-endian integers, the key's UTF-8), hashed with SipHash-2-4 under fixed keys
//! (hashring's default): not on the platform, the process or the Rust version.
//! `tests::the_mapping_is_pinned` fails if that ever changes.

use std::hash::{Hash, Hasher};

use hashring::HashRing;

use crate::map::GroupId;

/// Points on the ring per lock group: enough for an even spread (see the tests).
pub const VIRTUAL_NODES: u32 = 128;

/// One point of a group on the ring.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Point {
    group: GroupId,
    replica: u32,
}

impl Hash for Point {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.group.to_le_bytes());
        state.write(&self.replica.to_le_bytes());
    }
}

/// A key as the ring hashes it.
struct RingKey<'a> {
    tenant: u64,
    name: &'a str,
}

impl Hash for RingKey<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.tenant.to_le_bytes());
        state.write(self.name.as_bytes());
    }
}

/// The ring over lock groups `1..=shards`.
pub struct ShardRing {
    ring: HashRing<Point>,
    shards: u32,
}

impl ShardRing {
    /// The ring of a cluster with `shards` lock groups (at least one).
    pub fn new(shards: u32) -> Self {
        let shards = shards.max(1);
        let mut ring = HashRing::new();
        let points = (1..=shards)
            .flat_map(|group| (0..VIRTUAL_NODES).map(move |replica| Point { group, replica }))
            .collect();
        ring.batch_add(points);
        Self { ring, shards }
    }

    /// How many lock groups the ring spreads keys over.
    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The lock group that holds `name` of `tenant`.
    pub fn group_of(&self, tenant: u64, name: &str) -> GroupId {
        self.ring
            .get(&RingKey { tenant, name })
            .map_or(1, |point| point.group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mapping_is_pinned() {
        let ring = ShardRing::new(16);
        let groups: Vec<_> = ["a", "b", "orders/42", "ünïcødé", ""]
            .iter()
            .map(|name| ring.group_of(7, name))
            .collect();
        assert_eq!(
            groups, PINNED,
            "key placement changed: keys would move between groups"
        );
        assert_ne!(
            ring.group_of(7, "a"),
            ring.group_of(8, "a"),
            "tenant is part of the key"
        );
    }

    /// Computed once; any change to the hashing moves keys and fails here.
    const PINNED: [GroupId; 5] = [14, 5, 10, 6, 7];

    #[test]
    fn keys_spread_evenly_over_the_groups() {
        let ring = ShardRing::new(16);
        let mut counts = [0u32; 17];
        for i in 0..160_000u32 {
            counts[ring.group_of(u64::from(i % 7), &format!("key-{i}")) as usize] += 1;
        }
        assert_eq!(counts[0], 0);
        let (min, max) = (counts[1..].iter().min(), counts[1..].iter().max());
        let (min, max) = (*min.unwrap_or(&0), *max.unwrap_or(&0));
        assert!(min > 7_000 && max < 13_000, "uneven spread: {counts:?}");
    }

    #[test]
    fn one_more_group_moves_few_keys() {
        let (before, after) = (ShardRing::new(16), ShardRing::new(17));
        let moved = (0..50_000u32)
            .filter(|i| {
                let name = format!("key-{i}");
                before.group_of(1, &name) != after.group_of(1, &name)
            })
            .count();
        assert!(moved < 50_000 / 17 * 2, "{moved} of 50000 keys moved");
    }
}
