//! Taking the sandbox's own traces out of an upper dir after a step: the mount targets it had
//! to create, and the directories copied up only because a target was created in them.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::SandboxError;
use super::protocol::Stubs;
use super::upper::{image_ids, is_opaque};

/// Removes the stubs from `upper` (newest first), then every touched directory that is left
/// empty, unchanged and not opaque, deepest first.
pub(crate) fn remove_stubs(upper: &Path, stubs: &Stubs) -> Result<(), SandboxError> {
    for stub in stubs.created.iter().rev() {
        let path = upper.join(&stub.path);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let removed = if stub.dir && meta.is_dir() {
            std::fs::remove_dir(&path)
        } else if !stub.dir && meta.is_file() && meta.len() == 0 {
            std::fs::remove_file(&path)
        } else {
            // Replaced by the step: it is the step's now.
            continue;
        };
        match removed {
            Ok(()) => {}
            // The step put files in a created directory: they belong to the layer.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTEMPTY.raw_os_error()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(SandboxError::io("remove the mount target", path, e)),
        }
    }
    let mut touched: Vec<_> = stubs.touched.iter().collect();
    touched.sort_by_key(|t| std::cmp::Reverse(t.path.matches('/').count()));
    for dir in touched {
        let path = upper.join(&dir.path);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let unchanged = meta.is_dir()
            && meta.mode() & 0o7777 == dir.mode
            && image_ids(meta.uid(), meta.gid()) == (dir.uid, dir.gid)
            && !is_opaque(&path);
        let empty = std::fs::read_dir(&path).is_ok_and(|mut d| d.next().is_none());
        if unchanged && empty {
            std::fs::remove_dir(&path)
                .map_err(|e| SandboxError::io("remove the copied-up directory", &path, e))?;
        }
    }
    Ok(())
}

/// Empties overlayfs's work dir so it can serve the next step (its `work/` subdirectory is
/// mode 000, so it is opened up first).
pub(crate) fn empty_dir(dir: &Path) -> Result<(), SandboxError> {
    let entries = std::fs::read_dir(dir).map_err(|e| SandboxError::io("read", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| SandboxError::io("read", dir, e))?;
        let path = entry.path();
        let meta =
            std::fs::symlink_metadata(&path).map_err(|e| SandboxError::io("inspect", &path, e))?;
        let removed = if meta.is_dir() {
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700));
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| SandboxError::io("remove", &path, e))?;
    }
    Ok(())
}
