//! Reading a blob while it is still being written, so that a push can send a layer's bytes as
//! the layer is made instead of after it.
//!
//! The writer's temporary file is shared through a second descriptor and read with positioned
//! reads, so the reader never holds more than one buffer and never slows the writer down: when
//! it falls behind it reads on from the file, and it may finish long after the writer has.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt as _;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tempfile::NamedTempFile;

use super::Digest;
use super::write_behind::WriteBehind;

/// How far a blob's writer has got.
#[derive(Debug, Default)]
struct Progress {
    /// Bytes in the file, readable.
    written: u64,
    /// Set once the writer is done: `Some(digest)` when it committed, `None` when it gave up.
    end: Option<Option<Digest>>,
}

#[derive(Debug, Default)]
struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        // A writer that panicked mid-update leaves counts that are still true (only ever raised).
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Readers are woken each time this much more has been written, and at the end.
const WAKE_EVERY: u64 = 256 * 1024;

/// The file under a blob writer's buffer; tells a [`BlobTail`], if there is one, what is
/// written, and has a large blob's data written back to disk as it grows.
#[derive(Debug)]
pub(super) struct TrackedFile {
    file: NamedTempFile,
    written: u64,
    tail: Option<Publisher>,
    behind: WriteBehind,
}

/// The writer's side of a [`BlobTail`]: dropped before the blob is committed, it tells the
/// reader the blob was abandoned.
#[derive(Debug)]
struct Publisher {
    shared: Arc<Shared>,
    /// What the reader was last told was written.
    told: u64,
}

impl Publisher {
    fn tell(&mut self, written: u64, end: Option<Option<Digest>>) {
        self.told = written;
        let mut progress = self.shared.lock();
        progress.written = written;
        if let Some(end) = end {
            progress.end.get_or_insert(end);
        }
        self.shared.changed.notify_all();
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let told = self.told;
        self.tell(told, Some(None));
    }
}

impl TrackedFile {
    pub(super) fn new(file: NamedTempFile) -> TrackedFile {
        TrackedFile {
            file,
            written: 0,
            tail: None,
            behind: WriteBehind::default(),
        }
    }

    /// The file, once the blob is written and any background sync of it is over.
    pub(super) fn into_file(mut self) -> NamedTempFile {
        self.behind.finish();
        self.file
    }

    /// A reader of this file's bytes as they are written.
    pub(super) fn tail(&mut self) -> io::Result<BlobTail> {
        let shared = Arc::new(Shared::default());
        shared.lock().written = self.written;
        self.tail = Some(Publisher {
            shared: shared.clone(),
            told: self.written,
        });
        Ok(BlobTail {
            file: self.file.as_file().try_clone()?,
            shared,
            position: 0,
            digest: None,
        })
    }

    /// Tells the tail, if any, that the blob is complete under `digest`.
    pub(super) fn committed(&mut self, digest: &Digest) {
        if let Some(mut publisher) = self.tail.take() {
            publisher.tell(self.written, Some(Some(digest.clone())));
        }
    }
}

impl Write for TrackedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        self.behind.wrote(self.file.path(), self.written);
        if let Some(publisher) = &mut self.tail
            && self.written - publisher.told >= WAKE_EVERY
        {
            publisher.tell(self.written, None);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A blob being written, read from its start: `read` waits for more bytes, returns 0 once the
/// writer has committed and everything is read, and fails if the writer gave up. Then
/// [`digest`](Self::digest) names the blob.
#[derive(Debug)]
pub struct BlobTail {
    file: File,
    shared: Arc<Shared>,
    position: u64,
    digest: Option<Digest>,
}

impl BlobTail {
    /// The committed blob's digest, once `read` has returned its end.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }
}

impl Read for BlobTail {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let readable = {
            let mut progress = self.shared.lock();
            loop {
                if progress.written > self.position {
                    break progress.written - self.position;
                }
                match &progress.end {
                    Some(Some(digest)) => {
                        self.digest = Some(digest.clone());
                        return Ok(0);
                    }
                    Some(None) => {
                        return Err(io::Error::other(
                            "the blob was abandoned while being written",
                        ));
                    }
                    None => {}
                }
                progress = self
                    .shared
                    .changed
                    .wait(progress)
                    .unwrap_or_else(|p| p.into_inner());
            }
        };
        let len = buf
            .len()
            .min(usize::try_from(readable).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..len], self.position)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the blob's file is shorter than its writer says",
            ));
        }
        self.position += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::BufWriter;

    use super::*;

    fn tracked() -> TrackedFile {
        TrackedFile::new(NamedTempFile::new().unwrap())
    }

    #[test]
    fn a_reader_follows_the_writer_and_ends_with_the_digest() {
        let mut file = tracked();
        let mut tail = file.tail().unwrap();
        let data: Vec<u8> = (0..3 * WAKE_EVERY as usize + 17).map(|i| i as u8).collect();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            tail.read_to_end(&mut got).unwrap();
            (got, tail.digest().cloned())
        });
        let digest = Digest::of(&data);
        let mut writer = BufWriter::new(file);
        for piece in data.chunks(1000) {
            writer.write_all(piece).unwrap();
        }
        let mut file = writer.into_inner().unwrap();
        file.committed(&digest);
        let (got, named) = reader.join().unwrap();
        assert_eq!(got, data);
        assert_eq!(named, Some(digest));
    }

    #[test]
    fn a_writer_that_gives_up_fails_the_reader() {
        let mut file = tracked();
        let mut tail = file.tail().unwrap();
        file.write_all(&[7; WAKE_EVERY as usize]).unwrap();
        file.write_all(b"and the rest, never told").unwrap();
        drop(file);
        let mut got = Vec::new();
        let err = tail.read_to_end(&mut got).unwrap_err();
        assert!(err.to_string().contains("abandoned"), "{err}");
        assert_eq!(got, [7; WAKE_EVERY as usize]);
        assert_eq!(tail.digest(), None);
    }
}
