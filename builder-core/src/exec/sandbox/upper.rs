//! An overlayfs upper dir as layer entries.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use walkdir::WalkDir;

use crate::oci::Entry;

use super::SandboxError;
use super::disk;

/// The ids a file in an upper dir has in the image. As root (of the host, or of a user
/// namespace with subordinate ids) they are the same; unprivileged, the helper's user
/// namespace maps the image's root to the caller (and nothing else).
pub(crate) fn image_ids(uid: u32, gid: u32) -> (u32, u32) {
    if super::privilege() != super::Privilege::Unprivileged {
        return (uid, gid);
    }
    let map = |id: u32, mine: u32| if id == mine { 0 } else { id };
    (
        map(uid, rustix::process::geteuid().as_raw()),
        map(gid, rustix::process::getegid().as_raw()),
    )
}

/// Whether overlayfs marked `dir` opaque (its lower contents hidden): `trusted.overlay.opaque`
/// as root, `user.overlay.opaque` with `userxattr`.
pub(crate) fn is_opaque(dir: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| disk::xattr(dir, name).is_some_and(|v| v == b"y"))
}

/// Whether overlayfs recorded a deletion at `path`: a 0:0 character device, or (for nested
/// overlays) an empty file with an `overlay.whiteout` xattr.
fn is_whiteout(path: &Path, meta: &std::fs::Metadata) -> bool {
    let ft = meta.file_type();
    if ft.is_char_device() {
        return meta.rdev() == 0;
    }
    ft.is_file()
        && meta.len() == 0
        && ["trusted.overlay.whiteout", "user.overlay.whiteout"]
            .iter()
            .any(|name| disk::xattr(path, name).is_some())
}

/// Converts an overlay upper dir (unmounted) into the step's layer entries, sorted as layers
/// are written: whiteout devices become `.wh.NAME` files, opaque directories get a
/// `.wh..wh..opq` entry, overlayfs's own xattrs are dropped, and the paths of a file with
/// several links become hard links to the first. File contents stay in `upper`
/// ([`Content::Path`](crate::oci::Content::Path)), so write the layer before reusing it.
///
/// When not running as root, the upper dir was written from a user namespace that maps the
/// image's root to the caller, so the caller's uid and gid are reported as 0.
pub fn upper_to_entries(upper: &Path) -> Result<Vec<Entry>, SandboxError> {
    let mut entries = Vec::new();
    for item in WalkDir::new(upper).min_depth(1).follow_links(false) {
        let item = item.map_err(|e| {
            let path = e.path().unwrap_or(upper).to_path_buf();
            SandboxError::io("walk", path, e.into())
        })?;
        let host = item.path();
        let rel = disk::relative(upper, host)?;
        let meta =
            std::fs::symlink_metadata(host).map_err(|e| SandboxError::io("inspect", host, e))?;
        if is_whiteout(host, &meta) {
            entries.push((Entry::whiteout(&rel, meta.mtime()), None));
            continue;
        }
        let Some(mut entry) = disk::entry(&rel, host, &meta)? else {
            continue;
        };
        (entry.uid, entry.gid) = image_ids(entry.uid, entry.gid);
        let inode = (meta.is_file() && meta.nlink() > 1).then(|| (meta.dev(), meta.ino()));
        if meta.is_dir() && is_opaque(host) {
            entries.push((disk::opaque_marker(&rel, meta.mtime()), None));
        }
        entries.push((entry, inode));
    }
    Ok(disk::sort_and_link(&mut entries))
}
