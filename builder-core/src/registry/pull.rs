//! Pulling: the manifest and config at once, layer blobs only when something reads them.
//!
//! A blob streams from the registry into the content store through a blocking writer task
//! (hashing and disk writes stay off the async threads) and is committed under its digest only
//! if it hashes to it; otherwise the temporary file is dropped and nothing is stored.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt as _;
use reqwest::Method;
use tokio::runtime::Handle;

use super::auth::Scope;
use super::blocking::block_on;
use super::client::{Client, Req, api_error, transport_error};
use super::error::{Error, Result};
use super::manifest::{Repository, ResolvedImage, repo_url};
use crate::oci::layout::{LayoutError, from_oci_digest};
use crate::oci::{Digest, Image, ImageError, OciLayout, Platform, Reference};

/// What the writer task was told: more bytes, or give up (the download broke).
enum Piece {
    Data(Bytes),
    Abort,
}

impl Client {
    /// Downloads blob `digest` of `repository` into `store`, unless it is there already.
    pub async fn fetch_blob(
        &self,
        repository: &Repository,
        digest: &Digest,
        store: &OciLayout,
    ) -> Result<()> {
        if store.has_blob(digest) {
            return Ok(());
        }
        let ep = self.endpoint(&repository.registry)?;
        let base = self.base_url(&ep).await?;
        let url = repo_url(&base, &repository.name, &format!("blobs/{digest}"))?;
        let scopes = [Scope::pull(&repository.name)];
        let mut attempt = 0;
        loop {
            let req = Req::new(Method::GET, url.clone());
            let resp = self.send(&ep, &scopes, &req).await?;
            if !resp.status().is_success() {
                return Err(api_error(&req.method, &url, resp).await.into());
            }
            match self.stream_into_store(resp, digest, store).await {
                Ok(()) => return Ok(()),
                Err(StreamError::Transport(e)) if attempt < self.options().retries => {
                    tracing::debug!(%url, error = %e, "blob download broke; starting it again");
                    attempt += 1;
                }
                Err(StreamError::Transport(e)) => {
                    return Err(transport_error(&req.method, &url, e));
                }
                Err(StreamError::Mismatch { actual }) => {
                    return Err(Error::DigestMismatch {
                        expected: digest.clone(),
                        actual,
                        url: url.to_string(),
                    });
                }
                Err(StreamError::Other(e)) => return Err(e),
            }
        }
    }

    async fn stream_into_store(
        &self,
        resp: reqwest::Response,
        digest: &Digest,
        store: &OciLayout,
    ) -> Result<(), StreamError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Piece>(16);
        let writer_store = store.clone();
        let expected = digest.clone();
        let writer = tokio::task::spawn_blocking(move || -> Result<Option<u64>, LayoutError> {
            let mut w = writer_store.blob_writer()?;
            while let Some(piece) = rx.blocking_recv() {
                match piece {
                    Piece::Data(b) => w.write_all(&b).map_err(|source| LayoutError::Io {
                        action: "write a downloaded blob into",
                        path: writer_store.root().to_path_buf(),
                        source,
                    })?,
                    Piece::Abort => return Ok(None),
                }
            }
            w.commit_expecting(&expected).map(Some)
        });
        let mut body = resp.bytes_stream();
        let mut broken = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(b) => {
                    if tx.send(Piece::Data(b)).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    broken = Some(e);
                    let _ = tx.send(Piece::Abort).await;
                    break;
                }
            }
        }
        drop(tx);
        let written = writer
            .await
            .map_err(|_| StreamError::Other(Error::TaskFailed("blob writer")))?;
        if let Some(e) = broken {
            return Err(StreamError::Transport(e));
        }
        match written {
            Ok(_) => Ok(()),
            Err(LayoutError::DigestMismatch { actual, .. }) => {
                Err(StreamError::Mismatch { actual })
            }
            Err(e) => Err(StreamError::Other(e.into())),
        }
    }

    /// Resolves `reference` for `platform` and fetches its config; layers stay remote until
    /// read. The manifest and config are also stored in `store` as the exact bytes received.
    pub async fn pull(
        &self,
        reference: &Reference,
        platform: &Platform,
        store: &OciLayout,
    ) -> Result<RemoteImage> {
        let resolved = self.resolve(reference, platform).await?;
        let manifest: oci_spec::image::ImageManifest =
            serde_json::from_slice(&resolved.manifest.bytes).map_err(|e| {
                Error::InvalidManifest {
                    reference: reference.to_string(),
                    source: Box::new(e),
                }
            })?;
        let config_digest =
            from_oci_digest(manifest.config().digest()).map_err(|e| Error::InvalidManifest {
                reference: reference.to_string(),
                source: Box::new(e),
            })?;
        self.fetch_blob(&resolved.source, &config_digest, store)
            .await?;
        let config = read_small_blob(store, &config_digest).await?;
        let manifest_bytes = resolved.manifest.bytes.clone();
        let manifest_store = store.clone();
        tokio::task::spawn_blocking(move || manifest_store.write_blob(&manifest_bytes))
            .await
            .map_err(|_| Error::TaskFailed("manifest writer"))??;
        Ok(RemoteImage {
            client: self.clone(),
            runtime: Handle::current(),
            resolved,
            config,
            store: store.clone(),
        })
    }

    /// Fetches every layer of `image` not yet in its store, `concurrency` at a time.
    pub async fn fetch_layers(&self, image: &RemoteImage) -> Result<()> {
        let layers = image.layers()?;
        let limit = self.options().concurrency.max(1);
        let pending: Vec<_> = layers
            .iter()
            .map(|l| self.fetch_blob(&image.resolved.source, &l.digest, &image.store))
            .collect();
        let results: Vec<Result<()>> = futures_util::stream::iter(pending)
            .buffer_unordered(limit)
            .collect()
            .await;
        results.into_iter().collect()
    }
}

