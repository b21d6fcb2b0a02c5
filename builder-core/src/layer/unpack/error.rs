//! Why a layer could not be unpacked.
//!
//! Every variant names the layer blob, and the entry when one is at fault, so a refused hostile
//! layer can be told apart from a broken disk.

use std::io;
use std::path::PathBuf;

use crate::oci::Digest;

/// An error from unpacking a layer into a directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnpackError {
    /// An entry name climbs above the root with `..` (`../../etc/x`).
    #[error("layer `{layer}` has entry `{entry}`, which points outside the root")]
    EscapingPath {
        /// The layer blob.
        layer: PathBuf,
        /// The entry name as written.
        entry: String,
    },
    /// A hard link whose target climbs above the root with `..`.
    #[error("layer `{layer}` has hard link `{entry}` to `{target}`, which is outside the root")]
    EscapingHardlink {
        /// The layer blob.
        layer: PathBuf,
        /// The link.
        entry: String,
        /// Its target as written.
        target: String,
    },
    /// A hard link to something that does not exist (or is a directory) inside the root.
    #[error("layer `{layer}` has hard link `{entry}` to `{target}`, which does not exist")]
    HardlinkTargetMissing {
        /// The layer blob.
        layer: PathBuf,
        /// The link.
        entry: String,
        /// Its target as written.
        target: String,
    },
    /// A whiteout that names no file (`.wh.`) or a special name (`.wh..`).
    #[error("layer `{layer}` has invalid whiteout `{entry}`")]
    InvalidWhiteout {
        /// The layer blob.
        layer: PathBuf,
        /// The whiteout entry.
        entry: String,
    },
    /// An entry type that has no place in a root filesystem.
    #[error("layer `{layer}` has entry `{entry}` of unsupported type `{typeflag}`")]
    UnsupportedEntryType {
        /// The layer blob.
        layer: PathBuf,
        /// The entry name.
        entry: String,
        /// The tar typeflag, as a character.
        typeflag: char,
    },
    /// A header field that does not parse.
    #[error("layer `{layer}` has entry `{entry}` with an invalid {field}")]
    InvalidHeader {
        /// The layer blob.
        layer: PathBuf,
        /// The entry name.
        entry: String,
        /// The header field.
        field: &'static str,
    },
    /// A file system operation on an entry failed.
    #[error("layer `{layer}`: failed to {action} `{entry}`")]
    Entry {
        /// The layer blob.
        layer: PathBuf,
        /// The entry name.
        entry: String,
        /// What was being done (`create`, `set the owner of`, …).
        action: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The blob could not be opened, decompressed or parsed as tar.
    #[error("failed to read layer `{layer}`")]
    Read {
        /// The layer blob.
        layer: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The uncompressed bytes do not hash to the diff_id the image config promises.
    #[error("layer `{layer}` has diff_id `{actual}`, expected `{expected}`")]
    DiffIdMismatch {
        /// The layer blob.
        layer: PathBuf,
        /// The diff_id from the image config.
        expected: Digest,
        /// The sha256 of what was unpacked.
        actual: Digest,
    },
    /// The tar stream handed over while a layer was written was not as long as the layer.
    #[error("layer `{layer}` has {expected} bytes of tar, but {actual} were unpacked")]
    StreamLength {
        /// The layer.
        layer: PathBuf,
        /// The length of the layer's tar stream.
        expected: u64,
        /// The bytes that were unpacked.
        actual: u64,
    },
    /// The destination directory could not be opened.
    #[error("failed to open unpack destination `{path}`")]
    Destination {
        /// The destination.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The cache of unpacked layers could not be prepared, locked or updated.
    #[error("failed to update unpacked layer cache at `{path}`")]
    Cache {
        /// The cache path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}
