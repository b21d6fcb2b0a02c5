//! Why a layer could not be written or an archive could not be read.

use std::io;
use std::path::PathBuf;

/// An error from writing a layer or reading an archive for `ADD`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// An entry path is not a clean relative path (`usr/bin/env`).
    #[error("invalid layer path `{path}`: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two entries have the same path; a layer holds each path once.
    #[error("duplicate layer path `{path}`")]
    DuplicatePath {
        /// The repeated path.
        path: String,
    },
    /// A hard link points at a path that is not in the layer.
    #[error("hard link `{path}` points at `{target}`, which is not in the layer")]
    HardlinkTargetMissing {
        /// The link.
        path: String,
        /// Its target.
        target: String,
    },
    /// A hard link points at a directory, which no file system allows.
    #[error("hard link `{path}` points at directory `{target}`")]
    HardlinkToDirectory {
        /// The link.
        path: String,
        /// Its target.
        target: String,
    },
    /// Hard links that point at each other without reaching a real entry.
    #[error("hard link `{path}` is part of a cycle of links")]
    HardlinkCycle {
        /// One link of the cycle.
        path: String,
    },
    /// A link target contains a NUL byte, which tar cannot store.
    #[error("link target of `{path}` contains a NUL byte")]
    InvalidLinkTarget {
        /// The entry whose target is bad.
        path: String,
    },
    /// An extended attribute name that PAX records cannot carry (empty, `=` or NUL).
    #[error("extended attribute `{name}` of `{path}` cannot be stored in a tar header")]
    InvalidXattr {
        /// The entry.
        path: String,
        /// The attribute name.
        name: String,
    },
    /// A device number too large for a tar header.
    #[error("device numbers of `{path}` are too large for a tar header")]
    DeviceNumberTooLarge {
        /// The device entry.
        path: String,
    },
    /// The gzip level is outside 0 to 9.
    #[error("invalid gzip compression level `{level}`: expected 0 to 9")]
    InvalidCompressionLevel {
        /// The level given.
        level: u32,
    },
    /// A file whose content goes into the layer could not be opened or read.
    #[error("failed to read `{path}`")]
    ReadContent {
        /// The host file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file changed size between the moment its header was written and the end of its read.
    #[error("`{path}` changed size while being written to the layer: expected {expected} bytes")]
    SizeChanged {
        /// The host file.
        path: PathBuf,
        /// The size recorded in the tar header.
        expected: u64,
    },
    /// The layer could not be written to its destination.
    #[error("failed to write layer")]
    Write {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An archive file could not be opened or decoded.
    #[error("failed to read archive `{path}`")]
    ReadArchive {
        /// The archive.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The archive is compressed with a format kiln cannot decode.
    #[error("archive `{path}` is compressed with {compression}, which is not supported")]
    UnsupportedCompression {
        /// The archive.
        path: PathBuf,
        /// The compression detected.
        compression: &'static str,
    },
    /// An archive entry name is not valid UTF-8.
    #[error("archive `{archive}` has an entry whose name is not UTF-8: `{name}`")]
    NonUtf8EntryName {
        /// The archive.
        archive: PathBuf,
        /// The name, with invalid bytes replaced.
        name: String,
    },
    /// An archive entry has a type that cannot be extracted (as Docker refuses too).
    #[error("archive `{archive}` has entry `{entry}` of unsupported type `{typeflag}`")]
    UnsupportedEntryType {
        /// The archive.
        archive: PathBuf,
        /// The entry name.
        entry: String,
        /// The tar typeflag, as a character.
        typeflag: char,
    },
    /// An archive entry header field could not be parsed.
    #[error("archive `{archive}` has entry `{entry}` with an invalid {field}")]
    InvalidEntryHeader {
        /// The archive.
        archive: PathBuf,
        /// The entry name.
        entry: String,
        /// The header field.
        field: &'static str,
    },
    /// An archive entry would be placed under something that is not a directory.
    #[error("archive `{archive}` has entry `{entry}` under `{parent}`, which is not a directory")]
    NotADirectory {
        /// The archive.
        archive: PathBuf,
        /// The entry name.
        entry: String,
        /// The non-directory parent (relative to the destination).
        parent: String,
    },
    /// Archive symlinks that resolve in a loop.
    #[error("archive `{archive}` has entry `{entry}` whose path goes through too many symlinks")]
    TooManySymlinks {
        /// The archive.
        archive: PathBuf,
        /// The entry name.
        entry: String,
    },
    /// An archive hard link to something that is not (yet) in the archive.
    #[error(
        "archive `{archive}` has hard link `{entry}` to `{target}`, which is not earlier in the archive"
    )]
    ArchiveHardlinkTarget {
        /// The archive.
        archive: PathBuf,
        /// The link.
        entry: String,
        /// Its target as written.
        target: String,
    },
    /// An extracted file could not be written to the scratch directory.
    #[error("failed to write extracted file to `{path}`")]
    Scratch {
        /// The scratch path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A layer could not be unpacked into a directory.
    #[error(transparent)]
    Unpack(#[from] crate::layer::unpack::UnpackError),
}
