//! Writes entries as one layer blob in a single streaming pass:
//! tar → sha256 (diff_id) → chunked gzip ([`super::gzip`]) → sha256 (digest) → output.
//!
//! Nothing is held in memory beyond a copy buffer and the chunks being compressed: host files
//! are streamed as they are written. The output is a function of the entries and options only,
//! so the same inputs give the same bytes and the same digests, whether chunks were compressed
//! or reused from an earlier blob.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use super::entry::{Content, Entry, EntryKind};
use super::error::LayerError;
use super::gzip::{self, ChunkIndex, ChunkSource, NoChunks};
use super::header::{self, BLOCK, HeaderFields, typeflag};
use super::order;
use crate::oci::{Digest, DigestWriter};

/// OCI media type of a gzip-compressed layer.
pub const MEDIA_TYPE_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI media type of an uncompressed layer.
pub const MEDIA_TYPE_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

const COPY_BUFFER: usize = 128 * 1024;
const OUTPUT_BUFFER: usize = 128 * 1024;

/// How the layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar; the digest equals the diff_id.
    None,
    /// Gzip at `level` 0 to 9, as independent chunks in one member (see [`super::gzip`]).
    /// The header has no file name, mtime 0 and OS byte 255, so the bytes depend only on the
    /// content and level.
    Gzip {
        /// zlib level, 0 (store) to 9 (best).
        level: u32,
    },
}

impl Default for Compression {
    /// Gzip level 6, Docker's default.
    fn default() -> Self {
        Compression::Gzip { level: 6 }
    }
}

/// Options that change the bytes of a layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerOptions {
    /// Compression of the blob.
    pub compression: Compression,
    /// `SOURCE_DATE_EPOCH`: when set, no entry's mtime is later than it.
    pub source_date_epoch: Option<i64>,
}

/// What a written layer is, for its descriptor and the image config. Only a layer write makes
/// one, so that [`super::PendingUnpack::finish`] can take it as the account of the stream it
/// was given.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayerInfo {
    /// Digest of the bytes written (compressed when compression is on).
    pub digest: Digest,
    /// sha256 of the uncompressed tar, as listed in the image config's `rootfs.diff_ids`.
    pub diff_id: Digest,
    /// Bytes written.
    pub size: u64,
    /// Bytes of the uncompressed tar.
    pub uncompressed_size: u64,
    /// OCI media type matching the compression.
    pub media_type: &'static str,
    /// Where each compressed chunk is in the blob (gzip only), for reusing them in a later
    /// layer.
    pub chunks: Option<ChunkIndex>,
}

/// Writes `entries` as a layer to `out` and returns its digests, sizes and `out`.
///
/// Entries are sorted by path components (byte order), so parents precede children; missing
/// parent directories are not invented. Duplicate paths are an error. A hard link's content is
/// written under whichever path of its group sorts first, and all other paths of the group
/// become hard links to it (a tar reader can only link to something it has extracted); that
/// first path also takes the mode, owner, mtime and xattrs of the entry that held the content.
/// Headers follow Go's `archive/tar` (USTAR when possible, PAX otherwise), with empty user and
/// group names and no atime/ctime; mtimes are clamped to `source_date_epoch` when it is set.
pub fn write_layer<W: Write + Send>(
    entries: Vec<Entry>,
    out: W,
    opts: &LayerOptions,
) -> Result<(LayerInfo, W), LayerError> {
    write_layer_with(entries, out, opts, WriteExtras::default())
}

/// What a layer write draws on and feeds besides its output.
#[derive(Default)]
pub struct WriteExtras<'a> {
    /// Compressed chunks of earlier layers: those the new blob has are copied, not
    /// compressed again. The blob is the same either way.
    pub reuse: Option<&'a dyn ChunkSource>,
    /// Receives a copy of the uncompressed tar stream, to unpack the layer while it is
    /// written ([`super::unpack::UnpackedLayers::begin`]).
    pub tar_copy: Option<&'a mut dyn Write>,
}

/// [`write_layer`] with [`WriteExtras`].
pub fn write_layer_with<W: Write + Send>(
    entries: Vec<Entry>,
    out: W,
    opts: &LayerOptions,
    extras: WriteExtras<'_>,
) -> Result<(LayerInfo, W), LayerError> {
    let reuse = extras.reuse.unwrap_or(&NoChunks);
    let tar_copy = extras.tar_copy;
    let entries = order::prepare(entries)?;
    let write_err = |source| LayerError::Write { source };
    let output = DigestWriter::new(BufWriter::with_capacity(OUTPUT_BUFFER, out));
    match opts.compression {
        Compression::None => {
            let mut tar = DigestWriter::new(Tee {
                inner: output,
                copy: tar_copy,
            });
            write_tar(&entries, &mut tar, opts.source_date_epoch)?;
            let (diff_id, uncompressed_size, Tee { inner: output, .. }) = tar.finish();
            let (digest, size, buffered) = output.finish();
            let out = buffered
                .into_inner()
                .map_err(|e| write_err(e.into_error()))?;
            let info = LayerInfo {
                digest,
                diff_id,
                size,
                uncompressed_size,
                media_type: MEDIA_TYPE_TAR,
                chunks: None,
            };
            Ok((info, out))
        }
        Compression::Gzip { level } => {
            if level > 9 {
                return Err(LayerError::InvalidCompressionLevel { level });
            }
            let (output, chunks, tar) =
                gzip::write_chunked(level, reuse, output, write_err, |gz| {
                    let mut tar = Tee {
                        inner: gz,
                        copy: tar_copy,
                    };
                    write_tar(&entries, &mut tar, opts.source_date_epoch)
                })?;
            let (diff_id, uncompressed_size) = (tar.digest, tar.size);
            let (digest, size, buffered) = output.finish();
            let out = buffered
                .into_inner()
                .map_err(|e| write_err(e.into_error()))?;
            let info = LayerInfo {
                digest,
                diff_id,
                size,
                uncompressed_size,
                media_type: MEDIA_TYPE_TAR_GZIP,
                chunks: Some(chunks),
            };
            Ok((info, out))
        }
    }
}

