//! Builds against real registries on loopback: `FROM` a registry image reuses its layers as they
//! are, base layers are downloaded only when something needs their bytes, `push` mounts base
//! blobs from the base's repository on the same registry, and what kiln pushes reads back with
//! skopeo. Registry client details (auth flows, resumable uploads) are tested in
//! `registry_client.rs`.

mod support;

use std::fs;
use std::path::Path;

use builder_core::build::{BuildOptions, build};
use builder_core::export::Output;
use builder_core::oci::{Digest, OciLayout};
use builder_core::registry::{BlobOutcome, ClientOptions};
use support::{TestRegistry, busybox_layout};

fn context(dir: &Path, dockerfile: &str) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    fs::write(dir.join("app.txt"), "hello from kiln\n").unwrap();
}

fn options(dir: &Path, store: &Path) -> BuildOptions {
    let mut o = BuildOptions::new(dir);
    o.store_dir = store.to_path_buf();
    o.layers_dir = store.with_extension("layers");
    o.cache.dir = Some(store.with_extension("build-cache"));
    o.source_date_epoch = Some(1_700_000_000);
    o.registry = ClientOptions {
        docker_config_dir: Some(dir.join("no-docker-config")),
        podman_auth_files: Some(Vec::new()),
        ..ClientOptions::default()
    };
    o
}

/// The layer digests of what `skopeo inspect` printed.
fn layers_of(inspected: &serde_json::Value) -> Vec<&str> {
    inspected["Layers"]
        .as_array()
        .map(|layers| layers.iter().filter_map(|l| l.as_str()).collect())
        .unwrap_or_default()
}

fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

#[test]
fn from_a_registry_image_then_push_mounts_the_base_and_reads_back() {
    let registry = TestRegistry::plain();
    let base_ref = registry.push_image(&busybox_layout(), "library/busybox:latest");
    let base = registry.inspect("library/busybox:latest");
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    context(
        &ctx,
        &format!(
            "FROM {base_ref}\nCOPY --chown=app app.txt /home/app/\nUSER app\nCMD [\"cat\", \"/home/app/app.txt\"]\n"
        ),
    );
    let mut o = options(&ctx, &tmp.path().join("store"));
    o.tags
        .push(registry.reference("team/app:1").parse().unwrap());
    o.push = true;
    let report = build(&o, &|_| {}).unwrap();

    let push = report.push.expect("a push report");
    assert_eq!(push.digest, report.digest);
    assert_eq!(
        push.tags[0].line,
        format!("1: digest: {} size: {}", push.digest, push.size)
    );
    let base_layers: Vec<&str> = base["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    for b in &push.blobs {
        if base_layers.contains(&b.digest.to_string().as_str()) {
            assert!(
                matches!(&b.outcome, BlobOutcome::Mounted { from } if from == "library/busybox"),
                "base layer {} was {:?}, not mounted",
                b.digest,
                b.outcome
            );
        }
    }

    let pushed = registry.inspect("team/app:1");
    let layers = layers_of(&pushed);
    assert_eq!(layers.len(), base_layers.len() + 1);
    assert_eq!(
        &layers[..base_layers.len()],
        &base_layers[..],
        "base blobs reused, never recompressed"
    );
    assert_eq!(pushed["Digest"], report.digest.to_string());

    // The COPY layer owns the file by the base's `app` user (1000:1000 in its /etc/passwd).
    let out = tmp.path().join("pulled");
    registry.pull_image("team/app:1", &out, "app:1");
    let layout = OciLayout::open(&out).unwrap();
    let top: Digest = layers.last().unwrap().parse().unwrap();
    let blob = layout.open_blob(&top).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob));
    let owner = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_string_lossy() == "home/app/app.txt")
        .map(|e| (e.header().uid().unwrap(), e.header().gid().unwrap()))
        .expect("home/app/app.txt in the top layer");
    assert_eq!(owner, (1000, 1000));
}

