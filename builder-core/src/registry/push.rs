//! Pushing an image: for each blob a `HEAD` (present: skip), else a cross-repository mount
//! from a known repository on the same registry, else an upload, monolithic for small blobs
//! and chunked for large ones. A chunked upload that breaks asks the registry how much it has
//! (`GET` on the upload URL, `Range`) and continues from there; only when the registry has lost
//! the session does it start over. Then the manifest is put once per tag, unless no blob had to
//! be sent and a `HEAD` shows the tag already names it.
//!
//! Memory stays flat: at most one chunk per blob in flight is held, read from the image on a
//! blocking thread.

use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt as _;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Method, Response, StatusCode, Url};

use super::auth::Scope;
use super::client::{Client, Endpoint, Req, api_error};
use super::error::{Error, ErrorCode, Result};
use super::manifest::{Repository, accept_header, repo_url};
use crate::oci::layout::from_oci_digest;
use crate::oci::{Digest, Image, Reference, media};

/// Hears about each blob as a push goes; called from the client's threads.
pub trait PushProgress: Send + Sync {
    /// A blob is about to be checked and, if needed, sent.
    fn blob_started(&self, _digest: &Digest, _size: u64) {}
    /// `sent` of `size` bytes of the blob have gone out (it can step back after a resume).
    fn blob_progress(&self, _digest: &Digest, _sent: u64, _size: u64) {}
    /// The blob is in the repository.
    fn blob_finished(&self, _digest: &Digest, _outcome: &BlobOutcome) {}
}

/// How a blob got into the destination repository.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobOutcome {
    /// It was there already.
    Exists,
    /// Mounted from another repository on the same registry.
    Mounted {
        /// The repository it came from.
        from: String,
    },
    /// An earlier push put it there (see [`PushOptions::present`]); not checked again.
    Known,
    /// Uploaded.
    Uploaded {
        /// Requests sent (1 for a monolithic upload).
        requests: u32,
        /// Times a broken upload continued from the registry's reported offset.
        resumed: u32,
        /// Times the registry had lost the session and the upload started over.
        restarted: u32,
    },
}

/// One blob of a push.
#[derive(Debug, Clone)]
pub struct BlobReport {
    /// The repository it was pushed to.
    pub repository: Repository,
    /// The blob.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// What happened.
    pub outcome: BlobOutcome,
}

/// One destination of a push.
#[derive(Debug, Clone)]
pub struct TagReport {
    /// The destination.
    pub reference: Reference,
    /// What docker prints for it: `latest: digest: sha256:… size: 528`.
    pub line: String,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct PushReport {
    /// The manifest digest.
    pub digest: Digest,
    /// The manifest size.
    pub size: u64,
    /// One entry per destination, in the order given.
    pub tags: Vec<TagReport>,
    /// One entry per blob and destination repository.
    pub blobs: Vec<BlobReport>,
}

/// How to push.
#[derive(Clone, Default)]
pub struct PushOptions {
    /// Repositories that may already hold some of the blobs (the base image's): a blob missing
    /// from the destination is mounted from one on the same registry instead of uploaded.
    pub mount_from: Vec<Repository>,
    /// Progress for each blob.
    pub progress: Option<Arc<dyn PushProgress>>,
    /// Blobs an earlier push left in a repository: they are not checked again, which saves a
    /// round trip per blob on a warm rebuild. If the registry then refuses a manifest (one of
    /// them was deleted since), that destination's blobs are all checked and the manifest is
    /// put again.
    pub present: HashSet<(Repository, Digest)>,
    /// Blobs the caller has just uploaded itself (while the image was being built): the
    /// manifest that uses them is new, so the push does not ask whether a tag names it.
    pub sent: HashSet<Digest>,
}

impl fmt::Debug for PushOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushOptions")
            .field("mount_from", &self.mount_from)
            .field("progress", &self.progress.is_some())
            .field("present", &self.present.len())
            .field("sent", &self.sent.len())
            .finish()
    }
}

/// A blob to push.
#[derive(Debug, Clone)]
struct BlobSpec {
    digest: Digest,
    size: u64,
}

/// Where one destination repository is pushed, and the token scopes for it.
struct Target<'a> {
    ep: Arc<Endpoint>,
    base: Url,
    repository: Repository,
    scopes: Vec<Scope>,
    mount_from: Vec<Repository>,
    image: &'a dyn Image,
    progress: Option<Arc<dyn PushProgress>>,
    /// Blobs taken as present without asking (empty on a second attempt).
    present: &'a HashSet<(Repository, Digest)>,
}

