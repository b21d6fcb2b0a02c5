//! Content hashes of context files, remembered by what `stat` says about each file, so a build
//! whose context has not changed reads no file to know it.
//!
//! A file's hash is reused only while its size, mtime, ctime, inode and device are what they
//! were when it was hashed. A file hashed in the same clock tick in which it was last changed
//! could change again without its timestamps moving (git's "racily clean" entries), so such a
//! hash is used for this build but not remembered.
//!
//! The memo is read at the start of every build that has a cache, so its format is made to load
//! fast rather than to be read by people: a context of thousands of files would otherwise spend
//! more time parsing the memo than stat-ing the files. It is a magic line, then one record per
//! file, sorted by path, each path stored as the length it shares with the path before plus the
//! bytes that differ (paths under one context share long prefixes):
//!
//! ```text
//! b"kiln file hashes 2\n"
//! per file: shared u32 | suffix length u32 | suffix bytes | size u64 | mtime_ns i128 |
//!           ctime_ns i128 | inode u64 | device u64 | digest `sha256:<64 hex>`   (integers
//!           little-endian)
//! ```
//!
//! A memo that does not parse (another version, a damaged file) remembers nothing: the next
//! build reads every file once and writes a new one.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::oci::{Digest, DigestWriter};

/// The first bytes of a memo in the current format.
const MAGIC: &[u8] = b"kiln file hashes 2\n";

/// The length of a digest as text, `sha256:` and 64 hex characters.
const DIGEST_LEN: usize = 71;

/// What `stat` says about a file, as far as its content is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

#[derive(Debug, Clone, PartialEq, Eq)]
struct Remembered {
    stamp: Stamp,
    digest: Digest,
}

/// Content hashes of files, remembered between builds in one file.
#[derive(Debug, Default)]
pub struct FileHashes {
    file: Option<PathBuf>,
    /// By path; keyed by its bytes, which hash in one step where a `Path` hashes component by
    /// component.
    known: HashMap<OsString, Remembered>,
    /// The memo being read on a thread of its own, while the build does other work first
    /// (resolving the base image); joined on first use.
    loading: Option<std::thread::JoinHandle<HashMap<OsString, Remembered>>>,
    changed: bool,
}

impl FileHashes {
    /// Hashes remembered in `file` (a missing, unreadable or unparsable file remembers nothing).
    pub fn load(file: impl Into<PathBuf>) -> FileHashes {
        let file = file.into();
        let read = {
            let file = file.clone();
            move || {
                fs::read(&file)
                    .ok()
                    .and_then(|bytes| decode(&bytes))
                    .unwrap_or_default()
            }
        };
        let (known, loading) = match std::thread::Builder::new()
            .name("kiln-file-hashes".into())
            .spawn(read.clone())
        {
            Ok(handle) => (HashMap::new(), Some(handle)),
            Err(_) => (read(), None),
        };
        FileHashes {
            file: Some(file),
            known,
            loading,
            changed: false,
        }
    }

    /// Waits for the memo, if it is still being read.
    fn settle(&mut self) {
        if let Some(handle) = self.loading.take() {
            // A reader that panicked remembers nothing: every file is read again.
            self.known = handle.join().unwrap_or_default();
        }
    }

    /// Hashes remembered only for the life of the value.
    pub fn in_memory() -> FileHashes {
        FileHashes::default()
    }

    /// The sha256 of the regular file at `path`, whose `lstat` is `meta`.
    pub fn digest(&mut self, path: &Path, meta: &fs::Metadata) -> io::Result<Digest> {
        self.settle();
        let stamp = Stamp::of(meta);
        if let Some(digest) = self.remembered(path, &stamp) {
            return Ok(digest);
        }
        let (digest, read_at) = hash_file(path, &stamp)?;
        self.learn(path, stamp, &digest, read_at);
        Ok(digest)
    }

