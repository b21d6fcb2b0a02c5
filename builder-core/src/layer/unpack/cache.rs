//! Unpacked layers kept per machine, by diff_id, so a base image is unpacked once and then
//! stacked as overlay lower directories by every build.
//!
//! A layer is unpacked into a temporary directory beside its final place, flushed to disk and
//! renamed: a crash leaves at worst a temporary directory (removed by the next `ensure` of that
//! layer), never a half-unpacked directory under the final name. A lock file per layer makes
//! concurrent builds, in one process or many, unpack it once.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use rustix::fs::{Mode, OFlags};

use super::error::UnpackError;
use super::{WhiteoutFormat, decode, unpacker};
use crate::layer::error::LayerError;
use crate::layer::write::LayerInfo;
use crate::oci::{Digest, LayerRef};

/// A directory of unpacked layers: `<root>/<diff_id hex>/` for overlay lower directories with
/// `trusted.*` whiteout attributes, `<root>/<hex>.userxattr/` for rootless overlay, and
/// `<root>/<hex>.applied/` for [`WhiteoutFormat::Apply`] (whiteouts deleted, not recorded).
/// The formats differ on disk, so each has its own directory.
#[derive(Debug, Clone)]
pub struct UnpackedLayers {
    root: PathBuf,
    ownership: Option<String>,
}

