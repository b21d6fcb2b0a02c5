//! Content hashes of context files, remembered by what `stat` says about each file, so a build
//! whose context has not changed reads no file to know it.
//!
//! A file's hash is reused only while its size, mtime, ctime, inode and device are what they
//! were when it was hashed. A file hashed in the same clock tick in which it was last changed
//! could change again without its timestamps moving (git's "racily clean" entries), so such a
//! hash is used for this build but not remembered.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::oci::{Digest, DigestWriter};

/// What `stat` says about a file, as far as its content is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Stamp {
        Stamp {
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }

    /// Whether the file changed too recently for its timestamps to tell a later change apart:
    /// within 50 ms on file systems with sub-second timestamps, 2 s on the others.
    fn is_racy(&self, now_ns: i128) -> bool {
        let coarse = self.mtime_ns % 1_000_000_000 == 0 && self.ctime_ns % 1_000_000_000 == 0;
        let window = if coarse { 2_000_000_000 } else { 50_000_000 };
        self.mtime_ns.max(self.ctime_ns) > now_ns - window
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Remembered {
    stamp: Stamp,
    digest: Digest,
}

/// Content hashes of files, remembered between builds in one file.
#[derive(Debug, Default)]
pub struct FileHashes {
    file: Option<PathBuf>,
    known: HashMap<PathBuf, Remembered>,
    used: HashMap<PathBuf, Remembered>,
    changed: bool,
}

impl FileHashes {
    /// Hashes remembered in `file` (a missing or unreadable file remembers nothing).
    pub fn load(file: impl Into<PathBuf>) -> FileHashes {
        let file = file.into();
        let known: HashMap<PathBuf, Remembered> = fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<(PathBuf, Remembered)>>(&b).ok())
            .map(|v| v.into_iter().collect())
            .unwrap_or_default();
        FileHashes {
            file: Some(file),
            known,
            used: HashMap::new(),
            changed: false,
        }
    }

    /// Hashes remembered only for the life of the value.
    pub fn in_memory() -> FileHashes {
        FileHashes::default()
    }

    /// The sha256 of the regular file at `path`, whose `lstat` is `meta`.
    pub fn digest(&mut self, path: &Path, meta: &fs::Metadata) -> io::Result<Digest> {
        let stamp = Stamp::of(meta);
        if let Some(r) = self.used.get(path).or_else(|| self.known.get(path))
            && r.stamp == stamp
        {
            let r = r.clone();
            self.used.insert(path.to_path_buf(), r.clone());
            return Ok(r.digest);
        }
        let mut w = DigestWriter::new(io::sink());
        io::copy(&mut File::open(path)?, &mut w)?;
        let (digest, size, _) = w.finish();
        if size != stamp.size {
            return Err(io::Error::other(format!(
                "`{}` changed while it was read",
                path.display()
            )));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        if !stamp.is_racy(now) {
            self.changed = true;
            self.used.insert(
                path.to_path_buf(),
                Remembered {
                    stamp,
                    digest: digest.clone(),
                },
            );
        }
        Ok(digest)
    }

    /// Writes the hashes this build used back to the file (through a temporary file and a
    /// rename), forgetting files it did not look at only when nothing else was learnt.
    pub fn save(&self) -> io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if !self.changed {
            return Ok(());
        }
        let mut all = self.known.clone();
        all.extend(self.used.iter().map(|(p, r)| (p.clone(), r.clone())));
        let list: Vec<(&PathBuf, &Remembered)> = all.iter().collect();
        let bytes = serde_json::to_vec(&list).map_err(io::Error::other)?;
        let dir = file.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
        tmp.write_all(&bytes)?;
        tmp.persist(file).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_hash_is_reused_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"one").unwrap();
        let old = SystemTime::now() - std::time::Duration::from_secs(10);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let memo = dir.path().join("hashes.json");
        let mut hashes = FileHashes::load(&memo);
        let meta = fs::symlink_metadata(&path).unwrap();
        let first = hashes.digest(&path, &meta).unwrap();
        assert_eq!(first, Digest::of(b"one"));
        // ctime is "now": racy, so not remembered.
        hashes.save().unwrap();
        assert!(!memo.exists());
        let mut hashes = FileHashes::load(&memo);
        let stamp = Stamp::of(&meta);
        hashes.known.insert(
            path.clone(),
            Remembered {
                stamp,
                digest: Digest::of(b"remembered"),
            },
        );
        // An unchanged stamp answers from memory: the file is not read.
        assert_eq!(
            hashes.digest(&path, &meta).unwrap(),
            Digest::of(b"remembered")
        );
        fs::write(&path, b"two").unwrap();
        let meta = fs::symlink_metadata(&path).unwrap();
        assert_eq!(hashes.digest(&path, &meta).unwrap(), Digest::of(b"two"));
    }

    #[test]
    fn old_files_are_remembered_across_loads() {
        let stamp = Stamp {
            size: 3,
            mtime_ns: 1_000_000_123,
            ctime_ns: 1_000_000_456,
            ino: 1,
            dev: 1,
        };
        assert!(!stamp.is_racy(10_000_000_000));
        assert!(stamp.is_racy(1_000_000_500));
        let coarse = Stamp {
            mtime_ns: 5_000_000_000,
            ctime_ns: 5_000_000_000,
            ..stamp
        };
        assert!(coarse.is_racy(6_500_000_000));
        assert!(!coarse.is_racy(7_500_000_000));
    }
}
