//! The registry client under failure: a fault proxy drops an upload mid-way and answers 503 and
//! 429, and the push still leaves a valid image (read back by skopeo) having resumed rather than
//! restarted; a tampered blob is refused with nothing stored; an unresponsive registry times out
//! with its address in the error.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod support;

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use builder_core::oci::{Digest, Image, ImageError, OciLayout, Platform, Reference};
use builder_core::registry::{
    BlobOutcome, BlockingClient, ClientOptions, Error, PushOptions, PushProgress, Repository,
};
use support::{FaultProxy, Faults, TestRegistry, busybox_layout};

const CHUNK: u64 = 256 << 10;

fn options(docker_config: &Path) -> ClientOptions {
    ClientOptions {
        docker_config_dir: Some(docker_config.to_path_buf()),
        podman_auth_files: Some(Vec::new()),
        certs_dirs: Vec::new(),
        retry_base_delay: Duration::from_millis(50),
        monolithic_threshold: CHUNK,
        chunk_size: CHUNK,
        // One blob at a time, config first, so the proxy's "n-th upload" is predictable.
        concurrency: 1,
        ..ClientOptions::default()
    }
}

fn reference(host: &str, repo_tag: &str) -> Reference {
    format!("{host}/{repo_tag}").parse().unwrap()
}

/// An image held in memory with one layer of `layer_len` pseudo-random bytes.
struct MemImage {
    manifest: Vec<u8>,
    config: Vec<u8>,
    blobs: HashMap<Digest, Vec<u8>>,
    layer: Digest,
}

impl MemImage {
    fn new(layer_len: usize, seed: u64) -> MemImage {
        let mut x = seed | 1;
        let layer: Vec<u8> = (0..layer_len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let layer_digest = Digest::of(&layer);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer_digest.to_string()]},
        }))
        .unwrap();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": Digest::of(&config).to_string(), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer_digest.to_string(), "size": layer.len()}],
        }))
        .unwrap();
        let blobs = HashMap::from([
            (Digest::of(&config), config.clone()),
            (layer_digest.clone(), layer),
        ]);
        MemImage {
            manifest,
            config,
            blobs,
            layer: layer_digest,
        }
    }
}

impl Image for MemImage {
    fn raw_manifest(&self) -> Result<Vec<u8>, ImageError> {
        Ok(self.manifest.clone())
    }
    fn raw_config(&self) -> Result<Vec<u8>, ImageError> {
        Ok(self.config.clone())
    }
    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ImageError> {
        Ok(Box::new(Cursor::new(self.blobs[digest].clone())))
    }
}

/// `(start, end)` of each `PATCH` the proxy saw, with whether a fault hit it.
fn patches(proxy: &FaultProxy) -> Vec<(u64, u64, bool)> {
    proxy
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| {
            let range = r.content_range.clone().unwrap();
            let (a, b) = range.split_once('-').unwrap();
            (a.parse().unwrap(), b.parse().unwrap(), r.fault.is_some())
        })
        .collect()
}

#[derive(Default)]
struct Progress(std::sync::Mutex<Vec<(Digest, u64, u64)>>);

impl PushProgress for Progress {
    fn blob_progress(&self, digest: &Digest, sent: u64, size: u64) {
        self.0.lock().unwrap().push((digest.clone(), sent, size));
    }
}

