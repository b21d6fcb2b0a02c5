//! The local image store: an OCI layout in the user's data directory, where `kiln build` puts
//! images when no `--output` is given and which `kiln images` lists.

use std::path::PathBuf;

use super::ExportError;
use crate::oci::layout::from_oci_digest;
use crate::oci::{Digest, Image, LayoutImage, OciLayout};

/// The default store location: `$XDG_DATA_HOME/kiln/store` (`~/.local/share/kiln/store`).
pub fn default_store_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("kiln")
        .join("store")
}

/// One image in the store, as `kiln images` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredImage {
    /// The name it was tagged with (`app:latest`), if any.
    pub name: Option<String>,
    /// The manifest digest.
    pub digest: Digest,
    /// The config's `created`, if set.
    pub created: Option<String>,
    /// Total size of the layer blobs in bytes.
    pub size: u64,
}

/// The images recorded in the store at `dir`, in index order. A store that does not exist yet
/// has no images.
pub fn list_images(dir: &std::path::Path) -> Result<Vec<StoredImage>, ExportError> {
    if !dir.join("oci-layout").exists() {
        return Ok(Vec::new());
    }
    let layout = OciLayout::open(dir)?;
    let mut images = Vec::new();
    for (name, descriptor) in layout.named_manifests()? {
        let Ok(digest) = from_oci_digest(descriptor.digest()) else {
            continue;
        };
        let image = LayoutImage::new(layout.clone(), digest.clone());
        let config = image.config()?;
        let size = image.layers()?.iter().map(|l| l.size).sum();
        images.push(StoredImage {
            name,
            digest,
            created: config.created,
            size,
        });
    }
    Ok(images)
}
