//! Unpacking image layers into directories, safely: a hostile layer cannot write outside the
//! destination.
//!
//! `tar`'s own `unpack` is not used: it resolves absolute symlinks against the host root, so it
//! rejects ordinary base images (`var/run -> /run` then `var/run/x`), and it knows nothing of
//! whiteouts. Here every path is resolved by the kernel inside the destination
//! (`openat2` with `RESOLVE_IN_ROOT`), as inside the container: an absolute symlink starts at
//! the destination and `..` stops there. An entry or hard link whose *name* climbs out with `..`
//! is refused, naming the entry and the layer.
//!
//! [`unpack_layer`] applies one layer to a directory, with whiteouts either recorded for
//! overlayfs or applied to the tree already there ([`WhiteoutFormat`]). [`UnpackedLayers`] keeps
//! unpacked layers per machine by diff_id, for stacking as overlay lower directories.
//!
//! What is kept: file contents, directories, symlinks (targets as written), hard links (within
//! the root), fifos, device nodes where this process may create them (otherwise skipped and
//! counted in [`UnpackStats`]), owners, modes including setuid/setgid/sticky, mtimes, and the
//! extended attributes an image may carry (`security.capability`, `user.*`, and `trusted.*`
//! when unpacking as root; never overlay's own attributes). A directory the layer implies but
//! does not list is created `0755` and owned by the unpacking user.
//!
//! Needs Linux 5.6 or later (`openat2`), and `/proc` mounted to set the mode of fifos and
//! devices and the extended attributes of anything that is not a regular file or directory.

mod cache;
mod decode;
mod error;
mod meta;
mod node;
mod path;
mod root;
mod unpacker;
mod whiteout;
mod xattrs;

use std::fs::File;
use std::path::Path;

pub use cache::{PendingUnpack, UnpackedLayers};
pub use error::UnpackError;

use super::ArchiveFormat;
use super::error::LayerError;

/// How whiteouts are represented in an unpacked layer directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WhiteoutFormat {
    /// overlayfs-native: `.wh.name` → a 0:0 character device `name`; `.wh..wh..opq` → the
    /// directory gets the opaque xattr (`trusted.overlay.opaque=y` as real root;
    /// `user.overlay.opaque=y` for rootless overlay mounted with `userxattr`). For stacking as
    /// overlay lowerdirs.
    Overlay {
        /// Mark opaque directories with `user.overlay.opaque` instead of
        /// `trusted.overlay.opaque`.
        user_xattr: bool,
    },
    /// Apply onto an existing tree (the chroot rootfs): delete the whited-out path / clear the
    /// directory of everything this layer did not put there.
    Apply,
}

/// What an unpack did, and what it had to leave out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnpackStats {
    /// Tar entries read (extension headers not counted).
    pub entries: u64,
    /// Regular files written or linked.
    pub files: u64,
    /// Regular files that are hard links to the identical file of an earlier unpacked layer.
    pub linked: u64,
    /// Directories created or updated.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// Character and block devices created.
    pub devices: u64,
    /// Fifos created.
    pub fifos: u64,
    /// `.wh.` whiteouts recorded (Overlay) or applied (Apply).
    pub whiteouts: u64,
    /// Opaque directory markers recorded or applied.
    pub opaque_dirs: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Device nodes skipped because this process may not create them (no `CAP_MKNOD`).
    pub skipped_devices: u64,
    /// Extended attributes left out: not allowed from a layer, or refused by the file system.
    pub skipped_xattrs: u64,
    /// Entries whose owner could not be set (not root, or an id outside the user namespace).
    pub skipped_ownership: u64,
}

/// Unpacks the layer blob at `blob`, compressed as `format`, into the existing directory
/// `dest`, streaming it (the layer is never held in memory).
///
/// Entries replace what is at their path (a directory meeting a directory only takes the new
/// metadata), so applying layers in order onto one directory with [`WhiteoutFormat::Apply`]
/// gives the image's root filesystem. On error `dest` may hold part of the layer; callers that
/// need all-or-nothing unpack into a scratch directory (as [`UnpackedLayers`] does).
pub fn unpack_layer(
    blob: &Path,
    format: ArchiveFormat,
    dest: &Path,
    whiteouts: WhiteoutFormat,
) -> Result<UnpackStats, LayerError> {
    let file = File::open(blob).map_err(|source| UnpackError::Read {
        layer: blob.to_path_buf(),
        source,
    })?;
    let tar = decode::decoder(file, format);
    Ok(unpacker::unpack_stream(tar, blob, dest, whiteouts, None)?)
}
