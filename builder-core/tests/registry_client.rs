//! The registry client against real registries on loopback (distribution 2.8), with skopeo as
//! the independent peer: kiln pushes and skopeo reads, skopeo pushes and kiln pulls; index
//! platform selection; TLS with a per-registry CA and Basic auth; token auth with a
//! cross-repository mount; credentials errors; login and logout.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod support;

use std::collections::HashMap;
use std::io::{Cursor, Read, Write};
use std::path::Path;
use std::sync::Arc;

use builder_core::oci::{Digest, Image, ImageError, LayoutImage, OciLayout, Platform, Reference};
use builder_core::registry::{
    BlobOutcome, BlockingClient, ClientOptions, Error, PushOptions, Repository,
};
use support::{FaultProxy, Faults, TestRegistry, TokenOptions, busybox_layout};

/// Options for a test client: credentials only from `docker_config`, no podman files, no
/// system certs.d.
fn options(docker_config: &Path) -> ClientOptions {
    ClientOptions {
        docker_config_dir: Some(docker_config.to_path_buf()),
        podman_auth_files: Some(Vec::new()),
        certs_dirs: Vec::new(),
        retry_base_delay: std::time::Duration::from_millis(50),
        ..ClientOptions::default()
    }
}

fn busybox_image() -> LayoutImage {
    let layout = OciLayout::open(busybox_layout()).unwrap();
    let (_, desc) = layout.named_manifests().unwrap().remove(0);
    LayoutImage::new(layout, desc.digest().to_string().parse().unwrap())
}

fn reference(reg_host: &str, repo_tag: &str) -> Reference {
    format!("{reg_host}/{repo_tag}").parse().unwrap()
}

/// An image held in memory: an OCI manifest over one layer of arbitrary bytes.
struct MemImage {
    manifest: Vec<u8>,
    config: Vec<u8>,
    blobs: HashMap<Digest, Vec<u8>>,
}

impl MemImage {
    fn new(architecture: &str, layer: Vec<u8>) -> MemImage {
        let layer_digest = Digest::of(&layer);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": architecture,
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest.to_string()]},
        }))
        .unwrap();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": Digest::of(&config).to_string(),
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest.to_string(),
                "size": layer.len(),
            }],
        }))
        .unwrap();
        let blobs = HashMap::from([(Digest::of(&config), config.clone()), (layer_digest, layer)]);
        MemImage {
            manifest,
            config,
            blobs,
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

#[test]
fn kiln_pushes_a_layout_image_and_skopeo_reads_it() {
    let reg = TestRegistry::plain();
    let proxy = FaultProxy::start(reg.addr, Faults::none());
    let cfg = tempfile::tempdir().unwrap();
    let client = BlockingClient::new(options(cfg.path())).unwrap();
    let image = busybox_image();
    let dests = [
        reference(&proxy.host, "kiln/busybox:1.0"),
        reference(&proxy.host, "kiln/busybox:latest"),
    ];
    let report = client
        .push(&image, &dests, &PushOptions::default())
        .unwrap();
    let manifest = image.raw_manifest().unwrap();
    assert_eq!(report.digest, Digest::of(&manifest));
    assert_eq!(
        report
            .tags
            .iter()
            .map(|t| t.line.clone())
            .collect::<Vec<_>>(),
        [
            format!("1.0: digest: {} size: {}", report.digest, manifest.len()),
            format!("latest: digest: {} size: {}", report.digest, manifest.len()),
        ]
    );
    // One repository: each blob (config + 1 layer) sent once.
    assert_eq!(report.blobs.len(), 2);
    assert!(
        report
            .blobs
            .iter()
            .all(|b| matches!(b.outcome, BlobOutcome::Uploaded { .. }))
    );

    // skopeo sees exactly our manifest bytes, and can copy the image out.
    assert_eq!(reg.raw_manifest("kiln/busybox:1.0"), manifest);
    let inspected = reg.inspect("kiln/busybox:latest");
    assert_eq!(inspected["Digest"], report.digest.to_string());
    let out = tempfile::tempdir().unwrap();
    reg.pull_image("kiln/busybox:1.0", &out.path().join("oci"), "copy:1");

    // Pushing again costs one HEAD per blob and one for the tag, which names the manifest
    // already: nothing is put.
    let before = proxy.requests().len();
    let again = client
        .push(&image, &dests[..1], &PushOptions::default())
        .unwrap();
    assert!(again.blobs.iter().all(|b| b.outcome == BlobOutcome::Exists));
    let seen: Vec<(String, String)> = proxy.requests()[before..]
        .iter()
        .map(|r| (r.method.clone(), r.target.clone()))
        .collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.iter().all(|(m, _)| m == "HEAD"), "{seen:?}");
    assert_eq!(
        seen.iter()
            .filter(|(_, t)| t == "/v2/kiln/busybox/manifests/1.0")
            .count(),
        1,
        "{seen:?}"
    );
}