#[test]
fn metadata_only_builds_download_no_base_layers_until_an_output_needs_them() {
    let registry = TestRegistry::plain();
    let base_ref = registry.push_image(&busybox_layout(), "library/busybox:latest");
    let base = registry.inspect("library/busybox:latest");
    let base_layer: Digest = base["Layers"][0].as_str().unwrap().parse().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    context(
        &ctx,
        &format!("FROM {base_ref}\nLABEL stage=meta\nENV MODE=prod\n"),
    );
    let store = tmp.path().join("store");
    let mut o = options(&ctx, &store);
    o.outputs.push(Output::OciDir(tmp.path().join("out")));
    let before_export = {
        let mut o = o.clone();
        o.outputs.clear();
        o.push = true;
        o.tags
            .push(registry.reference("team/meta:1").parse().unwrap());
        build(&o, &|_| {}).unwrap();
        OciLayout::open(&store).unwrap().has_blob(&base_layer)
    };
    assert!(
        !before_export,
        "a metadata-only build pushed to the base's registry downloads no layer"
    );

    build(&o, &|_| {}).unwrap();
    assert!(
        OciLayout::open(tmp.path().join("out"))
            .unwrap()
            .has_blob(&base_layer),
        "an OCI layout output is complete, so the base layer was fetched for it"
    );
}

#[test]
fn a_missing_image_names_the_image_and_registry_and_stores_nothing() {
    let registry = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    let missing = registry.reference("library/python:3.12-slm");
    context(&ctx, &format!("FROM {missing}\nCOPY app.txt /\n"));
    let store = tmp.path().join("store");
    let err = build(&options(&ctx, &store), &|_| {}).unwrap_err();
    let text = error_text(&err);
    assert!(text.contains("manifest unknown"), "{text}");
    assert!(text.contains("python:3.12-slm"), "{text}");
    assert!(text.contains(&registry.host), "{text}");
    assert_eq!(err.location().map(|l| l.start_line), Some(1));
    let index = fs::read_to_string(store.join("index.json")).unwrap();
    assert!(index.contains("\"manifests\":[]"), "{index}");
}

#[test]
fn wrong_credentials_name_the_registry_and_never_the_secret() {
    let registry = TestRegistry::tls_basic("ci", "right-password");
    registry.push_image(&busybox_layout(), "library/busybox:latest");
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    context(
        &ctx,
        &format!("FROM {}\n", registry.reference("library/busybox:latest")),
    );
    let config_dir = tmp.path().join("docker");
    fs::create_dir_all(&config_dir).unwrap();
    let wrong = registry.docker_config_json().replace(
        &base64(b"ci:right-password"),
        &base64(b"ci:wrong-secret-123"),
    );
    fs::write(config_dir.join("config.json"), wrong).unwrap();
    let certs = tmp.path().join("certs.d");
    registry.write_certs_d(&certs);
    let mut o = options(&ctx, &tmp.path().join("store"));
    o.registry.docker_config_dir = Some(config_dir.clone());
    o.registry.certs_dirs = vec![certs];
    let err = build(&o, &|_| {}).unwrap_err();
    let text = error_text(&err);
    assert!(text.contains(&registry.host), "{text}");
    assert!(
        text.contains("config.json"),
        "names the credential source: {text}"
    );
    assert!(!text.contains("wrong-secret-123"), "{text}");
    assert!(!text.contains(&base64(b"ci:wrong-secret-123")), "{text}");

    // With the right credentials the same build works.
    fs::write(
        config_dir.join("config.json"),
        registry.docker_config_json(),
    )
    .unwrap();
    build(&o, &|_| {}).unwrap();
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What a build reported of each blob it pushed, by digest.
fn blob_outcomes(o: &BuildOptions) -> (builder_core::build::BuildReport, Vec<(Digest, String)>) {
    let outcomes = std::cell::RefCell::new(Vec::new());
    let report = build(o, &|e| {
        if let builder_core::build::BuildEvent::BlobPushed { digest, outcome } = e {
            outcomes.borrow_mut().push((digest, outcome));
        }
    })
    .unwrap();
    (report, outcomes.into_inner())
}

#[test]
fn the_image_layers_go_up_while_the_build_runs_and_other_stages_stay_home() {
    let registry = TestRegistry::plain();
    let base_ref = registry.push_image(&busybox_layout(), "library/busybox:latest");
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    context(
        &ctx,
        &format!(
            "FROM {base_ref} AS tools\nCOPY app.txt /tools/app.txt\n\
             FROM {base_ref}\nCOPY --from=tools /tools/app.txt /srv/app.txt\nCOPY big.bin /srv/\n"
        ),
    );
    let mut rng = fastrand::Rng::with_seed(3);
    let big: Vec<u8> = (0..3 << 20).map(|_| rng.u8(..)).collect();
    fs::write(ctx.join("big.bin"), &big).unwrap();
    let mut o = options(&ctx, &tmp.path().join("store"));
    o.tags
        .push(registry.reference("team/app:1").parse().unwrap());
    o.push = true;
    let (report, outcomes) = blob_outcomes(&o);

    let layer_of = |stage: &str| -> Vec<Digest> {
        report
            .steps
            .iter()
            .filter(|s| s.stage == stage)
            .filter_map(|s| s.layer.as_ref().map(|l| l.digest.clone()))
            .collect()
    };
    let image_layers = layer_of("stage-1");
    assert_eq!(image_layers.len(), 2, "{:?}", report.steps);
    for layer in &image_layers {
        let outcome = outcomes.iter().find(|(d, _)| d == layer).map(|(_, o)| o);
        assert_eq!(
            outcome.map(String::as_str),
            Some("pushed while it was built"),
            "{outcomes:?}"
        );
    }
    let tools = layer_of("tools");
    assert_eq!(tools.len(), 1);
    let head = support::http::request(
        registry.addr,
        "HEAD",
        &format!("/v2/team/app/blobs/{}", tools[0]),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(head.status, 404, "a layer of another stage was uploaded");

    // skopeo reads the image back, and its top layer holds big.bin byte for byte.
    assert_eq!(
        registry.inspect("team/app:1")["Digest"],
        report.digest.to_string()
    );
    let out = tmp.path().join("pulled");
    registry.pull_image("team/app:1", &out, "app:1");
    let layout = OciLayout::open(&out).unwrap();
    let blob = layout.open_blob(&image_layers[1]).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob));
    let mut entry = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_string_lossy() == "srv/big.bin")
        .expect("srv/big.bin in the top layer");
    let mut content = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
    assert!(content == big, "srv/big.bin differs from the context's");

    // Turned off, the push after the build sends them, to a repository that lacks them.
    let mut off = o.clone();
    off.tags = vec![registry.reference("team/other:1").parse().unwrap()];
    off.upload_while_building = false;
    off.cache.no_cache = true;
    let (_, outcomes) = blob_outcomes(&off);
    for layer in &image_layers {
        let outcome = outcomes.iter().find(|(d, _)| d == layer).map(|(_, o)| o);
        assert_eq!(outcome.map(String::as_str), Some("pushed"), "{outcomes:?}");
    }
}

