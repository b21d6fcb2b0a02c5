//! `write_layer` against `tar -c DIR | gzip -6 > FILE` on the same tree, for two trees made
//! once each:
//!
//! - **mixed**: 2,000 files in 50 directories, about 64 MiB, sizes skewed like a real image
//!   (mostly small files, a few large ones), content part text-like and part random so it
//!   compresses roughly as binaries and libraries do;
//! - **incompressible**: 2,000 files of 10,000 random bytes in 50 directories (20 MB), as a
//!   layer of archives, wheels or media is: what compresses is the tar headers and padding.
//!
//! Both sides read the tree from disk and write a file; throughput is reported per byte of file
//! content.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use builder_core::layer::{Content, Entry, EntryKind, LayerOptions, write_layer};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const FILES: usize = 2_000;
const DIRS: usize = 50;
const TARGET_BYTES: u64 = 64 << 20;

/// A small deterministic generator, so every run benchmarks the same tree.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// File sizes: 85% 0.5–16 KiB, 13% 64–512 KiB, 2% 1–4 MiB, scaled to about `TARGET_BYTES`.
fn file_sizes(rng: &mut XorShift) -> Vec<u64> {
    let raw: Vec<u64> = (0..FILES)
        .map(|_| {
            let pick = rng.next() % 100;
            let (lo, hi) = match pick {
                0..85 => (512, 16 << 10),
                85..98 => (64 << 10, 512 << 10),
                _ => (1 << 20, 4 << 20),
            };
            lo + rng.next() % (hi - lo)
        })
        .collect();
    let total: u64 = raw.iter().sum();
    raw.iter().map(|s| s * TARGET_BYTES / total).collect()
}

/// Text-like runs of words from a small vocabulary, with one block in four of random bytes.
fn fill(rng: &mut XorShift, out: &mut impl Write, mut size: u64, words: &[Vec<u8>]) {
    let mut block = Vec::with_capacity(4096);
    while size > 0 {
        block.clear();
        if rng.next().is_multiple_of(4) {
            while block.len() < 4096 {
                block.extend_from_slice(&rng.next().to_le_bytes());
            }
        } else {
            while block.len() < 4096 {
                let word = &words[(rng.next() % words.len() as u64) as usize];
                block.extend_from_slice(word);
                block.push(if rng.next().is_multiple_of(12) {
                    b'\n'
                } else {
                    b' '
                });
            }
        }
        let n = block.len().min(usize::try_from(size).unwrap_or(usize::MAX));
        out.write_all(&block[..n]).unwrap();
        size -= n as u64;
    }
}

/// What the files of a tree hold.
#[derive(Clone, Copy)]
enum Tree {
    Mixed,
    Incompressible,
}

/// Writes the tree under `root` and returns its layer entries and total file bytes.
fn make_tree(root: &Path, kind: Tree) -> (Vec<Entry>, u64) {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let words: Vec<Vec<u8>> = (0..256)
        .map(|_| {
            let len = 2 + rng.next() % 9;
            (0..len).map(|_| b'a' + (rng.next() % 26) as u8).collect()
        })
        .collect();
    let mut entries = Vec::new();
    let mut total = 0;
    for d in 0..DIRS {
        let dir = format!("dir{d:02}");
        fs::create_dir_all(root.join(&dir)).unwrap();
        entries.push(Entry::dir(dir, 0o755, 0, 0, 1_700_000_000));
    }
    let sizes = match kind {
        Tree::Mixed => file_sizes(&mut rng),
        Tree::Incompressible => vec![10_000; FILES],
    };
    for (i, size) in sizes.into_iter().enumerate() {
        let rel = format!("dir{:02}/file{i:04}.bin", i % DIRS);
        let path: PathBuf = root.join(&rel);
        let mut out = BufWriter::new(File::create(&path).unwrap());
        match kind {
            Tree::Mixed => fill(&mut rng, &mut out, size, &words),
            Tree::Incompressible => {
                let bytes: Vec<u8> = (0..size.div_ceil(8))
                    .flat_map(|_| rng.next().to_le_bytes())
                    .collect();
                out.write_all(&bytes[..size as usize]).unwrap();
            }
        }
        out.flush().unwrap();
        total += size;
        entries.push(Entry {
            path: rel,
            kind: EntryKind::File(Content::Path(path)),
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            xattrs: Default::default(),
        });
    }
    (entries, total)
}

fn layer_write(c: &mut Criterion) {
    compare(c, "layer_write", Tree::Mixed);
    compare(c, "layer_write_incompressible", Tree::Incompressible);
}

/// Benchmarks both sides on a tree of `kind` as group `name`.
fn compare(c: &mut Criterion, name: &str, kind: Tree) {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    let (entries, total) = make_tree(&tree, kind);
    let out = tmp.path().join("layer.tar.gz");

    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(total));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.warm_up_time(Duration::from_secs(2));

    group.bench_function("kiln_write_layer_gzip6", |b| {
        b.iter(|| {
            let file = File::create(&out).unwrap();
            let (info, file) =
                write_layer(entries.clone(), file, &LayerOptions::default()).unwrap();
            file.sync_data().unwrap();
            info
        });
    });
    group.bench_function("tar_pipe_gzip6", |b| {
        b.iter(|| {
            let status = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "tar -C '{}' -cf - . | gzip -6 > '{}' && sync '{}'",
                    tree.display(),
                    out.display(),
                    out.display()
                ))
                .status()
                .unwrap();
            assert!(status.success());
        });
    });
    group.finish();
}

criterion_group!(benches, layer_write);
criterion_main!(benches);
