//! Finding (and when missing, creating) a mount target inside the root without ever leaving it:
//! every prefix is opened with `openat2(RESOLVE_IN_ROOT)`, so `..` and absolute symlinks in the
//! image resolve against the image's root, as they would inside the container.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::protocol::{Stub, Stubs, TouchedDir};

/// The root being prepared: its host path (canonical) and an `O_PATH` descriptor of it.
pub(crate) struct Root {
    pub host: PathBuf,
    pub fd: OwnedFd,
}

impl Root {
    pub(crate) fn open(host: &Path) -> io::Result<Root> {
        let host = std::fs::canonicalize(host)?;
        let fd = rustix::fs::open(
            &host,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root { host, fd })
    }

    /// The host path of an in-root target, created (with its missing parents) when absent.
    /// The last component becomes a directory or an empty file. Creations are recorded in
    /// `stubs` so the parent can take them out of the captured layer.
    pub(crate) fn resolve_creating(
        &self,
        target: &str,
        last_is_dir: bool,
        stubs: &mut Stubs,
    ) -> io::Result<PathBuf> {
        let parts: Vec<&str> = target
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        if parts.contains(&"..") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "mount target contains `..`",
            ));
        }
        let mut current = rustix::io::fcntl_dupfd_cloexec(&self.fd, 0)?;
        let mut prefix = String::new();
        for (i, part) in parts.iter().enumerate() {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            match self.open_in_root(&prefix) {
                Ok(fd) => current = fd,
                Err(rustix::io::Errno::NOENT) => {
                    let last = i + 1 == parts.len();
                    current = self.create_in(current.as_fd(), part, !last || last_is_dir, stubs)?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.host_path(current.as_fd())
    }

    fn open_in_root(&self, path: &str) -> rustix::io::Result<OwnedFd> {
        rustix::fs::openat2(
            &self.fd,
            path,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    }

    /// Creates `name` in the resolved directory `parent` and returns it opened.
    fn create_in(
        &self,
        parent: BorrowedFd<'_>,
        name: &str,
        dir: bool,
        stubs: &mut Stubs,
    ) -> io::Result<OwnedFd> {
        let parent_rel = self.relative(parent)?;
        self.record_touched(&parent_rel, stubs)?;
        if dir {
            rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755))?;
        } else {
            let created = rustix::fs::openat(
                parent,
                name,
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            );
            match created {
                Ok(fd) => drop(fd),
                Err(rustix::io::Errno::EXIST) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "mount target is a dangling symlink",
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let path = if parent_rel.is_empty() {
            name.to_owned()
        } else {
            format!("{parent_rel}/{name}")
        };
        stubs.created.push(Stub { path, dir });
        Ok(rustix::fs::openat(
            parent,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?)
    }

    /// Records `dir` and its ancestors, as they are before a stub goes in: creating the stub
    /// copies them all up into the upper dir.
    fn record_touched(&self, dir: &str, stubs: &mut Stubs) -> io::Result<()> {
        let mut path = dir;
        while !path.is_empty() {
            let known = stubs.created.iter().any(|s| s.path == path)
                || stubs.touched.iter().any(|t| t.path == path);
            if !known {
                let st = rustix::fs::statat(&self.fd, path, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)?;
                stubs.touched.push(TouchedDir {
                    path: path.to_owned(),
                    mode: st.st_mode & 0o7777,
                    uid: st.st_uid,
                    gid: st.st_gid,
                });
            }
            path = path.rsplit_once('/').map_or("", |(parent, _)| parent);
        }
        Ok(())
    }

    /// Where an opened in-root object is on the host (what `/proc/self/fd` says).
    fn host_path(&self, fd: BorrowedFd<'_>) -> io::Result<PathBuf> {
        let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        let path = std::fs::read_link(link)?;
        if !path.starts_with(&self.host) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "mount target resolves outside the root",
            ));
        }
        Ok(path)
    }

    /// The root-relative path of an opened in-root object (`""` for the root itself).
    fn relative(&self, fd: BorrowedFd<'_>) -> io::Result<String> {
        let host = self.host_path(fd)?;
        let rel = host.strip_prefix(&self.host).unwrap_or(Path::new(""));
        rel.to_str()
            .map(str::to_owned)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "mount target is not UTF-8"))
    }
}