#[test]
fn a_dropped_chunk_and_a_503_resume_the_upload_from_the_registry_offset() {
    let reg = TestRegistry::plain();
    // The config's upload and the layer's first chunk go through, the second chunk is cut
    // before its body, and the first PUT of a manifest gets a 503.
    let proxy = FaultProxy::start(
        reg.addr,
        Faults::none()
            .drop_upload_after(0)
            .skip_uploads(2)
            .unavailable_once("PUT", "/manifests/"),
    );
    let cfg = tempfile::tempdir().unwrap();
    let client = BlockingClient::new(options(cfg.path())).unwrap();
    let image = MemImage::new(4 * CHUNK as usize + 1234, 7);
    let progress = std::sync::Arc::new(Progress::default());
    let report = client
        .push(
            &image,
            &[reference(&proxy.host, "faulty/app:1")],
            &PushOptions {
                progress: Some(progress.clone()),
                ..PushOptions::default()
            },
        )
        .unwrap();

    let counts = proxy.counts();
    assert_eq!(counts.dropped_uploads, 1);
    assert_eq!(counts.unavailable, 1);
    let layer = report
        .blobs
        .iter()
        .find(|b| b.digest == image.layer)
        .unwrap();
    assert_eq!(
        layer.outcome,
        BlobOutcome::Uploaded {
            requests: 7,
            resumed: 1,
            restarted: 0
        },
        "{:?}",
        patches(&proxy)
    );
    // Byte counts from the proxy: every byte of the layer went through exactly once, and the
    // chunk after the drop started where the registry said, not at 0.
    let seen = patches(&proxy);
    println!("PATCH ranges: {seen:?}");
    let delivered: u64 = seen.iter().filter(|p| !p.2).map(|p| p.1 - p.0 + 1).sum();
    assert_eq!(delivered, 4 * CHUNK + 1234);
    assert_eq!(seen[1], (CHUNK, 2 * CHUNK - 1, true));
    assert_eq!(seen[2], (CHUNK, 2 * CHUNK - 1, false));
    assert_eq!(seen.iter().filter(|p| p.0 == 0).count(), 1);

    // The registry holds a valid image, as skopeo sees it.
    let inspected = reg.inspect("faulty/app:1");
    assert_eq!(inspected["Digest"], report.digest.to_string());
    let out = tempfile::tempdir().unwrap();
    reg.pull_image("faulty/app:1", &out.path().join("oci"), "x:1");
    let served = support::http::request(
        reg.addr,
        "GET",
        &format!("/v2/faulty/app/blobs/{}", image.layer),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(served.status, 200);
    assert_eq!(served.body, image.blobs[&image.layer]);

    // Progress reached the full size of the layer.
    let events = progress.0.lock().unwrap();
    let last = events.iter().rev().find(|e| e.0 == image.layer).unwrap();
    assert_eq!((last.1, last.2), (4 * CHUNK + 1234, 4 * CHUNK + 1234));
}

#[test]
fn a_chunk_dropped_after_bytes_were_written_restarts_the_upload() {
    let reg = TestRegistry::plain();
    let proxy = FaultProxy::start(
        reg.addr,
        Faults::none().drop_upload_after(100_000).skip_uploads(2),
    );
    let cfg = tempfile::tempdir().unwrap();
    let client = BlockingClient::new(options(cfg.path())).unwrap();
    let image = MemImage::new(3 * CHUNK as usize, 11);
    let report = client
        .push(
            &image,
            &[reference(&proxy.host, "restart/app:1")],
            &PushOptions::default(),
        )
        .unwrap();
    let layer = report
        .blobs
        .iter()
        .find(|b| b.digest == image.layer)
        .unwrap();
    // distribution invalidates a session that received part of a chunk: the client notices
    // (BLOB_UPLOAD_INVALID on the status request) and starts a new upload.
    assert!(
        matches!(layer.outcome, BlobOutcome::Uploaded { restarted: 1, .. }),
        "{:?}",
        layer.outcome
    );
    assert_eq!(
        reg.inspect("restart/app:1")["Digest"],
        report.digest.to_string()
    );
}

#[test]
fn a_429_on_a_blob_head_and_a_503_on_a_monolithic_upload_are_retried() {
    let reg = TestRegistry::plain();
    let proxy = FaultProxy::start(
        reg.addr,
        Faults::none()
            .too_many_requests_once("HEAD", "/blobs/")
            .unavailable_once("PUT", "/blobs/uploads/"),
    );
    let cfg = tempfile::tempdir().unwrap();
    let client = BlockingClient::new(options(cfg.path())).unwrap();
    let image = MemImage::new(1000, 3);
    let report = client
        .push(
            &image,
            &[reference(&proxy.host, "retry/app:1")],
            &PushOptions::default(),
        )
        .unwrap();
    let counts = proxy.counts();
    assert_eq!((counts.too_many_requests, counts.unavailable), (1, 1));
    assert_eq!(
        reg.inspect("retry/app:1")["Digest"],
        report.digest.to_string()
    );
}

#[test]
fn a_tampered_blob_is_refused_and_nothing_is_stored() {
    let reg = TestRegistry::plain();
    reg.push_image(&busybox_layout(), "tamper/busybox:1");
    let cfg = tempfile::tempdir().unwrap();
    let client = BlockingClient::new(options(cfg.path())).unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let store = OciLayout::open_or_create(store_dir.path().join("s")).unwrap();
    let image = client
        .pull(
            &reference(&reg.host, "tamper/busybox:1"),
            &Platform::host(),
            &store,
        )
        .unwrap();
    let layer = image.layers().unwrap().remove(0);

    // Change the layer's bytes in the registry's own storage.
    let data = reg
        .storage
        .path()
        .join("docker/registry/v2/blobs/sha256")
        .join(&layer.digest.hex()[..2])
        .join(layer.digest.hex())
        .join("data");
    let mut bytes = std::fs::read(&data).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();

    let err = client
        .fetch_blob(
            &Repository {
                registry: reg.host.clone(),
                name: "tamper/busybox".into(),
            },
            &layer.digest,
            &store,
        )
        .unwrap_err();
    match &err {
        Error::DigestMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, &layer.digest);
            assert_eq!(actual, &Digest::of(&bytes));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .contains(&format!("expected `{}`", layer.digest)),
        "{err}"
    );
    assert!(!store.has_blob(&layer.digest));
    // No temporary leftovers either: only the manifest and config the pull stored.
    let files: Vec<_> = std::fs::read_dir(store_dir.path().join("s/blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    // Through the Image trait the same failure surfaces from open_blob.
    assert!(image.open_blob(&layer.digest).is_err());
    assert!(!store.has_blob(&layer.digest));
}

#[test]
fn an_unresponsive_registry_times_out_naming_its_address() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().take(4) {
            held.push(conn);
        }
        std::thread::sleep(Duration::from_secs(5));
    });
    let cfg = tempfile::tempdir().unwrap();
    let mut opts = options(cfg.path());
    opts.read_timeout = Duration::from_millis(300);
    opts.retries = 0;
    let client = BlockingClient::new(opts).unwrap();
    let err = client
        .resolve(&reference(&addr.to_string(), "app:1"), &Platform::host())
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("timed out talking to `{addr}`")),
        "{err}"
    );
    drop(holder);
}

