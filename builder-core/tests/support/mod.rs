//! Test support for kiln's registry tests: real registries on loopback, a token issuer, a
//! fault-injection proxy and an offline busybox base image.
//!
//! Include it from an integration test file in `builder-core/tests/` with
//!
//! ```ignore
//! mod support;
//! use support::{busybox_layout, FaultProxy, Faults, TestRegistry};
//! ```
//!
//! (`mod support;` finds `tests/support/mod.rs`; Cargo does not build the directory as a test of
//! its own.) The machine needs `scripts/registry/install.sh` (docker-registry, htpasswd, openssl,
//! busybox-static, skopeo); `scripts/install-test-deps.sh` runs it.
//!
//! # API
//!
//! Registries ([`registry`]); each is killed and its storage removed on drop:
//! - [`TestRegistry::plain()`] — http, no auth.
//! - [`TestRegistry::tls_basic(user, pass)`](TestRegistry::tls_basic) — https with a certificate
//!   for `127.0.0.1`/`localhost` from a fresh CA ([`TestRegistry::ca_pem`]), htpasswd Basic auth.
//! - [`TestRegistry::token(&[(user, pass)])`](TestRegistry::token) and
//!   [`TestRegistry::token_with(users, TokenOptions)`](TestRegistry::token_with) — http with
//!   distribution's `auth: token`; the issuer ([`TokenIssuer`], realm `http://127.0.0.1:PORT/token`,
//!   service [`token_issuer::SERVICE`]) runs in this process and records every request
//!   ([`TestRegistry::token_requests`] → [`TokenRequest`] with `scopes`, `account`, `grant_type`,
//!   `offline`, `status`, `granted`).
//! - Fields: `addr`, `url` (`http(s)://127.0.0.1:PORT`), `host` (`127.0.0.1:PORT`), `storage`,
//!   `ca_pem`, `username`, `password`, `token_issuer`.
//! - skopeo helpers: `push_image(layout, "repo:tag") -> "127.0.0.1:PORT/repo:tag"`,
//!   `push_named_image(layout, Some("busybox:latest"), "repo:tag")`, `pull_image("repo:tag",
//!   out_layout, "name:tag")`, `inspect("repo:tag") -> serde_json::Value`, `raw_manifest("repo:tag")`,
//!   `skopeo_flags("src" | "dest" | "")`.
//! - Client-setup helpers: `reference("repo:tag")`, `write_certs_d(root) -> root/HOST:PORT`
//!   (holding `ca.crt`), `docker_config_json()`, `log()`. Set `KILN_TEST_REGISTRY_LOG=debug` to
//!   make the registry log more than errors.
//! - The issuer itself: `issuer.requests()`, `issuer.clear_requests()`, `issuer.issue(account,
//!   scopes, ttl_secs)` (a ready-made, possibly expired token), fields `addr`, `realm`,
//!   `root_cert_bundle`. It serves `GET /token?service=&scope=&scope=` (Basic credentials,
//!   `offline_token=true`) and `POST /token` (`grant_type=password|refresh_token`,
//!   `access_type=offline` returns `refresh_token`).
//!
//! Faults ([`fault_proxy`]): [`FaultProxy::start(upstream_addr, Faults)`](FaultProxy::start) in
//! front of a plain-http registry, with `Faults::none().drop_upload_after(n)
//! .unavailable_once("PUT", "/manifests/").too_many_requests_once("HEAD", "/blobs/")`; each fires
//! once; `.skip_uploads(k)` lets the first `k` upload `PATCH`/`PUT`s through before the drop.
//! Proxies plain http only (it parses request heads). `counts()` → [`FaultCounts`], `requests()` → [`SeenRequest`] (method, target,
//! `content_range`, `content_length`, `fault`). Fields `addr`, `url`, `host`.
//!
//! Base image: [`busybox_layout()`] → the path of an OCI layout holding `busybox:latest`, made
//! offline from Debian's busybox-static by `scripts/registry/make-busybox-image.sh`, cached under
//! `target/test-fixtures/` and built once per machine (file-locked across test processes).
//!
//! distribution 2.8 and dropped uploads (asserted in `registry_harness.rs`): a drop before the
//! first body byte of a chunk leaves the session resumable (`GET` on the upload URL answers 204
//! with the `Range` received so far); a drop after some bytes were written makes the registry
//! answer 404 `BLOB_UPLOAD_INVALID` for that session, so a client must start a new upload.
//!
//! Raw HTTP ([`http`]): `http::request(addr, method, target, headers, body) -> http::Response`
//! (one request per connection, `Connection: close`) for asserting on a registry's exact answers.

#![allow(dead_code, unused_imports)]

pub mod fault_proxy;
pub mod http;
pub mod pki;
pub mod registry;
pub mod token_issuer;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub use fault_proxy::{Fault, FaultCounts, FaultProxy, Faults, RequestMatch, SeenRequest};
pub use registry::{TestRegistry, skopeo};
pub use token_issuer::{TokenIssuer, TokenOptions, TokenRequest};

/// The repository root (the directory holding `scripts/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The OCI layout holding `busybox:latest`, made offline (see the module docs). Built at most once
/// per machine and script version; within a process the path is computed once.
pub fn busybox_layout() -> PathBuf {
    static LAYOUT: OnceLock<PathBuf> = OnceLock::new();
    LAYOUT
        .get_or_init(|| {
            let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
            let cache = target.join("test-fixtures");
            let script = repo_root().join("scripts/registry/busybox-layout.sh");
            let out = Command::new(&script)
                .arg(&cache)
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
            assert!(
                out.status.success(),
                "{} failed: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        })
        .clone()
}
