//! A blocking facade for the synchronous build: it owns a small multi-threaded runtime and
//! runs each call on a fresh scoped thread, so it works from any thread, including one that is
//! itself inside some other async runtime (where blocking in place would panic).

use std::future::Future;
use std::path::PathBuf;

use tokio::runtime::{Handle, Runtime};

use super::client::{Client, ClientOptions};
use super::error::{Error, Result};
use super::manifest::{RawManifest, Repository, ResolvedImage};
use super::pull::RemoteImage;
use super::push::{PushOptions, PushReport};
use super::stream::GrowingBlob;
use crate::oci::{Digest, Image, OciLayout, Platform, Reference};

/// Runs `future` to completion on `runtime` from a dedicated thread and waits for it.
pub(crate) fn block_on<F>(runtime: &Handle, future: F) -> Result<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| runtime.block_on(future))
            .join()
            .map_err(|_| Error::TaskFailed("registry request"))
    })
}

/// The registry client for synchronous callers.
#[derive(Debug)]
pub struct BlockingClient {
    client: Client,
    runtime: Runtime,
    /// Background uploads running at once: the push's `concurrency`, so that many layers
    /// written in a row hold one chunk each only for the uploads actually sending.
    upload_slots: std::sync::Arc<tokio::sync::Semaphore>,
}

impl BlockingClient {
    /// A client with `options` and its own two-thread runtime.
    pub fn new(options: ClientOptions) -> Result<BlockingClient> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kiln-registry")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let upload_slots =
            std::sync::Arc::new(tokio::sync::Semaphore::new(options.concurrency.max(1)));
        Ok(BlockingClient {
            client: Client::new(options)?,
            runtime,
            upload_slots,
        })
    }

    /// The async client inside, sharing connections and tokens.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The runtime handle async work runs on.
    pub fn handle(&self) -> &Handle {
        self.runtime.handle()
    }

    fn run<F>(&self, future: F) -> Result<F::Output>
    where
        F: Future + Send,
        F::Output: Send,
    {
        block_on(self.runtime.handle(), future)
    }

    /// See [`Client::resolve`].
    pub fn resolve(&self, reference: &Reference, platform: &Platform) -> Result<ResolvedImage> {
        self.run(self.client.resolve(reference, platform))?
    }

    /// See [`Client::fetch_manifest`].
    pub fn fetch_manifest(
        &self,
        repository: &Repository,
        tag_or_digest: &str,
        reference: &Reference,
    ) -> Result<RawManifest> {
        self.run(
            self.client
                .fetch_manifest(repository, tag_or_digest, reference),
        )?
    }

    /// See [`Client::pull`]. The image's blocking methods use this client's runtime.
    pub fn pull(
        &self,
        reference: &Reference,
        platform: &Platform,
        store: &OciLayout,
    ) -> Result<RemoteImage> {
        self.run(self.client.pull(reference, platform, store))?
    }

    /// See [`Client::fetch_blob`].
    pub fn fetch_blob(
        &self,
        repository: &Repository,
        digest: &Digest,
        store: &OciLayout,
    ) -> Result<()> {
        self.run(self.client.fetch_blob(repository, digest, store))?
    }

    /// See [`Client::push`].
    pub fn push(
        &self,
        image: &dyn Image,
        destinations: &[Reference],
        options: &PushOptions,
    ) -> Result<PushReport> {
        self.run(self.client.push(image, destinations, options))?
    }

    /// Starts [`Client::upload_growing_blob`] in the background, on this client's runtime; at
    /// most `concurrency` of them send at once, the others wait their turn.
    pub fn start_growing_upload(
        &self,
        repository: &Repository,
        blob: impl GrowingBlob,
    ) -> BackgroundUpload {
        let (client, repository) = (self.client.clone(), repository.clone());
        let slots = self.upload_slots.clone();
        let task = self.runtime.spawn(async move {
            let _slot = slots
                .acquire_owned()
                .await
                .map_err(|_| Error::TaskFailed("upload"))?;
            client.upload_growing_blob(&repository, blob).await
        });
        BackgroundUpload {
            task: Some(task),
            runtime: self.runtime.handle().clone(),
        }
    }

    /// See [`Client::login`].
    pub fn login(&self, registry: &str, username: &str, password: &str) -> Result<PathBuf> {
        self.run(self.client.login(registry, username, password))?
    }

    /// See [`Client::logout`].
    pub fn logout(&self, registry: &str) -> Result<bool> {
        self.client.logout(registry)
    }
}

/// An upload running in the background; dropped before [`wait`](Self::wait), it is cancelled.
#[derive(Debug)]
pub struct BackgroundUpload {
    task: Option<tokio::task::JoinHandle<Result<(Digest, u64)>>>,
    runtime: Handle,
}

impl BackgroundUpload {
    /// Waits for the upload; returns the blob's digest and size.
    pub fn wait(mut self) -> Result<(Digest, u64)> {
        let task = self.task.take().ok_or(Error::TaskFailed("upload"))?;
        block_on(&self.runtime, task)?.map_err(|_| Error::TaskFailed("upload"))?
    }
}

impl Drop for BackgroundUpload {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