impl UnpackedLayers {
    /// A cache rooted at `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        UnpackedLayers {
            root: root.into(),
            ownership: None,
        }
    }

    /// Keeps this process's layers apart from those unpacked under another id mapping: inside
    /// a user namespace a file's host owner depends on the map, so a layer unpacked with one
    /// map has the wrong owners under another. `tag` (from
    /// [`ownership_tag`](crate::exec::sandbox::ownership_tag)) is appended to the directory
    /// names; `None` leaves them as they are.
    pub fn with_ownership_tag(mut self, tag: Option<String>) -> Self {
        self.ownership = tag;
        self
    }

    /// The directory name of a layer in a given whiteout format.
    fn dir_name(&self, hex: &str, whiteouts: WhiteoutFormat) -> String {
        let mut name = match whiteouts {
            WhiteoutFormat::Overlay { user_xattr: false } => hex.to_string(),
            WhiteoutFormat::Overlay { user_xattr: true } => format!("{hex}.userxattr"),
            WhiteoutFormat::Apply => format!("{hex}.applied"),
        };
        if let Some(tag) = &self.ownership {
            name.push('.');
            name.push_str(tag);
        }
        name
    }

    /// The directory holding `layer` unpacked with `whiteouts`, unpacking `blob` (the layer's
    /// bytes, compressed or not) first when it is not there yet. The uncompressed stream must
    /// hash to the layer's diff_id, so the cache never holds content under the wrong key.
    pub fn ensure(
        &self,
        layer: &LayerRef,
        blob: &Path,
        whiteouts: WhiteoutFormat,
    ) -> Result<PathBuf, LayerError> {
        let name = self.dir_name(layer.diff_id.hex(), whiteouts);
        let target = self.root.join(&name);
        if is_dir(&target) {
            return Ok(target);
        }
        let lock = self.lock(&name)?;
        if is_dir(&target) {
            return Ok(target);
        }
        let temp_prefix = format!(".tmp-{name}-");
        self.remove_leftovers(&temp_prefix)?;
        let temp = self.temp_dir(&temp_prefix)?;
        let format = decode::sniff(blob)?;
        let file = File::open(blob).map_err(|source| UnpackError::Read {
            layer: blob.to_path_buf(),
            source,
        })?;
        let stats = unpacker::unpack_stream(
            decode::decoder(file, format),
            blob,
            temp.path(),
            whiteouts,
            Some(&layer.diff_id),
        )?;
        publish(temp, target, lock, stats.hardlinks == 0)
    }

    /// Whether `dir`, a layer directory of this cache, is known to have no two paths to one
    /// inode. Each file of a layer unpacked with a donor is a hard link to the donor's file,
    /// so a file's link count says nothing of links inside its own layer; this does, for
    /// layers unpacked since it was recorded (false for older ones, and when unsure).
    pub fn has_no_hard_links(dir: &Path) -> bool {
        no_links_marker(dir).exists()
    }

    /// Takes the lock of layer directory `name`, creating the cache directory: one unpack of a
    /// layer at a time, across builds and processes.
    fn lock(&self, name: &str) -> Result<File, LayerError> {
        fs::create_dir_all(&self.root).map_err(cache_err(&self.root))?;
        let lock_path = self.root.join(format!("{name}.lock"));
        let lock = File::create(&lock_path).map_err(cache_err(&lock_path))?;
        lock.lock().map_err(cache_err(&lock_path))?;
        Ok(lock)
    }

    /// A new temporary directory beside the layers, mode 0755 like the unpacked layers.
    fn temp_dir(&self, prefix: &str) -> Result<tempfile::TempDir, LayerError> {
        fs::create_dir_all(&self.root).map_err(cache_err(&self.root))?;
        let temp = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&self.root)
            .map_err(cache_err(&self.root))?;
        fs::set_permissions(
            temp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(cache_err(temp.path()))?;
        Ok(temp)
    }

    /// The directory of the layer with `diff_id` in `whiteouts` format, if it is unpacked.
    pub fn path(&self, diff_id: &Digest, whiteouts: WhiteoutFormat) -> Option<PathBuf> {
        let target = self.root.join(self.dir_name(diff_id.hex(), whiteouts));
        is_dir(&target).then_some(target)
    }

    /// Starts unpacking a layer from its tar stream while the stream is being written (see
    /// [`crate::layer::write_layer_with`]), on a thread of its own: a step that needs the layer
    /// next then finds it unpacked without reading its blob back and decompressing it. Files
    /// identical to those of `donor` (an unpacked layer directory, typically the previous
    /// version of the same step) are hard-linked from it.
    pub fn begin(
        &self,
        whiteouts: WhiteoutFormat,
        donor: Option<PathBuf>,
    ) -> Result<PendingUnpack, LayerError> {
        let temp = self.temp_dir(".tmp-new-")?;
        let (sender, receiver) = sync_channel(PIPE_DEPTH);
        let reader = PipeReader {
            receiver,
            current: Vec::new(),
            at: 0,
            read: 0,
        };
        let thread = std::thread::spawn(move || {
            let (stats, reader) = unpacker::unpack_entries(
                reader,
                Path::new(BEING_WRITTEN),
                temp.path(),
                whiteouts,
                donor.as_deref(),
            )?;
            Ok(Unpacked {
                read: reader.read,
                no_links: stats.hardlinks == 0,
                temp,
            })
        });
        Ok(PendingUnpack {
            layers: self.clone(),
            whiteouts,
            pipe: PipeWriter {
                sender: Some(sender),
                buffer: Vec::with_capacity(PIPE_BLOCK),
            },
            thread: Some(thread),
        })
    }

    /// Removes the unpacked layers (in every format) whose diff_id `remove` picks, given its hex,
    /// and any temporary directory; returns how many layers went. The caller must make sure no
    /// build is using them (`kiln cache prune` holds the cache's exclusive lock).
    pub fn remove(&self, remove: impl Fn(&str) -> bool) -> Result<usize, LayerError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(cache_err(&self.root)(e)),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(cache_err(&self.root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let temporary = name.starts_with(".tmp-");
            let hex = name.split('.').next().unwrap_or_default();
            if !temporary && !remove(hex) {
                continue;
            }
            if is_dir(&path) {
                fs::remove_dir_all(&path).map_err(cache_err(&path))?;
                if !temporary {
                    removed += 1;
                }
            } else {
                fs::remove_file(&path).map_err(cache_err(&path))?;
            }
        }
        Ok(removed)
    }

    /// Removes temporary directories a crashed unpack of this layer left behind (the caller
    /// holds the layer's lock, so none of them is in use).
    fn remove_leftovers(&self, prefix: &str) -> Result<(), LayerError> {
        let cache_err = |source| UnpackError::Cache {
            path: self.root.clone(),
            source,
        };
        for entry in fs::read_dir(&self.root).map_err(cache_err)? {
            let entry = entry.map_err(cache_err)?;
            if entry.file_name().to_string_lossy().starts_with(prefix) {
                fs::remove_dir_all(entry.path()).map_err(|source| UnpackError::Cache {
                    path: entry.path(),
                    source,
                })?;
            }
        }
        Ok(())
    }
}

/// Bytes handed to the unpacking thread at a time, and how many such blocks may wait: the
/// writer never gets more than a few MiB ahead.
const PIPE_BLOCK: usize = 256 * 1024;
const PIPE_DEPTH: usize = 16;

/// A layer being unpacked from the tar stream written into it (see [`UnpackedLayers::begin`]).
/// Dropped without [`PendingUnpack::finish`], it leaves nothing behind.
pub struct PendingUnpack {
    layers: UnpackedLayers,
    whiteouts: WhiteoutFormat,
    pipe: PipeWriter,
    thread: Option<JoinHandle<Result<Unpacked, UnpackError>>>,
}

/// What the unpacking thread ends with.
struct Unpacked {
    /// How many bytes the stream had.
    read: u64,
    /// Whether the layer had no hard links.
    no_links: bool,
    /// The directory it filled.
    temp: tempfile::TempDir,
}

