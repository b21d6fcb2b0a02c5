//! Proves the registry test harness (`tests/support`): each registry kind accepts an image pushed by
//! skopeo and serves it back, the token issuer records the scopes it was asked for and its tokens
//! work, and the fault proxy's injected 503 and dropped connection are visible to a client.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod support;

use std::fs;
use std::path::Path;

use sha2::{Digest, Sha256};
use support::http::{self, base64_encode, percent_encode};
use support::{FaultProxy, Faults, TestRegistry, TokenOptions, busybox_layout};

/// The manifest digest the layout's `index.json` names for its only image.
fn layout_manifest_digest(layout: &Path) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Checks that `reg` serves `repo_tag` as exactly the busybox layout's manifest.
fn assert_serves_busybox(reg: &TestRegistry, repo_tag: &str) {
    let layout = busybox_layout();
    let raw = reg.raw_manifest(repo_tag);
    assert_eq!(sha256_digest(&raw), layout_manifest_digest(&layout));
    let inspected = reg.inspect(repo_tag);
    assert_eq!(
        inspected["Digest"].as_str().unwrap(),
        layout_manifest_digest(&layout)
    );
    assert_eq!(inspected["Os"], "linux");
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 1);
}

#[test]
fn busybox_layout_is_a_valid_oci_image() {
    let layout = busybox_layout();
    let out = support::skopeo(&[
        "inspect".into(),
        "--config".into(),
        format!("oci:{}:busybox:latest", layout.display()),
    ]);
    let config: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
    // The same machine gets the same cached layout.
    assert_eq!(busybox_layout(), layout);
}

#[test]
fn plain_registry_round_trips_an_image() {
    let reg = TestRegistry::plain();
    assert!(reg.url.starts_with("http://127.0.0.1:"));
    let v2 = http::request(reg.addr, "GET", "/v2/", &[], b"").unwrap();
    assert_eq!(v2.status, 200);
    let pushed = reg.push_image(&busybox_layout(), "library/busybox:latest");
    assert_eq!(pushed, format!("{}/library/busybox:latest", reg.host));
    assert_serves_busybox(&reg, "library/busybox:latest");
    // What skopeo pushed, skopeo can pull back into a layout.
    let out = tempfile::tempdir().unwrap();
    reg.pull_image("library/busybox:latest", out.path(), "copy:latest");
    assert!(out.path().join("index.json").exists());
}

