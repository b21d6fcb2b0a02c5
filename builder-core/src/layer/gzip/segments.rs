//! Deflate for a chunk that is mostly incompressible, cut into what compresses and what does
//! not.
//!
//! A tar of compressed or random files is mostly bytes no coder can shrink, with a few hundred
//! bytes between files that shrink a lot: the 512-byte header (short text fields in zeros) and
//! the zero padding before it. Deflating the whole chunk spends nearly all its time on the
//! first kind to gain nothing, and Huffman-coding bytes that are evenly spread even costs a
//! little. So the chunk is cut into segments:
//!
//! - **compressible**: runs of one repeated byte and whatever lies within [`NEAR`] bytes of
//!   them (a tar header's fields between its zeros), and any other stretch whose bytes are
//!   spread unevenly enough that a Huffman code would save [`MIN_SAVING_PERCENT`] of it (text
//!   files among the compressed ones). Each is deflated on its own at the chunk's level.
//! - **stored**: everything else, copied into deflate's uncompressed blocks (5 bytes of framing
//!   per 64 KiB).
//!
//! Every segment ends byte-aligned (a deflated one with a sync flush, a stored block by
//! construction), so they follow one another in one stream, and a deflated segment starts from
//! an empty window: no match reaches into a segment its compressor never saw. The cuts depend
//! only on the chunk's bytes (integer arithmetic throughout), so the output is as deterministic
//! as whole-chunk deflate. On a tar of 10 kB random files this gives the size the run-length
//! strategy gave at a small fraction of its time; on compressed files mixed with text it is
//! smaller than level 6 over the whole chunk, since the text gets Huffman tables of its own.
//!
//! Two bounds keep the worst case no worse than before: a chunk with more deflated segments
//! than one per [`BYTES_PER_SEGMENT`] bytes (short runs recurring every few hundred bytes) is
//! deflated whole with the run-length strategy, and a result larger than the stored chunk
//! becomes the stored chunk.

use std::io;

use zlib_rs::{Deflate, Strategy};

/// Stretches of other bytes shorter than this between two runs stay in one compressible
/// segment with them: a tar header's text fields lie between its zero runs.
pub(super) const NEAR: usize = 128;

/// How much of a stretch without runs a Huffman code must be estimated to save (after the
/// cost of its tables) for the stretch to be deflated rather than stored.
pub(super) const MIN_SAVING_PERCENT: u64 = 5;

/// Estimated bytes of a dynamic Huffman block's tables and the flush that ends a segment.
pub(super) const TABLE_BYTES: u64 = 80;

/// A chunk may have one deflated segment per this many bytes. Each costs a compressor reset
/// (clearing a 128 KiB hash table) and about ten bytes of framing: a chunk whose short runs
/// recur more often than this (not a tar of files, whose headers take 512 bytes each) is
/// deflated whole with zlib's run-length strategy instead, which is faster and smaller there.
pub(super) const BYTES_PER_SEGMENT: usize = 2048;

/// The largest stored block deflate allows.
const STORED_MAX: usize = 65_535;

/// Deflates `data` at `level`: its compressible segments deflated one by one, the rest
/// stored. The result is raw deflate ending byte-aligned and not final, like a whole-chunk
/// deflate ending in a sync flush. With more segments than [`BYTES_PER_SEGMENT`] allows, the
/// whole chunk takes the run-length strategy; a result larger than storing the chunk is
/// replaced by the stored chunk.
pub(super) fn deflate(data: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let segments = segments(data);
    let deflated = segments
        .iter()
        .filter(|(_, compressible)| *compressible)
        .count();
    if deflated > data.len() / BYTES_PER_SEGMENT {
        return super::deflate(data, level, Strategy::Rle);
    }
    let stored_len = data.len() + data.len().div_ceil(STORED_MAX) * 5;
    let mut out = Vec::with_capacity(stored_len + 64);
    let mut compressor: Option<Deflate> = None;
    for (range, compressible) in segments {
        let bytes = &data[range];
        if compressible {
            let compressor = match &mut compressor {
                Some(c) => {
                    c.reset();
                    c
                }
                None => compressor.insert(super::compressor(level, Strategy::Default)),
            };
            super::deflate_into(compressor, bytes, &mut out)?;
        } else {
            store_into(bytes, &mut out);
        }
    }
    if out.len() > stored_len {
        out.clear();
        store_into(data, &mut out);
    }
    Ok(out)
}