/// Whether neither the push nor the caller (`sent`) sent `repository` any of its blobs: all were
/// there, so its manifest may be too.
fn nothing_sent(blobs: &[BlobReport], repository: &Repository, sent: &HashSet<Digest>) -> bool {
    blobs
        .iter()
        .filter(|b| b.repository == *repository)
        .all(|b| {
            matches!(b.outcome, BlobOutcome::Exists | BlobOutcome::Known)
                && !sent.contains(&b.digest)
        })
}

/// Runs a blocking call on a multi-threaded runtime without stalling its other tasks.
fn blocking_call<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

impl Client {
    /// Pushes `image` to every destination (same or different repositories and registries),
    /// blobs first, then the manifest per tag.
    pub async fn push(
        &self,
        image: &dyn Image,
        destinations: &[Reference],
        options: &PushOptions,
    ) -> Result<PushReport> {
        let raw_manifest = blocking_call(|| image.raw_manifest())?;
        let manifest = blocking_call(|| image.manifest())?;
        let digest = Digest::of(&raw_manifest);
        let media_type = manifest
            .media_type()
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_else(|| media::OCI_MANIFEST.to_string());
        let invalid = |e: crate::oci::digest::DigestParseError| Error::InvalidManifest {
            reference: destinations
                .first()
                .map(Reference::to_string)
                .unwrap_or_default(),
            source: Box::new(e),
        };
        let mut blobs = vec![BlobSpec {
            digest: from_oci_digest(manifest.config().digest()).map_err(invalid)?,
            size: manifest.config().size(),
        }];
        for layer in manifest.layers() {
            let d = from_oci_digest(layer.digest()).map_err(invalid)?;
            if !blobs.iter().any(|b| b.digest == d) {
                blobs.push(BlobSpec {
                    digest: d,
                    size: layer.size(),
                });
            }
        }
        for dest in destinations {
            if dest.tag().is_none() && dest.digest().is_none() {
                return Err(Error::InvalidDestination(dest.to_string()));
            }
        }

        let mut report = PushReport {
            digest: digest.clone(),
            size: raw_manifest.len() as u64,
            tags: Vec::new(),
            blobs: Vec::new(),
        };
        let mut done: Vec<(Repository, Vec<Scope>)> = Vec::new();
        let manifest_bytes = Bytes::from(raw_manifest);
        let nothing_known = HashSet::new();
        for dest in destinations {
            let repository = Repository::of(dest);
            if !done.iter().any(|(r, _)| *r == repository) {
                let mount_from: Vec<Repository> = options
                    .mount_from
                    .iter()
                    .chain(done.iter().map(|(r, _)| r))
                    .filter(|r| r.registry == repository.registry && r.name != repository.name)
                    .cloned()
                    .collect();
                let ep = self.endpoint(&repository.registry)?;
                let base = self.base_url(&ep).await?;
                let mut scopes = vec![Scope::push(&repository.name)];
                scopes.extend(mount_from.iter().map(|r| Scope::pull(&r.name)));
                let target = Target {
                    ep,
                    base,
                    repository: repository.clone(),
                    scopes: scopes.clone(),
                    mount_from,
                    image,
                    progress: options.progress.clone(),
                    present: &options.present,
                };
                report.blobs.extend(self.push_blobs(&target, &blobs).await?);
                done.push((repository.clone(), scopes));
                let put = if nothing_sent(&report.blobs, &repository, &options.sent)
                    && self
                        .names_manifest(dest, &target.scopes, &media_type, &digest)
                        .await
                {
                    Ok(())
                } else {
                    self.put_manifest(dest, &target.scopes, &media_type, &manifest_bytes, &digest)
                        .await
                };
                let trusted = report
                    .blobs
                    .iter()
                    .any(|b| b.repository == repository && b.outcome == BlobOutcome::Known);
                match put {
                    Err(e) if trusted => {
                        tracing::debug!(error = %e, %repository, "manifest refused after blobs were taken as present; checking them");
                        let checked = Target {
                            present: &nothing_known,
                            ..target
                        };
                        let again = self.push_blobs(&checked, &blobs).await?;
                        report.blobs.retain(|b| b.repository != repository);
                        report.blobs.extend(again);
                        self.put_manifest(
                            dest,
                            &checked.scopes,
                            &media_type,
                            &manifest_bytes,
                            &digest,
                        )
                        .await?;
                    }
                    other => other?,
                }
            } else {
                let scopes = done
                    .iter()
                    .find(|(r, _)| *r == repository)
                    .map(|(_, s)| s.clone())
                    .unwrap_or_default();
                if !(nothing_sent(&report.blobs, &repository, &options.sent)
                    && self
                        .names_manifest(dest, &scopes, &media_type, &digest)
                        .await)
                {
                    self.put_manifest(dest, &scopes, &media_type, &manifest_bytes, &digest)
                        .await?;
                }
            }
            let name = match (dest.tag(), dest.digest()) {
                (Some(t), _) => t.to_string(),
                (None, Some(d)) => d.to_string(),
                (None, None) => String::new(),
            };
            report.tags.push(TagReport {
                reference: dest.clone(),
                line: format!("{name}: digest: {digest} size: {}", report.size),
            });
        }
        Ok(report)
    }

