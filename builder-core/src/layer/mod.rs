//! Layers: deterministic tar writing, compression and digests.

pub use crate::oci::entry::{self, Content, Entry, EntryKind};