enum StreamError {
    Transport(reqwest::Error),
    Mismatch { actual: Digest },
    Other(Error),
}

async fn read_small_blob(store: &OciLayout, digest: &Digest) -> Result<Vec<u8>> {
    let store = store.clone();
    let digest = digest.clone();
    tokio::task::spawn_blocking(move || store.read_blob(&digest))
        .await
        .map_err(|_| Error::TaskFailed("blob reader"))?
        .map_err(Error::from)
}

/// An image in a registry, read lazily: the manifest and config are in memory, and a layer is
/// downloaded into the content store the first time it is opened.
///
/// Its [`Image`] methods block; call them from ordinary threads (or `spawn_blocking`), not
/// from async code. The client's runtime must be multi-threaded.
#[derive(Clone)]
pub struct RemoteImage {
    client: Client,
    runtime: Handle,
    resolved: ResolvedImage,
    config: Vec<u8>,
    store: OciLayout,
}

impl std::fmt::Debug for RemoteImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteImage")
            .field("reference", &self.resolved.reference)
            .field("source", &self.resolved.source)
            .field("digest", &self.resolved.manifest.digest)
            .finish_non_exhaustive()
    }
}

impl RemoteImage {
    /// The reference, where it was found, and the raw manifest (and index) bytes.
    pub fn resolved(&self) -> &ResolvedImage {
        &self.resolved
    }

    /// The repository blobs come from, for cross-repository mounts when pushing.
    pub fn source(&self) -> &Repository {
        &self.resolved.source
    }

    /// The content store layers are downloaded into.
    pub fn store(&self) -> &OciLayout {
        &self.store
    }

    /// Downloads every layer now, concurrently (blocking).
    pub fn fetch_layers_blocking(&self) -> Result<()> {
        let client = self.client.clone();
        let image = self.clone();
        block_on(
            &self.runtime,
            async move { client.fetch_layers(&image).await },
        )?
    }
}

impl Image for RemoteImage {
    fn raw_manifest(&self) -> Result<Vec<u8>, ImageError> {
        Ok(self.resolved.manifest.bytes.clone())
    }

    fn raw_config(&self) -> Result<Vec<u8>, ImageError> {
        Ok(self.config.clone())
    }

    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ImageError> {
        if !self.store.has_blob(digest) {
            let client = self.client.clone();
            let source = self.resolved.source.clone();
            let store = self.store.clone();
            let wanted = digest.clone();
            let fetched = block_on(&self.runtime, async move {
                client.fetch_blob(&source, &wanted, &store).await
            })
            .and_then(|r| r);
            if let Err(e) = fetched {
                return Err(ImageError::Layout(LayoutError::Io {
                    action: "download blob into the store from",
                    path: PathBuf::from(format!("{}@{digest}", self.resolved.source)),
                    source: io::Error::other(e),
                }));
            }
        }
        Ok(Box::new(self.store.open_blob(digest)?))
    }

    fn digest(&self) -> Result<Digest, ImageError> {
        Ok(self.resolved.manifest.digest.clone())
    }
}

/// Lets a `RemoteImage` be shared as a trait object.
impl From<RemoteImage> for Arc<dyn Image> {
    fn from(image: RemoteImage) -> Self {
        Arc::new(image)
    }
}
