//! Layers: deterministic tar writing, compression and digests.

pub mod entry;

pub use entry::{Content, Entry, EntryKind};
