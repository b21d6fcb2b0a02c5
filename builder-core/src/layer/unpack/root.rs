//! The unpack destination held as a directory file descriptor, and the only ways to reach
//! paths inside it.
//!
//! Paths are resolved by the kernel with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`
//! relative to the destination: absolute symlinks start at the destination and `..` stops there,
//! exactly as inside a chroot, so no symlink a layer creates can lead a later entry outside.
//! Only *directories* are resolved that way; every create, remove or metadata call then works on
//! a single name inside such a directory and never follows a symlink in that last component.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Dir, Mode, OFlags, ResolveFlags, Stat};

use super::path::split;

/// Directory resolution confined to the root, and no `/proc/self/fd`-style jumps.
const CONFINED: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);
/// A directory handle used only as the base of `*at` calls.
const DIR_HANDLE: OFlags = OFlags::PATH.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);
/// Mode of directories a layer implies but does not list.
const IMPLIED_DIR_MODE: u32 = 0o755;

/// The destination directory of an unpack.
pub(crate) struct Root {
    fd: OwnedFd,
}

impl Root {
    /// Opens `dest`, which must be a directory.
    pub(crate) fn open(dest: &Path) -> io::Result<Root> {
        let fd = rustix::fs::open(dest, DIR_HANDLE, Mode::empty())?;
        Ok(Root { fd })
    }

    /// The root directory itself.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens the directory at clean relative `path` (`b""` is the root), following symlinks
    /// inside the root.
    pub(crate) fn dir(&self, path: &[u8]) -> io::Result<OwnedFd> {
        let path: &[u8] = if path.is_empty() { b"." } else { path };
        Ok(rustix::fs::openat2(
            &self.fd,
            path,
            DIR_HANDLE,
            Mode::empty(),
            CONFINED,
        )?)
    }

    /// Like [`Root::dir`], creating missing directories (`0755`, owned by the caller) on the way.
    pub(crate) fn make_dirs(&self, path: &[u8]) -> io::Result<OwnedFd> {
        match self.dir(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && !path.is_empty() => {}
            other => return other,
        }
        let (parent, name) = split(path);
        let parent_fd = self.make_dirs(parent)?;
        match rustix::fs::mkdirat(&parent_fd, name, Mode::from_raw_mode(IMPLIED_DIR_MODE)) {
            // The umask may have taken bits away.
            Ok(()) => chmod_dir(parent_fd.as_fd(), name, IMPLIED_DIR_MODE)?,
            // A dangling symlink: resolving again reports it.
            Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        self.dir(path)
    }
}

/// What is at `name` in `parent`, not following a symlink; `None` when nothing is.
pub(crate) fn lstat(parent: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(stat)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether `stat` describes a directory.
pub(crate) fn is_dir(stat: &Stat) -> bool {
    rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::Directory
}

/// Opens directory `name` in `parent` for reading its entries and changing its metadata;
/// fails rather than follow a symlink.
pub(crate) fn open_dir(parent: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Sets the mode of the directory `name` in `parent` (a symlink there is an error).
fn chmod_dir(parent: BorrowedFd<'_>, name: &[u8], mode: u32) -> io::Result<()> {
    let fd = open_dir(parent, name)?;
    Ok(rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?)
}

/// The names in an open directory, without `.` and `..`.
pub(crate) fn list(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    let mut entries = Dir::read_from(dir)?;
    while let Some(entry) = entries.read() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    Ok(names)
}

/// Removes `name` from `parent`, with everything under it when it is a directory. Symlinks are
/// removed, never followed. Nothing there is not an error.
pub(crate) fn remove_all(parent: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(rustix::io::Errno::ISDIR) => {}
        Err(e) => return Err(e.into()),
    }
    let dir = open_dir(parent, name)?;
    for child in list(dir.as_fd())? {
        remove_all(dir.as_fd(), &child)?;
    }
    match rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
