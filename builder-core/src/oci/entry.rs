//! What goes into a layer: one [`Entry`] per path, with the metadata it will have in the image.
//!
//! Entries carry ownership and modes as they will be in the image, never the host's: the
//! caller decides them (COPY gives 0:0 unless `--chown`), the writer only records them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a regular file's bytes come from when the layer is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A file on the host, read (streamed) when the layer is written. Its size is taken when the
    /// entry is written; a file that changes size while being read is an error.
    Path(PathBuf),
    /// Bytes in memory; for small generated files only (heredocs, `/etc/passwd` edits).
    Bytes(Arc<[u8]>),
}

/// The type of an entry, with what each type needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File(Content),
    /// A directory.
    Dir,
    /// A symbolic link to `target`, stored as written.
    Symlink(String),
    /// A hard link to another path in the same layer (relative, as [`Entry::path`]).
    Hardlink(String),
    /// A character device.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
}

impl EntryKind {
    /// The device `meta` describes, with its numbers; `None` for anything but a character or
    /// block device.
    pub fn device(meta: &std::fs::Metadata) -> Option<EntryKind> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let ft = meta.file_type();
        let (major, minor) = (
            rustix::fs::major(meta.rdev()),
            rustix::fs::minor(meta.rdev()),
        );
        if ft.is_char_device() {
            Some(EntryKind::CharDevice { major, minor })
        } else if ft.is_block_device() {
            Some(EntryKind::BlockDevice { major, minor })
        } else {
            None
        }
    }
}

/// One path in a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the image root, `/`-separated, with no leading `/` or `./` and no
    /// trailing `/` (`usr/bin/env`). Whiteouts use their `.wh.` names.
    pub path: String,
    /// The type and its data.
    pub kind: EntryKind,
    /// Permission bits including setuid, setgid and sticky (`0o7777` mask).
    pub mode: u32,
    /// Owner uid in the image.
    pub uid: u32,
    /// Owner gid in the image.
    pub gid: u32,
    /// Modification time, seconds since the epoch (clamped by `SOURCE_DATE_EPOCH` when written).
    pub mtime: i64,
    /// Extended attributes (`security.capability`, `user.*`), sorted by name.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

/// The prefix that marks a deleted path in an OCI layer.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The entry name that marks a directory whose lower contents are hidden.
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

impl Entry {
    /// A directory owned by `uid:gid`.
    pub fn dir(path: impl Into<String>, mode: u32, uid: u32, gid: u32, mtime: i64) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::Dir,
            mode,
            uid,
            gid,
            mtime,
            xattrs: BTreeMap::new(),
        }
    }

    /// The whiteout that deletes `path` from the layers below.
    pub fn whiteout(path: &str, mtime: i64) -> Entry {
        let (parent, name) = match path.rsplit_once('/') {
            Some((parent, name)) => (Some(parent), name),
            None => (None, path),
        };
        let wh = match parent {
            Some(p) => format!("{p}/{WHITEOUT_PREFIX}{name}"),
            None => format!("{WHITEOUT_PREFIX}{name}"),
        };
        Entry {
            path: wh,
            kind: EntryKind::File(Content::Bytes(Arc::from(&b""[..]))),
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime,
            xattrs: BTreeMap::new(),
        }
    }
}
