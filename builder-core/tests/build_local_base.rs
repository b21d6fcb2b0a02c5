//! `FROM <image>` resolved from the local store: the base's layers are reused as they are (same
//! blobs, same digests), its config and history carry over, and `--chown` names resolve against
//! the base's own `/etc/passwd`.

use std::fs;
use std::io::Read;
use std::path::Path;

use builder_core::build::{BuildOptions, BuildReport, build};
use builder_core::oci::{Digest, Image, ImageConfig, LayoutImage, OciLayout};

fn write(dir: &Path, rel: &str, body: &str) {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, body).unwrap();
}

fn build_in(context: &Path, store: &Path, tag: &str) -> BuildReport {
    let mut options = BuildOptions::new(context);
    options.store_dir = store.to_path_buf();
    options.layers_dir = store.with_extension("layers");
    options.cache.dir = Some(store.with_extension("build-cache"));
    options.tags.push(tag.parse().unwrap());
    options.source_date_epoch = Some(1_700_000_000);
    build(&options, &|_| {}).unwrap()
}

fn image(store: &Path, digest: &Digest) -> LayoutImage {
    LayoutImage::new(OciLayout::open(store).unwrap(), digest.clone())
}

/// (path, uid, gid, mode) of every entry of a gzip layer blob.
fn layer_entries(store: &Path, digest: &Digest) -> Vec<(String, u64, u64, u32)> {
    let blob = OciLayout::open(store).unwrap().open_blob(digest).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mode().unwrap(),
            )
        })
        .collect()
}

#[test]
fn from_a_stored_image_reuses_its_layers_config_and_users() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");

    let base = tmp.path().join("base");
    write(
        &base,
        "passwd",
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
    );
    write(&base, "group", "root:x:0:\napp:x:1000:\nstaff:x:50:\n");
    write(
        &base,
        "Dockerfile",
        "FROM scratch\nCOPY passwd group /etc/\nENV LANG=C.UTF-8\nWORKDIR /app\nCMD [\"serve\"]\n",
    );
    let base_report = build_in(&base, &store, "base:1");
    let base_image = image(&store, &base_report.digest);
    let base_layers = base_image.layers().unwrap();
    assert_eq!(base_layers.len(), 2, "COPY and WORKDIR each add a layer");

    let child = tmp.path().join("child");
    write(&child, "app.txt", "hello\n");
    write(
        &child,
        "Dockerfile",
        "FROM base:1\nCOPY --chown=app:staff app.txt ./\nENV MODE=prod\n",
    );
    let child_report = build_in(&child, &store, "child:1");
    let child_image = image(&store, &child_report.digest);
    let layers = child_image.layers().unwrap();
    assert_eq!(layers.len(), 3);
    assert_eq!(
        &layers[..2],
        &base_layers[..],
        "base layers are reused unchanged"
    );

    let config: ImageConfig = child_image.config().unwrap();
    assert_eq!(
        config.config.env.as_deref().unwrap(),
        [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            "LANG=C.UTF-8".to_string(),
            "MODE=prod".to_string()
        ]
    );
    assert_eq!(config.config.working_dir.as_deref(), Some("/app"));
    assert_eq!(config.config.cmd.as_deref().unwrap(), ["serve".to_string()]);
    let base_history = base_image.config().unwrap().history;
    assert_eq!(&config.history[..base_history.len()], &base_history[..]);
    assert_eq!(config.history.len(), base_history.len() + 2, "COPY and ENV");
    assert_eq!(config.rootfs.diff_ids.len(), 3);

    let entries = layer_entries(&store, &layers[2].digest);
    let app = entries
        .iter()
        .find(|e| e.0 == "app/app.txt")
        .expect("app/app.txt in the layer");
    assert_eq!(
        (app.1, app.2),
        (1000, 50),
        "names resolved from the base's passwd and group"
    );
    let dir = entries
        .iter()
        .find(|e| e.0 == "app/")
        .expect("the existing WORKDIR is in the layer");
    assert_eq!(
        (dir.1, dir.2, dir.3),
        (0, 0, 0o755),
        "an existing directory keeps its metadata"
    );
}

#[test]
fn a_base_in_neither_the_store_nor_a_reachable_registry_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "Dockerfile", "FROM 127.0.0.1:1/nothere:1\n");
    let mut options = BuildOptions::new(tmp.path());
    options.store_dir = tmp.path().join("store");
    options.layers_dir = tmp.path().join("layers");
    options.cache.dir = Some(tmp.path().join("build-cache"));
    let err = build(&options, &|_| {}).unwrap_err();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    assert!(
        text.contains("failed to resolve base image `127.0.0.1:1/nothere:1`"),
        "{text}"
    );
    assert!(text.contains("failed to reach `127.0.0.1:1`"), "{text}");
    assert_eq!(err.location().map(|l| l.start_line), Some(1));
    let mut buf = String::new();
    fs::File::open(tmp.path().join("store/index.json"))
        .unwrap()
        .read_to_string(&mut buf)
        .unwrap();
    assert!(
        buf.contains("\"manifests\":[]"),
        "nothing was stored: {buf}"
    );
}