#[test]
fn kiln_pulls_what_skopeo_pushed_and_verifies_layers() {
    let reg = TestRegistry::plain();
    reg.push_image(&busybox_layout(), "skopeo/busybox:1");
    let cfg = tempfile::tempdir().unwrap();
    let client = BlockingClient::new(options(cfg.path())).unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let store = OciLayout::open_or_create(store_dir.path().join("store")).unwrap();
    let source = busybox_image();

    let image = client
        .pull(
            &reference(&reg.host, "skopeo/busybox:1"),
            &"linux/amd64".parse().unwrap(),
            &store,
        )
        .unwrap();
    assert_eq!(
        image.raw_manifest().unwrap(),
        reg.raw_manifest("skopeo/busybox:1")
    );
    assert_eq!(image.raw_config().unwrap(), source.raw_config().unwrap());
    let layers = image.layers().unwrap();
    assert_eq!(layers, source.layers().unwrap());
    // Lazy: no layer is stored until one is opened.
    assert!(!store.has_blob(&layers[0].digest));
    let mut bytes = Vec::new();
    image
        .open_blob(&layers[0].digest)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    assert_eq!(Digest::of(&bytes), layers[0].digest);
    assert_eq!(bytes.len() as u64, layers[0].size);
    assert!(store.has_blob(&layers[0].digest));
    image.fetch_layers_blocking().unwrap();
}

#[test]
fn an_index_picks_the_requested_platform() {
    let reg = TestRegistry::plain();
    let cfg = tempfile::tempdir().unwrap();
    let client = BlockingClient::new(options(cfg.path())).unwrap();
    let amd = MemImage::new("amd64", b"amd64 layer".to_vec());
    let arm = MemImage::new("arm64", b"arm64 layer".to_vec());
    let amd_report = client
        .push(
            &amd,
            &[reference(&reg.host, "multi:amd64")],
            &PushOptions::default(),
        )
        .unwrap();
    let arm_report = client
        .push(
            &arm,
            &[reference(&reg.host, "multi:arm64")],
            &PushOptions::default(),
        )
        .unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd_report.digest.to_string(),
             "size": amd_report.size, "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm_report.digest.to_string(),
             "size": arm_report.size, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        ],
    }))
    .unwrap();
    let put = support::http::request(
        reg.addr,
        "PUT",
        "/v2/multi/manifests/latest",
        &[("Content-Type", "application/vnd.oci.image.index.v1+json")],
        &index,
    )
    .unwrap();
    assert_eq!(put.status, 201, "{}", String::from_utf8_lossy(&put.body));

    let r = reference(&reg.host, "multi:latest");
    let pick = |p: &str| client.resolve(&r, &p.parse::<Platform>().unwrap());
    let arm_resolved = pick("linux/arm64").unwrap();
    assert_eq!(arm_resolved.manifest.digest, arm_report.digest);
    assert_eq!(arm_resolved.index.as_ref().unwrap().bytes, index);
    assert_eq!(
        pick("linux/amd64").unwrap().manifest.digest,
        amd_report.digest
    );
    let err = pick("linux/s390x").unwrap_err();
    assert!(matches!(err, Error::PlatformNotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "no manifest for platform `linux/s390x` in `{}/multi:latest` (available: linux/amd64, linux/arm64/v8)",
            reg.host
        )
    );
}

