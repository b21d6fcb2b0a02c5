//! Gzip made of independent, content-defined chunks, compressed on every core.
//!
//! The uncompressed tar stream is cut where its content says (FastCDC, 1 MiB on average), each
//! chunk is deflated by a fresh compressor and ends with a sync flush, and the pieces follow one
//! another inside a single ordinary gzip member (one header, one final block, one CRC), which
//! every gzip reader accepts. Two things follow from a chunk's bytes depending on nothing but
//! its own content:
//!
//! - chunks compress in parallel, and the output is the same whatever the number of threads;
//! - a layer that differs from an earlier one in a few files recompresses only the chunks
//!   around those files: the others are copied from the earlier blob ([`ChunkSource`]), and the
//!   result is the very bytes a full compression would give.
//!
//! Content-defined cuts (rather than fixed offsets) keep a file that grows or shrinks from
//! shifting every chunk after it. Independent 1 MiB chunks cost about 0.2% of size at level 6
//! against one stream.
//!
//! A chunk that is mostly incompressible already (compressed archives, wheels, media, random
//! bytes) gains almost nothing from deflating all of it but costs the most time, and one that
//! does not compress at all gains nothing from any level. Three 16 KiB windows of the chunk
//! (start, middle, end) are deflated at level 1 first: when none shrinks by 1%, the chunk is
//! stored (deflate's uncompressed blocks, 5 bytes per 64 KiB, as gzip itself falls back to);
//! when together they shrink by less than 10%, only the parts of it that compress are
//! deflated and the rest is stored (see `segments.rs`); otherwise it is deflated at the level
//! asked for. The choice depends only on the chunk's bytes, so it is as deterministic as the
//! rest.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, Scope, ScopedJoinHandle};

use fastcdc::v2020::FastCDC;
use flate2::Crc;
use sha2::{Digest as _, Sha256};
use zlib_rs::{Deflate, DeflateConfig, DeflateFlush, Method, Status, Strategy};

use crate::oci::Digest;

mod segments;

/// Smallest chunk, except the last of a stream.
pub const CHUNK_MIN: usize = 256 * 1024;
/// Average chunk.
pub const CHUNK_AVG: usize = 1024 * 1024;
/// Largest chunk.
pub const CHUNK_MAX: usize = 2 * 1024 * 1024;

/// The gzip header: no file name, mtime 0, no extra flags, OS "unknown" (255).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
/// An empty final block (fixed Huffman codes, end of block only): what ends the deflate
/// stream after the last chunk's sync flush.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// sha256 of a chunk's uncompressed bytes.
pub type ChunkHash = [u8; 32];

/// Identifies the compressor that made a chunk: the same id and the same uncompressed bytes
/// give the same deflated bytes. It covers the level, the chunking and the deflate
/// implementation itself (a fingerprint of its output on a fixed sample), so chunks made by
/// another version are never mixed into a layer.
pub type CompressorId = [u8; 32];

/// One chunk of a blob, in blob order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkEntry {
    /// sha256 of the uncompressed bytes.
    pub hash: ChunkHash,
    /// Length of the uncompressed bytes.
    pub uncompressed: u32,
    /// Length of the deflated bytes in the blob.
    pub compressed: u32,
}

/// Where each chunk of a gzip layer blob is: enough to reuse its deflated bytes later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkIndex {
    /// The compressor that made the chunks.
    pub compressor: CompressorId,
    /// The chunks, in blob order.
    pub chunks: Vec<ChunkEntry>,
}

const INDEX_MAGIC: &[u8; 16] = b"kiln-chunks-v1\n\0";
const ENTRY_LEN: usize = 32 + 4 + 4;

impl ChunkIndex {
    /// Each chunk with the offset of its deflated bytes in the blob.
    pub fn locations(&self) -> impl Iterator<Item = (&ChunkEntry, u64)> {
        let mut offset = HEADER.len() as u64;
        self.chunks.iter().map(move |c| {
            let at = offset;
            offset += u64::from(c.compressed);
            (c, at)
        })
    }

