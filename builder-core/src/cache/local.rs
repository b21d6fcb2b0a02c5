//! The local cache: a content store of layer blobs and an index from cache key to layer, in one
//! directory (`--cache-dir`).
//!
//! ```text
//! <root>/lock                      builds hold it shared, prune exclusively
//! <root>/content/                  layer blobs, an OCI layout (so any tool can read them)
//! <root>/keys/<key hex>.json       CacheRecord; its mtime is when it was last used
//! <root>/inputs/<slot hex>.json    StepInputs of the last build at a step position
//! <root>/chunks/<blob hex>.bin     where a gzip blob's compressed chunks are (layer::ChunkIndex)
//! <root>/context/<hex>.bin         remembered content hashes of one build context's files
//! <root>/builds.jsonl              one BuildStats line per build, for `kiln cache stats`
//! <root>/pushed/<hex>.txt          blobs pushes left in one repository: `digest unix-time` lines
//! ```
//!
//! Every file appears under its final name by rename only, after its content is complete and
//! synced, and a record is written only after its blob is in place: a build killed at any point
//! leaves at worst a temporary file, and a record whose blob is missing or truncated reads as a
//! miss, never as a layer. Blob contents are not hashed again on a hit (that would read every
//! reused layer on every build): a blob changed in place, at the same size, is not noticed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::key::CacheKey;
use super::record::{CacheRecord, StepInputs};
use crate::layer::gzip::{ChunkHash, ChunkIndex, ChunkSource, CompressorId};
use crate::oci::{Digest, LayoutError, OciLayout};

/// Why the cache could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// A cache file could not be read or written.
    #[error("failed to {action} `{}`", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The blob store failed.
    #[error(transparent)]
    Store(#[from] LayoutError),
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CacheError + 'a {
    move |source| CacheError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// A local cache directory, locked for as long as the value lives.
pub struct LocalCache {
    root: PathBuf,
    blobs: OciLayout,
    _lock: File,
}

/// One index entry, as `kiln cache ls` shows it.
#[derive(Debug, Clone)]
pub struct CacheEntry {
    /// The record.
    pub record: CacheRecord,
    /// When a build last used (or made) it.
    pub last_used: SystemTime,
}

/// What `kiln cache prune` keeps.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Keep entries used within this long; remove older ones.
    pub keep_duration: Option<Duration>,
    /// Then remove least recently used entries until the blobs take at most this many bytes.
    pub keep_storage: Option<u64>,
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Index entries removed.
    pub entries: usize,
    /// Blobs removed.
    pub blobs: usize,
    /// Bytes freed.
    pub bytes: u64,
    /// The diff_ids of the layers no remaining entry uses (their unpacked copies can go too).
    pub unused_layers: Vec<Digest>,
}

/// The summary of one build, appended to the cache's build log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildStats {
    /// When it finished, seconds since the epoch.
    pub finished: i64,
    /// Cacheable steps that hit.
    pub hits: usize,
    /// Cacheable steps that missed.
    pub misses: usize,
    /// Bytes of layers reused from the cache.
    pub bytes_reused: u64,
    /// Bytes of layers built.
    pub bytes_built: u64,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

/// What `kiln cache stats` shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheStats {
    /// Index entries.
    pub entries: usize,
    /// Distinct layer blobs.
    pub blobs: usize,
    /// Bytes the blobs take.
    pub bytes: u64,
    /// Builds recorded.
    pub builds: usize,
    /// Hits over all recorded builds.
    pub hits: usize,
    /// Misses over all recorded builds.
    pub misses: usize,
    /// Bytes reused over all recorded builds.
    pub bytes_reused: u64,
    /// Bytes built over all recorded builds.
    pub bytes_built: u64,
}

impl CacheStats {
    /// Hits over cacheable steps, 0 when there were none.
    pub fn hit_rate(&self) -> f64 {
        rate(self.hits, self.misses)
    }
}

/// `hits / (hits + misses)`, 0 when both are 0.
pub fn rate(hits: usize, misses: usize) -> f64 {
    if hits + misses == 0 {
        0.0
    } else {
        hits as f64 / (hits + misses) as f64
    }
}

