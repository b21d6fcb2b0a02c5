//! A handle on one just-created file system object, for setting its owner, extended attributes
//! and mode without ever resolving its path again.
//!
//! Regular files and directories are open for real and use `fchown`/`fsetxattr`/`fchmod`.
//! Symlinks, fifos and devices must not be opened (that would follow the link, block on the
//! pipe or touch the device), so they are held with `O_PATH | O_NOFOLLOW`: ownership goes
//! through `fchownat(fd, "", AT_EMPTY_PATH)`, and mode and xattrs through `/proc/self/fd/N`,
//! which the kernel resolves straight to the held inode.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, Gid, Mode, OFlags, Uid, XattrFlags};

/// One object inside the root.
pub(crate) enum Node {
    /// A regular file or directory, open for reading or writing.
    Open(OwnedFd),
    /// Anything else, held by `O_PATH` without following a symlink.
    Handle(OwnedFd),
}

impl Node {
    /// Holds `name` in `parent` by `O_PATH`, not following a symlink.
    pub(crate) fn handle(parent: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<Node> {
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Node::Handle(fd))
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Node::Open(fd) | Node::Handle(fd) => fd.as_fd(),
        }
    }

    /// `/proc/self/fd/N` for a held handle.
    fn proc_path(&self) -> String {
        format!("/proc/self/fd/{}", self.fd().as_raw_fd())
    }

    /// Sets the owner; a symlink's own owner, not its target's.
    pub(crate) fn chown(&self, uid: u32, gid: u32) -> rustix::io::Result<()> {
        let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
        match self {
            Node::Open(fd) => rustix::fs::fchown(fd, Some(uid), Some(gid))?,
            Node::Handle(fd) => rustix::fs::chownat(
                fd,
                "",
                Some(uid),
                Some(gid),
                AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
            )?,
        }
        Ok(())
    }

    /// Sets one extended attribute, replacing any value it had.
    pub(crate) fn set_xattr(&self, name: &[u8], value: &[u8]) -> rustix::io::Result<()> {
        match self {
            Node::Open(fd) => rustix::fs::fsetxattr(fd, name, value, XattrFlags::empty())?,
            Node::Handle(_) => {
                rustix::fs::setxattr(self.proc_path(), name, value, XattrFlags::empty())?;
            }
        }
        Ok(())
    }

    /// Sets the permission bits, including setuid, setgid and sticky. Not for symlinks.
    pub(crate) fn chmod(&self, mode: u32) -> rustix::io::Result<()> {
        let mode = Mode::from_raw_mode(mode);
        match self {
            Node::Open(fd) => rustix::fs::fchmod(fd, mode)?,
            Node::Handle(_) => rustix::fs::chmod(self.proc_path(), mode)?,
        }
        Ok(())
    }
}