#[test]
fn unknown_manifest_names_the_image_and_registry() {
    let reg = TestRegistry::plain();
    reg.push_image(&busybox_layout(), "python:3.12-slim");
    let cfg = tempfile::tempdir().unwrap();
    let client = BlockingClient::new(options(cfg.path())).unwrap();
    let err = client
        .resolve(&reference(&reg.host, "python:3.12-slm"), &Platform::host())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("manifest unknown: python:3.12-slm in {}", reg.host)
    );
    let err = client
        .resolve(&reference(&reg.host, "nothing/here:1"), &Platform::host())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("manifest unknown: nothing/here:1 in {}", reg.host)
    );
}

#[test]
fn tls_registry_with_a_ca_from_certs_d_and_basic_auth() {
    let reg = TestRegistry::tls_basic("alice", "s3cret-pw");
    let cfg = tempfile::tempdir().unwrap();
    std::fs::write(cfg.path().join("config.json"), reg.docker_config_json()).unwrap();
    let certs = tempfile::tempdir().unwrap();
    reg.write_certs_d(certs.path());
    let mut opts = options(cfg.path());
    opts.certs_dirs = vec![certs.path().to_path_buf()];
    let client = BlockingClient::new(opts.clone()).unwrap();
    let report = client
        .push(
            &busybox_image(),
            &[reference(&reg.host, "secure/busybox:1")],
            &PushOptions::default(),
        )
        .unwrap();
    assert_eq!(
        reg.inspect("secure/busybox:1")["Digest"],
        report.digest.to_string()
    );
    let store_dir = tempfile::tempdir().unwrap();
    let store = OciLayout::open_or_create(store_dir.path().join("s")).unwrap();
    let pulled = client
        .pull(
            &reference(&reg.host, "secure/busybox:1"),
            &Platform::host(),
            &store,
        )
        .unwrap();
    pulled.fetch_layers_blocking().unwrap();

    // Without the CA the certificate is not trusted, even on loopback.
    let mut untrusted = opts.clone();
    untrusted.certs_dirs = Vec::new();
    untrusted.retries = 0;
    let err = BlockingClient::new(untrusted)
        .unwrap()
        .resolve(&reference(&reg.host, "secure/busybox:1"), &Platform::host())
        .unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");

    // --insecure-registry skips verification.
    let mut insecure = opts.clone();
    insecure.certs_dirs = Vec::new();
    insecure.insecure_registries = vec![reg.host.clone()];
    BlockingClient::new(insecure)
        .unwrap()
        .resolve(&reference(&reg.host, "secure/busybox:1"), &Platform::host())
        .unwrap();

    // A wrong password: the error names the registry and the file, never the secret.
    let bad = tempfile::tempdir().unwrap();
    let wrong = reg.docker_config_json().replace(
        &support::http::base64_encode(b"alice:s3cret-pw"),
        &support::http::base64_encode(b"alice:wr0ng-pw"),
    );
    std::fs::write(bad.path().join("config.json"), wrong).unwrap();
    let mut bad_opts = options(bad.path());
    bad_opts.certs_dirs = vec![certs.path().to_path_buf()];
    let err = BlockingClient::new(bad_opts)
        .unwrap()
        .resolve(&reference(&reg.host, "secure/busybox:1"), &Platform::host())
        .unwrap_err();
    let text = error_chain(&err);
    assert!(
        text.starts_with(&format!(
            "registry `{}` rejected the credentials from `{}`",
            reg.host,
            bad.path().join("config.json").display()
        )),
        "{text}"
    );
    assert!(!text.contains("wr0ng-pw"), "{text}");
    assert!(
        !text.contains(&support::http::base64_encode(b"alice:wr0ng-pw")),
        "{text}"
    );
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[test]
fn token_auth_mounts_blobs_from_the_base_repository() {
    let reg = TestRegistry::token(&[("bob", "hunter2")]);
    let proxy = FaultProxy::start(reg.addr, Faults::none());
    let cfg = tempfile::tempdir().unwrap();
    // Credentials for the proxy's address, which is the registry the client talks to.
    let config = reg.docker_config_json().replace(&reg.host, &proxy.host);
    std::fs::write(cfg.path().join("config.json"), config).unwrap();
    let client = BlockingClient::new(options(cfg.path())).unwrap();
    let image = busybox_image();
    client
        .push(
            &image,
            &[reference(&proxy.host, "base/busybox:1")],
            &PushOptions::default(),
        )
        .unwrap();

    let uploads_before = count_uploads(&proxy);
    if let Some(i) = reg.token_issuer.as_ref() {
        i.clear_requests();
    }
    let options = PushOptions {
        mount_from: vec![Repository {
            registry: proxy.host.clone(),
            name: "base/busybox".to_string(),
        }],
        ..PushOptions::default()
    };
    let report = client
        .push(&image, &[reference(&proxy.host, "app/web:1")], &options)
        .unwrap();
    for b in &report.blobs {
        assert_eq!(
            b.outcome,
            BlobOutcome::Mounted {
                from: "base/busybox".to_string()
            },
            "{b:?}"
        );
    }
    assert_eq!(
        count_uploads(&proxy),
        uploads_before,
        "no blob data was uploaded"
    );
    let requests = reg.token_requests();
    assert!(
        requests.iter().any(|r| r
            .scopes
            .contains(&"repository:app/web:pull,push".to_string())
            && r.scopes
                .contains(&"repository:base/busybox:pull".to_string())
            && r.account.as_deref() == Some("bob")),
        "{requests:#?}"
    );
    // One token served the whole push.
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(
        reg.inspect("app/web:1")["Digest"],
        report.digest.to_string()
    );
}

/// `PATCH`es and blob `PUT`s (blob data going to the registry) the proxy has seen.
fn count_uploads(proxy: &FaultProxy) -> usize {
    proxy
        .requests()
        .iter()
        .filter(|r| {
            (r.method == "PATCH" || r.method == "PUT") && r.target.contains("/blobs/uploads/")
        })
        .count()
}

#[test]
fn token_auth_reauthenticates_once_then_reports_the_registry_and_source() {
    let reg = TestRegistry::token_with(
        &[("reader", "pw")],
        TokenOptions {
            pull_only_users: vec!["reader".to_string()],
            ..TokenOptions::default()
        },
    );
    let cfg = tempfile::tempdir().unwrap();
    std::fs::write(cfg.path().join("config.json"), reg.docker_config_json()).unwrap();
    // One blob at a time, so only one request meets the refusal.
    let mut opts = options(cfg.path());
    opts.concurrency = 1;
    let client = BlockingClient::new(opts).unwrap();
    let err = client
        .push(
            &MemImage::new("amd64", b"layer".to_vec()),
            &[reference(&reg.host, "ro/app:1")],
            &PushOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "registry `{}` rejected the credentials from `{}`",
            reg.host,
            cfg.path().join("config.json").display()
        )),
        "{err}"
    );
    // The first token (pull only) was refused for the upload; exactly one more was asked for.
    let requests = reg.token_requests();
    let push_scope = "repository:ro/app:pull,push".to_string();
    let asked = requests
        .iter()
        .filter(|r| r.scopes.contains(&push_scope))
        .count();
    assert_eq!(asked, 2, "{requests:#?}");
}