#[test]
fn a_cached_rebuild_is_the_same_image_and_pushes_without_asking_about_its_blobs() {
    let registry = TestRegistry::plain();
    let base_ref = registry.push_image(&busybox_layout(), "library/busybox:latest");
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    context(&ctx, &format!("FROM {base_ref}\nCOPY app.txt /srv/\n"));
    let mut o = options(&ctx, &tmp.path().join("store"));
    o.tags
        .push(registry.reference("team/known:1").parse().unwrap());
    o.push = true;
    let first = build(&o, &|_| {}).unwrap().push.unwrap();
    assert!(
        first.blobs.iter().all(|b| b.outcome != BlobOutcome::Known),
        "{:?}",
        first.blobs
    );

    // A second later, the cached rebuild is the same image: its config is remembered too.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let again = build(&o, &|_| {}).unwrap();
    assert_eq!(again.digest, first.digest);
    let push = again.push.unwrap();
    let pushed = registry.inspect("team/known:1");
    let layers = layers_of(&pushed);
    assert_eq!(layers.len(), 2);
    let config = again.config_digest.to_string();
    for blob in layers.iter().copied().chain([config.as_str()]) {
        let pushed_blob = push.blobs.iter().find(|b| b.digest.to_string() == blob);
        assert_eq!(
            pushed_blob.map(|b| &b.outcome),
            Some(&BlobOutcome::Known),
            "{:?}",
            push.blobs
        );
    }
    assert_eq!(push.blobs.len(), 3);
    assert_eq!(pushed["Digest"], again.digest.to_string());

    // Without a cache directory there is nothing remembered: every blob is asked about.
    let mut no_cache = o.clone();
    no_cache.cache.dir = None;
    let push = build(&no_cache, &|_| {}).unwrap().push.unwrap();
    assert!(
        push.blobs.iter().all(|b| b.outcome == BlobOutcome::Exists),
        "{:?}",
        push.blobs
    );
}