#[test]
fn tls_registry_with_basic_auth_round_trips_an_image() {
    let reg = TestRegistry::tls_basic("alice", "s3cret");
    assert!(reg.url.starts_with("https://127.0.0.1:"));
    let ca = reg.ca_pem.clone().unwrap();
    assert!(
        fs::read_to_string(&ca)
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    reg.push_image(&busybox_layout(), "team/busybox:1");
    assert_serves_busybox(&reg, "team/busybox:1");

    // The docker config.json it offers carries the Basic credentials for this host.
    let config: serde_json::Value = serde_json::from_str(&reg.docker_config_json()).unwrap();
    let auth = config["auths"][&reg.host]["auth"].as_str().unwrap();
    assert_eq!(http::base64_decode(auth).unwrap(), b"alice:s3cret");

    // Wrong credentials are refused.
    let certs_d = tempfile::tempdir().unwrap();
    let bad = std::process::Command::new("skopeo")
        .args(["inspect", "--cert-dir"])
        .arg(reg.write_certs_d(certs_d.path()))
        .args(["--creds", "alice:wrong"])
        .arg(format!("docker://{}", reg.reference("team/busybox:1")))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .to_lowercase()
            .contains("unauthorized"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn token_registry_round_trips_an_image_and_records_scopes() {
    let reg = TestRegistry::token(&[("bob", "hunter2")]);
    // The registry challenges with the issuer's realm.
    let v2 = http::request(reg.addr, "GET", "/v2/", &[], b"").unwrap();
    assert_eq!(v2.status, 401);
    let challenge = v2.header("www-authenticate").unwrap().to_string();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(&format!(
            "realm=\"{}\"",
            reg.token_issuer.as_ref().unwrap().realm
        )),
        "{challenge}"
    );
    assert!(
        challenge.contains("service=\"kiln-test-registry\""),
        "{challenge}"
    );

    reg.push_image(&busybox_layout(), "proj/busybox:latest");
    assert_serves_busybox(&reg, "proj/busybox:latest");
    let seen = reg.token_requests();
    assert!(
        seen.iter().any(|r| r.account.as_deref() == Some("bob")
            && r.scopes
                .iter()
                .any(|s| s.starts_with("repository:proj/busybox:") && s.contains("push"))),
        "{seen:#?}"
    );
}

#[test]
fn token_issuer_grants_several_scopes_and_refreshes() {
    let reg = TestRegistry::token_with(
        &[("bob", "hunter2")],
        TokenOptions {
            anonymous_pull: true,
            ..TokenOptions::default()
        },
    );
    reg.push_image(&busybox_layout(), "a/src:latest");
    let issuer = reg.token_issuer.as_ref().unwrap();
    issuer.clear_requests();

    // Several scopes in one GET, with Basic credentials: a cross-repository mount's token.
    let basic = format!("Basic {}", base64_encode(b"bob:hunter2"));
    let target = format!(
        "/token?service=kiln-test-registry&scope={}&scope={}",
        percent_encode("repository:a/src:pull"),
        percent_encode("repository:b/dst:pull,push")
    );
    let resp = http::request(
        issuer.addr,
        "GET",
        &target,
        &[("Authorization", &basic)],
        b"",
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    let token = body["token"].as_str().unwrap().to_string();
    assert!(body.get("refresh_token").is_none());
    let seen = issuer.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].scopes,
        ["repository:a/src:pull", "repository:b/dst:pull,push"]
    );
    assert_eq!(seen[0].account.as_deref(), Some("bob"));

    // The registry accepts the token for both repositories: a cross-repository mount succeeds.
    let bearer = format!("Bearer {token}");
    let digest = {
        let manifest: serde_json::Value =
            serde_json::from_slice(&reg.raw_manifest("a/src:latest")).unwrap();
        manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mount = http::request(
        reg.addr,
        "POST",
        &format!("/v2/b/dst/blobs/uploads/?mount={digest}&from=a/src"),
        &[("Authorization", &bearer)],
        b"",
    )
    .unwrap();
    assert_eq!(
        mount.status,
        201,
        "{:?} {}",
        mount.head.headers,
        String::from_utf8_lossy(&mount.body)
    );

    // OAuth2 password grant with access_type=offline returns a refresh token, and the refresh grant
    // gives a working access token for another scope.
    let form = "grant_type=password&username=bob&password=hunter2&service=kiln-test-registry&client_id=kiln&access_type=offline";
    let resp = http::request(
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
    let form = format!(
        "grant_type=refresh_token&refresh_token={refresh}&service=kiln-test-registry&client_id=kiln&scope={}",
        percent_encode("repository:a/src:pull")
    );
    let resp = http::request(
        issuer.addr,
        "POST",
        "/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    )
    .unwrap();
    assert_eq!(resp.status, 200);
    let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(body["refresh_token"].as_str(), Some(refresh.as_str()));
    let access = format!("Bearer {}", body["access_token"].as_str().unwrap());
    let get = http::request(
        reg.addr,
        "HEAD",
        "/v2/a/src/manifests/latest",
        &[
            ("Authorization", &access),
            ("Accept", "application/vnd.oci.image.manifest.v1+json"),
        ],
        b"",
    )
    .unwrap();
    assert_eq!(get.status, 200);

    // Wrong password and unknown refresh token: 401 from the issuer. Anonymous: pull only.
    let resp = http::request(
        issuer.addr,
        "GET",
        "/token?service=kiln-test-registry&scope=repository:a/src:pull",
        &[(
            "Authorization",
            &format!("Basic {}", base64_encode(b"bob:nope")),
        )],
        b"",
    )
    .unwrap();
    assert_eq!(resp.status, 401);
    let resp = http::request(
        issuer.addr,
        "POST",
        "/token",
        &[],
        b"grant_type=refresh_token&refresh_token=bogus&service=kiln-test-registry",
    )
    .unwrap();
    assert_eq!(resp.status, 401);
    let resp = http::request(
        issuer.addr,
        "GET",
        &format!(
            "/token?service=kiln-test-registry&scope={}",
            percent_encode("repository:a/src:pull,push")
        ),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(resp.status, 200);
    let seen = issuer.requests();
    assert_eq!(seen.last().unwrap().granted, ["repository:a/src:pull"]);
    assert_eq!(seen.iter().filter(|r| r.status == 401).count(), 2);
}

#[test]
fn fault_proxy_injects_unavailable_and_drops_an_upload() {
    let reg = TestRegistry::plain();
    let proxy = FaultProxy::start(
        reg.addr,
        Faults::none()
            .unavailable_once("GET", "/v2/")
            .drop_upload_after(1000),
    );

    let first = http::request(proxy.addr, "GET", "/v2/", &[], b"").unwrap();
    assert_eq!(first.status, 503);
    assert_eq!(first.header("retry-after"), Some("1"));
    let second = http::request(proxy.addr, "GET", "/v2/", &[], b"").unwrap();
    assert_eq!(second.status, 200);

    // Start an upload through the proxy; the Location the registry returns points at the proxy.
    let start = http::request(
        proxy.addr,
        "POST",
        "/v2/fault/test/blobs/uploads/",
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(start.status, 202);
    let location = start.header("location").unwrap().to_string();
    assert!(location.contains(&proxy.host), "{location}");
    let path = location.split_once(&proxy.host).unwrap().1.to_string();

    // A 4000-byte PATCH is cut after 1000 bytes: the client gets no answer.
    let body = vec![b'x'; 4000];
    let patch = http::request(
        proxy.addr,
        "PATCH",
        &path,
        &[("Content-Type", "application/octet-stream")],
        &body,
    );
    assert!(patch.is_err(), "{patch:?}");
    let counts = proxy.counts();
    assert_eq!((counts.unavailable, counts.dropped_uploads), (1, 1));
    let dropped = proxy
        .requests()
        .into_iter()
        .find(|r| r.fault.is_some() && r.method == "PATCH")
        .unwrap();
    assert_eq!(dropped.content_length, Some(4000));

    // Faults fire once: the same PATCH now goes through, and a push through the proxy works.
    let patch = http::request(
        proxy.addr,
        "PATCH",
        &path,
        &[("Content-Type", "application/octet-stream")],
        &body,
    );
    assert!(patch.is_ok());
    let via_proxy = format!("{}/through/proxy:latest", proxy.host);
    support::skopeo(&[
        "copy".into(),
        "--quiet".into(),
        "--dest-tls-verify=false".into(),
        format!("oci:{}", busybox_layout().display()),
        format!("docker://{via_proxy}"),
    ]);
    assert_serves_busybox(&reg, "through/proxy:latest");
    assert_eq!(proxy.counts().dropped_uploads, 1);
}

#[test]
fn fault_proxy_injects_too_many_requests() {
    let reg = TestRegistry::plain();
    let proxy = FaultProxy::start(
        reg.addr,
        Faults::none().too_many_requests_once("HEAD", "/manifests/"),
    );
    let first = http::request(proxy.addr, "HEAD", "/v2/x/manifests/latest", &[], b"").unwrap();
    assert_eq!(first.status, 429);
    assert_eq!(first.header("retry-after"), Some("1"));
    let second = http::request(proxy.addr, "HEAD", "/v2/x/manifests/latest", &[], b"").unwrap();
    assert_eq!(second.status, 404);
    assert_eq!(proxy.counts().too_many_requests, 1);
    assert_eq!(proxy.counts().requests, 2);
}

/// Starts an upload through `proxy` and returns the path (with `_state`) the registry told it to
/// use next.
fn start_upload(proxy: &FaultProxy, repo: &str) -> String {
    let start = http::request(
        proxy.addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(start.status, 202);
    path_of(proxy, start.header("location").unwrap())
}

fn path_of(proxy: &FaultProxy, location: &str) -> String {
    location
        .split_once(&proxy.host)
        .map(|(_, p)| p.to_string())
        .unwrap_or_else(|| location.to_string())
}

/// What distribution 2.8 does after a dropped chunk, which a resuming client must handle: a drop
/// before any body byte leaves the session at the last chunk boundary (`Range` tells where to go
/// on), while a drop after bytes were written invalidates the session (`BLOB_UPLOAD_INVALID`),
/// so the client has to start a new upload.
#[test]
fn dropped_chunks_leave_distribution_uploads_resumable_or_invalid() {
    let reg = TestRegistry::plain();
    let chunk = vec![b'a'; 50_000];
    let next = vec![b'b'; 200_000];

    for (drop_after, resumable) in [(0u64, true), (100_000, false)] {
        let proxy = FaultProxy::start(
            reg.addr,
            Faults::none().skip_uploads(1).drop_upload_after(drop_after),
        );
        let path = start_upload(&proxy, "chunks/test");
        let first = http::request(
            proxy.addr,
            "PATCH",
            &path,
            &[("Content-Range", "0-49999")],
            &chunk,
        )
        .unwrap();
        assert_eq!(
            (first.status, first.header("range")),
            (202, Some("0-49999"))
        );
        let path = path_of(&proxy, first.header("location").unwrap());
        let cut = http::request(
            proxy.addr,
            "PATCH",
            &path,
            &[("Content-Range", "50000-249999")],
            &next,
        );
        assert!(cut.is_err(), "{cut:?}");
        assert_eq!(proxy.counts().dropped_uploads, 1);

        let status = http::request(proxy.addr, "GET", &path, &[], b"").unwrap();
        if resumable {
            assert_eq!(
                (status.status, status.header("range")),
                (204, Some("0-49999"))
            );
        } else {
            assert_eq!(status.status, 404);
            assert!(String::from_utf8_lossy(&status.body).contains("BLOB_UPLOAD_INVALID"));
        }
    }
}