    /// Puts every blob of `blobs` into the target repository, `concurrency` at a time.
    async fn push_blobs(&self, target: &Target<'_>, blobs: &[BlobSpec]) -> Result<Vec<BlobReport>> {
        let limit = self.options().concurrency.max(1);
        let pending: Vec<_> = blobs.iter().map(|b| self.push_blob(target, b)).collect();
        let mut results = futures_util::stream::iter(pending).buffer_unordered(limit);
        let mut reports = Vec::with_capacity(blobs.len());
        // The first failure ends the push; dropping the stream cancels the rest.
        while let Some(r) = results.next().await {
            reports.push(r?);
        }
        Ok(reports)
    }

    /// Whether `dest` already names the manifest `digest` (a `HEAD`), so that putting it again
    /// would change nothing but send the registry's push notifications. Any doubt (an error, no
    /// digest in the answer) says no.
    async fn names_manifest(
        &self,
        dest: &Reference,
        scopes: &[Scope],
        media_type: &str,
        digest: &Digest,
    ) -> bool {
        let repository = Repository::of(dest);
        let Ok(ep) = self.endpoint(&repository.registry) else {
            return false;
        };
        let Ok(base) = self.base_url(&ep).await else {
            return false;
        };
        let name = match dest.tag() {
            Some(t) => t.to_string(),
            None => digest.to_string(),
        };
        let Ok(url) = repo_url(&base, &repository.name, &format!("manifests/{name}")) else {
            return false;
        };
        // Every manifest type is accepted, so that a tag naming an index is not answered with
        // one of its platforms' manifests.
        let req = Req::new(Method::HEAD, url).header(ACCEPT, &accept_header());
        match self.send(&ep, scopes, &req).await {
            Ok(resp) if resp.status().is_success() => {
                let header = |name| resp.headers().get(name).and_then(|v| v.to_str().ok());
                header("Docker-Content-Digest").is_some_and(|d| d == digest.to_string())
                    && header(CONTENT_TYPE.as_str()).is_some_and(|t| t == media_type)
            }
            _ => false,
        }
    }

    async fn put_manifest(
        &self,
        dest: &Reference,
        scopes: &[Scope],
        media_type: &str,
        bytes: &Bytes,
        digest: &Digest,
    ) -> Result<()> {
        let repository = Repository::of(dest);
        let ep = self.endpoint(&repository.registry)?;
        let base = self.base_url(&ep).await?;
        let name = match (dest.tag(), dest.digest()) {
            (Some(t), _) => t.to_string(),
            _ => digest.to_string(),
        };
        let url = repo_url(&base, &repository.name, &format!("manifests/{name}"))?;
        let req = Req::new(Method::PUT, url.clone())
            .header(CONTENT_TYPE, media_type)
            .body(bytes.clone());
        let resp = self.send(&ep, scopes, &req).await?;
        if !resp.status().is_success() {
            return Err(api_error(&req.method, &url, resp).await.into());
        }
        if let Some(reported) = resp
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            && reported != digest.to_string()
        {
            return Err(Error::ManifestDigestChanged {
                reference: dest.to_string(),
                expected: digest.clone(),
                actual: reported.to_string(),
            });
        }
        Ok(())
    }