/// The chunk cut into segments, in order, each with whether it is to be deflated. Together
/// they cover `data`; neighbours differ in kind; none is empty.
pub(super) fn segments(data: &[u8]) -> Vec<(std::ops::Range<usize>, bool)> {
    // Runs close to each other, or to an end of the chunk, become one compressible stretch.
    let mut near_runs: Vec<std::ops::Range<usize>> = Vec::new();
    for run in runs(data) {
        match near_runs.last_mut() {
            Some(last) if run.start - last.end < NEAR => last.end = run.end,
            None if run.start < NEAR => near_runs.push(0..run.end),
            _ => near_runs.push(run),
        }
    }
    if let Some(last) = near_runs.last_mut()
        && data.len() - last.end < NEAR
    {
        last.end = data.len();
    }
    // The stretches between them, judged by their bytes.
    let mut segments: Vec<(std::ops::Range<usize>, bool)> = Vec::new();
    let mut push = |range: std::ops::Range<usize>, compressible: bool| {
        if range.is_empty() {
            return;
        }
        match segments.last_mut() {
            Some((last, kind)) if *kind == compressible => last.end = range.end,
            _ => segments.push((range, compressible)),
        }
    };
    let mut at = 0;
    for run in near_runs {
        push(at..run.start, huffman_saves(&data[at..run.start]));
        push(run.clone(), true);
        at = run.end;
    }
    push(at..data.len(), huffman_saves(&data[at..]));
    segments
}

/// The runs in `data`: maximal stretches of one repeated byte that contain an aligned 8-byte
/// word of it (so every run of 15 bytes or more, and shorter ones where they happen to align),
/// in order. Found a word at a time: on bytes without runs this is a fast scan.
fn runs(data: &[u8]) -> Vec<std::ops::Range<usize>> {
    const SPREAD: u64 = 0x0101_0101_0101_0101;
    let mut found: Vec<std::ops::Range<usize>> = Vec::new();
    let mut word = 0;
    while (word + 1) * 8 <= data.len() {
        let start = word * 8;
        let Some(bytes) = data[start..].first_chunk::<8>() else {
            break;
        };
        let value = u64::from_le_bytes(*bytes);
        if value != u64::from(bytes[0]) * SPREAD {
            word += 1;
            continue;
        }
        let byte = bytes[0];
        let floor = found.last().map_or(0, |r| r.end);
        let mut begin = start;
        while begin > floor && data[begin - 1] == byte {
            begin -= 1;
        }
        let mut end = start + 8;
        while end < data.len() && data[end] == byte {
            end += 1;
        }
        found.push(begin..end);
        word = end.div_ceil(8);
    }
    found
}

/// Whether a Huffman code over the byte frequencies of `bytes` would save at least
/// [`MIN_SAVING_PERCENT`] of them after paying for its tables: true of text, false of
/// compressed or random bytes (whose counts are near even).
fn huffman_saves(bytes: &[u8]) -> bool {
    let len = bytes.len() as u64;
    if len <= TABLE_BYTES {
        return false;
    }
    let mut counts = [0u64; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    // Shannon's bound in bits, sum of count * log2(len / count), in 1/65536 bits.
    let log_len = log2_q16(len);
    let bits_q16: u64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| c * (log_len - log2_q16(c)))
        .sum();
    let bytes_estimate = (bits_q16 >> 16) / 8 + TABLE_BYTES;
    bytes_estimate * 100 <= len * (100 - MIN_SAVING_PERCENT)
}

/// log2(x) in 1/65536 units for x >= 1, linear between powers of two (at most 0.09 too low),
/// in integers so that every machine decides the same.
fn log2_q16(x: u64) -> u64 {
    let whole = u64::from(63 - x.leading_zeros());
    let fraction = if whole >= 16 {
        (x >> (whole - 16)) & 0xffff
    } else {
        (x << (16 - whole)) & 0xffff
    };
    (whole << 16) | fraction
}

