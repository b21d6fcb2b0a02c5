//! OCI whiteouts: `.wh.NAME` deletes `NAME` from the layers below, `.wh..wh..opq` hides
//! everything the layers below have in its directory.
//!
//! In [`WhiteoutFormat::Overlay`] they become what overlayfs understands in a lower directory:
//! a `0:0` character device named `NAME`, and an `overlay.opaque=y` attribute on the directory.
//! In [`WhiteoutFormat::Apply`] the tree below is already in `dest`, so the deletion happens:
//! `NAME` is removed, and an opaque directory loses every child this layer did not create
//! (whatever the order of entries in the layer).
//! Other `.wh..wh.` names are AUFS bookkeeping and are skipped, as Docker does.

use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{FileType, Mode, XattrFlags};

use super::error::UnpackError;
use super::path::join;
use super::root;
use super::unpacker::{Unpacker, is_missing};
use super::{WhiteoutFormat, xattrs};

/// The prefix of a whiteout's name.
pub(crate) const PREFIX: &[u8] = b".wh.";
/// The name that marks its directory opaque.
const OPAQUE: &[u8] = b".wh..wh..opq";
/// The prefix of AUFS metadata names, which carry no meaning for an image.
const AUFS_META: &[u8] = b".wh..wh.";

/// Applies the whiteout `base` (in directory `parent`, naming `target`) from entry `name`.
pub(crate) fn apply(
    unpacker: &mut Unpacker<'_>,
    parent: &[u8],
    base: &[u8],
    target: &[u8],
    name: &str,
) -> Result<(), UnpackError> {
    if base == OPAQUE {
        return opaque(unpacker, parent, name);
    }
    if base.starts_with(AUFS_META) {
        return Ok(());
    }
    if matches!(target, b"" | b"." | b"..") {
        return Err(UnpackError::InvalidWhiteout {
            layer: unpacker.layer.to_path_buf(),
            entry: name.to_string(),
        });
    }
    unpacker.stats.whiteouts += 1;
    match unpacker.whiteouts {
        WhiteoutFormat::Overlay { .. } => {
            let dir = unpacker
                .root
                .make_dirs(parent)
                .map_err(unpacker.fail(name, "create the parent directory of"))?;
            root::remove_all(dir.as_fd(), target).map_err(unpacker.fail(name, "replace"))?;
            unpacker.forget_dirs(&join(parent, target));
            let dev = rustix::fs::makedev(0, 0);
            rustix::fs::mknodat(&dir, target, FileType::CharacterDevice, Mode::empty(), dev)
                .map_err(|e| unpacker.fail(name, "create the whiteout device for")(e.into()))?;
        }
        WhiteoutFormat::Apply => {
            let dir = match unpacker.root.dir(parent) {
                Ok(dir) => dir,
                Err(e) if is_missing(&e) => return Ok(()),
                Err(e) => return Err(unpacker.fail(name, "find the directory of")(e)),
            };
            root::remove_all(dir.as_fd(), target).map_err(unpacker.fail(name, "delete"))?;
            unpacker.forget_dirs(&join(parent, target));
        }
    }
    Ok(())
}

/// Makes directory `parent` opaque.
fn opaque(unpacker: &mut Unpacker<'_>, parent: &[u8], name: &str) -> Result<(), UnpackError> {
    unpacker.stats.opaque_dirs += 1;
    match unpacker.whiteouts {
        WhiteoutFormat::Overlay { user_xattr } => {
            let dir = unpacker
                .root
                .make_dirs(parent)
                .map_err(unpacker.fail(name, "create the directory of"))?;
            let dir = root::open_dir(dir.as_fd(), b".").map_err(unpacker.fail(name, "open"))?;
            rustix::fs::fsetxattr(
                &dir,
                xattrs::opaque_name(user_xattr),
                b"y",
                XattrFlags::empty(),
            )
            .map_err(|e| unpacker.fail(name, "mark opaque the directory of")(e.into()))?;
        }
        WhiteoutFormat::Apply => {
            let dir = match unpacker.root.dir(parent) {
                Ok(dir) => dir,
                Err(e) if is_missing(&e) => return Ok(()),
                Err(e) => return Err(unpacker.fail(name, "find the directory of")(e)),
            };
            clear(unpacker, dir.as_fd(), parent, name)?;
        }
    }
    Ok(())
}

/// Removes everything under `dir` (at clean path `dir_path`) that this layer did not create;
/// directories this layer did create are kept and cleared the same way.
fn clear(
    unpacker: &mut Unpacker<'_>,
    dir: BorrowedFd<'_>,
    dir_path: &[u8],
    name: &str,
) -> Result<(), UnpackError> {
    let open = root::open_dir(dir, b".").map_err(unpacker.fail(name, "open"))?;
    let children = root::list(open.as_fd()).map_err(unpacker.fail(name, "list"))?;
    for child in children {
        let child_path = join(dir_path, &child);
        if !unpacker.created.contains(&child_path) {
            root::remove_all(open.as_fd(), &child).map_err(|e| UnpackError::Entry {
                layer: unpacker.layer.to_path_buf(),
                entry: name.to_string(),
                action: "clear",
                source: e,
            })?;
            unpacker.forget_dirs(&child_path);
            continue;
        }
        let stat = root::lstat(open.as_fd(), &child).map_err(unpacker.fail(name, "clear"))?;
        if stat.is_some_and(|s| root::is_dir(&s)) {
            let sub = root::open_dir(open.as_fd(), &child).map_err(unpacker.fail(name, "clear"))?;
            clear(unpacker, sub.as_fd(), &child_path, name)?;
        }
    }
    Ok(())
}
