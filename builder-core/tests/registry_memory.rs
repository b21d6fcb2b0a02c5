//! Memory stays flat whatever the layer size: pushing and pulling a 1 GiB layer through a real
//! registry raises the process's peak resident memory by a bounded amount (about one upload
//! chunk and a few download buffers), not by the layer size. Ignored by default (it writes
//! 3 GiB to disk); run with `cargo test -p builder-core --test registry_memory -- --ignored`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod support;

use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;

use builder_core::oci::{Digest, DigestWriter, Image, ImageError, OciLayout};
use builder_core::registry::{BlockingClient, ClientOptions, PushOptions, Repository};
use support::TestRegistry;

const LAYER: u64 = 1 << 30;

/// Peak resident set size of this process, in bytes (`VmHWM`).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

struct FileImage {
    manifest: Vec<u8>,
    config: Vec<u8>,
    layer: (Digest, PathBuf),
}

impl Image for FileImage {
    fn raw_manifest(&self) -> Result<Vec<u8>, ImageError> {
        Ok(self.manifest.clone())
    }
    fn raw_config(&self) -> Result<Vec<u8>, ImageError> {
        Ok(self.config.clone())
    }
    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ImageError> {
        if *digest == self.layer.0 {
            Ok(Box::new(std::fs::File::open(&self.layer.1).unwrap()))
        } else {
            Ok(Box::new(std::io::Cursor::new(self.config.clone())))
        }
    }
}

#[test]
#[ignore = "writes 3 GiB; run explicitly"]
fn a_1_gib_layer_is_pushed_and_pulled_in_flat_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layer");
    let mut w = DigestWriter::new(BufWriter::new(std::fs::File::create(&path).unwrap()));
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..(LAYER >> 20) {
        for b in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes());
        }
        w.write_all(&block).unwrap();
    }
    let (digest, size, mut inner) = w.finish();
    inner.flush().unwrap();
    drop(inner);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [digest.to_string()]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": Digest::of(&config).to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest.to_string(), "size": size}],
    }))
    .unwrap();
    let image = FileImage {
        manifest,
        config,
        layer: (digest.clone(), path),
    };

    let reg = TestRegistry::plain();
    let cfg = tempfile::tempdir().unwrap();
    let client = BlockingClient::new(ClientOptions {
        docker_config_dir: Some(cfg.path().to_path_buf()),
        podman_auth_files: Some(Vec::new()),
        ..ClientOptions::default()
    })
    .unwrap();
    let before = peak_rss();
    let started = std::time::Instant::now();
    client
        .push(
            &image,
            &[format!("{}/big/layer:1", reg.host).parse().unwrap()],
            &PushOptions::default(),
        )
        .unwrap();
    let pushed = started.elapsed();
    let after_push = peak_rss();

    let store = OciLayout::open_or_create(dir.path().join("store")).unwrap();
    let started = std::time::Instant::now();
    client
        .fetch_blob(
            &Repository {
                registry: reg.host.clone(),
                name: "big/layer".into(),
            },
            &digest,
            &store,
        )
        .unwrap();
    let pulled = started.elapsed();
    let after_pull = peak_rss();
    assert!(store.has_blob(&digest));
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    println!(
        "1 GiB layer: push {:.1}s, pull {:.1}s; peak RSS {:.0} MiB before, {:.0} MiB after push, {:.0} MiB after pull",
        pushed.as_secs_f64(),
        pulled.as_secs_f64(),
        mib(before),
        mib(after_push),
        mib(after_pull)
    );
    assert!(
        after_pull - before < 128 << 20,
        "peak grew by {:.0} MiB",
        mib(after_pull - before)
    );
}