impl LocalCache {
    /// Opens the cache at `root` (creating it), shared with other builds.
    pub fn open(root: impl Into<PathBuf>) -> Result<LocalCache, CacheError> {
        LocalCache::open_locked(root.into(), false)
    }

    /// Opens the cache at `root` for pruning: waits until no build uses it, and keeps builds out
    /// until dropped.
    pub fn open_exclusive(root: impl Into<PathBuf>) -> Result<LocalCache, CacheError> {
        LocalCache::open_locked(root.into(), true)
    }

    fn open_locked(root: PathBuf, exclusive: bool) -> Result<LocalCache, CacheError> {
        fs::create_dir_all(&root).map_err(io_err("create directory", &root))?;
        let lock_path = root.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("open", &lock_path))?;
        if exclusive {
            lock.lock().map_err(io_err("lock", &lock_path))?;
        } else {
            lock.lock_shared().map_err(io_err("lock", &lock_path))?;
        }
        let blobs = OciLayout::open_or_create(root.join("content"))?;
        for dir in ["keys", "inputs", "chunks"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(io_err("create directory", &path))?;
        }
        Ok(LocalCache {
            root,
            blobs,
            _lock: lock,
        })
    }

    /// The cache directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The content store holding the cached layer blobs.
    pub fn blobs(&self) -> &OciLayout {
        &self.blobs
    }

    fn record_path(&self, key: &CacheKey) -> PathBuf {
        self.root.join("keys").join(format!("{}.json", key.hex()))
    }

    fn chunks_path(&self, blob: &Digest) -> PathBuf {
        self.root.join("chunks").join(format!("{}.bin", blob.hex()))
    }

    fn inputs_path(&self, slot: &CacheKey) -> PathBuf {
        self.root
            .join("inputs")
            .join(format!("{}.json", slot.hex()))
    }

    /// The record for `key`, if the cache has it whole: a record whose blob is missing or has
    /// the wrong size counts as absent. Marks it used.
    pub fn get(&self, key: &CacheKey) -> Option<CacheRecord> {
        let path = self.record_path(key);
        let record: CacheRecord = serde_json::from_slice(&fs::read(&path).ok()?).ok()?;
        if record.key != *key {
            return None;
        }
        if let Some(layer) = &record.layer {
            let size = fs::metadata(self.blobs.blob_path(&layer.digest))
                .ok()?
                .len();
            if size != layer.size {
                return None;
            }
        }
        // Last use is only for pruning; failing to record it must not fail a build.
        if let Ok(f) = File::options().write(true).open(&path) {
            let _ = f.set_modified(SystemTime::now());
        }
        Some(record)
    }

    /// Stores `record`, taking its layer blob from `store` (a hard link when possible), and the
    /// blob's chunk index when there is one.
    pub fn put(
        &self,
        record: &CacheRecord,
        store: &OciLayout,
        chunks: Option<&ChunkIndex>,
    ) -> Result<(), CacheError> {
        if let Some(layer) = &record.layer {
            self.blobs.copy_blob_from(store, &layer.digest)?;
            if let Some(index) = chunks {
                write_atomic(&self.chunks_path(&layer.digest), &index.encode())?;
            }
        }
        let bytes = serde_json::to_vec_pretty(record).map_err(|e| CacheError::Io {
            action: "encode",
            path: self.record_path(&record.key),
            source: io::Error::other(e),
        })?;
        write_atomic(&self.record_path(&record.key), &bytes)
    }

    /// The compressed chunks of cached blob `blob`, for a new layer to reuse; `None` when the
    /// blob or its index is missing, or the index does not describe the blob.
    pub fn chunks(&self, blob: &Digest) -> Option<CachedChunks> {
        let index = ChunkIndex::decode(&fs::read(self.chunks_path(blob)).ok()?)?;
        let file = File::open(self.blobs.blob_path(blob)).ok()?;
        let size = file.metadata().ok()?.len();
        let mut chunks = HashMap::with_capacity(index.chunks.len());
        let mut end = 0;
        for (chunk, offset) in index.locations() {
            end = offset + u64::from(chunk.compressed);
            chunks.insert(chunk.hash, (offset, chunk.compressed));
        }
        // The blob is the chunks plus the gzip trailer (final block, CRC and size: 10 bytes).
        if end + 10 != size {
            return None;
        }
        Some(CachedChunks {
            compressor: index.compressor,
            file,
            chunks,
        })
    }

    /// Makes blob `digest` available in `store` (a hard link when possible).
    pub fn export_blob(&self, digest: &Digest, store: &OciLayout) -> Result<(), CacheError> {
        store.copy_blob_from(&self.blobs, digest)?;
        Ok(())
    }

    /// The inputs of the last build at step position `slot`.
    pub fn inputs(&self, slot: &CacheKey) -> Option<StepInputs> {
        serde_json::from_slice(&fs::read(self.inputs_path(slot)).ok()?).ok()
    }

    /// The key the inputs of the last build at `slot` gave, read without decoding the inputs
    /// themselves (a COPY of thousands of files keeps every file's state there): enough to tell
    /// whether this build's inputs are the same.
    pub fn inputs_key(&self, slot: &CacheKey) -> Option<CacheKey> {
        read_inputs_key(&self.inputs_path(slot))
    }

    /// Remembers `inputs` as the last build at `slot`.
    pub fn set_inputs(&self, slot: &CacheKey, inputs: &StepInputs) -> Result<(), CacheError> {
        let path = self.inputs_path(slot);
        let bytes = serde_json::to_vec(inputs).map_err(|e| CacheError::Io {
            action: "encode",
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        write_atomic(&path, &bytes)
    }

    /// Every entry, most recently used first.
    pub fn entries(&self) -> Result<Vec<CacheEntry>, CacheError> {
        let dir = self.root.join("keys");
        let mut out = Vec::new();
        for item in fs::read_dir(&dir).map_err(io_err("read directory", &dir))? {
            let item = item.map_err(io_err("read directory", &dir))?;
            let path = item.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let Ok(bytes) = fs::read(&path) else { continue };
            let Ok(record) = serde_json::from_slice::<CacheRecord>(&bytes) else {
                continue;
            };
            let last_used = item
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            out.push(CacheEntry { record, last_used });
        }
        out.sort_by_key(|e| std::cmp::Reverse(e.last_used));
        Ok(out)
    }

    /// Appends one build's summary to the build log.
    pub fn record_build(&self, stats: &BuildStats) -> Result<(), CacheError> {
        let path = self.root.join("builds.jsonl");
        let mut line = serde_json::to_vec(stats).map_err(|e| CacheError::Io {
            action: "encode",
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        line.push(b'\n');
        // One short write in append mode: concurrent builds' lines do not interleave.
        let mut f = File::options()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        f.write_all(&line).map_err(io_err("write", &path))
    }

    /// Blobs that pushes left in `repository` (`registry/name`) within [`PUSHED_TTL`] of
    /// `now` (unix seconds): a push need not ask the registry about them again. It checks them
    /// all if the registry refuses the manifest; the time limit keeps the memory from
    /// outliving a garbage collection by long on a registry that would not.
    pub fn pushed_blobs(&self, repository: &str, now: i64) -> BTreeSet<Digest> {
        read_pushed(&self.pushed_path(repository))
            .into_iter()
            .filter(|(_, at)| now.saturating_sub(*at) < PUSHED_TTL.as_secs() as i64)
            .map(|(digest, _)| digest)
            .collect()
    }

    /// Remembers that `repository` holds `blobs` after a push at `now`, keeping the most
    /// recent [`PUSHED_KEPT`] per repository. Unchanged within an hour, the file is not
    /// written again.
    pub fn remember_pushed(
        &self,
        repository: &str,
        blobs: &[Digest],
        now: i64,
    ) -> Result<(), CacheError> {
        let path = self.pushed_path(repository);
        let mut known = read_pushed(&path);
        let fresh = |d: &Digest| {
            known
                .iter()
                .any(|(k, at)| k == d && now.saturating_sub(*at) < 3600)
        };
        if blobs.iter().all(fresh) {
            return Ok(());
        }
        known.retain(|(k, _)| !blobs.contains(k));
        known.extend(blobs.iter().map(|b| (b.clone(), now)));
        let keep = known.len().saturating_sub(PUSHED_KEPT);
        let text: String = known[keep..]
            .iter()
            .map(|(digest, at)| format!("{digest} {at}\n"))
            .collect();
        let dir = self.root.join("pushed");
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        write_atomic(&path, text.as_bytes())
    }

    fn pushed_path(&self, repository: &str) -> PathBuf {
        self.root
            .join("pushed")
            .join(format!("{}.txt", Digest::of(repository.as_bytes()).hex()))
    }

    /// Entry and blob counts, their size, and the hit rates of the builds recorded.
    pub fn stats(&self) -> Result<CacheStats, CacheError> {
        let entries = self.entries()?;
        let blobs = referenced_blobs(&entries);
        let mut stats = CacheStats {
            entries: entries.len(),
            blobs: blobs.len(),
            bytes: blobs.values().sum(),
            ..CacheStats::default()
        };
        let log = self.root.join("builds.jsonl");
        let text = match fs::read_to_string(&log) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io_err("read", &log)(e)),
        };
        for build in text
            .lines()
            .filter_map(|l| serde_json::from_str::<BuildStats>(l).ok())
        {
            stats.builds += 1;
            stats.hits += build.hits;
            stats.misses += build.misses;
            stats.bytes_reused += build.bytes_reused;
            stats.bytes_built += build.bytes_built;
        }
        Ok(stats)
    }

    /// Removes entries per `options` (all of them when it sets nothing), then every blob,
    /// input record and temporary file no entry needs. Needs [`LocalCache::open_exclusive`].
    pub fn prune(&self, options: &PruneOptions) -> Result<PruneReport, CacheError> {
        let now = SystemTime::now();
        let all = self.entries()?;
        let mut keep = all.clone();
        let before = keep.len();
        if options.keep_duration.is_none() && options.keep_storage.is_none() {
            keep.clear();
        }
        if let Some(d) = options.keep_duration {
            keep.retain(|e| now.duration_since(e.last_used).unwrap_or_default() <= d);
        }
        if let Some(limit) = options.keep_storage {
            // Most recently used first: drop from the end until the blobs fit.
            while !keep.is_empty() && referenced_blobs(&keep).values().sum::<u64>() > limit {
                keep.pop();
            }
        }
        let kept_keys: BTreeSet<String> = keep
            .iter()
            .map(|e| e.record.key.hex().to_string())
            .collect();
        let mut report = PruneReport {
            entries: before - keep.len(),
            ..PruneReport::default()
        };
        remove_files(&self.root.join("keys"), |name| {
            !name
                .strip_suffix(".json")
                .is_some_and(|k| kept_keys.contains(k))
        })?;
        remove_files(&self.root.join("inputs"), |name| {
            let path = self.root.join("inputs").join(name);
            let key = read_inputs_key(&path);
            !key.is_some_and(|k| kept_keys.contains(k.hex()))
        })?;
        if options.keep_duration.is_none() && options.keep_storage.is_none() {
            // Remembered context hashes only save reading; a full prune forgets them too.
            let memo = self.root.join("context");
            if memo.is_dir() {
                remove_files(&memo, |_| true)?;
            }
        }
        let kept_diff_ids: BTreeSet<&Digest> = keep
            .iter()
            .filter_map(|e| e.record.layer.as_ref())
            .map(|l| &l.diff_id)
            .collect();
        let mut unused: BTreeSet<Digest> = BTreeSet::new();
        for entry in &all {
            if let Some(l) = &entry.record.layer
                && !kept_diff_ids.contains(&l.diff_id)
            {
                unused.insert(l.diff_id.clone());
            }
        }
        report.unused_layers = unused.into_iter().collect();
        let needed = referenced_blobs(&keep);
        remove_files(&self.root.join("chunks"), |name| {
            !needed
                .keys()
                .any(|d| name.strip_suffix(".bin") == Some(d.hex()))
        })?;
        let blob_dir = self.blobs.root().join("blobs").join("sha256");
        for item in fs::read_dir(&blob_dir).map_err(io_err("read directory", &blob_dir))? {
            let item = item.map_err(io_err("read directory", &blob_dir))?;
            let name = item.file_name().to_string_lossy().into_owned();
            let wanted = needed.keys().any(|d| d.hex() == name);
            if !wanted {
                let size = item.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(item.path()).map_err(io_err("remove", &item.path()))?;
                if !name.starts_with(".tmp") {
                    report.blobs += 1;
                    report.bytes += size;
                }
            }
        }
        Ok(report)
    }
}

/// The compressed chunks of one cached blob, offered to a layer being written (see
/// [`crate::layer::gzip`]). A chunk is read from the blob, which was checked against its
/// digest when it was stored.
pub struct CachedChunks {
    compressor: CompressorId,
    file: File,
    chunks: HashMap<ChunkHash, (u64, u32)>,
}

impl ChunkSource for CachedChunks {
    fn deflated(&self, compressor: &CompressorId, hash: &ChunkHash, out: &mut Vec<u8>) -> bool {
        if *compressor != self.compressor {
            return false;
        }
        let Some(&(offset, len)) = self.chunks.get(hash) else {
            return false;
        };
        let start = out.len();
        out.resize(start + len as usize, 0);
        if self.file.read_exact_at(&mut out[start..], offset).is_err() {
            out.truncate(start);
            return false;
        }
        true
    }
}

/// How many pushed blobs are remembered per repository: far more than an image has, few
/// enough to read in a moment.
pub const PUSHED_KEPT: usize = 4096;

/// How long a remembered pushed blob is trusted without asking the registry.
pub const PUSHED_TTL: Duration = Duration::from_secs(24 * 3600);

/// The `digest unix-seconds` lines of a pushed-blobs file, oldest first; unreadable lines and
/// files are skipped.
fn read_pushed(path: &Path) -> Vec<(Digest, i64)> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (digest, at) = line.split_once(' ')?;
            Some((digest.parse().ok()?, at.parse().ok()?))
        })
        .collect()
}