#[test]
fn identity_tokens_use_the_oauth2_refresh_grant() {
    let reg = TestRegistry::token(&[("carol", "pw")]);
    let issuer = reg.token_issuer.as_ref().unwrap();
    let form = "grant_type=password&username=carol&password=pw&service=kiln-test-registry&client_id=test&access_type=offline";
    let resp = support::http::request(
        issuer.addr,
        "POST",
        "/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    )
    .unwrap();
    assert_eq!(resp.status, 200);
    let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    let refresh = body["refresh_token"].as_str().unwrap().to_string();
    issuer.clear_requests();

    let cfg = tempfile::tempdir().unwrap();
    let config = serde_json::json!({"auths": {reg.host.clone(): {
        "auth": support::http::base64_encode(b"<token>:"), "identitytoken": refresh}}});
    std::fs::write(cfg.path().join("config.json"), config.to_string()).unwrap();
    let client = BlockingClient::new(options(cfg.path())).unwrap();
    client
        .push(
            &MemImage::new("amd64", b"id".to_vec()),
            &[reference(&reg.host, "id/app:1")],
            &PushOptions::default(),
        )
        .unwrap();
    let requests = reg.token_requests();
    assert!(!requests.is_empty());
    assert!(
        requests
            .iter()
            .all(|r| r.method == "POST" && r.grant_type.as_deref() == Some("refresh_token")),
        "{requests:#?}"
    );
}

#[test]
fn login_verifies_and_writes_config_json_and_logout_removes_it() {
    let reg = TestRegistry::tls_basic("dave", "letmein");
    let certs = tempfile::tempdir().unwrap();
    reg.write_certs_d(certs.path());
    let cfg = tempfile::tempdir().unwrap();
    let path = cfg.path().join("config.json");
    std::fs::write(
        &path,
        r#"{"auths":{"other.example":{"auth":"eDp5"}},"detachKeys":"ctrl-q"}"#,
    )
    .unwrap();
    let mut opts = options(cfg.path());
    opts.certs_dirs = vec![certs.path().to_path_buf()];
    let client = BlockingClient::new(opts.clone()).unwrap();

    let err = client.login(&reg.host, "dave", "nope-wrong").unwrap_err();
    let text = error_chain(&err);
    assert!(
        text.starts_with(&format!(
            "registry `{}` rejected the credentials from the given user name and password",
            reg.host
        )),
        "{text}"
    );
    assert!(!text.contains("nope-wrong"));

    assert_eq!(client.login(&reg.host, "dave", "letmein").unwrap(), path);
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        config["auths"][&reg.host]["auth"],
        support::http::base64_encode(b"dave:letmein")
    );
    assert_eq!(config["auths"]["other.example"]["auth"], "eDp5");
    assert_eq!(config["detachKeys"], "ctrl-q");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // A new client uses what login stored.
    BlockingClient::new(opts.clone())
        .unwrap()
        .push(
            &MemImage::new("amd64", b"after login".to_vec()),
            &[reference(&reg.host, "login/app:1")],
            &PushOptions::default(),
        )
        .unwrap();

    assert!(client.logout(&reg.host).unwrap());
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(config["auths"].get(&reg.host).is_none());
    assert_eq!(config["auths"]["other.example"]["auth"], "eDp5");
    assert!(!client.logout(&reg.host).unwrap());

    // Token registries: login asks the token service with the account.
    let token_reg = TestRegistry::token(&[("erin", "pw2")]);
    let client = BlockingClient::new(options(cfg.path())).unwrap();
    client.login(&token_reg.host, "erin", "pw2").unwrap();
    assert!(
        token_reg
            .token_requests()
            .iter()
            .any(|r| r.account.as_deref() == Some("erin") && r.status == 200)
    );
    assert!(client.login(&token_reg.host, "erin", "bad").is_err());
}