    async fn push_blob(&self, t: &Target<'_>, blob: &BlobSpec) -> Result<BlobReport> {
        if let Some(p) = &t.progress {
            p.blob_started(&blob.digest, blob.size);
        }
        let outcome = self.push_blob_inner(t, blob).await?;
        if let Some(p) = &t.progress {
            p.blob_finished(&blob.digest, &outcome);
        }
        tracing::debug!(repository = %t.repository, digest = %blob.digest, ?outcome, "blob pushed");
        Ok(BlobReport {
            repository: t.repository.clone(),
            digest: blob.digest.clone(),
            size: blob.size,
            outcome,
        })
    }

    async fn push_blob_inner(&self, t: &Target<'_>, blob: &BlobSpec) -> Result<BlobOutcome> {
        if t.present
            .contains(&(t.repository.clone(), blob.digest.clone()))
        {
            return Ok(BlobOutcome::Known);
        }
        let blob_url = repo_url(
            &t.base,
            &t.repository.name,
            &format!("blobs/{}", blob.digest),
        )?;
        let head = Req::new(Method::HEAD, blob_url.clone());
        let resp = self.send(&t.ep, &t.scopes, &head).await?;
        if resp.status().is_success() {
            return Ok(BlobOutcome::Exists);
        }
        if resp.status() != StatusCode::NOT_FOUND {
            return Err(api_error(&head.method, &blob_url, resp).await.into());
        }

        let mut location = None;
        for from in &t.mount_from {
            let mut url = repo_url(&t.base, &t.repository.name, "blobs/uploads/")?;
            url.query_pairs_mut()
                .append_pair("mount", &blob.digest.to_string())
                .append_pair("from", &from.name);
            let req = Req::new(Method::POST, url.clone()).header(CONTENT_LENGTH, "0");
            match self.send(&t.ep, &t.scopes, &req).await {
                Ok(resp) if resp.status() == StatusCode::CREATED => {
                    return Ok(BlobOutcome::Mounted {
                        from: from.name.clone(),
                    });
                }
                Ok(resp) if resp.status() == StatusCode::ACCEPTED => {
                    // The registry started an ordinary upload instead; use it.
                    location = Some(upload_location(&req, &resp)?);
                    break;
                }
                Ok(resp) => {
                    let e = api_error(&req.method, &url, resp).await;
                    tracing::debug!(error = %e, "mount failed; uploading instead");
                }
                Err(e) => tracing::debug!(error = %e, "mount failed; uploading instead"),
            }
        }
        let location = match location {
            Some(l) => l,
            None => self.start_upload(t).await?,
        };
        if blob.size <= self.options().monolithic_threshold {
            self.upload_monolithic(t, blob, location).await
        } else {
            self.upload_chunked(t, blob, location).await
        }
    }

