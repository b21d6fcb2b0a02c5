//! Base images: `FROM <image>` and `COPY --from=<image>`, found in the local store first (as
//! Docker uses its own images before pulling) and then in a registry.
//!
//! Nothing is downloaded until it is needed: planning reads only the config; a stage's
//! filesystem model is read from the per-machine cache of unpacked layers (the same directories
//! RUN stacks) only when a step looks at it (a COPY or WORKDIR); and the final image defers to
//! the base for blobs the store does not hold, so a push to the base's registry can mount them
//! instead of moving them through this machine.

use std::cell::{OnceCell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

use super::BuildError;
use crate::exec::fs::FsTree;
use crate::exec::sandbox;
use crate::layer::{UnpackedLayers, WhiteoutFormat};
use crate::oci::entry::OPAQUE_WHITEOUT;
use crate::oci::layout::from_oci_digest;
use crate::oci::{
    Content, Digest, Entry, EntryKind, Image, ImageConfig, ImageError, LayerRef, LayoutImage,
    OciLayout, Platform, Reference,
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

/// A filesystem read from `layers` (blobs in the store), base first, through the per-machine
/// cache of unpacked layers: each layer is unpacked once per machine (RUN stacks the same
/// directories), and the tree records metadata and where each file's bytes are, copying none.
pub(super) fn tree_from_layers(
    layers: &[LayerRef],
    store: &OciLayout,
    unpacked: &UnpackedLayers,
) -> Result<FsTree, BuildError> {
    let user_xattr = sandbox::privilege().uses_user_xattr();
    let mut tree = FsTree::new();
    for layer in layers {
        let blob = store.blob_path(&layer.digest);
        let dir = unpacked
            .ensure(layer, &blob, WhiteoutFormat::Overlay { user_xattr })
            .map_err(|source| BuildError::BaseLayer {
                digest: layer.digest.clone(),
                source,
            })?;
        tree.apply(&unpacked_entries(&dir, user_xattr)?);
    }
    Ok(tree)
}

/// The entries of one unpacked layer directory (overlay format: whiteouts are 0:0 character
/// devices, opaque directories carry the overlay xattr), in walk order, parents first.
fn unpacked_entries(dir: &Path, user_xattr: bool) -> Result<Vec<Entry>, BuildError> {
    let opaque_xattr = if user_xattr {
        "user.overlay.opaque"
    } else {
        "trusted.overlay.opaque"
    };
    let read_err = |path: &Path, source: std::io::Error| BuildError::ReadUnpacked {
        path: path.to_path_buf(),
        source,
    };
    let mut entries = Vec::new();
    let mut links: HashMap<u64, String> = HashMap::new();
    let walk = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name();
    for item in walk {
        let item = item.map_err(|e| {
            let path = e.path().unwrap_or(dir).to_path_buf();
            read_err(&path, e.into())
        })?;
        let path = item.path();
        let rel = path
            .strip_prefix(dir)
            .ok()
            .and_then(|r| r.to_str())
            .ok_or_else(|| {
                read_err(
                    path,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "not a UTF-8 path"),
                )
            })?
            .to_string();
        let meta = item.metadata().map_err(|e| read_err(path, e.into()))?;
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_symlink() {
            let target = std::fs::read_link(path).map_err(|e| read_err(path, e))?;
            EntryKind::Symlink(target.to_string_lossy().into_owned())
        } else if ft.is_file() {
            match links.get(&meta.ino()) {
                Some(first) if meta.nlink() > 1 => EntryKind::Hardlink(first.clone()),
                _ => {
                    if meta.nlink() > 1 {
                        links.insert(meta.ino(), rel.clone());
                    }
                    EntryKind::File(Content::Path(path.to_path_buf()))
                }
            }
        } else if ft.is_char_device() && meta.rdev() == 0 {
            entries.push(Entry::whiteout(&rel, meta.mtime()));
            continue;
        } else if let Some(device) = EntryKind::device(&meta) {
            device
        } else if ft.is_fifo() {
            EntryKind::Fifo
        } else {
            continue;
        };
        let is_dir = matches!(kind, EntryKind::Dir);
        entries.push(Entry {
            path: rel.clone(),
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: meta.mtime(),
            xattrs: BTreeMap::new(),
        });
        let mut flag = [0u8; 1];
        if is_dir
            && matches!(rustix::fs::lgetxattr(path, opaque_xattr, &mut flag), Ok(1) if flag[0] == b'y')
        {
            let mut marker = Entry::dir(
                format!("{rel}/{OPAQUE_WHITEOUT}"),
                0o644,
                0,
                0,
                meta.mtime(),
            );
            marker.kind = EntryKind::File(Content::Bytes(Arc::from(&b""[..])));
            entries.push(marker);
        }
    }
    Ok(entries)
}

impl BaseImage {
    /// The image's filesystem (downloading its layers first when remote).
    pub(super) fn tree(
        &self,
        store: &OciLayout,
        unpacked: &UnpackedLayers,
    ) -> Result<FsTree, BuildError> {
        if let BaseImage::Remote(r) = self {
            r.fetch_layers_blocking().map_err(BuildError::from)?;
        }
        tree_from_layers(&self.image().layers()?, store, unpacked)
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
    /// Registry caches holding layers reused from them and not downloaded yet.
    pub(super) remote_cache: Option<Arc<super::RemoteCacheSource>>,
}

impl Image for BuiltImage {
    fn raw_manifest(&self) -> Result<Vec<u8>, ImageError> {
        self.image.raw_manifest()
    }

    fn raw_config(&self) -> Result<Vec<u8>, ImageError> {
        self.image.raw_config()
    }

    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ImageError> {
        let store = self.image.layout();
        if store.has_blob(digest) {
            return self.image.open_blob(digest);
        }
        if let Some(cache) = &self.remote_cache
            && cache
                .caches
                .records()
                .any(|r| r.layer.as_ref().is_some_and(|l| l.digest == *digest))
        {
            cache.fetch(digest, store).map_err(|e| {
                ImageError::Layout(crate::oci::LayoutError::Io {
                    action: "download a cached layer into",
                    path: store.root().to_path_buf(),
                    source: std::io::Error::other(e.to_string()),
                })
            })?;
            return self.image.open_blob(digest);
        }
        match &self.base {
            Some(base) => base.open_blob(digest),
            None => self.image.open_blob(digest),
        }
    }

    fn digest(&self) -> Result<Digest, ImageError> {
        self.image.digest()
    }
}