#[test]
fn remote_image_is_an_image_trait_object() {
    let reg = TestRegistry::plain();
    reg.push_image(&busybox_layout(), "dyn/busybox:1");
    let cfg = tempfile::tempdir().unwrap();
    let client = BlockingClient::new(options(cfg.path())).unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let store = OciLayout::open_or_create(store_dir.path().join("s")).unwrap();
    let image: Arc<dyn Image> = client
        .pull(
            &reference(&reg.host, "dyn/busybox:1"),
            &Platform::host(),
            &store,
        )
        .unwrap()
        .into();
    // Push the pulled image to another repository: blobs stream from the remote source.
    let report = client
        .push(
            image.as_ref(),
            &[reference(&reg.host, "dyn/copy:1")],
            &PushOptions::default(),
        )
        .unwrap();
    assert_eq!(report.digest, image.digest().unwrap());
    assert_eq!(
        reg.inspect("dyn/copy:1")["Digest"],
        report.digest.to_string()
    );
}

#[test]
fn docker_hub_references_go_to_the_mirrors_in_order() {
    let empty = TestRegistry::plain();
    let mirror = TestRegistry::plain();
    mirror.push_image(&busybox_layout(), "library/busybox:1.36");
    let cfg = tempfile::tempdir().unwrap();
    let mut opts = options(cfg.path());
    opts.registry_mirrors = vec![empty.host.clone(), format!("http://{}", mirror.host)];
    let client = BlockingClient::new(opts).unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let store = OciLayout::open_or_create(store_dir.path().join("s")).unwrap();
    let image = client
        .pull(&"busybox:1.36".parse().unwrap(), &Platform::host(), &store)
        .unwrap();
    // The first mirror lacks the image, so the second serves it (and its blobs).
    assert_eq!(image.source().registry, mirror.host);
    assert_eq!(image.source().name, "library/busybox");
    assert_eq!(
        image.resolved().reference.to_string(),
        "docker.io/library/busybox:1.36"
    );
    image.fetch_layers_blocking().unwrap();
}