/// The `key` field of the inputs file at `path`; the other fields are skipped, not decoded.
/// The key is the first field, so a file written by this version gives it from its first
/// bytes (the inputs of a large COPY run to megabytes); any other file is parsed in full.
fn read_inputs_key(path: &Path) -> Option<CacheKey> {
    #[derive(Deserialize)]
    struct KeyOnly {
        key: Option<CacheKey>,
    }
    const KEY_FIRST: &[u8] = b"{\"key\":\"";
    let mut head = [0u8; 96];
    let n = crate::layer::read_full(&mut File::open(path).ok()?, &mut head).ok()?;
    let head = &head[..n];
    if head.starts_with(b"{\"key\":null,") {
        return None;
    }
    if let Some(rest) = head.strip_prefix(KEY_FIRST)
        && let Some(end) = rest.iter().position(|b| *b == b'"')
        && let Ok(key) = std::str::from_utf8(&rest[..end]).map(str::parse::<CacheKey>)
    {
        return key.ok();
    }
    serde_json::from_slice::<KeyOnly>(&fs::read(path).ok()?)
        .ok()?
        .key
}

/// The distinct blobs `entries` use, with their sizes.
fn referenced_blobs(entries: &[CacheEntry]) -> BTreeMap<Digest, u64> {
    entries
        .iter()
        .filter_map(|e| e.record.layer.as_ref())
        .map(|l| (l.digest.clone(), l.size))
        .collect()
}

