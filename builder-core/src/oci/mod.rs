//! OCI image types shared by every stage: digests, the image config, platforms, media types,
//! layout storage and the contents of a layer.

pub mod config;
pub mod digest;
pub mod entry;
pub mod image;
pub mod layout;
pub mod media;
pub mod platform;
pub mod reference;
mod tail;
mod write_behind;

pub use config::{ContainerConfig, Healthcheck, History, ImageConfig, RootFs};
pub use digest::{Digest, DigestReader, DigestWriter};
pub use entry::{Content, Entry, EntryKind};
pub use image::{Image, ImageError, LayerRef, LayoutImage};
pub use layout::{LayoutError, OciLayout};
pub use platform::Platform;
pub use reference::Reference;
pub use tail::BlobTail;