/// Writes to `inner` and, when given, the same bytes to `copy`.
struct Tee<'a, W> {
    inner: W,
    copy: Option<&'a mut dyn Write>,
}

impl<W: Write> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(copy) = self.copy.as_mut() {
            copy.write_all(&buf[..n])?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the tar stream of already ordered entries, ending with two zero blocks.
fn write_tar<W: Write>(
    entries: &[Entry],
    out: &mut W,
    source_date_epoch: Option<i64>,
) -> Result<(), LayerError> {
    let write_err = |source| LayerError::Write { source };
    let mut header_bytes = Vec::with_capacity(2 * BLOCK);
    let mut buffer = vec![0u8; COPY_BUFFER];
    for entry in entries {
        let mtime = match source_date_epoch {
            Some(epoch) => entry.mtime.min(epoch),
            None => entry.mtime,
        };
        let mut opened = None;
        let size = match &entry.kind {
            EntryKind::File(Content::Bytes(bytes)) => bytes.len() as u64,
            EntryKind::File(Content::Path(path)) => {
                let (file, size) = open_content(path)?;
                opened = Some((file, path.as_path()));
                size
            }
            _ => 0,
        };
        let name = match entry.kind {
            EntryKind::Dir => format!("{}/", entry.path),
            _ => entry.path.clone(),
        };
        let (flag, linkname, devmajor, devminor) = match &entry.kind {
            EntryKind::File(_) => (typeflag::REGULAR, "", 0, 0),
            EntryKind::Dir => (typeflag::DIR, "", 0, 0),
            EntryKind::Symlink(target) => (typeflag::SYMLINK, target.as_str(), 0, 0),
            EntryKind::Hardlink(target) => (typeflag::HARDLINK, target.as_str(), 0, 0),
            EntryKind::CharDevice { major, minor } => (typeflag::CHAR, "", *major, *minor),
            EntryKind::BlockDevice { major, minor } => (typeflag::BLOCK, "", *major, *minor),
            EntryKind::Fifo => (typeflag::FIFO, "", 0, 0),
        };
        header_bytes.clear();
        let fields = HeaderFields {
            name: &name,
            typeflag: flag,
            linkname,
            mode: entry.mode,
            uid: entry.uid,
            gid: entry.gid,
            size,
            mtime,
            devmajor,
            devminor,
            xattrs: &entry.xattrs,
        };
        header::encode(&fields, &entry.path, &mut header_bytes)?;
        out.write_all(&header_bytes).map_err(write_err)?;

        match (&entry.kind, opened) {
            (EntryKind::File(Content::Bytes(bytes)), _) => {
                out.write_all(bytes).map_err(write_err)?;
            }
            (_, Some((file, path))) => copy_exact(file, path, size, out, &mut buffer)?,
            _ => {}
        }
        let pad = header::padding(size);
        out.write_all(&[0u8; BLOCK][..pad]).map_err(write_err)?;
    }
    out.write_all(&[0u8; 2 * BLOCK]).map_err(write_err)?;
    Ok(())
}

fn open_content(path: &Path) -> Result<(File, u64), LayerError> {
    let read_err = |source| LayerError::ReadContent {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let size = file.metadata().map_err(read_err)?.len();
    Ok((file, size))
}

/// Copies exactly `size` bytes of `file` to `out`; a file that is shorter or longer now than
/// when its size was taken is an error, since the header already promised `size`.
fn copy_exact<W: Write>(
    mut file: File,
    path: &Path,
    size: u64,
    out: &mut W,
    buffer: &mut [u8],
) -> Result<(), LayerError> {
    let read_err = |source| LayerError::ReadContent {
        path: path.to_path_buf(),
        source,
    };
    let changed = || LayerError::SizeChanged {
        path: path.to_path_buf(),
        expected: size,
    };
    let mut remaining = size;
    while remaining > 0 {
        let want = buffer
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let n = read_retrying(&mut file, &mut buffer[..want]).map_err(read_err)?;
        if n == 0 {
            return Err(changed());
        }
        out.write_all(&buffer[..n])
            .map_err(|source| LayerError::Write { source })?;
        remaining -= n as u64;
    }
    let mut probe = [0u8; 1];
    if read_retrying(&mut file, &mut probe).map_err(read_err)? != 0 {
        return Err(changed());
    }
    Ok(())
}

fn read_retrying(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