#[test]
fn a_blob_goes_up_while_it_is_written_and_an_abandoned_one_never_lands() {
    let reg = TestRegistry::plain();
    let proxy = FaultProxy::start(reg.addr, Faults::none());
    let cfg = tempfile::tempdir().unwrap();
    let mut opts = options(cfg.path());
    opts.chunk_size = 1 << 20;
    let client = BlockingClient::new(opts).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = OciLayout::open_or_create(tmp.path().join("store")).unwrap();
    let repository = Repository::of(&reference(&proxy.host, "kiln/streamed:1"));
    let mut rng = fastrand::Rng::with_seed(11);
    let data: Vec<u8> = (0..3 << 20).map(|_| rng.u8(..)).collect();

    let mut writer = store.blob_writer().unwrap();
    let upload = client.start_growing_upload(&repository, writer.tail().unwrap());
    writer.write_all(&data[..2 << 20]).unwrap();
    writer.flush().unwrap();
    // The first chunk is on its way before the blob is finished: the writer waits for it.
    let started = std::time::Instant::now();
    while !proxy.requests().iter().any(|r| r.method == "PATCH") {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "no PATCH while the blob was being written: {:?}",
            proxy.requests()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    writer.write_all(&data[2 << 20..]).unwrap();
    let (digest, size) = writer.commit().unwrap();
    assert_eq!(upload.wait().unwrap(), (digest.clone(), size));
    assert_eq!(digest, Digest::of(&data));
    let seen = proxy.requests();
    let methods: Vec<&str> = seen.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(
        methods,
        ["GET", "POST", "PATCH", "PATCH", "PATCH", "PUT"],
        "{seen:?}"
    );
    let ranges: Vec<Option<&str>> = seen[2..5]
        .iter()
        .map(|r| r.content_range.as_deref())
        .collect();
    assert_eq!(
        ranges,
        [
            Some("0-1048575"),
            Some("1048576-2097151"),
            Some("2097152-3145727")
        ]
    );
    assert!(seen[5].target.contains(&format!(
        "digest={}",
        digest.to_string().replace(':', "%3A")
    )));
    // What the registry holds reads back as the bytes written.
    let back = OciLayout::open_or_create(tmp.path().join("back")).unwrap();
    client.fetch_blob(&repository, &digest, &back).unwrap();
    let mut fetched = Vec::new();
    back.open_blob(&digest)
        .unwrap()
        .read_to_end(&mut fetched)
        .unwrap();
    assert!(
        fetched == data,
        "the fetched blob differs from the one written"
    );

    // A writer that gives up fails the upload, and nothing is left under any digest.
    let half: Vec<u8> = data[..1 << 20].iter().map(|b| b ^ 0x5a).collect();
    let mut writer = store.blob_writer().unwrap();
    let upload = client.start_growing_upload(&repository, writer.tail().unwrap());
    writer.write_all(&half).unwrap();
    writer.flush().unwrap();
    drop(writer);
    let err = upload.wait().unwrap_err();
    assert!(matches!(err, Error::GrowingBlob { .. }), "{err:?}");
    assert!(
        error_chain(&err).contains("kiln/streamed"),
        "{}",
        error_chain(&err)
    );
    assert!(
        error_chain(&err).contains("abandoned"),
        "{}",
        error_chain(&err)
    );
    let head = support::http::request(
        reg.addr,
        "HEAD",
        &format!("/v2/kiln/streamed/blobs/{}", Digest::of(&half)),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(head.status, 404);
    let cancelled = proxy.requests();
    assert_eq!(cancelled.last().map(|r| r.method.as_str()), Some("DELETE"));
}

#[test]
fn known_blobs_and_an_unchanged_tag_cost_one_head_and_a_deleted_blob_goes_up_again() {
    let reg = TestRegistry::plain();
    let proxy = FaultProxy::start(reg.addr, Faults::none());
    let cfg = tempfile::tempdir().unwrap();
    let client = BlockingClient::new(options(cfg.path())).unwrap();
    let image = busybox_image();
    let first = reference(&proxy.host, "kiln/known:1");
    client
        .push(
            &image,
            std::slice::from_ref(&first),
            &PushOptions::default(),
        )
        .unwrap();
    let repository = Repository::of(&first);
    let manifest = image.manifest().unwrap();
    let layer: Digest = manifest.layers()[0].digest().to_string().parse().unwrap();
    let config: Digest = manifest.config().digest().to_string().parse().unwrap();
    let known = PushOptions {
        present: [layer.clone(), config.clone()]
            .into_iter()
            .map(|d| (repository.clone(), d))
            .collect(),
        ..PushOptions::default()
    };

    // Known blobs cost nothing. With no blob sent the tag may already name the manifest: a
    // HEAD asks, and the manifest is put only when it does not.
    let seen_pushing = |tag: &str| {
        let before = proxy.requests().len();
        let report = client
            .push(&image, &[reference(&proxy.host, tag)], &known)
            .unwrap();
        assert!(
            report.blobs.iter().all(|b| b.outcome == BlobOutcome::Known),
            "{:?}",
            report.blobs
        );
        proxy.requests()[before..]
            .iter()
            .map(|r| format!("{} {}", r.method, r.target))
            .collect::<Vec<String>>()
    };
    assert_eq!(
        seen_pushing("kiln/known:2"),
        [
            "HEAD /v2/kiln/known/manifests/2",
            "PUT /v2/kiln/known/manifests/2"
        ]
    );
    assert_eq!(
        seen_pushing("kiln/known:2"),
        ["HEAD /v2/kiln/known/manifests/2"]
    );
    reg.pull_image("kiln/known:2", &cfg.path().join("oci-2"), "known:2");

    // A remembered blob deleted since: the registry refuses the manifest, the push checks
    // every blob, uploads the missing one and puts the manifest again.
    let deleted = support::http::request(
        reg.addr,
        "DELETE",
        &format!("/v2/kiln/known/blobs/{layer}"),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(deleted.status, 202);
    let report = client
        .push(&image, &[reference(&proxy.host, "kiln/known:3")], &known)
        .unwrap();
    let outcome_of = |d: &Digest| {
        report
            .blobs
            .iter()
            .find(|b| &b.digest == d)
            .map(|b| b.outcome.clone())
    };
    assert!(
        matches!(outcome_of(&layer), Some(BlobOutcome::Uploaded { .. })),
        "{:?}",
        report.blobs
    );
    assert_eq!(outcome_of(&config), Some(BlobOutcome::Exists));
    assert_eq!(report.blobs.len(), 2, "{:?}", report.blobs);
    let out = tempfile::tempdir().unwrap();
    reg.pull_image("kiln/known:3", &out.path().join("oci"), "known:3");
}