    async fn start_upload(&self, t: &Target<'_>) -> Result<Url> {
        let url = repo_url(&t.base, &t.repository.name, "blobs/uploads/")?;
        let req = Req::new(Method::POST, url.clone()).header(CONTENT_LENGTH, "0");
        let resp = self.send(&t.ep, &t.scopes, &req).await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(api_error(&req.method, &url, resp).await.into());
        }
        upload_location(&req, &resp)
    }

    fn open_blob(&self, t: &Target<'_>, blob: &BlobSpec) -> Result<BlobCursor> {
        let reader = blocking_call(|| t.image.open_blob(&blob.digest))?;
        Ok(BlobCursor {
            reader: Some(reader),
            position: 0,
        })
    }

    fn progress_fn(
        &self,
        t: &Target<'_>,
        blob: &BlobSpec,
        offset: u64,
    ) -> Option<Arc<dyn Fn(u64) + Send + Sync>> {
        let p = t.progress.clone()?;
        let digest = blob.digest.clone();
        let size = blob.size;
        Some(Arc::new(move |sent| {
            p.blob_progress(&digest, offset + sent, size)
        }))
    }

    async fn upload_monolithic(
        &self,
        t: &Target<'_>,
        blob: &BlobSpec,
        mut location: Url,
    ) -> Result<BlobOutcome> {
        let mut cursor = self.open_blob(t, blob)?;
        let bytes = cursor.read_chunk(blob, blob.size).await?;
        let (mut requests, mut restarted) = (0, 0);
        loop {
            requests += 1;
            let mut url = location.clone();
            url.query_pairs_mut()
                .append_pair("digest", &blob.digest.to_string());
            let mut req = Req::new(Method::PUT, url.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(bytes.clone());
            req.retry = false;
            req.progress = self.progress_fn(t, blob, 0);
            let retries_left = restarted < self.options().retries;
            let delay = match self.send(&t.ep, &t.scopes, &req).await {
                Ok(resp) if resp.status().is_success() => {
                    return Ok(BlobOutcome::Uploaded {
                        requests,
                        resumed: 0,
                        restarted,
                    });
                }
                Ok(resp) if is_transient(resp.status()) && retries_left => {
                    self.retry_policy().retry_after(resp.headers())
                }
                Ok(resp) => return Err(api_error(&req.method, &url, resp).await.into()),
                Err(Error::Connection { .. } | Error::Timeout { .. }) if retries_left => None,
                Err(e) => return Err(e),
            };
            self.pause(restarted, delay).await;
            restarted += 1;
            // A half-received PUT may have left bytes in the session: start a fresh one.
            location = self.start_upload(t).await?;
        }
    }

    async fn pause(&self, attempt: u32, requested: Option<std::time::Duration>) {
        let delay = requested.unwrap_or_else(|| self.retry_policy().backoff(attempt));
        tokio::time::sleep(delay).await;
    }

    /// Where an upload stands: the next upload URL and how many bytes the registry holds.
    async fn upload_status(&self, t: &Target<'_>, location: &Url) -> Result<(Url, u64)> {
        let req = Req::new(Method::GET, location.clone());
        let resp = self.send(&t.ep, &t.scopes, &req).await?;
        if !resp.status().is_success() {
            return Err(api_error(&req.method, location, resp).await.into());
        }
        let next = upload_location(&req, &resp).unwrap_or_else(|_| location.clone());
        let have = resp
            .headers()
            .get(RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_range_end)
            .map_or(0, |end| end + 1);
        Ok((next, have))
    }

    async fn upload_chunked(
        &self,
        t: &Target<'_>,
        blob: &BlobSpec,
        mut location: Url,
    ) -> Result<BlobOutcome> {
        let chunk_size = self.options().chunk_size.max(1);
        let retries = self.options().retries;
        let mut cursor = self.open_blob(t, blob)?;
        let mut chunk = Bytes::new();
        let mut chunk_start = 0u64;
        let mut offset = 0u64;
        let (mut requests, mut resumed, mut restarted, mut failures) = (0u32, 0u32, 0u32, 0u32);
        while offset < blob.size {
            let chunk_end = chunk_start + chunk.len() as u64;
            if offset < chunk_start || offset >= chunk_end {
                if offset < cursor.position {
                    cursor = self.open_blob(t, blob)?;
                }
                cursor.skip_to(blob, offset).await?;
                chunk = cursor
                    .read_chunk(blob, chunk_size.min(blob.size - offset))
                    .await?;
                chunk_start = offset;
            }
            let piece = chunk.slice((offset - chunk_start) as usize..);
            let end = offset + piece.len() as u64 - 1;
            let mut req = Req::new(Method::PATCH, location.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(reqwest::header::CONTENT_RANGE, &format!("{offset}-{end}"))
                .body(piece);
            req.retry = false;
            req.progress = self.progress_fn(t, blob, offset);
            requests += 1;
            let retries_left = failures < retries;
            let delay = match self.send(&t.ep, &t.scopes, &req).await {
                Ok(resp) if resp.status().is_success() => {
                    location = upload_location(&req, &resp)?;
                    offset = end + 1;
                    failures = 0;
                    continue;
                }
                Ok(resp) if is_transient(resp.status()) && retries_left => {
                    self.retry_policy().retry_after(resp.headers())
                }
                Ok(resp) => {
                    let e = api_error(&req.method, &location, resp).await;
                    let lost = e.has_code(&ErrorCode::BlobUploadInvalid)
                        || e.has_code(&ErrorCode::BlobUploadUnknown);
                    if !lost || restarted >= retries {
                        return Err(e.into());
                    }
                    location = self.start_upload(t).await?;
                    offset = 0;
                    restarted += 1;
                    continue;
                }
                Err(e @ (Error::Connection { .. } | Error::Timeout { .. })) if retries_left => {
                    tracing::debug!(error = %e, "chunk upload broke; asking the registry where it stands");
                    None
                }
                Err(e) => return Err(e),
            };
            self.pause(failures, delay).await;
            failures += 1;
            match self.upload_status(t, &location).await {
                Ok((next, have)) if have <= blob.size => {
                    location = next;
                    offset = have;
                    resumed += 1;
                }
                Ok(_) | Err(_) if restarted < retries => {
                    tracing::debug!("the registry lost the upload; starting it again");
                    location = self.start_upload(t).await?;
                    offset = 0;
                    restarted += 1;
                }
                Ok(_) => {
                    return Err(Error::BlobSize {
                        digest: blob.digest.clone(),
                        expected: blob.size,
                        actual: offset,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        let mut url = location.clone();
        url.query_pairs_mut()
            .append_pair("digest", &blob.digest.to_string());
        let req = Req::new(Method::PUT, url.clone()).header(CONTENT_LENGTH, "0");
        requests += 1;
        let resp = self.send(&t.ep, &t.scopes, &req).await?;
        if !resp.status().is_success() {
            return Err(api_error(&req.method, &url, resp).await.into());
        }
        Ok(BlobOutcome::Uploaded {
            requests,
            resumed,
            restarted,
        })
    }
}

fn is_transient(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// The `Location` of an upload response, resolved against the request URL.
pub(super) fn upload_location(req: &Req, resp: &Response) -> Result<Url> {
    resp.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| req.url.join(l).ok())
        .ok_or_else(|| Error::MissingHeader {
            method: req.method.to_string(),
            url: req.url.to_string(),
            header: "Location",
        })
}

/// The last byte of a `Range: 0-1234` (or `bytes=0-1234`) header.
fn parse_range_end(range: &str) -> Option<u64> {
    let r = range.trim().trim_start_matches("bytes=");
    let (start, end) = r.split_once('-')?;
    let (start, end): (u64, u64) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
    // distribution reports an empty upload as `0-0`; one byte would also be `0-0`, and a
    // wrong guess costs a restart, so read it as empty.
    if start == 0 && end == 0 {
        return None;
    }
    Some(end)
}

/// A blob being read for upload, from a blocking thread.
struct BlobCursor {
    reader: Option<Box<dyn Read + Send>>,
    position: u64,
}

impl BlobCursor {
    /// Reads up to `len` bytes (exactly `len` unless the blob ends, which is an error).
    async fn read_chunk(&mut self, blob: &BlobSpec, len: u64) -> Result<Bytes> {
        let mut reader = self.reader.take().ok_or(Error::TaskFailed("blob reader"))?;
        let digest = blob.digest.clone();
        let (reader, result) = tokio::task::spawn_blocking(move || {
            let mut buf = Vec::with_capacity(len as usize);
            let r = (&mut reader).take(len).read_to_end(&mut buf).map(|_| buf);
            (reader, r)
        })
        .await
        .map_err(|_| Error::TaskFailed("blob reader"))?;
        self.reader = Some(reader);
        let buf = result.map_err(|source| Error::ReadBlob { digest, source })?;
        if (buf.len() as u64) < len {
            return Err(Error::BlobSize {
                digest: blob.digest.clone(),
                expected: blob.size,
                actual: self.position + buf.len() as u64,
            });
        }
        self.position += buf.len() as u64;
        Ok(Bytes::from(buf))
    }

    /// Reads forward, discarding, to `offset`.
    async fn skip_to(&mut self, blob: &BlobSpec, offset: u64) -> Result<()> {
        let skip = offset.saturating_sub(self.position);
        if skip == 0 {
            return Ok(());
        }
        let mut reader = self.reader.take().ok_or(Error::TaskFailed("blob reader"))?;
        let digest = blob.digest.clone();
        let (reader, result) = tokio::task::spawn_blocking(move || {
            let r = std::io::copy(&mut (&mut reader).take(skip), &mut std::io::sink());
            (reader, r)
        })
        .await
        .map_err(|_| Error::TaskFailed("blob reader"))?;
        self.reader = Some(reader);
        let skipped = result.map_err(|source| Error::ReadBlob { digest, source })?;
        self.position += skipped;
        if skipped < skip {
            return Err(Error::BlobSize {
                digest: blob.digest.clone(),
                expected: blob.size,
                actual: self.position,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_headers() {
        assert_eq!(parse_range_end("0-1023"), Some(1023));
        assert_eq!(parse_range_end("bytes=0-9"), Some(9));
        assert_eq!(parse_range_end("0-0"), None);
        assert_eq!(parse_range_end("junk"), None);
    }
}
