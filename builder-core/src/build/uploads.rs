//! Sending the image's layers to the push destination while the build goes on.
//!
//! A layer built for the image is sent to the first tag's repository as it is written (see
//! [`crate::registry::GrowingBlob`]), while the next steps run. The push at the end then finds
//! the blob there and only writes the manifest, so a large COPY or RUN no longer waits for its
//! upload after the last step. Only the stages whose layers end up in the image send theirs; a
//! layer whose upload fails is uploaded by the push as usual, so this never fails a build.

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::oci::{BlobTail, Digest, Reference};
use crate::plan::{Base, Plan};
use crate::registry::{BackgroundUpload, BlockingClient, Repository};

/// The uploads of one build.
pub(super) struct LayerUploads<'a> {
    client: &'a BlockingClient,
    repository: Repository,
    /// The stages whose layers are the image's: the target and the stages it is built on.
    stages: BTreeSet<usize>,
    running: Mutex<Vec<BackgroundUpload>>,
}

impl<'a> LayerUploads<'a> {
    /// Uploads to the repository of `tag` for the image `plan` builds.
    pub(super) fn new(client: &'a BlockingClient, tag: &Reference, plan: &Plan) -> Self {
        let mut stages = BTreeSet::new();
        let mut stage = Some(plan.target);
        while let Some(i) = stage.filter(|i| stages.insert(*i)) {
            stage = match plan.stages.get(&i).map(|s| &s.base) {
                Some(Base::Stage(j)) => Some(*j),
                _ => None,
            };
        }
        LayerUploads {
            client,
            repository: Repository::of(tag),
            stages,
            running: Mutex::new(Vec::new()),
        }
    }

    /// Whether the layers of `stage` go into the image.
    pub(super) fn wants(&self, stage: usize) -> bool {
        self.stages.contains(&stage)
    }

    /// Starts sending the layer `tail` reads as it is written.
    pub(super) fn start(&self, tail: BlobTail) {
        let upload = self.client.start_growing_upload(&self.repository, tail);
        if let Ok(mut running) = self.running.lock() {
            running.push(upload);
        }
    }

    /// Waits for every upload; returns the layers the registry now has.
    pub(super) fn finish(self) -> BTreeSet<Digest> {
        let running = self.running.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut sent = BTreeSet::new();
        for upload in running {
            // Each was started when its layer was written; most are done by now.
            match upload.wait() {
                Ok((digest, _)) => {
                    sent.insert(digest);
                }
                Err(e) => {
                    tracing::debug!(
                        repository = %self.repository,
                        error = %e,
                        "uploading a layer while building failed; the push sends it"
                    );
                }
            }
        }
        sent
    }
}