    /// The index as bytes, for storing beside the blob.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(INDEX_MAGIC.len() + 32 + self.chunks.len() * ENTRY_LEN);
        out.extend_from_slice(INDEX_MAGIC);
        out.extend_from_slice(&self.compressor);
        for c in &self.chunks {
            out.extend_from_slice(&c.hash);
            out.extend_from_slice(&c.uncompressed.to_le_bytes());
            out.extend_from_slice(&c.compressed.to_le_bytes());
        }
        out
    }

    /// Reads what [`ChunkIndex::encode`] wrote; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<ChunkIndex> {
        let rest = bytes.strip_prefix(INDEX_MAGIC.as_slice())?;
        let (compressor, rest) = rest.split_first_chunk::<32>()?;
        if rest.len() % ENTRY_LEN != 0 {
            return None;
        }
        let chunks = rest
            .chunks_exact(ENTRY_LEN)
            .map(|e| {
                let (hash, e) = e.split_first_chunk::<32>()?;
                let (uncompressed, compressed) = e.split_first_chunk::<4>()?;
                Some(ChunkEntry {
                    hash: *hash,
                    uncompressed: u32::from_le_bytes(*uncompressed),
                    compressed: u32::from_le_bytes(compressed.try_into().ok()?),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(ChunkIndex {
            compressor: *compressor,
            chunks,
        })
    }
}

/// Deflated chunks of earlier layers, offered for reuse. The layer module writes blobs and the
/// cache keeps them: the cache implements this so a new layer can take unchanged chunks from
/// an old blob instead of compressing them again.
pub trait ChunkSource: Sync {
    /// Appends to `out` the deflated bytes that `compressor` made of the chunk whose
    /// uncompressed sha256 is `hash`, and returns true; returns false (leaving `out` as it
    /// was) when it has no such chunk.
    fn deflated(&self, compressor: &CompressorId, hash: &ChunkHash, out: &mut Vec<u8>) -> bool;
}

/// A [`ChunkSource`] with nothing in it.
pub struct NoChunks;

impl ChunkSource for NoChunks {
    fn deflated(&self, _: &CompressorId, _: &ChunkHash, _: &mut Vec<u8>) -> bool {
        false
    }
}

/// The id of this build's compressor at `level` (0 to 9).
pub fn compressor_id(level: u32) -> CompressorId {
    static IDS: [OnceLock<CompressorId>; 10] = [const { OnceLock::new() }; 10];
    match IDS.get(level as usize) {
        Some(id) => *id.get_or_init(|| fingerprint(level)),
        None => fingerprint(level),
    }
}

fn fingerprint(level: u32) -> CompressorId {
    // A sample with long matches, short matches and noise, so that a change in any part of
    // the implementation is likely to show in its output.
    let mut sample = Vec::with_capacity(64 * 1024);
    let mut state: u32 = 0x9e37_79b9;
    while sample.len() < 64 * 1024 {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        match state >> 30 {
            0 => sample.extend_from_slice(b"usr/lib/python3/dist-packages/"),
            1 => sample.extend_from_slice(&state.to_le_bytes()),
            2 => sample.extend(std::iter::repeat_n(0u8, (state >> 20) as usize & 0x3ff)),
            _ => sample.extend_from_slice(&(state % 97).to_string().into_bytes()),
        }
    }
    let mut hasher = Sha256::new();
    hasher.update(
        b"kiln chunked gzip v4: three 16 KiB windows at level 1; stored when each keeps 99%, \
          segments when together they keep 90%",
    );
    hasher.update((segments::NEAR as u64).to_le_bytes());
    hasher.update(segments::MIN_SAVING_PERCENT.to_le_bytes());
    hasher.update(segments::TABLE_BYTES.to_le_bytes());
    hasher.update((segments::BYTES_PER_SEGMENT as u64).to_le_bytes());
    for n in [CHUNK_MIN, CHUNK_AVG, CHUNK_MAX] {
        hasher.update((n as u64).to_le_bytes());
    }
    hasher.update(level.to_le_bytes());
    // The same through each way the chunks may take, whatever the sample would choose.
    for deflated in [
        deflate(&sample, level, Strategy::Default),
        deflate(&sample, level, Strategy::Rle),
        segments::deflate(&sample, level),
    ] {
        match deflated {
            Ok(deflated) => hasher.update(&deflated),
            Err(e) => hasher.update(e.to_string().as_bytes()),
        }
    }
    hasher.finalize().into()
}

/// How much of the chunk buffer may be bytes already cut off before they are dropped from it.
const COMPACT_AFTER: usize = CHUNK_MAX;

/// Size of each of the windows of a chunk deflated at level 1 to tell how compressible it is.
const PROBE: usize = 16 * 1024;

/// Deflates one chunk at `level`; stored when it does not compress, in segments when it
/// barely does.
fn deflate_chunk(data: &[u8], level: u32) -> io::Result<Vec<u8>> {
    if level <= 1 {
        return deflate(data, level, Strategy::Default);
    }
    let starts = if data.len() <= 3 * PROBE {
        vec![0]
    } else {
        vec![0, (data.len() - PROBE) / 2, data.len() - PROBE]
    };
    let (mut raw, mut deflated, mut each_incompressible) = (0, 0, true);
    for start in starts {
        let window = &data[start..data.len().min(start + PROBE)];
        let size = deflate(window, 1, Strategy::Default)?.len();
        raw += window.len();
        deflated += size;
        each_incompressible &= size * 100 >= window.len() * 99;
    }
    if each_incompressible {
        deflate(data, 0, Strategy::Default)
    } else if deflated * 10 >= raw * 9 {
        segments::deflate(data, level)
    } else {
        deflate(data, level, Strategy::Default)
    }
}

/// Deflates `data` on its own (raw deflate, 32 KiB window, zlib's default memory level),
/// ending with a sync flush (byte-aligned, not final).
fn deflate(data: &[u8], level: u32, strategy: Strategy) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    deflate_into(&mut compressor(level, strategy), data, &mut out)?;
    Ok(out)
}

/// A raw deflate compressor (32 KiB window, zlib's default memory level).
fn compressor(level: u32, strategy: Strategy) -> Deflate {
    Deflate::new_with_config(DeflateConfig {
        level: level as i32,
        method: Method::Deflated,
        window_bits: -15,
        mem_level: 8,
        strategy,
    })
}

/// Deflates `bytes` with `compressor` (fresh or just reset) and a sync flush, onto `out`.
fn deflate_into(compressor: &mut Deflate, bytes: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    // Room for the worst case (stored blocks) and the flush marker, so one call does it all;
    // the loop is only for safety. An empty `out` gets zeroed memory from the allocator, whose
    // pages only count once written: a chunk's worst case is its whole size, most of it never
    // touched when it compresses.
    let start = out.len();
    let room = zlib_rs::compress_bound(bytes.len()) + 64;
    if start == 0 {
        *out = vec![0; room];
    } else {
        out.resize(start + room, 0);
    }
    loop {
        let consumed = compressor.total_in() as usize;
        let produced = compressor.total_out() as usize;
        let status = compressor
            .compress(
                &bytes[consumed..],
                &mut out[start + produced..],
                DeflateFlush::SyncFlush,
            )
            .map_err(|e| io::Error::other(e.as_str()))?;
        let produced = compressor.total_out() as usize;
        // Done once all is in and the output was not filled (so the flush is complete).
        let done = compressor.total_in() as usize == bytes.len() && start + produced < out.len();
        if done || status == Status::StreamEnd {
            out.truncate(start + produced);
            return Ok(());
        }
        if start + produced == out.len() {
            out.resize(out.len() + bytes.len() + 64, 0);
        }
    }
}

/// A chunk handed to a worker, and where its result goes.
struct Job {
    data: Arc<Vec<u8>>,
    reply: SyncSender<io::Result<Done>>,
}

/// A chunk's deflated bytes and index entry.
struct Done {
    deflated: Vec<u8>,
    entry: ChunkEntry,
}

fn process(
    data: &[u8],
    level: u32,
    id: &CompressorId,
    reuse: &dyn ChunkSource,
) -> io::Result<Done> {
    let hash: ChunkHash = Sha256::digest(data).into();
    let mut deflated = Vec::new();
    if !reuse.deflated(id, &hash, &mut deflated) {
        deflated = deflate_chunk(data, level)?;
    }
    let too_big = |_| io::Error::other("a layer chunk is larger than 4 GiB");
    Ok(Done {
        entry: ChunkEntry {
            hash,
            uncompressed: u32::try_from(data.len()).map_err(too_big)?,
            compressed: u32::try_from(deflated.len()).map_err(too_big)?,
        },
        deflated,
    })
}

/// The worker threads of one blob.
struct Pool {
    jobs: SyncSender<Job>,
}

/// What was compressed: the sha256 and length of the uncompressed stream (a layer's diff_id
/// and size).
pub(super) struct Uncompressed {
    pub(super) digest: Digest,
    pub(super) size: u64,
}

/// Compresses everything `body` writes as a chunked gzip member into `out`, and returns `out`,
/// the blob's chunk index and what the uncompressed stream was. Chunks known to `reuse` are
/// copied, not compressed. Errors of the compression itself become `E` through `io_error`.
pub(super) fn write_chunked<W, F, E>(
    level: u32,
    reuse: &dyn ChunkSource,
    out: W,
    io_error: fn(io::Error) -> E,
    body: F,
) -> Result<(W, ChunkIndex, Uncompressed), E>
where
    W: Write + Send,
    F: FnOnce(&mut dyn Write) -> Result<(), E>,
{
    let workers = thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let id = compressor_id(level);
    thread::scope(|scope| {
        // The stream's sha256 and CRC are sequential: one thread runs them over the chunks in
        // order, beside the workers, instead of the thread producing the stream.
        let (stream, chunks) = sync_channel::<Arc<Vec<u8>>>(workers + 1);
        let summary = scope.spawn(move || {
            let (mut sha, mut crc) = (Sha256::new(), Crc::new());
            for chunk in chunks {
                sha.update(&chunk[..]);
                crc.update(&chunk);
            }
            (sha, crc)
        });
        // So is writing the blob (its digest, the file, a push reading it as it grows): a
        // thread of its own does that too, one chunk behind.
        let (output, deflated) = sync_channel::<Vec<u8>>(1);
        let sink = scope.spawn(move || {
            let mut out = out;
            out.write_all(&HEADER)?;
            for bytes in deflated {
                out.write_all(&bytes)?;
            }
            Ok(out)
        });
        let mut writer = ChunkWriter {
            scope,
            workers,
            level,
            id,
            reuse,
            output: Some(output),
            sink: Some(sink),
            buffer: Vec::new(),
            start: 0,
            stream: Some(stream),
            summary: Some(summary),
            pool: None,
            pending: VecDeque::new(),
            index: ChunkIndex {
                compressor: id,
                chunks: Vec::new(),
            },
        };
        body(&mut writer)?;
        writer.finish().map_err(io_error)
    })
}

struct ChunkWriter<'scope, 'env, W> {
    scope: &'scope Scope<'scope, 'env>,
    workers: usize,
    level: u32,
    id: CompressorId,
    reuse: &'env dyn ChunkSource,
    /// The deflated chunks in stream order, to the thread writing the blob.
    output: Option<SyncSender<Vec<u8>>>,
    sink: Option<ScopedJoinHandle<'scope, io::Result<W>>>,
    buffer: Vec<u8>,
    /// Where the bytes not yet cut into chunks begin in `buffer`.
    start: usize,
    /// The chunks in stream order, to the thread hashing the stream.
    stream: Option<SyncSender<Arc<Vec<u8>>>>,
    summary: Option<ScopedJoinHandle<'scope, (Sha256, Crc)>>,
    pool: Option<Pool>,
    pending: VecDeque<Receiver<io::Result<Done>>>,
    index: ChunkIndex,
}

impl<'scope, 'env, W: Write> ChunkWriter<'scope, 'env, W> {
    fn start_pool(&mut self) -> &Pool {
        self.pool.get_or_insert_with(|| {
            let (jobs, queue) = sync_channel::<Job>(self.workers);
            let queue = std::sync::Arc::new(Mutex::new(queue));
            for _ in 0..self.workers {
                let queue = queue.clone();
                let (level, id, reuse) = (self.level, self.id, self.reuse);
                self.scope.spawn(move || {
                    loop {
                        let job = match queue.lock() {
                            Ok(q) => q.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        // The writer may have stopped waiting (an error): nothing to do then.
                        let _ = job.reply.send(process(&job.data, level, &id, reuse));
                    }
                });
            }
            Pool { jobs }
        })
    }

    /// Hands a chunk to the workers, writing finished chunks while too many are in flight.
    fn submit(&mut self, data: Arc<Vec<u8>>) -> io::Result<()> {
        let (reply, result) = sync_channel(1);
        let stopped = || io::Error::other("the layer compression workers stopped");
        self.start_pool()
            .jobs
            .send(Job { data, reply })
            .map_err(|_| stopped())?;
        self.pending.push_back(result);
        while self.pending.len() > self.workers {
            self.write_next()?;
        }
        Ok(())
    }

    fn write_next(&mut self) -> io::Result<()> {
        let Some(result) = self.pending.pop_front() else {
            return Ok(());
        };
        let done = result
            .recv()
            .map_err(|_| io::Error::other("a layer compression worker stopped"))??;
        self.emit(done)
    }

    fn emit(&mut self, done: Done) -> io::Result<()> {
        self.index.chunks.push(done.entry);
        self.send(done.deflated)
    }

    /// Hands bytes of the blob to the thread writing it; when that thread has stopped, its
    /// error.
    fn send(&mut self, bytes: Vec<u8>) -> io::Result<()> {
        let sent = self.output.as_ref().map(|o| o.send(bytes));
        if matches!(sent, Some(Ok(()))) {
            return Ok(());
        }
        self.output = None;
        match self.end_sink() {
            Err(e) => Err(e),
            Ok(_) => Err(io::Error::other("the layer blob writer stopped")),
        }
    }

    /// Waits for the thread writing the blob, once the sender is gone, and takes back the
    /// output.
    fn end_sink(&mut self) -> io::Result<W> {
        self.sink
            .take()
            .map(ScopedJoinHandle::join)
            .and_then(Result::ok)
            .unwrap_or_else(|| Err(io::Error::other("the layer blob writer stopped")))
    }

    /// Cuts off the chunks whose ends the buffer already decides: every chunk that starts at
    /// least a largest chunk's worth before the buffer's end (or, `at_end`, all of them). Each
    /// chunk's bytes are scanned once, and what was cut off leaves the buffer only now and
    /// then, so the bytes still waiting are not moved once per chunk.
    fn cut(&mut self, at_end: bool) -> io::Result<()> {
        let mut chunks = Vec::new();
        loop {
            let rest = self.buffer.len() - self.start;
            if rest == 0 || (!at_end && rest < CHUNK_MAX) {
                break;
            }
            let pending = &self.buffer[self.start..];
            let (_, end) = FastCDC::new(pending, CHUNK_MIN, CHUNK_AVG, CHUNK_MAX).cut(0, rest);
            chunks.push(Arc::new(pending[..end].to_vec()));
            self.start += end;
        }
        if self.start >= COMPACT_AFTER || self.start == self.buffer.len() {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        for chunk in &chunks {
            let sent = self.stream.as_ref().map(|s| s.send(chunk.clone()));
            if !matches!(sent, Some(Ok(()))) {
                return Err(io::Error::other("the layer stream hashing thread stopped"));
            }
        }
        if self.pool.is_none() && at_end && chunks.len() == 1 {
            // One small chunk, all there is: not worth a thread.
            for chunk in chunks {
                let done = process(&chunk, self.level, &self.id, self.reuse)?;
                self.emit(done)?;
            }
            return Ok(());
        }
        for chunk in chunks {
            self.submit(chunk)?;
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<(W, ChunkIndex, Uncompressed)> {
        self.cut(true)?;
        while !self.pending.is_empty() {
            self.write_next()?;
        }
        self.stream = None;
        let (sha, crc) = self
            .summary
            .take()
            .map(ScopedJoinHandle::join)
            .and_then(Result::ok)
            .ok_or_else(|| io::Error::other("the layer stream hashing thread stopped"))?;
        let mut trailer = FINAL_BLOCK.to_vec();
        trailer.extend_from_slice(&crc.sum().to_le_bytes());
        trailer.extend_from_slice(&crc.amount().to_le_bytes());
        self.send(trailer)?;
        self.output = None;
        let out = self.end_sink()?;
        let size = self
            .index
            .chunks
            .iter()
            .map(|c| u64::from(c.uncompressed))
            .sum();
        let uncompressed = Uncompressed {
            digest: Digest::from_hasher(sha),
            size,
        };
        Ok((out, self.index, uncompressed))
    }
}

impl<W: Write> Write for ChunkWriter<'_, '_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        self.cut(false)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::collections::HashMap;
    use std::io::Read;

    fn sample(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            // Compressible text and incompressible runs, so chunks differ in both.
            if rng.bool() {
                out.extend_from_slice(
                    format!("line {} of a text file\n", rng.u32(..1000)).as_bytes(),
                );
            } else {
                out.extend((0..200).map(|_| rng.u8(..)));
            }
        }
        out.truncate(len);
        out
    }

    fn gzip(data: &[u8], reuse: &dyn ChunkSource) -> (Vec<u8>, ChunkIndex) {
        let (blob, index, stream) =
            write_chunked(6, reuse, Vec::new(), |e| e, |w| w.write_all(data)).unwrap();
        assert_eq!(stream.digest, Digest::of(data));
        assert_eq!(stream.size, data.len() as u64);
        (blob, index)
    }

    fn gunzip(blob: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        GzDecoder::new(blob).read_to_end(&mut out).unwrap();
        out
    }

    /// An output that takes `room` bytes, then fails.
    struct Full {
        room: usize,
    }

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::other("no space left for the blob"));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_output_that_fails_fails_the_write_with_its_error() {
        let data = sample(12 << 20, 7);
        for room in [0, 5, 300 << 10, 3 << 20] {
            let result = write_chunked(1, &NoChunks, Full { room }, |e| e, |w| w.write_all(&data));
            let error = result.err().expect("the write must fail");
            assert_eq!(
                error.to_string(),
                "no space left for the blob",
                "room {room}"
            );
        }
        // With room for all of it, the same output gives the whole blob.
        let (blob, _, _) =
            write_chunked(1, &NoChunks, Vec::new(), |e| e, |w| w.write_all(&data)).unwrap();
        let (_, _, _) = write_chunked(
            1,
            &NoChunks,
            Full { room: blob.len() },
            |e| e,
            |w| w.write_all(&data),
        )
        .unwrap();
    }

    /// Chunks of earlier blobs, as the cache offers them, counting what it gave.
    struct Blobs {
        compressor: CompressorId,
        chunks: HashMap<ChunkHash, Vec<u8>>,
        given: std::sync::atomic::AtomicUsize,
    }

    impl Blobs {
        fn of(blob: &[u8], index: &ChunkIndex) -> Blobs {
            let chunks = index
                .locations()
                .map(|(c, at)| {
                    let at = at as usize;
                    (c.hash, blob[at..at + c.compressed as usize].to_vec())
                })
                .collect();
            Blobs {
                compressor: index.compressor,
                chunks,
                given: Default::default(),
            }
        }
    }

    impl ChunkSource for Blobs {
        fn deflated(&self, id: &CompressorId, hash: &ChunkHash, out: &mut Vec<u8>) -> bool {
            if *id != self.compressor {
                return false;
            }
            match self.chunks.get(hash) {
                Some(bytes) => {
                    out.extend_from_slice(bytes);
                    self.given
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    true
                }
                None => false,
            }
        }
    }

    #[test]
    fn any_gzip_reader_gets_the_bytes_back() {
        for len in [0, 1, 1000, CHUNK_MIN, 3 * CHUNK_MAX + 17] {
            let data = sample(len, len as u64);
            let (blob, index) = gzip(&data, &NoChunks);
            assert_eq!(gunzip(&blob), data, "{len} bytes");
            assert_eq!(
                index
                    .chunks
                    .iter()
                    .map(|c| c.uncompressed as usize)
                    .sum::<usize>(),
                len
            );
            let deflated: usize = index.chunks.iter().map(|c| c.compressed as usize).sum();
            assert_eq!(blob.len(), HEADER.len() + deflated + FINAL_BLOCK.len() + 8);
        }
    }

    #[test]
    fn chunks_are_cut_by_content_and_bounded() {
        let data = sample(12 * CHUNK_AVG, 7);
        let (blob, index) = gzip(&data, &NoChunks);
        assert!(index.chunks.len() > 4, "{} chunks", index.chunks.len());
        let (last, rest) = index.chunks.split_last().unwrap();
        assert!(last.uncompressed as usize <= CHUNK_MAX);
        for c in rest {
            assert!((CHUNK_MIN..=CHUNK_MAX).contains(&(c.uncompressed as usize)));
        }
        // The cuts are those of the whole stream at once, however it is written: in one
        // piece above; below first in a piece longer than the buffer keeps before dropping
        // what was cut off, then in small pieces, so that chunks are asked for as soon as a
        // largest chunk's worth is waiting.
        let whole: Vec<u32> = FastCDC::new(&data, CHUNK_MIN, CHUNK_AVG, CHUNK_MAX)
            .map(|c| c.length as u32)
            .collect();
        let cuts = |index: &ChunkIndex| -> Vec<u32> {
            index.chunks.iter().map(|c| c.uncompressed).collect()
        };
        assert_eq!(cuts(&index), whole);
        let mut rng = fastrand::Rng::with_seed(11);
        let (pieces, pieces_index, _) = write_chunked(
            6,
            &NoChunks,
            Vec::new(),
            |e| e,
            |w| {
                let mut at = 0;
                while at < data.len() {
                    let len = if at == 0 {
                        COMPACT_AFTER + 3
                    } else {
                        rng.usize(1..10_000)
                    };
                    let end = data.len().min(at + len);
                    w.write_all(&data[at..end])?;
                    at = end;
                }
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(cuts(&pieces_index), whole);
        assert_eq!(pieces, blob);
    }

    #[test]
    fn reused_chunks_give_the_same_bytes_as_compressing() {
        let old = sample(10 * CHUNK_AVG, 1);
        let (old_blob, old_index) = gzip(&old, &NoChunks);
        // A few bytes inserted in the middle: the chunks before and after it stay the same.
        let mut new = old.clone();
        new.splice(5 * CHUNK_AVG..5 * CHUNK_AVG, b"inserted".iter().copied());
        let (fresh, fresh_index) = gzip(&new, &NoChunks);
        let source = Blobs::of(&old_blob, &old_index);
        let (reused, reused_index) = gzip(&new, &source);
        assert_eq!(reused, fresh);
        assert_eq!(reused_index, fresh_index);
        assert_eq!(gunzip(&reused), new);
        let given = source.given.into_inner();
        assert!(
            given + 3 >= fresh_index.chunks.len() && given > 0,
            "{given} of {} chunks reused",
            fresh_index.chunks.len()
        );
    }

    #[test]
    fn chunks_of_another_compressor_are_not_used() {
        let data = sample(3 * CHUNK_AVG, 3);
        let (blob, index, _) =
            write_chunked(1, &NoChunks, Vec::new(), |e| e, |w| w.write_all(&data)).unwrap();
        let source = Blobs::of(&blob, &index);
        let (at6, _) = gzip(&data, &source);
        assert_eq!(source.given.into_inner(), 0);
        assert_eq!(gunzip(&at6), data);
        assert_ne!(compressor_id(1), compressor_id(6));
    }

    #[test]
    fn incompressible_chunks_are_stored_barely_compressible_ones_in_segments_and_others_fully() {
        let mut rng = fastrand::Rng::with_seed(5);
        let noise: Vec<u8> = (0..CHUNK_MIN).map(|_| rng.u8(..)).collect();
        let stored = deflate_chunk(&noise, 6).unwrap();
        assert_eq!(stored, deflate(&noise, 0, Strategy::Default).unwrap());
        assert!(stored.len() <= noise.len() + noise.len() / 65535 * 5 + 10);
        // A tar of random files: a 512-byte header, 10,000 random bytes and 240 bytes of zero
        // padding each. Level 1 shrinks it a few percent, not 10; deflating only its headers
        // and padding keeps what level 6 would save of it, and level 1 does not.
        let mut tar = Vec::with_capacity(CHUNK_MIN + 11_000);
        while tar.len() < CHUNK_MIN {
            let mut header = [0u8; 512];
            header[..17].copy_from_slice(b"data/d00/f000.bin");
            header[100..107].copy_from_slice(b"0000644");
            tar.extend_from_slice(&header);
            tar.extend((0..10_000).map(|_| rng.u8(..)));
            tar.extend_from_slice(&[0; 240]);
        }
        let level1 = deflate(&tar, 1, Strategy::Default).unwrap().len();
        assert!((0.9..0.99).contains(&(level1 as f64 / tar.len() as f64)));
        let chosen = deflate_chunk(&tar, 6).unwrap();
        assert_eq!(chosen, segments::deflate(&tar, 6).unwrap());
        assert_eq!(gunzip_raw(&chosen), tar);
        let level6 = deflate(&tar, 6, Strategy::Default).unwrap().len();
        assert!(chosen.len() < level1, "{} >= {level1}", chosen.len());
        assert!(
            chosen.len() * 100 <= level6 * 101,
            "{} vs {level6}",
            chosen.len()
        );
        let text: Vec<u8> = (0..CHUNK_MIN / 8)
            .flat_map(|i| format!("{:07}\n", i * 7919 % 100_000).into_bytes())
            .collect();
        let at6 = deflate_chunk(&text, 6).unwrap();
        assert_eq!(at6, deflate(&text, 6, Strategy::Default).unwrap());
        assert!(at6.len() < deflate(&text, 1, Strategy::Default).unwrap().len());
        // Noise with text at its end is not stored: the end window compresses.
        let mut mixed = noise.clone();
        mixed.extend_from_slice(&text[..PROBE]);
        assert_ne!(
            deflate_chunk(&mixed, 6).unwrap(),
            deflate(&mixed, 0, Strategy::Default).unwrap()
        );
        assert_eq!(gunzip_raw(&deflate_chunk(&mixed, 6).unwrap()), mixed);
    }

    /// Inflates one raw deflate chunk ending in a sync flush.
    fn gunzip_raw(deflated: &[u8]) -> Vec<u8> {
        let mut stream = deflated.to_vec();
        stream.extend_from_slice(&FINAL_BLOCK);
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(&stream[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn the_index_reads_back_and_rejects_other_bytes() {
        let (_, index) = gzip(&sample(3 * CHUNK_AVG, 9), &NoChunks);
        assert_eq!(ChunkIndex::decode(&index.encode()), Some(index.clone()));
        let mut cut = index.encode();
        cut.pop();
        assert_eq!(ChunkIndex::decode(&cut), None);
        assert_eq!(ChunkIndex::decode(b"{}"), None);
    }
}