    /// The sha256 of each regular file in `files` (path and `lstat`), in order. Those the memo
    /// does not know are read on up to `threads` threads at once: a cold build of a large
    /// context spends its time here, before anything else can start.
    pub fn digest_all(
        &mut self,
        files: &[(&Path, &fs::Metadata)],
        threads: usize,
    ) -> Vec<io::Result<Digest>> {
        self.settle();
        let stamps: Vec<Stamp> = files.iter().map(|(_, meta)| Stamp::of(meta)).collect();
        let mut out: Vec<Option<io::Result<Digest>>> = files
            .iter()
            .zip(&stamps)
            .map(|((path, _), stamp)| self.remembered(path, stamp).map(Ok))
            .collect();
        let todo: Vec<usize> = (0..files.len()).filter(|&i| out[i].is_none()).collect();
        let threads = threads.clamp(1, todo.len().max(1));
        let read: Vec<(usize, io::Result<Read>)> = if threads == 1 {
            todo.iter()
                .map(|&i| (i, hash_file(files[i].0, &stamps[i])))
                .collect()
        } else {
            let next = std::sync::atomic::AtomicUsize::new(0);
            std::thread::scope(|scope| {
                let workers: Vec<_> = (0..threads)
                    .map(|_| {
                        scope.spawn(|| {
                            let mut done = Vec::new();
                            loop {
                                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                let Some(&i) = todo.get(n) else {
                                    return done;
                                };
                                done.push((i, hash_file(files[i].0, &stamps[i])));
                            }
                        })
                    })
                    .collect();
                // A thread that panicked reports nothing: its files are read again below.
                workers
                    .into_iter()
                    .flat_map(|w| w.join().unwrap_or_default())
                    .collect()
            })
        };
        for (i, result) in read {
            if let Ok((digest, read_at)) = &result {
                self.learn(files[i].0, stamps[i], digest, *read_at);
            }
            out[i] = Some(result.map(|(digest, _)| digest));
        }
        out.into_iter()
            .zip(files)
            .map(|(result, (path, meta))| result.unwrap_or_else(|| self.digest(path, meta)))
            .collect()
    }

    /// The remembered hash of `path`, if its stamp still matches.
    fn remembered(&self, path: &Path, stamp: &Stamp) -> Option<Digest> {
        self.known
            .get(path.as_os_str())
            .filter(|r| r.stamp == *stamp)
            .map(|r| r.digest.clone())
    }

    /// Remembers the hash of `path` read up to `read_at`, unless the file had changed too
    /// shortly before then for its stamp to be trusted.
    fn learn(&mut self, path: &Path, stamp: Stamp, digest: &Digest, read_at: i128) {
        if stamp.is_racy(read_at) {
            // What was remembered no longer matches, and this hash must not be: forget both.
            if self.known.remove(path.as_os_str()).is_some() {
                self.changed = true;
            }
        } else {
            self.changed = true;
            self.known.insert(
                path.as_os_str().to_owned(),
                Remembered {
                    stamp,
                    digest: digest.clone(),
                },
            );
        }
    }

    /// Writes the hashes back to the file (through a temporary file and a rename) when this
    /// build learnt something, keeping those of files it did not look at: another build of the
    /// same context (another target, another Dockerfile) may read them.
    pub fn save(&mut self) -> io::Result<()> {
        self.settle();
        let Some(file) = &self.file else {
            return Ok(());
        };
        if !self.changed {
            return Ok(());
        }
        let bytes = encode(&self.known);
        let dir = file.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
        tmp.write_all(&bytes)?;
        tmp.persist(file).map_err(|e| e.error)?;
        Ok(())
    }
}

/// A file's hash and when its reading ended (nanoseconds since the epoch): whether the file's
/// stamp can vouch for the hash is judged against that instant.
type Read = (Digest, i128);

