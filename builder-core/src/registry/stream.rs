//! Uploading a blob while it is still being written, the way `docker push` sends a layer: one
//! upload session, one `PATCH` whose body streams the bytes as they come, and the closing
//! `PUT` naming the digest, which is known only once the last byte is written.
//!
//! A build uses it to send a layer to the push destination while later steps run, so the push
//! at the end finds the blob there. It is an optimisation, never the only way a blob gets
//! pushed: on any failure the session is cancelled and the ordinary push uploads the blob.

use std::io::{self, Read};

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, StatusCode};

use super::auth::{Scope, scope_key};
use super::client::{Client, Endpoint, Req, api_error, transport_error};
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

/// How much of the blob one piece of the request body holds at most.
const PIECE: usize = 1 << 20;

/// Pieces read ahead of the connection.
const PIECES_AHEAD: usize = 4;

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
        let result = self.stream_into(&ep, &scopes, &location, blob).await;
        if result.is_err() {
            // Cancelling only frees the session early; the registry expires it anyway.
            let cancel = Req::new(Method::DELETE, location);
            let _ = self.send(&ep, &scopes, &cancel).await;
        }
        result
    }

    async fn stream_into(
        &self,
        ep: &Endpoint,
        scopes: &[Scope],
        location: &reqwest::Url,
        blob: impl GrowingBlob,
    ) -> Result<(Digest, u64)> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(PIECES_AHEAD);
        let reading = tokio::task::spawn_blocking(move || {
            let mut blob = blob;
            let mut size = 0u64;
            loop {
                let mut piece = vec![0u8; PIECE];
                let n = match blob.read(&mut piece) {
                    Ok(0) => return Ok((blob.digest(), size)),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
                        return Err(Some(e));
                    }
                };
                piece.truncate(n);
                size += n as u64;
                if tx.blocking_send(Ok(Bytes::from(piece))).is_err() {
                    // The request ended first; it says why.
                    return Err(None);
                }
            }
        });
        let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let auth = self.authorization(ep, &scope_key(scopes), None).await?;
        let mut patch = ep
            .http
            .request(Method::PATCH, location.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(reqwest::Body::wrap_stream(body));
        if let Some(a) = auth {
            patch = patch.header(AUTHORIZATION, a);
        }
        let sent = patch.send().await;
        // The reader ends with the blob, or as soon as the request is gone.
        let read = reading
            .await
            .map_err(|_| Error::TaskFailed("blob reader"))?;
        let (resp, (digest, size)) = match (sent, read) {
            // A blob the writer gave up on ends the body with an error: say that, not what the
            // connection made of it.
            (_, Err(Some(e))) => return Err(Error::GrowingBlob(e)),
            (Err(e), _) => return Err(transport_error(&Method::PATCH, location, e)),
            (Ok(resp), Ok(read)) if resp.status() == StatusCode::ACCEPTED => (resp, read),
            (Ok(resp), _) => {
                return Err(api_error(&Method::PATCH, location, resp).await.into());
            }
        };
        let next = upload_location(&Req::new(Method::PATCH, location.clone()), &resp)?;
        let digest = digest.ok_or_else(|| {
            Error::GrowingBlob(io::Error::other("the blob ended without a digest"))
        })?;
        let mut url = next;
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let put = Req::new(Method::PUT, url.clone()).header(CONTENT_LENGTH, "0");
        let resp = self.send(ep, scopes, &put).await?;
        if !resp.status().is_success() {
            return Err(api_error(&put.method, &url, resp).await.into());
        }
        Ok((digest, size))
    }
}
