//! A 64 MiB file goes through `write_layer` without being held in memory.
//!
//! This is its own test binary so that the process's peak resident set (`VmHWM`) reflects
//! this test alone.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;

use builder_core::layer::{Compression, Content, Entry, EntryKind, LayerOptions, write_layer};
use builder_core::oci::Digest;

/// Peak resident set size of this process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Resets the peak so the measurement covers only what follows (Linux ≥ 4.0).
fn reset_peak_rss() {
    fs::write("/proc/self/clear_refs", "5").unwrap();
}

fn make_file(path: &Path, size: usize) {
    let mut out = BufWriter::new(File::create(path).unwrap());
    let mut chunk: Vec<u8> = (0..1usize << 20).map(|j| (j * 7 % 253) as u8).collect();
    for i in 0..size / chunk.len() {
        chunk[..8].copy_from_slice(&(i as u64).to_le_bytes());
        out.write_all(&chunk).unwrap();
    }
    out.flush().unwrap();
}

/// Writes `file` as a one-entry layer and checks peak memory and the bytes read back by the
/// system's gzip, tar and sha256sum.
fn write_and_check(file: &Path, compression: Compression, dir: &Path) {
    let expected_size = fs::metadata(file).unwrap().len();
    let expected_digest = sha256sum(&format!("'{}'", file.display()));
    let layer = dir.join("layer");
    let entries = vec![Entry {
        path: "big.bin".into(),
        kind: EntryKind::File(Content::Path(file.to_path_buf())),
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
        xattrs: Default::default(),
    }];
    reset_peak_rss();
    let before = peak_rss_kib();
    let opts = LayerOptions {
        compression,
        source_date_epoch: None,
    };
    let (info, _) = write_layer(entries, File::create(&layer).unwrap(), &opts).unwrap();
    let grown_kib = peak_rss_kib().saturating_sub(before);
    eprintln!(
        "{compression:?}: {expected_size} byte file, {} bytes written, peak RSS grew by {grown_kib} KiB",
        info.size
    );
    assert!(
        grown_kib < 16 * 1024,
        "peak RSS grew by {grown_kib} KiB while writing a {expected_size} byte file"
    );
    assert_eq!(info.uncompressed_size, expected_size + 512 + 1024);

    let layer_arg = format!("'{}'", layer.display());
    let tar_stream = match compression {
        Compression::None => format!("cat {layer_arg}"),
        Compression::Gzip { .. } => format!("gzip -dc {layer_arg}"),
    };
    assert_eq!(
        sha256sum(&format!("<({tar_stream} | tar -xOf - big.bin)")),
        expected_digest
    );
    assert_eq!(sha256sum(&format!("<({tar_stream})")), info.diff_id);
    assert_eq!(sha256sum(&layer_arg), info.digest);
}

/// One test, run in sequence, so the peak RSS of each write is measured alone.
#[test]
fn large_files_stream_with_flat_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("big.bin");
    make_file(&big, 64 << 20);
    write_and_check(&big, Compression::None, tmp.path());
    // Gzip is slow in unoptimised test builds; a smaller file still exercises the pipeline.
    make_file(&big, 8 << 20);
    write_and_check(&big, Compression::Gzip { level: 1 }, tmp.path());
}

/// sha256 of what a bash word expands to (a quoted path or a process substitution).
fn sha256sum(word: &str) -> Digest {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -o pipefail; sha256sum {word}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    format!("sha256:{}", text.split_whitespace().next().unwrap())
        .parse()
        .unwrap()
}