#[test]
fn a_refused_connection_names_the_address() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = tempfile::tempdir().unwrap();
    let mut opts = options(cfg.path());
    opts.retries = 1;
    let client = BlockingClient::new(opts).unwrap();
    let err = client
        .resolve(
            &reference(&format!("127.0.0.1:{port}"), "app:1"),
            &Platform::host(),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("failed to reach `127.0.0.1:{port}`")),
        "{err}"
    );
}

#[test]
fn a_503_on_a_chunk_asks_the_registry_and_continues() {
    let reg = TestRegistry::plain();
    let proxy = FaultProxy::start(
        reg.addr,
        Faults::none().unavailable_once("PATCH", "/blobs/uploads/"),
    );
    let cfg = tempfile::tempdir().unwrap();
    let client = BlockingClient::new(options(cfg.path())).unwrap();
    let image = MemImage::new(2 * CHUNK as usize + 10, 5);
    let report = client
        .push(
            &image,
            &[reference(&proxy.host, "busy/app:1")],
            &PushOptions::default(),
        )
        .unwrap();
    assert_eq!(proxy.counts().unavailable, 1);
    let layer = report
        .blobs
        .iter()
        .find(|b| b.digest == image.layer)
        .unwrap();
    assert!(
        matches!(
            layer.outcome,
            BlobOutcome::Uploaded {
                resumed: 1,
                restarted: 0,
                ..
            }
        ),
        "{:?}",
        layer.outcome
    );
    let seen = patches(&proxy);
    assert_eq!(seen[0], (0, CHUNK - 1, true));
    assert_eq!(seen[1], (0, CHUNK - 1, false));
    assert_eq!(
        reg.inspect("busy/app:1")["Digest"],
        report.digest.to_string()
    );
}
