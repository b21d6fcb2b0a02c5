//! Writing the layer of a step that missed, reusing what the last build at the same step made:
//! its compressed chunks (only the chunks around what changed are compressed again), and, when
//! a RUN of this stage needs the layer next, its unpacked files (the new layer is unpacked
//! while it is written, and its unchanged files are hard links to the old ones).

use super::BuildError;
use super::caching::Caching;
use super::uploads::LayerUploads;
use crate::cache::CacheKey;
use crate::diag::Location;
use crate::layer::{
    self, ChunkIndex, ChunkSource, LayerOptions, UnpackedLayers, WhiteoutFormat, WriteExtras,
};
use crate::oci::{Entry, LayerRef, OciLayout};

/// Where a step's layer goes and what it may reuse.
pub(super) struct StepLayer<'a> {
    pub(super) store: &'a OciLayout,
    pub(super) caching: &'a Caching,
    /// The step's position, to find the last build's layer there.
    pub(super) slot: &'a CacheKey,
    pub(super) options: &'a LayerOptions,
    /// Set when a step of this stage will run over the layers: unpack this one now, in this
    /// format.
    pub(super) unpack: Option<(&'a UnpackedLayers, WhiteoutFormat)>,
    pub(super) location: &'a Location,
    /// Set when the layer is the image's and the image is pushed: send it while it is written.
    pub(super) upload: Option<&'a LayerUploads<'a>>,
}

impl StepLayer<'_> {
    /// Writes `entries` as a layer blob into the store; returns it and its chunk index.
    pub(super) fn write(
        &self,
        entries: Vec<Entry>,
    ) -> Result<(LayerRef, Option<ChunkIndex>), BuildError> {
        let previous = self.caching.previous_layer(self.slot);
        let chunks = previous
            .as_ref()
            .and_then(|p| self.caching.chunks_of(&p.digest));
        // Unpacking alongside is a shortcut: if it cannot start or finish, the RUN unpacks the
        // layer from its blob as usual (and reports any error then).
        let mut pending = self.unpack.and_then(|(layers, whiteouts)| {
            let donor = previous
                .as_ref()
                .and_then(|p| layers.path(&p.diff_id, whiteouts));
            layers.begin(whiteouts, donor).ok()
        });
        let mut writer = self.store.blob_writer_hashed_by_caller()?;
        if let Some(uploads) = self.upload {
            match writer.tail() {
                Ok(tail) => uploads.start(tail),
                Err(e) => tracing::debug!(error = %e, "cannot send the layer while writing it"),
            }
        }
        let extras = WriteExtras {
            reuse: chunks.as_ref().map(|c| c as &dyn ChunkSource),
            tar_copy: pending.as_mut().map(|p| p as &mut dyn std::io::Write),
        };
        let (info, _) = layer::write_layer_with(entries, &mut writer, self.options, extras)
            .map_err(|source| BuildError::Layer {
                location: self.location.clone(),
                source,
            })?;
        let size = writer.commit_as(&info.digest)?;
        if let Some(pending) = pending
            && let Err(e) = pending.finish(&info)
        {
            tracing::debug!(error = %e, "unpacking a layer while writing it failed");
        }
        let layer = LayerRef {
            digest: info.digest,
            diff_id: info.diff_id,
            size,
            media_type: info.media_type.to_string(),
        };
        Ok((layer, info.chunks))
    }
}

/// Whether a step after `position` in `steps` runs a command (and so needs the layers
/// unpacked).
pub(super) fn run_follows(steps: &[crate::plan::Step], position: usize) -> bool {
    steps
        .iter()
        .skip(position + 1)
        .any(|s| matches!(s.op, crate::plan::Op::Run(_)))
}
