//! Base images: `FROM <image>` and `COPY --from=<image>`, found in the local store first (as
//! Docker uses its own images before pulling) and then in a registry.
//!
//! Nothing is downloaded until it is needed: planning reads only the config; a stage's
//! filesystem is assembled from the base layers only when a step looks at it (a COPY or
//! WORKDIR), and the final image defers to the base for blobs the store does not hold, so a
//! push to the base's registry can mount them instead of moving them through this machine.

use std::cell::{OnceCell, RefCell};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use super::BuildError;
use crate::exec::fs::FsTree;
use crate::layer::{self, ArchiveFormat};
use crate::oci::layout::from_oci_digest;
use crate::oci::media::is_gzip_layer;
use crate::oci::{
    Digest, Image, ImageConfig, ImageError, LayoutImage, OciLayout, Platform, Reference,
};
use crate::plan::ImageResolver;
use crate::registry::{BlockingClient, ClientOptions, RemoteImage};

/// A base image, local or remote.
#[derive(Clone)]
pub(super) enum BaseImage {
    /// In the local store.
    Local(LayoutImage),
    /// In a registry; layers are downloaded into the store when opened.
    Remote(Arc<RemoteImage>),
}

impl BaseImage {
    pub(super) fn image(&self) -> &dyn Image {
        match self {
            BaseImage::Local(i) => i,
            BaseImage::Remote(i) => i.as_ref(),
        }
    }

    pub(super) fn remote(&self) -> Option<Arc<RemoteImage>> {
        match self {
            BaseImage::Local(_) => None,
            BaseImage::Remote(i) => Some(i.clone()),
        }
    }
}

/// A filesystem read from `layers` (in the store), base first. File contents go to `scratch`.
pub(super) fn tree_from_layers(
    layers: &[crate::oci::LayerRef],
    store: &OciLayout,
    scratch: &Path,
) -> Result<FsTree, BuildError> {
    let mut tree = FsTree::new();
    for layer in layers {
        let format = if is_gzip_layer(&layer.media_type) {
            ArchiveFormat::Gzip
        } else {
            ArchiveFormat::Tar
        };
        let path = store.blob_path(&layer.digest);
        let entries =
            layer::extract_archive_entries(&path, format, "", scratch).map_err(|source| {
                BuildError::BaseLayer {
                    digest: layer.digest.clone(),
                    source,
                }
            })?;
        tree.apply(&entries);
    }
    Ok(tree)
}

impl BaseImage {
    /// The image's filesystem (downloading its layers first when remote).
    pub(super) fn tree(&self, store: &OciLayout, scratch: &Path) -> Result<FsTree, BuildError> {
        if let BaseImage::Remote(r) = self {
            r.fetch_layers_blocking().map_err(BuildError::from)?;
        }
        tree_from_layers(&self.image().layers()?, store, scratch)
    }
}

/// Finds base images once per build and remembers them.
pub(super) struct BaseImages<'a> {
    store: &'a OciLayout,
    registry: &'a ClientOptions,
    client: OnceCell<BlockingClient>,
    found: RefCell<BTreeMap<(String, String), BaseImage>>,
}

impl<'a> BaseImages<'a> {
    pub(super) fn new(store: &'a OciLayout, registry: &'a ClientOptions) -> BaseImages<'a> {
        BaseImages {
            store,
            registry,
            client: OnceCell::new(),
            found: RefCell::new(BTreeMap::new()),
        }
    }

    /// The registry client, made on first use (a build with no remote image never makes one).
    pub(super) fn client(&self) -> Result<&BlockingClient, BuildError> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let client = BlockingClient::new(self.registry.clone()).map_err(BuildError::from)?;
        Ok(self.client.get_or_init(|| client))
    }

    /// `image` for `platform`: the local store's when it has one by that name, else pulled
    /// (manifest and config only) from its registry.
    pub(super) fn get(
        &self,
        image: &Reference,
        platform: &Platform,
    ) -> Result<BaseImage, BuildError> {
        let key = (image.to_string(), platform.to_string());
        if let Some(found) = self.found.borrow().get(&key) {
            return Ok(found.clone());
        }
        let found = match self.local(image, platform)? {
            Some(local) => BaseImage::Local(local),
            None => BaseImage::Remote(Arc::new(
                self.client()?
                    .pull(image, platform, self.store)
                    .map_err(BuildError::from)?,
            )),
        };
        self.found.borrow_mut().insert(key, found.clone());
        Ok(found)
    }

    /// The stored image named `image`, if it is for `platform` (one built for another
    /// platform is not a match: the registry may have the right one).
    fn local(
        &self,
        image: &Reference,
        platform: &Platform,
    ) -> Result<Option<LayoutImage>, BuildError> {
        let wanted = image.familiar();
        for (name, descriptor) in self.store.named_manifests()? {
            if name.as_deref() == Some(wanted.as_str())
                && let Ok(digest) = from_oci_digest(descriptor.digest())
            {
                let candidate = LayoutImage::new(self.store.clone(), digest);
                let config = candidate.config()?;
                let same_variant = match (&platform.variant, &config.variant) {
                    (Some(want), Some(have)) => want == have,
                    _ => true,
                };
                if config.os == platform.os
                    && config.architecture == platform.architecture
                    && same_variant
                {
                    return Ok(Some(candidate));
                }
            }
        }
        Ok(None)
    }
}

impl ImageResolver for BaseImages<'_> {
    fn image_config(
        &self,
        image: &Reference,
        platform: &Platform,
    ) -> Result<ImageConfig, Box<dyn std::error::Error + Send + Sync>> {
        let found = self.get(image, platform).map_err(Box::new)?;
        Ok(found.image().config()?)
    }
}

/// The built image: its manifest, config and new layers are in the store; base layers that the
/// store lacks are read from the base image (downloaded only if an output needs their bytes).
pub(super) struct BuiltImage {
    pub(super) image: LayoutImage,
    pub(super) base: Option<Arc<RemoteImage>>,
}

impl Image for BuiltImage {
    fn raw_manifest(&self) -> Result<Vec<u8>, ImageError> {
        self.image.raw_manifest()
    }

    fn raw_config(&self) -> Result<Vec<u8>, ImageError> {
        self.image.raw_config()
    }

    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ImageError> {
        match &self.base {
            Some(base) if !self.image.layout().has_blob(digest) => base.open_blob(digest),
            _ => self.image.open_blob(digest),
        }
    }

    fn digest(&self) -> Result<Digest, ImageError> {
        self.image.digest()
    }
}