/// Reads the file at `path` and hashes it; fails if it is not the size `stamp` says (it changed
/// while it was read).
fn hash_file(path: &Path, stamp: &Stamp) -> io::Result<Read> {
    let mut w = DigestWriter::new(io::sink());
    io::copy(&mut File::open(path)?, &mut w)?;
    let (digest, size, _) = w.finish();
    if size != stamp.size {
        return Err(io::Error::other(format!(
            "`{}` changed while it was read",
            path.display()
        )));
    }
    Ok((digest, now_ns()))
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// The memo bytes for `known`, records sorted by path.
fn encode(known: &HashMap<OsString, Remembered>) -> Vec<u8> {
    let mut entries: Vec<(&[u8], &Remembered)> =
        known.iter().map(|(path, r)| (path.as_bytes(), r)).collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::with_capacity(MAGIC.len() + entries.len() * 150);
    out.extend_from_slice(MAGIC);
    let mut previous: &[u8] = &[];
    for (path, r) in entries {
        let shared = previous
            .iter()
            .zip(path)
            .take_while(|(a, b)| a == b)
            .count();
        let digest = r.digest.to_string();
        if digest.len() != DIGEST_LEN {
            continue;
        }
        let suffix = &path[shared..];
        let (Ok(shared_len), Ok(suffix_len)) = (u32::try_from(shared), u32::try_from(suffix.len()))
        else {
            continue;
        };
        out.extend_from_slice(&shared_len.to_le_bytes());
        out.extend_from_slice(&suffix_len.to_le_bytes());
        out.extend_from_slice(suffix);
        out.extend_from_slice(&r.stamp.size.to_le_bytes());
        out.extend_from_slice(&r.stamp.mtime_ns.to_le_bytes());
        out.extend_from_slice(&r.stamp.ctime_ns.to_le_bytes());
        out.extend_from_slice(&r.stamp.ino.to_le_bytes());
        out.extend_from_slice(&r.stamp.dev.to_le_bytes());
        out.extend_from_slice(digest.as_bytes());
        previous = path;
    }
    out
}

/// The hashes in memo `bytes`; `None` unless all of it is a memo in the current format.
fn decode(bytes: &[u8]) -> Option<HashMap<OsString, Remembered>> {
    let mut input = Input {
        bytes: bytes.strip_prefix(MAGIC)?,
    };
    // Records take at least this much; most take twice as much with their paths.
    let mut known = HashMap::with_capacity(input.bytes.len() / 150);
    let mut path: Vec<u8> = Vec::new();
    while !input.bytes.is_empty() {
        let shared = usize::try_from(input.u32()?).ok()?;
        let suffix_len = usize::try_from(input.u32()?).ok()?;
        if shared > path.len() {
            return None;
        }
        path.truncate(shared);
        path.extend_from_slice(input.take(suffix_len)?);
        let stamp = Stamp {
            size: input.u64()?,
            mtime_ns: input.i128()?,
            ctime_ns: input.i128()?,
            ino: input.u64()?,
            dev: input.u64()?,
        };
        let digest: Digest = std::str::from_utf8(input.take(DIGEST_LEN)?)
            .ok()?
            .parse()
            .ok()?;
        known.insert(
            OsStr::from_bytes(&path).to_owned(),
            Remembered { stamp, digest },
        );
    }
    Some(known)
}

/// The part of a memo not read yet.
struct Input<'a> {
    bytes: &'a [u8],
}

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.bytes.len() {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    fn i128(&mut self) -> Option<i128> {
        self.array().map(i128::from_le_bytes)
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
        let mut hashes = loaded(&memo);
        let stamp = Stamp::of(&meta);
        hashes.known.insert(
            path.clone().into_os_string(),
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

    fn remembered(size: u64, ino: u64, content: &[u8]) -> Remembered {
        Remembered {
            stamp: Stamp {
                size,
                mtime_ns: -1_500_000_000,
                ctime_ns: 1_700_000_000_123_456_789,
                ino,
                dev: u64::MAX,
            },
            digest: Digest::of(content),
        }
    }

    #[test]
    fn the_memo_keeps_every_path_and_stamp_exactly() {
        let mut known = HashMap::new();
        let paths: Vec<PathBuf> = vec![
            PathBuf::from("/ctx/files/d00/f000.bin"),
            PathBuf::from("/ctx/files/d00/f001.bin"),
            PathBuf::from("/ctx/files/d01/f000.bin"),
            PathBuf::from("/ctx/files"),
            PathBuf::from("/ctx/a name with spaces\nand a newline"),
            PathBuf::from(OsStr::from_bytes(b"/ctx/not-utf8-\xff\xfe")),
            PathBuf::from("/other/root"),
        ];
        for (i, path) in paths.iter().enumerate() {
            known.insert(
                path.clone().into_os_string(),
                remembered(i as u64, 1000 + i as u64, path.as_os_str().as_bytes()),
            );
        }
        let bytes = encode(&known);
        assert!(bytes.starts_with(MAGIC));
        assert_eq!(decode(&bytes), Some(known));
        assert_eq!(decode(&encode(&HashMap::new())), Some(HashMap::new()));
    }

    #[test]
    fn a_memo_that_does_not_parse_remembers_nothing() {
        let mut known = HashMap::new();
        known.insert(OsString::from("/ctx/f"), remembered(3, 1, b"one"));
        let bytes = encode(&known);
        for cut in [MAGIC.len() - 1, MAGIC.len() + 5, bytes.len() - 1] {
            assert_eq!(decode(&bytes[..cut]), None, "cut at {cut}");
        }
        // A shared prefix longer than the path before it.
        let mut bad = MAGIC.to_vec();
        bad.extend_from_slice(&5u32.to_le_bytes());
        bad.extend_from_slice(&0u32.to_le_bytes());
        bad.extend_from_slice(&bytes[MAGIC.len() + 8 + "/ctx/f".len()..]);
        assert_eq!(decode(&bad), None);
        // The first format (JSON) reads as empty.
        let dir = tempfile::tempdir().unwrap();
        let memo = dir.path().join("hashes.json");
        fs::write(&memo, br#"[["/ctx/f",{"stamp":{"size":3,"mtime_ns":1,"ctime_ns":1,"ino":1,"dev":1},"digest":"sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"}]]"#).unwrap();
        assert!(loaded(&memo).known.is_empty());
    }

    /// The memo at `path`, read to the end.
    fn loaded(path: &Path) -> FileHashes {
        let mut hashes = FileHashes::load(path);
        hashes.settle();
        hashes
    }

    #[test]
    fn hashes_learnt_by_one_build_are_used_by_the_next_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("f{i}"))).collect();
        for (i, f) in files.iter().enumerate() {
            fs::write(f, format!("content {i}")).unwrap();
        }
        // Let the files age out of the racy window.
        std::thread::sleep(std::time::Duration::from_millis(60));
        let memo = dir.path().join("memo");
        let mut first = FileHashes::load(&memo);
        for f in &files {
            let meta = fs::symlink_metadata(f).unwrap();
            assert_eq!(
                first.digest(f, &meta).unwrap(),
                Digest::of(&fs::read(f).unwrap())
            );
        }
        first.save().unwrap();
        let mut second = loaded(&memo);
        assert_eq!(second.known, first.known);
        let mut more = File::options().append(true).open(&files[1]).unwrap();
        more.write_all(b" and more").unwrap();
        drop(more);
        // A changed file is read again; the racy result is used but not remembered.
        let meta = fs::symlink_metadata(&files[1]).unwrap();
        assert_eq!(
            second.digest(&files[1], &meta).unwrap(),
            Digest::of(b"content 1 and more")
        );
        second.save().unwrap();
        let third = loaded(&memo);
        assert_eq!(third.known.len(), 2);
        assert!(!third.known.contains_key(files[1].as_os_str()));
    }

    #[test]
    fn files_hashed_together_on_threads_are_hashed_and_remembered_each_as_alone() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = (0..40)
            .map(|i| dir.path().join(format!("f{i:02}")))
            .collect();
        for (i, f) in files.iter().enumerate() {
            fs::write(f, format!("content {i}").repeat(i * 100)).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(60));
        let metas: Vec<fs::Metadata> = files
            .iter()
            .map(|f| fs::symlink_metadata(f).unwrap())
            .collect();
        let mut listed: Vec<(&Path, &fs::Metadata)> =
            files.iter().map(PathBuf::as_path).zip(&metas).collect();
        // One that vanished before it was read fails alone.
        let gone = dir.path().join("gone");
        fs::write(&gone, b"x").unwrap();
        let gone_meta = fs::symlink_metadata(&gone).unwrap();
        fs::remove_file(&gone).unwrap();
        listed.insert(7, (&gone, &gone_meta));

        let memo = dir.path().join("memo");
        let mut hashes = FileHashes::load(&memo);
        let digests = hashes.digest_all(&listed, 3);
        assert_eq!(digests.len(), listed.len());
        for ((path, _), digest) in listed.iter().zip(&digests) {
            if *path == gone {
                assert!(digest.is_err());
            } else {
                assert_eq!(
                    digest.as_ref().unwrap(),
                    &Digest::of(&fs::read(path).unwrap())
                );
            }
        }
        hashes.save().unwrap();
        let mut alone = FileHashes::load(dir.path().join("memo-alone"));
        for (f, meta) in files.iter().zip(&metas) {
            alone.digest(f, meta).unwrap();
        }
        assert_eq!(loaded(&memo).known, alone.known);
        assert_eq!(alone.known.len(), files.len());
    }

    #[test]
    fn a_hash_read_just_after_a_change_is_not_remembered_however_late_it_is_learnt() {
        let stamp = Stamp {
            size: 3,
            mtime_ns: 1_000_000_000_123,
            ctime_ns: 1_000_000_000_123,
            ino: 1,
            dev: 1,
        };
        let path = Path::new("/ctx/generated.h");
        let mut hashes = FileHashes::in_memory();
        // Read 10 ms after the change: another change in the same tick would not show.
        hashes.learn(
            path,
            stamp,
            &Digest::of(b"one"),
            stamp.mtime_ns + 10_000_000,
        );
        assert!(hashes.known.is_empty());
        hashes.learn(
            path,
            stamp,
            &Digest::of(b"one"),
            stamp.mtime_ns + 60_000_000,
        );
        assert_eq!(hashes.known.len(), 1);
    }
}