/// Appends `bytes` as stored blocks (not final): after a byte-aligned end, a block is a zero
/// header byte, its length and the length's complement, then the bytes.
fn store_into(bytes: &[u8], out: &mut Vec<u8>) {
    for block in bytes.chunks(STORED_MAX) {
        let len = block.len() as u16;
        out.push(0);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn inflate(deflated: &[u8]) -> Vec<u8> {
        let mut stream = deflated.to_vec();
        stream.extend_from_slice(&super::super::FINAL_BLOCK);
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(&stream[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// A tar-like stream: for each file a header of text fields in zeros, `body` bytes, and
    /// zero padding to 512.
    fn tar_of(files: usize, mut body: impl FnMut(usize) -> Vec<u8>) -> Vec<u8> {
        let mut tar = Vec::new();
        for i in 0..files {
            let mut header = [0u8; 512];
            let name = format!("data/d{:02}/f{i:03}.bin", i % 50);
            header[..name.len()].copy_from_slice(name.as_bytes());
            header[100..107].copy_from_slice(b"0000644");
            header[124..135].copy_from_slice(format!("{:011o}", 10_000).as_bytes());
            header[257..262].copy_from_slice(b"ustar");
            tar.extend_from_slice(&header);
            let data = body(i);
            let padding = data.len().next_multiple_of(512) - data.len();
            tar.extend_from_slice(&data);
            tar.extend(std::iter::repeat_n(0, padding));
        }
        tar
    }

    #[test]
    fn headers_are_deflated_and_random_bodies_stored() {
        let mut rng = fastrand::Rng::with_seed(3);
        let bodies: Vec<Vec<u8>> = (0..40)
            .map(|_| (0..10_000).map(|_| rng.u8(..)).collect())
            .collect();
        let tar = tar_of(40, |i| bodies[i].clone());
        let cut = segments(&tar);
        // One stored segment per body, the body give or take a byte or two that happen to
        // equal the zeros around it: the header and padding are runs and their neighbours.
        let stored: Vec<std::ops::Range<usize>> = cut
            .iter()
            .filter(|(_, c)| !c)
            .map(|(r, _)| r.clone())
            .collect();
        assert_eq!(stored.len(), 40);
        for (i, segment) in stored.iter().enumerate() {
            let body = i * (512 + 10_240) + 512;
            assert!(segment.start - body < 4, "{segment:?} against {body}");
            assert!(
                body + 10_000 - segment.end < 4,
                "{segment:?} against {body}"
            );
        }
        // Covering, in order, alternating.
        assert_eq!(cut.first().unwrap().0.start, 0);
        assert_eq!(cut.last().unwrap().0.end, tar.len());
        for pair in cut.windows(2) {
            assert_eq!(pair[0].0.end, pair[1].0.start);
            assert_ne!(pair[0].1, pair[1].1);
        }
        let deflated = deflate(&tar, 6).unwrap();
        assert_eq!(inflate(&deflated), tar);
        // As small as deflating the whole at level 6 give or take a percent, and smaller
        // than storing it.
        let whole = super::super::deflate(&tar, 6, Strategy::Default).unwrap();
        assert!(
            deflated.len() * 100 <= whole.len() * 101,
            "{} vs {}",
            deflated.len(),
            whole.len()
        );
        assert!(deflated.len() < tar.len() - 40 * 600);
    }

    #[test]
    fn text_between_compressed_files_is_deflated() {
        let mut rng = fastrand::Rng::with_seed(4);
        let text = |i: usize| -> Vec<u8> {
            (0..300)
                .flat_map(|j| format!("fn item_{i}_{j}() -> u32 {{ {} }}\n", j * 7).into_bytes())
                .collect()
        };
        let tar = tar_of(30, |i| {
            if i % 3 == 0 {
                text(i)
            } else {
                (0..20_000).map(|_| rng.u8(..)).collect()
            }
        });
        let deflated = deflate(&tar, 6).unwrap();
        assert_eq!(inflate(&deflated), tar);
        for (range, compressible) in segments(&tar) {
            if !compressible {
                assert!(
                    !tar[range].windows(8).any(|w| w == b"fn item_"),
                    "text was stored"
                );
            }
        }
        let whole = super::super::deflate(&tar, 6, Strategy::Default).unwrap();
        assert!(
            deflated.len() <= whole.len(),
            "{} vs {}",
            deflated.len(),
            whole.len()
        );
    }

    #[test]
    fn runs_are_found_wherever_they_start_and_bytes_without_them_are_stored() {
        let mut rng = fastrand::Rng::with_seed(5);
        let noise: Vec<u8> = (0..100_000).map(|_| rng.u8(..)).collect();
        assert_eq!(segments(&noise), vec![(0..noise.len(), false)]);
        let deflated = deflate(&noise, 6).unwrap();
        assert_eq!(
            deflated.len(),
            noise.len() + noise.len().div_ceil(STORED_MAX) * 5
        );
        assert_eq!(inflate(&deflated), noise);
        for offset in 0..8 {
            let mut data = noise.clone();
            data[1000 + offset..1000 + offset + 15].fill(b'x');
            let found = runs(&data);
            assert_eq!(
                found,
                vec![1000 + offset..1000 + offset + 15],
                "offset {offset}"
            );
            assert_eq!(inflate(&deflate(&data, 6).unwrap()), data);
        }
        for data in [&[][..], b"a", &[7; 3], &[0; 100_000]] {
            assert_eq!(inflate(&deflate(data, 6).unwrap()), data);
        }
    }

    #[test]
    fn short_runs_recurring_often_take_the_run_length_strategy_and_a_loss_is_stored() {
        let mut rng = fastrand::Rng::with_seed(7);
        // 15 zero bytes after every 135 random ones: a segment per 150 bytes.
        let mut often = Vec::new();
        while often.len() < CHUNK {
            often.extend((0..135).map(|_| rng.u8(..)));
            often.extend_from_slice(&[0; 15]);
        }
        assert!(segments(&often).len() > 2 * often.len() / BYTES_PER_SEGMENT);
        let deflated = deflate(&often, 6).unwrap();
        assert_eq!(
            deflated,
            super::super::deflate(&often, 6, Strategy::Rle).unwrap()
        );
        assert_eq!(inflate(&deflated), often);
        // 8 aligned zero bytes after every 2,040 random ones: as many segments as allowed,
        // each costing more framing than its zeros save, so the chunk is stored.
        let mut sparse = Vec::new();
        while sparse.len() < CHUNK {
            sparse.extend((0..2_040).map(|_| rng.u8(..)));
            sparse.extend_from_slice(&[0; 8]);
        }
        let count = segments(&sparse).iter().filter(|(_, c)| *c).count();
        assert_eq!(count, sparse.len() / BYTES_PER_SEGMENT);
        let deflated = deflate(&sparse, 6).unwrap();
        let mut stored = Vec::new();
        store_into(&sparse, &mut stored);
        assert_eq!(deflated, stored);
        assert_eq!(inflate(&deflated), sparse);
    }

    /// About a chunk's size.
    const CHUNK: usize = 1 << 20;

    #[test]
    fn the_estimate_tells_text_from_noise() {
        let mut rng = fastrand::Rng::with_seed(6);
        let noise: Vec<u8> = (0..4096).map(|_| rng.u8(..)).collect();
        assert!(!huffman_saves(&noise));
        assert!(!huffman_saves(&noise[..200]));
        let text: Vec<u8> = b"the quick brown fox jumps over the lazy dog\n"
            .iter()
            .copied()
            .cycle()
            .take(4096)
            .collect();
        assert!(huffman_saves(&text));
        // Too short to pay for its tables: 120 bytes of text would be coded in about 70,
        // plus 80 for the tables.
        assert!(!huffman_saves(&text[..120]));
        assert!(huffman_saves(&text[..400]));
        for x in [1u64, 2, 3, 1000, 1 << 20, u64::from(u32::MAX)] {
            let exact = (x as f64).log2();
            let approx = log2_q16(x) as f64 / 65536.0;
            assert!((exact - approx) >= 0.0 && exact - approx < 0.09, "{x}");
        }
    }
}
