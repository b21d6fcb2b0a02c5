//! Reading local archives for `ADD archive.tar /dest`.
//!
//! Docker extracts a local source when its *content* is a tar archive, plain or compressed with
//! gzip, bzip2 or xz, whatever its name; anything else is copied as a file. [`detect_archive`]
//! makes that decision the way Docker and BuildKit do, and [`extract_archive_entries`] turns
//! the archive into layer [`Entry`](super::Entry)s placed under the destination, with file
//! contents spilled to a scratch directory so memory stays flat.

mod detect;
mod extract;
mod numeric;
mod root_path;

use std::fs::File;
use std::io::{BufReader, Read};

pub use detect::detect_archive;
pub use extract::extract_archive_entries;

/// How an archive is compressed, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArchiveFormat {
    /// An uncompressed tar.
    Tar,
    /// Gzip (one or more members).
    Gzip,
    /// Bzip2 (one or more streams).
    Bzip2,
    /// Xz (one or more streams).
    Xz,
}

/// Reads the tar stream inside `file`.
fn decoder(file: File, format: ArchiveFormat) -> Box<dyn Read> {
    let file = BufReader::with_capacity(64 * 1024, file);
    match format {
        ArchiveFormat::Tar => Box::new(file),
        ArchiveFormat::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(file)),
        ArchiveFormat::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(file)),
        ArchiveFormat::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(file)),
    }
}
