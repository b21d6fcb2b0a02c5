//! The tar stream inside a layer blob: decompressed on the fly, never held in memory.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use crate::layer::ArchiveFormat;
use crate::layer::error::LayerError;

const READ_BUFFER: usize = 128 * 1024;

/// Reads the tar stream of `file`, compressed as `format`. Gzip may have several members (as
/// eStargz layers do).
pub(crate) fn decoder(file: File, format: ArchiveFormat) -> Box<dyn Read> {
    let file = BufReader::with_capacity(READ_BUFFER, file);
    match format {
        ArchiveFormat::Tar => Box::new(file),
        ArchiveFormat::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(file)),
        ArchiveFormat::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(file)),
        ArchiveFormat::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(file)),
    }
}

/// The compression of a layer blob, from its first bytes: media types are sometimes wrong
/// (Docker's foreign layers, hand-made images), the bytes are not.
pub(crate) fn sniff(blob: &Path) -> Result<ArchiveFormat, LayerError> {
    let read_err = |source| LayerError::ReadArchive {
        path: blob.to_path_buf(),
        source,
    };
    let mut file = File::open(blob).map_err(read_err)?;
    let mut magic = [0u8; 6];
    let filled = crate::layer::read_full(&mut file, &mut magic).map_err(read_err)?;
    let magic = &magic[..filled];
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        ArchiveFormat::Gzip
    } else if magic.starts_with(b"BZh") {
        ArchiveFormat::Bzip2
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        ArchiveFormat::Xz
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(LayerError::UnsupportedCompression {
            path: blob.to_path_buf(),
            compression: "zstd",
        });
    } else {
        ArchiveFormat::Tar
    })
}
