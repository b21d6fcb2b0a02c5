//! The cache decision for each step: hit (from the local cache or a registry cache) or miss,
//! and for every miss the reason that names its cause.

use std::collections::BTreeSet;
use std::time::Duration;

use super::remote_cache::RemoteCaches;
use super::{BuildError, CacheSource, StepCache};
use crate::cache::remote::RemoteCacheConfig;
use crate::cache::{
    CacheKey, CacheRecord, CachedChunks, CachedLayer, LocalCache, MissReason, StepInputs,
};
use crate::context::FileHashes;
use crate::layer::ChunkIndex;
use crate::oci::{Digest, OciLayout};

/// The cache for one build: where hits come from, where results go, and what the user asked
/// to skip.
pub(super) struct Caching {
    pub(super) local: Option<LocalCache>,
    pub(super) remote: Option<RemoteCaches>,
    pub(super) hashes: FileHashes,
    pub(super) no_cache: bool,
    pub(super) no_cache_stages: BTreeSet<usize>,
    pub(super) ttl: Option<Duration>,
    pub(super) now: i64,
    /// Every record of this build, hits included, and the inputs at each step position (for
    /// `--cache-to`).
    pub(super) exported: RemoteCacheConfig,
    /// Whether the inputs go into `exported` too: a copy of a large COPY's inputs (one entry
    /// per file) is not made for a build that exports no cache.
    pub(super) export_inputs: bool,
}

/// How a step got its result.
pub(super) enum Outcome<'a> {
    /// From the cache.
    Reused,
    /// Built now; `chunks` is where its layer's compressed chunks are, if it has a gzip layer.
    Built { chunks: Option<&'a ChunkIndex> },
}

/// What the chain above a step looks like.
pub(super) struct Chain {
    /// The key of the step before (or of the stage's base).
    pub(super) key: CacheKey,
    /// The first step of the chain that missed, if one did.
    pub(super) first_miss: Option<usize>,
}

/// Where a step's key stands.
pub(super) struct Lookup<'a> {
    pub(super) key: &'a CacheKey,
    pub(super) slot: &'a CacheKey,
    pub(super) inputs: &'a StepInputs,
    pub(super) stage: usize,
    pub(super) chain: &'a Chain,
    /// For `COPY --from=<stage>`: that stage's name and its first miss.
    pub(super) source_stage_miss: Option<(String, usize)>,
}

impl Caching {
    /// Finds `lookup.key`; on a miss, works out why.
    pub(super) fn find(
        &self,
        lookup: &Lookup<'_>,
    ) -> Result<(CacheRecord, CacheSource), MissReason> {
        if self.no_cache || self.no_cache_stages.contains(&lookup.stage) {
            return Err(MissReason::NoCache);
        }
        let mut expired = None;
        if let Some(local) = &self.local
            && let Some(record) = local.get(lookup.key)
        {
            match self.age_if_expired(&record) {
                None => return Ok((record, CacheSource::Local)),
                Some(age) => expired = Some(age),
            }
        }
        if let Some(record) = self.remote.as_ref().and_then(|r| r.get(lookup.key)) {
            match self.age_if_expired(record) {
                None => return Ok((record.clone(), CacheSource::Remote)),
                Some(age) => expired = Some(expired.map_or(age, |a: i64| a.min(age))),
            }
        }
        // The key is in the cache but too old: a fresh entry would have hit whatever missed
        // above it (a parent rebuilt with the same key), so the age is the whole reason.
        if let Some(age_secs) = expired {
            return Err(MissReason::Expired { age_secs });
        }
        if let Some(step) = lookup.chain.first_miss {
            return Err(MissReason::ParentMissed { step });
        }
        if let Some((stage, step)) = &lookup.source_stage_miss {
            return Err(MissReason::SourceStageChanged {
                stage: stage.clone(),
                step: *step,
            });
        }
        let previous = self
            .local
            .as_ref()
            .and_then(|l| l.inputs(lookup.slot))
            .or_else(|| {
                self.remote
                    .as_ref()
                    .and_then(|r| r.inputs(lookup.slot).cloned())
            });
        match previous {
            Some(p) if p.key.as_ref() != Some(lookup.key) => {
                Err(lookup.inputs.explain(&p).unwrap_or(MissReason::NotInCache))
            }
            _ => Err(MissReason::NotInCache),
        }
    }

    fn age_if_expired(&self, record: &CacheRecord) -> Option<i64> {
        let ttl = self.ttl?;
        let age = self.now - record.created;
        (age > ttl.as_secs() as i64).then_some(age)
    }

    /// The layer the last build made at step position `slot`: a step that changed a little
    /// since then (one file of a big COPY) reuses what it can of it.
    pub(super) fn previous_layer(&self, slot: &CacheKey) -> Option<CachedLayer> {
        let local = self.local.as_ref()?;
        local.get(&local.inputs_key(slot)?)?.layer
    }

    /// The compressed chunks of cached blob `blob`, if the local cache has its index.
    pub(super) fn chunks_of(&self, blob: &Digest) -> Option<CachedChunks> {
        self.local.as_ref()?.chunks(blob)
    }

    /// Remembers a step's result and the inputs it came from.
    pub(super) fn remember(
        &mut self,
        record: CacheRecord,
        slot: &CacheKey,
        inputs: &StepInputs,
        outcome: Outcome<'_>,
        store: &OciLayout,
    ) -> Result<(), BuildError> {
        if let Some(local) = &self.local {
            if let Outcome::Built { chunks } = outcome {
                local
                    .put(&record, store, chunks)
                    .map_err(BuildError::Cache)?;
            }
            if local.inputs_key(slot).as_ref() != inputs.key.as_ref() {
                local.set_inputs(slot, inputs).map_err(BuildError::Cache)?;
            }
        }
        if self.export_inputs {
            self.exported.inputs.insert(slot.clone(), inputs.clone());
        }
        self.exported.entries.insert(record.key.clone(), record);
        Ok(())
    }
}

impl StepCache {
    /// The cache outcome for a step that was looked up.
    pub(super) fn of(found: &Result<(CacheRecord, CacheSource), MissReason>) -> StepCache {
        match found {
            Ok((_, source)) => StepCache::Hit { source: *source },
            Err(reason) => StepCache::Miss {
                reason: reason.clone(),
            },
        }
    }
}
