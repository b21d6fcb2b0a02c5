//! Is this file a tar archive? Decided as Docker's `IsArchivePath` and BuildKit's
//! `isArchivePath` do: pick a decompressor from the magic bytes (bzip2 `BZh`, xz `FD 37 7A 58
//! 5A 00`, gzip `1F 8B 08`, otherwise none), then ask whether Go's tar reader would return a
//! first header. Any failure on the way (a corrupt stream, a bad checksum, an empty archive)
//! means "not an archive", and the file is copied as it is.

use std::fs::{self, File};
use std::io::Read;
use std::path::Path;

use super::numeric::{parse_numeric, parse_octal};
use super::{ArchiveFormat, decoder};
use crate::layer::error::LayerError;
use crate::layer::read_full;

const BZIP2_MAGIC: &[u8] = b"BZh";
const XZ_MAGIC: &[u8] = &[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b, 0x08];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// Go's tar reader refuses PAX and GNU long-name headers larger than this.
const MAX_SPECIAL_FILE: u64 = 1 << 20;
/// How many PAX or long-name headers may precede the first real header.
const MAX_SPECIAL_HEADERS: usize = 64;

/// Returns the archive format of `path`, or `None` when the file is not a tar archive (then
/// `ADD` copies it as a plain file). Symlinks and other non-regular files are never archives.
///
/// Zstandard-compressed files are an error: Docker would extract them if they hold a tar, and
/// kiln cannot decode them to find out.
pub fn detect_archive(path: &Path) -> Result<Option<ArchiveFormat>, LayerError> {
    let read_err = |source| LayerError::ReadArchive {
        path: path.to_path_buf(),
        source,
    };
    let metadata = fs::symlink_metadata(path).map_err(read_err)?;
    if !metadata.file_type().is_file() {
        return Ok(None);
    }
    let mut file = File::open(path).map_err(read_err)?;
    let mut magic = [0u8; 10];
    let n = read_full(&mut file, &mut magic).map_err(read_err)?;
    let magic = &magic[..n];
    let format = if magic.starts_with(BZIP2_MAGIC) {
        ArchiveFormat::Bzip2
    } else if magic.starts_with(XZ_MAGIC) {
        ArchiveFormat::Xz
    } else if magic.starts_with(GZIP_MAGIC) {
        ArchiveFormat::Gzip
    } else if magic.starts_with(ZSTD_MAGIC) || is_zstd_skippable_frame(magic) {
        return Err(LayerError::UnsupportedCompression {
            path: path.to_path_buf(),
            compression: "zstd",
        });
    } else {
        ArchiveFormat::Tar
    };
    let file = File::open(path).map_err(read_err)?;
    let mut stream = decoder(file, format);
    Ok(has_first_header(&mut stream).then_some(format))
}

/// Zstandard skippable frames start with `0x184D2A5?` little-endian.
fn is_zstd_skippable_frame(magic: &[u8]) -> bool {
    magic.len() >= 4 && magic[0] & 0xf0 == 0x50 && magic[1..4] == [0x2a, 0x4d, 0x18]
}

/// Whether Go's `tar.Reader.Next` would succeed on `stream`: the first non-extension header must
/// have a valid checksum and parseable numeric fields. A leading zero block means an empty or
/// malformed archive, which Go reports as EOF or an error.
fn has_first_header(stream: &mut dyn Read) -> bool {
    let mut block = [0u8; 512];
    for _ in 0..MAX_SPECIAL_HEADERS {
        match read_full(stream, &mut block) {
            Ok(512) => {}
            _ => return false,
        }
        if block.iter().all(|&b| b == 0) {
            return false;
        }
        let Some(size) = valid_header_size(&block) else {
            return false;
        };
        match block[156] {
            b'x' | b'L' | b'K' => {
                if size > MAX_SPECIAL_FILE {
                    return false;
                }
                let padded = size.div_ceil(512) * 512;
                let mut data = Vec::new();
                match stream.take(padded).read_to_end(&mut data) {
                    Ok(n) if n as u64 == padded => {}
                    _ => return false,
                }
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                if block[156] == b'x' && !valid_pax_records(&data[..size]) {
                    return false;
                }
            }
            _ => return true,
        }
    }
    false
}

/// The entry size if `block` is a header Go's reader accepts, as `getFormat` and `readHeader`
/// check it: the checksum matches the unsigned or the signed byte sum, and the numeric fields
/// parse (device numbers only in USTAR and GNU headers).
fn valid_header_size(block: &[u8; 512]) -> Option<u64> {
    let recorded = parse_octal(&block[148..156])?;
    let (unsigned, signed) = block
        .iter()
        .enumerate()
        .map(|(i, &b)| if (148..156).contains(&i) { b' ' } else { b })
        .fold((0i64, 0i64), |(u, s), b| {
            (u + i64::from(b), s + i64::from(b as i8))
        });
    if recorded != unsigned && recorded != signed {
        return None;
    }
    for field in [
        &block[100..108],
        &block[108..116],
        &block[116..124],
        &block[136..148],
    ] {
        parse_numeric(field)?;
    }
    let magic = &block[257..263];
    if magic == b"ustar\0" || magic == b"ustar " {
        parse_numeric(&block[329..337])?;
        parse_numeric(&block[337..345])?;
    }
    let size = parse_numeric(&block[124..136])?;
    u64::try_from(size).ok()
}

/// PAX records are `"<len> <key>=<value>\n"` with `<len>` counting the whole record.
fn valid_pax_records(mut data: &[u8]) -> bool {
    while !data.is_empty() {
        let Some(space) = data.iter().position(|&b| b == b' ') else {
            return false;
        };
        let Some(len) = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            return false;
        };
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return false;
        }
        if !data[space + 1..len - 1].contains(&b'=') {
            return false;
        }
        data = &data[len..];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_syntax() {
        assert!(valid_pax_records(b"9 path=x\n"));
        assert!(valid_pax_records(b"11 path=xy\n"));
        assert!(!valid_pax_records(b"12 path=xy\n"));
        assert!(!valid_pax_records(b"9 pathxx\n"));
    }
}
