//! Images as the stages see them: a manifest, a config and layers, read lazily.
//!
//! An [`Image`] is only accessors, so a source (a layout on disk today, a registry later) can
//! answer them however it likes: nothing is read before it is asked for, and a layer's bytes are
//! streamed from wherever they live.

use std::io::Read;

use oci_spec::image::{Descriptor, ImageManifest, ImageManifestBuilder, MediaType};

use super::layout::{LayoutError, OciLayout, from_oci_digest, to_oci_digest};
use super::{Digest, ImageConfig};

/// Errors reading an image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The storage the image lives in failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The manifest or config is not what the media type promises.
    #[error("invalid {what} `{digest}`")]
    Invalid {
        /// `manifest` or `config`.
        what: &'static str,
        /// Its digest.
        digest: Digest,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A layer of an image: its blob descriptor and uncompressed digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    /// Digest of the blob as stored (compressed).
    pub digest: Digest,
    /// Digest of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    /// The blob's media type.
    pub media_type: String,
}

/// An image: lazily read manifest, config and layers.
pub trait Image: Send + Sync {
    /// The manifest's exact bytes (its digest is the image's digest).
    fn raw_manifest(&self) -> Result<Vec<u8>, ImageError>;
    /// The config's exact bytes.
    fn raw_config(&self) -> Result<Vec<u8>, ImageError>;
    /// Opens a blob of this image (a layer) for streaming.
    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ImageError>;

    /// The image digest: sha256 of the manifest bytes.
    fn digest(&self) -> Result<Digest, ImageError> {
        Ok(Digest::of(&self.raw_manifest()?))
    }

    /// The parsed manifest.
    fn manifest(&self) -> Result<ImageManifest, ImageError> {
        let raw = self.raw_manifest()?;
        serde_json::from_slice(&raw).map_err(|e| ImageError::Invalid {
            what: "manifest",
            digest: Digest::of(&raw),
            source: Box::new(e),
        })
    }

    /// The parsed config.
    fn config(&self) -> Result<ImageConfig, ImageError> {
        let raw = self.raw_config()?;
        serde_json::from_slice(&raw).map_err(|e| ImageError::Invalid {
            what: "config",
            digest: Digest::of(&raw),
            source: Box::new(e),
        })
    }

    /// The layers, base first, with their diff_ids from the config.
    fn layers(&self) -> Result<Vec<LayerRef>, ImageError> {
        let manifest = self.manifest()?;
        let config = self.config()?;
        let invalid = |reason: &str| ImageError::Invalid {
            what: "manifest",
            digest: Digest::of(&self.raw_manifest().unwrap_or_default()),
            source: reason.to_string().into(),
        };
        if manifest.layers().len() != config.rootfs.diff_ids.len() {
            return Err(invalid("layer count differs from the config's diff_ids"));
        }
        manifest
            .layers()
            .iter()
            .zip(&config.rootfs.diff_ids)
            .map(|(d, diff_id)| {
                Ok(LayerRef {
                    digest: from_oci_digest(d.digest())
                        .map_err(|_| invalid("unsupported digest algorithm"))?,
                    diff_id: diff_id.clone(),
                    size: d.size(),
                    media_type: d.media_type().to_string(),
                })
            })
            .collect()
    }
}

/// An image stored in an OCI layout.
#[derive(Debug, Clone)]
pub struct LayoutImage {
    layout: OciLayout,
    manifest_digest: Digest,
}

impl LayoutImage {
    /// The image whose manifest is blob `manifest_digest` of `layout`.
    pub fn new(layout: OciLayout, manifest_digest: Digest) -> LayoutImage {
        LayoutImage {
            layout,
            manifest_digest,
        }
    }

    /// The layout it lives in.
    pub fn layout(&self) -> &OciLayout {
        &self.layout
    }
}

impl Image for LayoutImage {
    fn raw_manifest(&self) -> Result<Vec<u8>, ImageError> {
        Ok(self.layout.read_blob(&self.manifest_digest)?)
    }

    fn raw_config(&self) -> Result<Vec<u8>, ImageError> {
        let manifest = self.manifest()?;
        let digest =
            from_oci_digest(manifest.config().digest()).map_err(|e| ImageError::Invalid {
                what: "manifest",
                digest: self.manifest_digest.clone(),
                source: Box::new(e),
            })?;
        Ok(self.layout.read_blob(&digest)?)
    }

    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ImageError> {
        Ok(Box::new(self.layout.open_blob(digest)?))
    }

    fn digest(&self) -> Result<Digest, ImageError> {
        Ok(self.manifest_digest.clone())
    }
}

/// Writes `config` and an OCI manifest over `layers` (whose blobs must already be in `layout`)
/// and returns the manifest's descriptor.
pub fn write_manifest(
    layout: &OciLayout,
    config: &ImageConfig,
    layers: &[LayerRef],
) -> Result<Descriptor, ImageError> {
    let config_bytes = config.to_bytes();
    let config_digest = layout.write_blob(&config_bytes)?;
    let manifest = manifest_for(&config_digest, config_bytes.len() as u64, layers);
    let bytes = serde_json::to_vec(&manifest).map_err(|e| ImageError::Invalid {
        what: "manifest",
        digest: config_digest.clone(),
        source: Box::new(e),
    })?;
    let digest = layout.write_blob(&bytes)?;
    Ok(Descriptor::new(
        MediaType::ImageManifest,
        bytes.len() as u64,
        to_oci_digest(&digest),
    ))
}

fn manifest_for(config_digest: &Digest, config_size: u64, layers: &[LayerRef]) -> ImageManifest {
    let config = Descriptor::new(
        MediaType::ImageConfig,
        config_size,
        to_oci_digest(config_digest),
    );
    let layers = layers
        .iter()
        .map(|l| {
            Descriptor::new(
                MediaType::from(l.media_type.as_str()),
                l.size,
                to_oci_digest(&l.digest),
            )
        })
        .collect::<Vec<_>>();
    ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config)
        .layers(layers)
        .build()
        .unwrap_or_else(|_| unreachable!("every required manifest field is set"))
}