/// Removes the files of `dir` whose names `remove` picks, and any temporary file there.
fn remove_files(dir: &Path, remove: impl Fn(&str) -> bool) -> Result<(), CacheError> {
    for item in fs::read_dir(dir).map_err(io_err("read directory", dir))? {
        let item = item.map_err(io_err("read directory", dir))?;
        let name = item.file_name().to_string_lossy().into_owned();
        if name.starts_with(".tmp") || remove(&name) {
            fs::remove_file(item.path()).map_err(io_err("remove", &item.path()))?;
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` through a synced temporary file in the same directory and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io_err("create a temporary file in", dir))?;
    tmp.write_all(bytes).map_err(io_err("write", path))?;
    tmp.as_file().sync_all().map_err(io_err("sync", path))?;
    tmp.persist(path).map_err(|e| CacheError::Io {
        action: "rename into",
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{CachedLayer, KeyBuilder};

    fn layer_in(store: &OciLayout, bytes: &[u8]) -> CachedLayer {
        let digest = store.write_blob(bytes).unwrap();
        CachedLayer {
            digest: digest.clone(),
            size: bytes.len() as u64,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            diff_id: digest,
        }
    }

    fn record(name: &str, layer: Option<CachedLayer>) -> CacheRecord {
        CacheRecord {
            key: KeyBuilder::new("test").str("name", name).finish(),
            created: 1_700_000_000,
            created_by: format!("RUN {name}"),
            layer,
        }
    }

    #[test]
    fn put_then_get_and_a_missing_blob_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let store = OciLayout::open_or_create(dir.path().join("store")).unwrap();
        let cache = LocalCache::open(dir.path().join("cache")).unwrap();
        let r = record("a", Some(layer_in(&store, b"layer a")));
        cache.put(&r, &store, None).unwrap();
        assert_eq!(cache.get(&r.key), Some(r.clone()));
        let digest = &r.layer.as_ref().unwrap().digest;
        fs::remove_file(cache.blobs().blob_path(digest)).unwrap();
        assert_eq!(cache.get(&r.key), None);
        assert_eq!(cache.get(&record("other", None).key), None);
    }

    /// A gzip layer written by the layer writer into `store`, with its chunk index.
    fn gzip_layer_in(store: &OciLayout, content: &[u8]) -> (CachedLayer, ChunkIndex) {
        use crate::layer::{Content, Entry, EntryKind, LayerOptions, write_layer};
        let file = Entry {
            path: "data.bin".into(),
            kind: EntryKind::File(Content::Bytes(content.into())),
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Default::default(),
        };
        let mut writer = store.blob_writer().unwrap();
        let (info, _) = write_layer(vec![file], &mut writer, &LayerOptions::default()).unwrap();
        let (digest, size) = writer.commit().unwrap();
        assert_eq!(digest, info.digest);
        let layer = CachedLayer {
            digest,
            size,
            media_type: info.media_type.into(),
            diff_id: info.diff_id,
        };
        (layer, info.chunks.unwrap())
    }

    #[test]
    fn a_stored_blob_offers_its_chunks_until_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = OciLayout::open_or_create(dir.path().join("store")).unwrap();
        let cache = LocalCache::open(dir.path().join("cache")).unwrap();
        let content: Vec<u8> = (0..3_000_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let (layer, index) = gzip_layer_in(&store, &content);
        assert!(index.chunks.len() > 2);
        let r = record("big", Some(layer.clone()));
        cache.put(&r, &store, Some(&index)).unwrap();

        let chunks = cache.chunks(&layer.digest).unwrap();
        let blob = fs::read(cache.blobs().blob_path(&layer.digest)).unwrap();
        for (entry, offset) in index.locations() {
            let mut out = b"kept".to_vec();
            assert!(chunks.deflated(&index.compressor, &entry.hash, &mut out));
            let at = offset as usize;
            assert_eq!(&out[4..], &blob[at..at + entry.compressed as usize]);
            assert_eq!(&out[..4], b"kept");
        }
        let mut out = Vec::new();
        assert!(!chunks.deflated(&index.compressor, &[7; 32], &mut out));
        assert!(!chunks.deflated(&[7; 32], &index.chunks[0].hash, &mut out));
        assert!(out.is_empty());

        // A blob that does not match its index offers nothing.
        let copy = dir.path().join("blob");
        fs::copy(cache.blobs().blob_path(&layer.digest), &copy).unwrap();
        File::options()
            .write(true)
            .open(cache.blobs().blob_path(&layer.digest))
            .unwrap()
            .set_len(blob.len() as u64 - 1)
            .unwrap();
        assert!(cache.chunks(&layer.digest).is_none());
        fs::copy(&copy, cache.blobs().blob_path(&layer.digest)).unwrap();

        drop(cache);
        let cache = LocalCache::open_exclusive(dir.path().join("cache")).unwrap();
        cache.prune(&PruneOptions::default()).unwrap();
        assert!(cache.chunks(&layer.digest).is_none());
        let left = fs::read_dir(dir.path().join("cache/chunks"))
            .unwrap()
            .count();
        assert_eq!(left, 0);
    }

    #[test]
    fn pushed_blobs_are_remembered_per_repository_for_a_day_and_capped() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LocalCache::open(dir.path()).unwrap();
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let repo = "registry.example/team/app";
        assert!(cache.pushed_blobs(repo, 1_000).is_empty());
        cache
            .remember_pushed(repo, std::slice::from_ref(&a), 1_000)
            .unwrap();
        cache
            .remember_pushed(repo, std::slice::from_ref(&b), 5_000)
            .unwrap();
        assert_eq!(
            cache.pushed_blobs(repo, 5_000),
            BTreeSet::from([a.clone(), b.clone()])
        );
        assert!(
            cache
                .pushed_blobs("registry.example/other", 5_000)
                .is_empty()
        );
        let day = PUSHED_TTL.as_secs() as i64;
        assert_eq!(
            cache.pushed_blobs(repo, 1_000 + day),
            BTreeSet::from([b.clone()])
        );
        // Pushed again, `a` is trusted for another day.
        cache
            .remember_pushed(repo, std::slice::from_ref(&a), 1_000 + day)
            .unwrap();
        assert_eq!(
            cache.pushed_blobs(repo, 1_000 + day),
            BTreeSet::from([a, b])
        );
        let many: Vec<Digest> = (0..PUSHED_KEPT + 10)
            .map(|i| Digest::of(i.to_string().as_bytes()))
            .collect();
        cache.remember_pushed(repo, &many, 9_000).unwrap();
        let kept = cache.pushed_blobs(repo, 9_000);
        assert_eq!(kept.len(), PUSHED_KEPT);
        assert!(kept.contains(&many[PUSHED_KEPT + 9]) && !kept.contains(&many[0]));
    }

    #[test]
    fn the_inputs_key_is_read_alone() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LocalCache::open(dir.path()).unwrap();
        let slot = KeyBuilder::new("slot").str("step", "1").finish();
        assert_eq!(cache.inputs_key(&slot), None);
        let mut inputs = StepInputs {
            key: Some(KeyBuilder::new("step").str("n", "1").finish()),
            instruction: "COPY files/ /data/".into(),
            ..StepInputs::default()
        };
        for i in 0..100 {
            inputs.files.insert(
                format!("files/f{i:03}"),
                crate::cache::FileState {
                    kind: "file".into(),
                    mode: 0o644,
                    content: Digest::of(&[i as u8]).to_string(),
                },
            );
        }
        cache.set_inputs(&slot, &inputs).unwrap();
        assert_eq!(cache.inputs_key(&slot), inputs.key);
        assert_eq!(cache.inputs(&slot), Some(inputs.clone()));
        inputs.key = None;
        cache.set_inputs(&slot, &inputs).unwrap();
        assert_eq!(cache.inputs_key(&slot), None);
        fs::write(cache.inputs_path(&slot), b"{\"key\": \"sha256:").unwrap();
        assert_eq!(cache.inputs_key(&slot), None);
        // A file whose key is not its first field (spaced, or written by hand) is parsed whole.
        let key = KeyBuilder::new("step").str("n", "2").finish();
        let spaced = format!("{{ \"instruction\": \"RUN x\", \"key\": \"{key}\" }}");
        fs::write(cache.inputs_path(&slot), spaced).unwrap();
        assert_eq!(cache.inputs_key(&slot), Some(key));
    }

    #[test]
    fn prune_keeps_the_most_recent_within_the_storage_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = OciLayout::open_or_create(dir.path().join("store")).unwrap();
        let root = dir.path().join("cache");
        let old = record("old", Some(layer_in(&store, &[1u8; 1000])));
        let new = record("new", Some(layer_in(&store, &[2u8; 1000])));
        {
            let cache = LocalCache::open(&root).unwrap();
            cache.put(&old, &store, None).unwrap();
            let path = cache.record_path(&old.key);
            File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(SystemTime::now() - Duration::from_secs(3600))
                .unwrap();
            cache.put(&new, &store, None).unwrap();
        }
        let cache = LocalCache::open_exclusive(&root).unwrap();
        let report = cache
            .prune(&PruneOptions {
                keep_storage: Some(1500),
                ..PruneOptions::default()
            })
            .unwrap();
        assert_eq!(report.entries, 1);
        assert_eq!(report.bytes, 1000);
        assert!(cache.get(&new.key).is_some());
        assert!(cache.get(&old.key).is_none());
        let all = cache.prune(&PruneOptions::default()).unwrap();
        assert_eq!((all.entries, all.blobs), (1, 1));
        assert_eq!(cache.stats().unwrap().entries, 0);
    }
}