/// How errors name a layer unpacked from the stream written into it.
const BEING_WRITTEN: &str = "(layer being written)";

impl PendingUnpack {
    /// Ends the stream and puts the layer in place under the diff_id of `layer`, the layer
    /// whose tar stream was written into it ([`crate::layer::write_layer_with`] with this as
    /// its `tar_copy`). The writer hashed those very bytes, so they are not hashed again here;
    /// a stream that stopped short or ran on (a writer that gave up half-way) is refused.
    pub fn finish(mut self, layer: &LayerInfo) -> Result<PathBuf, LayerError> {
        let Unpacked {
            read,
            no_links,
            temp,
        } = self.wait()?;
        if read != layer.uncompressed_size {
            return Err(UnpackError::StreamLength {
                layer: PathBuf::from(BEING_WRITTEN),
                expected: layer.uncompressed_size,
                actual: read,
            }
            .into());
        }
        let name = self.layers.dir_name(layer.diff_id.hex(), self.whiteouts);
        let target = self.layers.root.join(&name);
        let lock = self.layers.lock(&name)?;
        if is_dir(&target) {
            return Ok(target);
        }
        publish(temp, target, lock, no_links)
    }

    /// Ends the stream and waits for the unpacking thread.
    fn wait(&mut self) -> Result<Unpacked, UnpackError> {
        self.pipe.close();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(UnpackError::Cache {
                path: self.layers.root.clone(),
                source: io::Error::other("the unpacking thread stopped"),
            }),
        }
    }
}

impl Write for PendingUnpack {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pipe.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for PendingUnpack {
    fn drop(&mut self) {
        if self.thread.is_some() {
            // The thread sees the stream end, stops, and its temporary directory goes with it.
            let _ = self.wait();
        }
    }
}

/// The writing end of the stream: blocks of bytes over a bounded channel. When the unpacking
/// thread has stopped (an error), what is written is dropped; the error comes from
/// [`PendingUnpack::finish`].
struct PipeWriter {
    sender: Option<SyncSender<Vec<u8>>>,
    buffer: Vec<u8>,
}

impl PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= PIPE_BLOCK {
            self.send();
        }
        Ok(buf.len())
    }

    fn send(&mut self) {
        let block = std::mem::replace(&mut self.buffer, Vec::with_capacity(PIPE_BLOCK));
        if let Some(sender) = &self.sender
            && sender.send(block).is_err()
        {
            self.sender = None;
        }
    }

    /// Sends what is left; the reader then sees the end of the stream.
    fn close(&mut self) {
        if !self.buffer.is_empty() {
            self.send();
        }
        self.sender = None;
    }
}

/// The reading end: the blocks in order, then the end of the stream once the writer is gone.
struct PipeReader {
    receiver: Receiver<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
    /// Bytes read so far.
    read: u64,
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            match self.receiver.recv() {
                Ok(block) => {
                    self.current = block;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        self.read += n as u64;
        Ok(n)
    }
}

/// Flushes the unpacked `temp` to disk and renames it to `target`, then lets go of the
/// layer's `lock`. `no_links`: the layer had no hard links, which a marker beside it records
/// (see [`UnpackedLayers::has_no_hard_links`]).
fn publish(
    temp: tempfile::TempDir,
    target: PathBuf,
    lock: File,
    no_links: bool,
) -> Result<PathBuf, LayerError> {
    if no_links {
        // Only ever a hint to skip a search: a layer directory without it is searched. The
        // layer's content is fixed by its diff_id, so a marker left by a crash is still true.
        let _ = File::create(no_links_marker(&target));
    }
    sync_fs(temp.path()).map_err(cache_err(temp.path()))?;
    let temp = temp.keep();
    if let Err(source) = fs::rename(&temp, &target) {
        let _ = fs::remove_dir_all(&temp);
        return Err(UnpackError::Cache {
            path: target,
            source,
        }
        .into());
    }
    drop(lock);
    Ok(target)
}

/// The empty file beside layer directory `dir` that says it has no hard links.
fn no_links_marker(dir: &Path) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(".nolinks");
    PathBuf::from(name)
}

/// An error of the cache directory at `path`.
fn cache_err(path: &Path) -> impl FnOnce(io::Error) -> LayerError + use<> {
    let path = path.to_path_buf();
    move |source| LayerError::from(UnpackError::Cache { path, source })
}

fn is_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// Flushes the file system holding `path`, so the rename that publishes it comes after its
/// contents are on disk.
fn sync_fs(path: &Path) -> io::Result<()> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(rustix::fs::syncfs(fd)?)
}
