//! Uploading a blob while it is still being written: one upload session, a `PATCH` with each
//! chunk as soon as the writer has produced it, and the closing `PUT` naming the digest, which is
//! known only once the last byte is written.
//!
//! A build uses it to send a layer to the push destination while later steps run, so the push
//! at the end finds the blob there. It is an optimisation, never the only way a blob gets
//! pushed: when the upload fails its session is cancelled and the ordinary push uploads the
//! blob. Chunks are the push's own (`chunk_size`, 8 MiB by default), each an ordinary request
//! with its own timeout, so a layer that takes minutes to write never holds one request open.

use std::io::{self, Read};

use bytes::Bytes;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use reqwest::{Method, StatusCode};

use super::auth::Scope;
use super::client::{Client, Endpoint, Req, api_error};
use super::error::{Error, Result};
use super::manifest::{Repository, repo_url};
use super::push::upload_location;
use crate::oci::{BlobTail, Digest};

/// A blob whose bytes arrive while it is written: `read` waits for more and returns 0 at the
/// end, after which `digest` names the blob (`None`: the writer gave up, and `read` failed).
pub trait GrowingBlob: Read + Send + 'static {
    /// The finished blob's digest.
    fn digest(&self) -> Option<Digest>;
}

impl GrowingBlob for BlobTail {
    fn digest(&self) -> Option<Digest> {
        BlobTail::digest(self).cloned()
    }
}

impl Client {
    /// Uploads `blob` to `repository` as it is written; returns its digest and size once the
    /// registry has it under that digest.
    pub async fn upload_growing_blob(
        &self,
        repository: &Repository,
        blob: impl GrowingBlob,
    ) -> Result<(Digest, u64)> {
        let ep = self.endpoint(&repository.registry)?;
        let base = self.base_url(&ep).await?;
        let scopes = [Scope::push(&repository.name)];
        let url = repo_url(&base, &repository.name, "blobs/uploads/")?;
        let start = Req::new(Method::POST, url.clone()).header(CONTENT_LENGTH, "0");
        let resp = self.send(&ep, &scopes, &start).await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(api_error(&start.method, &url, resp).await.into());
        }
        let location = upload_location(&start, &resp)?;
        let result = self
            .upload_chunks_as_written(repository, &ep, &scopes, location.clone(), blob)
            .await;
        if result.is_err() {
            // Cancelling only frees the session early; the registry expires it anyway (as it
            // does the session of an upload dropped because its build failed).
            let cancel = Req::new(Method::DELETE, location);
            let _ = self.send(&ep, &scopes, &cancel).await;
        }
        result
    }

    /// Sends `blob` to the upload session at `location`, chunk by chunk as it grows, then
    /// commits it under the digest its writer ends with.
    async fn upload_chunks_as_written(
        &self,
        repository: &Repository,
        ep: &Endpoint,
        scopes: &[Scope],
        mut location: reqwest::Url,
        blob: impl GrowingBlob,
    ) -> Result<(Digest, u64)> {
        let chunk_size = self.options().chunk_size.max(1);
        let mut blob = Some(blob);
        let mut offset = 0u64;
        loop {
            let mut reader = blob.take().ok_or(Error::TaskFailed("blob reader"))?;
            let (reader, read) = tokio::task::spawn_blocking(move || {
                let mut chunk = Vec::new();
                let read = (&mut reader).take(chunk_size).read_to_end(&mut chunk);
                (reader, read.map(|_| chunk))
            })
            .await
            .map_err(|_| Error::TaskFailed("blob reader"))?;
            let chunk = read.map_err(|source| Error::GrowingBlob {
                repository: repository.to_string(),
                source,
            })?;
            let ended = (chunk.len() as u64) < chunk_size;
            blob = Some(reader);
            if !chunk.is_empty() {
                let end = offset + chunk.len() as u64 - 1;
                let patch = Req::new(Method::PATCH, location.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_RANGE, &format!("{offset}-{end}"))
                    .body(Bytes::from(chunk));
                let resp = self.send(ep, scopes, &patch).await?;
                if resp.status() != StatusCode::ACCEPTED {
                    return Err(api_error(&patch.method, &location, resp).await.into());
                }
                location = upload_location(&patch, &resp)?;
                offset = end + 1;
            }
            if ended {
                break;
            }
        }
        let digest = blob
            .and_then(|b| b.digest())
            .ok_or_else(|| Error::GrowingBlob {
                repository: repository.to_string(),
                source: io::Error::other("the blob ended without a digest"),
            })?;
        let mut url = location;
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let put = Req::new(Method::PUT, url.clone()).header(CONTENT_LENGTH, "0");
        let resp = self.send(ep, scopes, &put).await?;
        if !resp.status().is_success() {
            return Err(api_error(&put.method, &url, resp).await.into());
        }
        Ok((digest, offset))
    }
}
