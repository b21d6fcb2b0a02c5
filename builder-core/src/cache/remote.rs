//! The form a cache takes in a registry: one image manifest per cache reference, whose config
//! blob maps keys to layer descriptors and whose layers are those blobs.
//!
//! Unlike kaniko and buildah, which push one tag per step, a cache reference is one tag: a
//! registry holds one manifest per cache, and layer blobs are ordinary blobs that a push of the
//! image itself can mount. Exporting merges with what the reference already holds, so caches of
//! different branches or targets can share a reference.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::key::CacheKey;
use super::record::{CacheRecord, CachedLayer, StepInputs};
use crate::oci::Digest;

/// The media type of the config blob of a cache manifest.
pub const CACHE_CONFIG_MEDIA_TYPE: &str = "application/vnd.kiln.cache.config.v1+json";

/// The artifact type announced by a cache manifest.
pub const CACHE_ARTIFACT_TYPE: &str = "application/vnd.kiln.cache.v1";

/// The config blob of a cache manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteCacheConfig {
    /// Entries by key.
    pub entries: BTreeMap<CacheKey, CacheRecord>,
    /// The inputs of the last exported build at each step position, so a runner that starts
    /// with an empty local cache can still say what changed when a step misses.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<CacheKey, StepInputs>,
}

impl From<Vec<CacheRecord>> for RemoteCacheConfig {
    fn from(records: Vec<CacheRecord>) -> RemoteCacheConfig {
        let mut config = RemoteCacheConfig::default();
        for record in records {
            config.merge(RemoteCacheConfig {
                entries: BTreeMap::from([(record.key.clone(), record)]),
                inputs: BTreeMap::new(),
            });
        }
        config
    }
}

impl RemoteCacheConfig {
    /// Adds `other`'s entries; on the same key the newer entry wins. `other`'s inputs replace
    /// these at the same step position (it is the later build).
    pub fn merge(&mut self, other: RemoteCacheConfig) {
        self.inputs.extend(other.inputs);
        for (key, record) in other.entries {
            match self.entries.get(&key) {
                Some(mine) if mine.created >= record.created => {}
                _ => {
                    self.entries.insert(key, record);
                }
            }
        }
    }

    /// Drops the entries created more than `ttl_secs` before `now`.
    pub fn expire(&mut self, ttl_secs: i64, now: i64) {
        self.entries.retain(|_, r| now - r.created <= ttl_secs);
        let entries = &self.entries;
        self.inputs
            .retain(|_, i| i.key.as_ref().is_some_and(|k| entries.contains_key(k)));
    }

    /// The distinct layers the entries use, in digest order: the manifest's layers.
    pub fn layers(&self) -> Vec<CachedLayer> {
        let by_digest: BTreeMap<&Digest, &CachedLayer> = self
            .entries
            .values()
            .filter_map(|r| r.layer.as_ref())
            .map(|l| (&l.digest, l))
            .collect();
        by_digest.into_values().cloned().collect()
    }

    /// The config's bytes, deterministic for the same entries.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::KeyBuilder;

    fn record(name: &str, created: i64, blob: &[u8]) -> CacheRecord {
        let digest = Digest::of(blob);
        CacheRecord {
            key: KeyBuilder::new("test").str("name", name).finish(),
            created,
            created_by: format!("RUN {name}"),
            layer: Some(CachedLayer {
                digest: digest.clone(),
                size: blob.len() as u64,
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                diff_id: digest,
            }),
        }
    }

    #[test]
    fn merge_keeps_both_sides_and_the_newer_entry_per_key() {
        let mut a = RemoteCacheConfig::default();
        let x = record("x", 10, b"x");
        a.entries.insert(x.key.clone(), x.clone());
        let mut b = RemoteCacheConfig::default();
        let y = record("y", 20, b"y");
        let mut x2 = record("x", 30, b"x2");
        x2.key = x.key.clone();
        b.entries.insert(y.key.clone(), y.clone());
        b.entries.insert(x.key.clone(), x2.clone());
        a.merge(b);
        assert_eq!(a.entries.len(), 2);
        assert_eq!(a.entries[&x.key], x2);
        assert_eq!(a.layers().len(), 2);
        a.expire(15, 40);
        assert_eq!(a.entries.len(), 1);
        let back: RemoteCacheConfig = serde_json::from_slice(&a.to_bytes()).unwrap();
        assert_eq!(back, a);
    }
}
