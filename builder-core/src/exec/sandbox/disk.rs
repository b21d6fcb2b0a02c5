//! Reading one path on disk as a layer [`Entry`]: type, metadata, link target and xattrs.

use std::collections::BTreeMap;
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

use crate::oci::entry::OPAQUE_WHITEOUT;
use crate::oci::{Content, Entry, EntryKind};

use super::SandboxError;

/// Overlayfs's private xattrs (both namespaces) and the host's security label: never part of
/// an image.
fn is_private_xattr(name: &str) -> bool {
    name.starts_with("trusted.overlay.")
        || name.starts_with("user.overlay.")
        || name == "security.selinux"
}

/// The value of xattr `name` on `path` (not following a symlink), if set.
pub(crate) fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let size = rustix::fs::lgetxattr_query(path, name).ok()?;
    let mut value = vec![0u8; size];
    let got = rustix::fs::lgetxattr(path, name, &mut value[..]).ok()?;
    value.truncate(got);
    Some(value)
}

/// Every xattr on `path` an image may carry, by name.
pub(crate) fn image_xattrs(path: &Path) -> Result<BTreeMap<String, Vec<u8>>, SandboxError> {
    let mut out = BTreeMap::new();
    let size = match rustix::fs::llistxattr_query(path) {
        Ok(size) => size,
        // File systems without xattrs, and symlinks on some, have none to give.
        Err(rustix::io::Errno::NOTSUP | rustix::io::Errno::PERM) => return Ok(out),
        Err(e) => return Err(SandboxError::io("list xattrs of", path, e.into())),
    };
    if size == 0 {
        return Ok(out);
    }
    let mut names = vec![0u8; size];
    let got = rustix::fs::llistxattr(path, &mut names[..])
        .map_err(|e| SandboxError::io("list xattrs of", path, e.into()))?;
    names.truncate(got);
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        if is_private_xattr(name) {
            continue;
        }
        if let Some(value) = xattr(path, name) {
            out.insert(name.to_owned(), value);
        }
    }
    Ok(out)
}

/// The entry for `host` (whose metadata is `meta`) at layer path `rel`; `None` for sockets,
/// which layers cannot hold. Regular files point at `host` for their content.
pub(crate) fn entry(
    rel: &str,
    host: &Path,
    meta: &Metadata,
) -> Result<Option<Entry>, SandboxError> {
    let ft = meta.file_type();
    let kind = if ft.is_file() {
        EntryKind::File(Content::Path(host.to_path_buf()))
    } else if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_symlink() {
        let target =
            std::fs::read_link(host).map_err(|e| SandboxError::io("read the link", host, e))?;
        let target = target
            .into_os_string()
            .into_string()
            .map_err(|t| SandboxError::NonUtf8Path(t.into()))?;
        EntryKind::Symlink(target)
    } else if let Some(device) = EntryKind::device(meta) {
        device
    } else if ft.is_fifo() {
        EntryKind::Fifo
    } else {
        return Ok(None);
    };
    Ok(Some(Entry {
        path: rel.to_owned(),
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: meta.mtime(),
        xattrs: image_xattrs(host)?,
    }))
}

/// The entry that marks directory `dir` opaque (its lower contents hidden).
pub(crate) fn opaque_marker(dir: &str, mtime: i64) -> Entry {
    Entry {
        path: format!("{dir}/{OPAQUE_WHITEOUT}"),
        kind: EntryKind::File(Content::Bytes(Arc::from(&b""[..]))),
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime,
        xattrs: BTreeMap::new(),
    }
}

/// `path` relative to `root` as a layer path (`/`-separated, UTF-8).
pub(crate) fn relative(root: &Path, path: &Path) -> Result<String, SandboxError> {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.to_str()
        .map(str::to_owned)
        .ok_or_else(|| SandboxError::NonUtf8Path(path.to_path_buf()))
}

/// Sorts entries the way layers are written (by path components) and turns every further path
/// of a regular file with several links into a hard link to the first.
pub(crate) fn sort_and_link(entries: &mut Vec<(Entry, Option<(u64, u64)>)>) -> Vec<Entry> {
    entries.sort_by(|a, b| a.0.path.split('/').cmp(b.0.path.split('/')));
    let mut first: std::collections::HashMap<(u64, u64), String> = Default::default();
    entries
        .drain(..)
        .map(|(mut entry, inode)| {
            if let (Some(inode), EntryKind::File(_)) = (inode, &entry.kind) {
                match first.get(&inode) {
                    Some(target) => entry.kind = EntryKind::Hardlink(target.clone()),
                    None => {
                        first.insert(inode, entry.path.clone());
                    }
                }
            }
            entry
        })
        .collect()
}
