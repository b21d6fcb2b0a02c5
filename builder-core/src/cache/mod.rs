//! The layer cache: a step whose inputs have not changed reuses the layer it made before.
//!
//! A key is chained: the parent step's key, the step's instruction in canonical form after
//! expansion, and its inputs (the files COPY reads, as they will be in the layer; the
//! environment and user RUN sees). Equal keys mean equal layers, so a hit is never stale; a
//! change anywhere in the chain changes every key after it. Next to each key the cache keeps
//! the inputs of the last build at that step position, so a miss can name what changed.
//!
//! This module stores and compares; [`crate::build`] decides what goes into a key and
//! [`remote`] describes the format a cache takes in a registry.

mod key;
mod local;
mod record;
pub mod remote;

pub use key::{CacheKey, KeyBuilder};
pub use local::{
    BuildStats, CacheEntry, CacheError, CacheStats, CachedChunks, LocalCache, PruneOptions,
    PruneReport, rate,
};
pub use record::{CacheRecord, CachedLayer, FileState, MissReason, StepInputs};
