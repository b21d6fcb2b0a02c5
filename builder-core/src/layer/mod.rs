//! Layers: deterministic tar writing, compression and digests, and reading archives for `ADD`.
//!
//! [`write_layer`] turns a list of [`Entry`]s into one layer blob in a single streaming pass and
//! returns its digest and diff_id. The same entries and options always give the same bytes:
//! entries are sorted, headers carry no host user names or access times, mtimes can be clamped
//! to `SOURCE_DATE_EPOCH`, and the gzip header has no timestamp. Gzip is written in
//! content-defined chunks ([`gzip`]) so that [`write_layer_with`] can take unchanged chunks from
//! an earlier blob and hand the tar stream to an unpack running beside it
//! ([`UnpackedLayers::begin`]). [`detect_archive`] and [`extract_archive_entries`] read local tar
//! archives for `ADD` into entries.

pub mod archive;
pub mod error;
pub mod gzip;
mod header;
mod order;
pub mod unpack;
pub mod write;

pub use crate::oci::entry::{self, Content, Entry, EntryKind};
pub use archive::{ArchiveFormat, detect_archive, extract_archive_entries};
pub use error::LayerError;
pub use gzip::{ChunkIndex, ChunkSource};
pub use unpack::{
    PendingUnpack, UnpackError, UnpackStats, UnpackedLayers, WhiteoutFormat, unpack_layer,
};
pub use write::{
    Compression, LayerInfo, LayerOptions, MEDIA_TYPE_TAR, MEDIA_TYPE_TAR_GZIP, WriteExtras,
    write_layer, write_layer_with,
};

/// Reads until `buf` is full or the stream ends; returns the bytes read (fewer only at the end).
pub(crate) fn read_full(stream: &mut dyn std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
