//! A client for OCI distribution registries: pull base images from, and push images to, any
//! registry, with docker's credentials, TLS rules and auth flows.
//!
//! - [`Client`] is async (tokio + reqwest with rustls/ring). [`BlockingClient`] wraps it for
//!   the synchronous build, with its own runtime.
//! - Pull: [`Client::resolve`] turns a [`Reference`](crate::oci::Reference) into one image
//!   manifest (an index picks the platform); [`Client::pull`] returns a [`RemoteImage`] that
//!   implements [`Image`](crate::oci::Image) and downloads layers into an
//!   [`OciLayout`](crate::oci::OciLayout) only when they are opened, verifying digests.
//! - Push: [`Client::push`] sends blobs (skip, mount, monolithic or resumable chunked upload)
//!   and the manifest per tag, and reports docker's `TAG: digest: … size: …` lines.
//! - Auth: `WWW-Authenticate` Basic and Bearer (anonymous, password, identity/refresh token),
//!   multi-scope tokens cached per scope set, one re-authentication on 401;
//!   [`Client::login`]/[`Client::logout`] edit docker's `config.json`.
//! - Retries with backoff on connection errors, timeouts, 429 and 5xx, honouring
//!   `Retry-After`. Errors keep the status, distribution error codes, method and URL.
//!
//! # Example
//!
//! ```no_run
//! use builder_core::oci::{OciLayout, Platform, Reference};
//! use builder_core::registry::{BlockingClient, ClientOptions, PushOptions};
//!
//! let client = BlockingClient::new(ClientOptions::default())?;
//! let store = OciLayout::open_or_create("/tmp/kiln-store")?;
//! let base = client.pull(&"busybox:latest".parse()?, &Platform::host(), &store)?;
//! let dest: Reference = "localhost:5000/busybox:copy".parse()?;
//! let report = client.push(&base, &[dest], &PushOptions::default())?;
//! for tag in &report.tags {
//!     println!("{}", tag.line);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod auth;
mod blocking;
mod client;
mod credentials;
mod error;
mod manifest;
mod pull;
mod push;
mod retry;
mod stream;
mod tls;

use std::path::PathBuf;

pub use auth::{Access, Scope};
pub use blocking::{BackgroundUpload, BlockingClient};
pub use client::{Client, ClientOptions};
pub use credentials::{Credential, CredentialSource, CredentialStore, normalize_registry};
pub use error::{ApiError, ApiErrorEntry, Error, ErrorCode, Result};
pub use manifest::{RawManifest, Repository, ResolvedImage};
pub use pull::RemoteImage;
pub use push::{BlobOutcome, BlobReport, PushOptions, PushProgress, PushReport, TagReport};
pub use stream::GrowingBlob;

impl Client {
    /// `docker login`: checks `username`/`password` against `registry` (its `/v2/` endpoint or
    /// token service), then saves them where docker would (a credential helper, or `auths` in
    /// `config.json`). Returns the `config.json` path.
    pub async fn login(&self, registry: &str, username: &str, password: &str) -> Result<PathBuf> {
        let registry = normalize_registry(registry);
        self.verify_credential(
            &registry,
            Credential::Basic {
                username: username.to_string(),
                password: password.to_string(),
            },
        )
        .await?;
        let store = self.credential_store().clone();
        let (user, pass) = (username.to_string(), password.to_string());
        let reg = registry.clone();
        tokio::task::spawn_blocking(move || store.store(&reg, &user, &pass))
            .await
            .map_err(|_| Error::TaskFailed("credential store"))??;
        Ok(self.credential_store().docker_config_path().to_path_buf())
    }

    /// `docker logout`: removes the saved credential for `registry`. Returns whether one was
    /// there.
    pub fn logout(&self, registry: &str) -> Result<bool> {
        self.credential_store().erase(&normalize_registry(registry))
    }
}
