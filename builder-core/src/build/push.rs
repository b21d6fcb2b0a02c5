//! Pushing: after a build (`--push`), or an image from the local store (`kiln push`).
//!
//! The registry client reports progress from its own threads; the events are relayed through a
//! channel to the caller's [`Reporter`] on the calling thread, so reporters need not be `Send`.

use std::collections::{BTreeSet, HashSet};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};

use super::{BuildError, BuildEvent, Reporter};
use crate::cache::LocalCache;
use crate::oci::layout::from_oci_digest;
use crate::oci::{Digest, Image, LayoutImage, OciLayout, Reference};
use crate::registry::{
    BlobOutcome, BlockingClient, ClientOptions, PushOptions, PushProgress, PushReport, Repository,
};

/// Turns the client's progress calls into [`BuildEvent`]s on a channel.
struct Relay {
    events: Mutex<Sender<BuildEvent>>,
    /// Blobs the build sent to the first repository while writing them: the push finds them
    /// there first (a later repository that has one too did not get it from this build).
    sent_while_building: Mutex<BTreeSet<Digest>>,
}

impl Relay {
    fn send(&self, event: BuildEvent) {
        if let Ok(tx) = self.events.lock() {
            let _ = tx.send(event);
        }
    }
}

impl PushProgress for Relay {
    fn blob_progress(&self, digest: &Digest, sent: u64, size: u64) {
        self.send(BuildEvent::BlobProgress {
            digest: digest.clone(),
            sent,
            size,
        });
    }

    fn blob_finished(&self, digest: &Digest, outcome: &BlobOutcome) {
        let how = match outcome {
            BlobOutcome::Exists
                if self
                    .sent_while_building
                    .lock()
                    .is_ok_and(|mut sent| sent.remove(digest)) =>
            {
                "pushed while it was built".to_string()
            }
            BlobOutcome::Exists | BlobOutcome::Known => "already exists".to_string(),
            BlobOutcome::Mounted { from } => format!("mounted from {from}"),
            BlobOutcome::Uploaded {
                resumed, restarted, ..
            } => match (resumed, restarted) {
                (0, 0) => "pushed".to_string(),
                (r, 0) => format!("pushed (resumed {r} times)"),
                (r, s) => format!("pushed (resumed {r}, restarted {s} times)"),
            },
        };
        self.send(BuildEvent::BlobPushed {
            digest: digest.clone(),
            outcome: how,
        });
    }
}

/// What a push knows before it starts.
#[derive(Default)]
pub(super) struct PushHints<'a> {
    /// Repositories on the same registry to mount blobs from.
    pub(super) mount_from: Vec<Repository>,
    /// Blobs the build uploaded while writing them, reported as pushed rather than as found.
    pub(super) sent_while_building: BTreeSet<Digest>,
    /// Where earlier pushes' blobs are remembered: the registry is not asked about those again,
    /// and this push's layers are added.
    pub(super) memory: Option<&'a LocalCache>,
    /// The time now, unix seconds (how old a memory is).
    pub(super) now: i64,
}

/// Pushes `image` to every reference in `tags`.
pub(super) fn push_with(
    client: &BlockingClient,
    image: &dyn Image,
    tags: &[Reference],
    hints: PushHints<'_>,
    reporter: &dyn Reporter,
) -> Result<PushReport, BuildError> {
    let repositories: Vec<Repository> = tags.iter().map(Repository::of).collect();
    let present: HashSet<(Repository, Digest)> = hints
        .memory
        .map(|memory| {
            repositories
                .iter()
                .flat_map(|r| {
                    memory
                        .pushed_blobs(&r.to_string(), hints.now)
                        .into_iter()
                        .map(move |d| (r.clone(), d))
                })
                .collect()
        })
        .unwrap_or_default();
    let (tx, rx) = mpsc::channel();
    let report = std::thread::scope(|scope| {
        let pushing = scope.spawn(move || {
            let options = PushOptions {
                mount_from: hints.mount_from,
                sent: hints.sent_while_building.iter().cloned().collect(),
                progress: Some(Arc::new(Relay {
                    events: Mutex::new(tx),
                    sent_while_building: Mutex::new(hints.sent_while_building),
                })),
                present,
            };
            client.push(image, tags, &options).map_err(BuildError::from)
            // `options` (and the only sender) drops here, ending the relay below.
        });
        for event in rx {
            reporter.report(event);
        }
        pushing.join()
    });
    let report = report.map_err(|_| BuildError::PushPanicked)??;
    if let Some(memory) = hints.memory {
        // The config too: a cached rebuild makes the same one.
        let blobs: Vec<Digest> = image
            .manifest()
            .map(|m| {
                std::iter::once(m.config())
                    .chain(m.layers())
                    .filter_map(|d| from_oci_digest(d.digest()).ok())
                    .collect()
            })
            .unwrap_or_default();
        for repository in repositories.iter().collect::<HashSet<_>>() {
            // Only a hint for the next push: failing to write it costs a round trip then.
            let _ = memory.remember_pushed(&repository.to_string(), &blobs, hints.now);
        }
    }
    for tag in &report.tags {
        reporter.report(BuildEvent::Pushed(tag.line.clone()));
    }
    Ok(report)
}

/// `kiln push SRC DEST...`: pushes the image named `source` in the local store at `store_dir`.
pub fn push(
    store_dir: &std::path::Path,
    source: &Reference,
    destinations: &[Reference],
    registry: &ClientOptions,
    reporter: &dyn Reporter,
) -> Result<PushReport, BuildError> {
    let wanted = source.familiar();
    let not_in_store = || BuildError::NotInStore {
        name: wanted.clone(),
        store: store_dir.to_path_buf(),
    };
    if !store_dir.exists() {
        return Err(not_in_store());
    }
    let store = OciLayout::open(store_dir)?;
    let image = store
        .named_manifests()?
        .into_iter()
        .find(|(name, _)| name.as_deref() == Some(wanted.as_str()))
        .and_then(|(_, d)| from_oci_digest(d.digest()).ok())
        .map(|digest| LayoutImage::new(store.clone(), digest))
        .ok_or_else(not_in_store)?;
    let client = BlockingClient::new(registry.clone()).map_err(BuildError::from)?;
    push_with(
        &client,
        &image,
        destinations,
        PushHints::default(),
        reporter,
    )
}
