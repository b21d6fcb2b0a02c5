//! Applies a layer's tar stream to a directory, one entry at a time.
//!
//! For each entry: its name is cleaned (a `..` that climbs out is refused), its parent
//! directory is resolved inside the root (created when missing), whatever is already there is
//! removed unless a directory meets a directory, the object is created with a single-name `*at`
//! call, and then owner, extended attributes and mode are set in that order (a `chown` clears
//! setuid bits and file capabilities, so they come after it). Non-directory mtimes are set at
//! once; directory mtimes at the end, when nothing will be created inside them any more.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use tar::EntryType;

use super::error::UnpackError;
use super::meta::{Meta, ReadMetaError};
use super::node::Node;
use super::path::{self, display, split};
use super::root::{self, Root};
use super::whiteout;
use super::xattrs;
use super::{UnpackStats, WhiteoutFormat};
use crate::oci::{Digest, DigestReader};

const COPY_BUFFER: usize = 128 * 1024;

/// Unpacks the tar stream `tar` (read from `layer`, named in errors) into `dest`. When
/// `expected_diff_id` is given, the uncompressed stream must hash to it.
pub(crate) fn unpack_stream(
    tar: impl Read,
    layer: &Path,
    dest: &Path,
    whiteouts: WhiteoutFormat,
    expected_diff_id: Option<&Digest>,
) -> Result<UnpackStats, UnpackError> {
    let (stats, read) = unpack_entries(DigestReader::new(tar), layer, dest, whiteouts, None)?;
    let (actual, _) = read.finish();
    if let Some(expected) = expected_diff_id
        && actual != *expected
    {
        return Err(UnpackError::DiffIdMismatch {
            layer: layer.to_path_buf(),
            expected: expected.clone(),
            actual,
        });
    }
    Ok(stats)
}

/// Unpacks `tar` into the empty directory `dest`, reads it to its end and gives it back, so
/// the caller can ask it what went through (a hash, a length). A regular file identical to the
/// one at its path in `donor` (an unpacked layer that is never written again: same content,
/// size, mode, owner and mtime, and no extended attributes on either) becomes a hard link to it
/// instead of a new file: a layer that differs from an earlier one in a few files costs a few
/// new inodes, not one per file.
pub(crate) fn unpack_entries<R: Read>(
    tar: R,
    layer: &Path,
    dest: &Path,
    whiteouts: WhiteoutFormat,
    donor: Option<&Path>,
) -> Result<(UnpackStats, R), UnpackError> {
    let read_err = |source| UnpackError::Read {
        layer: layer.to_path_buf(),
        source,
    };
    let root = Root::open(dest).map_err(|source| UnpackError::Destination {
        path: dest.to_path_buf(),
        source,
    })?;
    // A donor that cannot be opened only means no links.
    let donor = donor.and_then(|d| Root::open(d).ok());
    let mut unpacker = Unpacker {
        root,
        layer,
        whiteouts,
        as_root: rustix::process::geteuid().is_root(),
        stats: UnpackStats::default(),
        created: HashSet::new(),
        dir_times: BTreeMap::new(),
        buffer: vec![0; COPY_BUFFER],
        dest_dir: None,
        donor,
        donor_dir: None,
        donor_buffer: Vec::new(),
        donor_linked: HashSet::new(),
    };
    let mut archive = tar::Archive::new(tar);
    for item in archive.entries().map_err(read_err)? {
        let mut item = item.map_err(read_err)?;
        unpacker.entry(&mut item)?;
    }
    unpacker.set_dir_times()?;
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(read_err)?;
    Ok((unpacker.stats, rest))
}

/// The state of one unpack.
pub(crate) struct Unpacker<'a> {
    pub(crate) root: Root,
    pub(crate) layer: &'a Path,
    pub(crate) whiteouts: WhiteoutFormat,
    /// Whether `trusted.*` attributes may be set.
    as_root: bool,
    pub(crate) stats: UnpackStats,
    /// Clean paths this layer created (Apply mode only): an opaque directory keeps them.
    pub(crate) created: HashSet<Vec<u8>>,
    /// Directory mtimes to set once every entry is in place, by clean path.
    dir_times: BTreeMap<Vec<u8>, Timespec>,
    buffer: Vec<u8>,
    /// The destination directory last resolved, by clean path: entries come directory by
    /// directory, and resolving each one's parent again from the root costs a path walk per
    /// entry. Dropped whenever anything is removed, which may take that directory away.
    dest_dir: Option<(Vec<u8>, Rc<OwnedFd>)>,
    /// An earlier unpacked layer whose identical files are linked rather than written.
    donor: Option<Root>,
    /// The donor directory last opened, by clean path (the donor is never written, so it
    /// stays valid).
    donor_dir: Option<(Vec<u8>, Rc<OwnedFd>)>,
    /// The donor file's bytes, compared with the entry's.
    donor_buffer: Vec<u8>,
    /// The donor inodes (device, inode) already linked into this layer. Two regular files of
    /// a stream are two inodes even when the donor had them as one (hard links there, separate
    /// files now): a second path gets a file of its own, so that a later step changing one of
    /// them never sees the other as its hard link.
    donor_linked: HashSet<(u64, u64)>,
}

impl Unpacker<'_> {
    /// An error about `entry` while doing `action`.
    pub(crate) fn fail(
        &self,
        entry: &str,
        action: &'static str,
    ) -> impl FnOnce(io::Error) -> UnpackError + use<> {
        fail(self.layer, entry, action)
    }

    fn entry<R: Read>(&mut self, item: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let entry_type = item.header().entry_type();
        if matches!(
            entry_type,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let raw = item.path_bytes().into_owned();
        let name = display(&raw);
        self.stats.entries += 1;
        let Some(clean) = path::clean(&raw) else {
            return Err(UnpackError::EscapingPath {
                layer: self.layer.to_path_buf(),
                entry: name,
            });
        };
        let (parent, base) = split(&clean);
        if let Some(target) = base.strip_prefix(whiteout::PREFIX) {
            return whiteout::apply(self, parent, base, target, &name);
        }
        let meta = Meta::read(item).map_err(|e| match e {
            ReadMetaError::Io(source) => UnpackError::Read {
                layer: self.layer.to_path_buf(),
                source,
            },
            ReadMetaError::Field(field) => self.invalid_header(&name, field),
        })?;
        if clean.is_empty() {
            return self.root_entry(entry_type, &meta, &name);
        }
        let parent_fd = self
            .dest_dir(parent)
            .map_err(self.fail(&name, "create the parent directory of"))?;
        let parent_fd = parent_fd.as_fd();
        if entry_type == EntryType::Link {
            return self.hardlink(item, parent_fd, base, &clean, &name);
        }

        let existing = root::lstat(parent_fd, base).map_err(|e| self.fail(&name, "inspect")(e))?;
        let is_dir = entry_type == EntryType::Directory;
        let keep_existing = match &existing {
            Some(stat) => is_dir && root::is_dir(stat),
            None => false,
        };
        if existing.is_some() && !keep_existing {
            root::remove_all(parent_fd, base).map_err(self.fail(&name, "replace"))?;
            self.forget_dirs(&clean);
        }

        let layer = self.layer;
        let create = |e: Errno| fail(layer, &name, "create")(e.into());
        let node = match entry_type {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.stats.files += 1;
                match self.file_or_link(item, parent_fd, parent, base, &meta, &name)? {
                    Some(node) => node,
                    None => {
                        self.stats.linked += 1;
                        self.record(clean);
                        return Ok(());
                    }
                }
            }
            EntryType::Directory => {
                if !keep_existing {
                    rustix::fs::mkdirat(parent_fd, base, Mode::from_raw_mode(0o700))
                        .map_err(create)?;
                }
                self.stats.dirs += 1;
                let dir = root::open_dir(parent_fd, base).map_err(self.fail(&name, "open"))?;
                Node::Open(dir)
            }
            EntryType::Symlink => {
                let target = item
                    .link_name_bytes()
                    .ok_or_else(|| self.invalid_header(&name, "link name"))?;
                rustix::fs::symlinkat(&*target, parent_fd, base).map_err(create)?;
                self.stats.symlinks += 1;
                Node::handle(parent_fd, base).map_err(create)?
            }
            EntryType::Char | EntryType::Block => {
                let device = |field, value: io::Result<Option<u32>>| {
                    value.map_err(|_| self.invalid_header(&name, field))
                };
                let major = device("device major", item.header().device_major())?.unwrap_or(0);
                let minor = device("device minor", item.header().device_minor())?.unwrap_or(0);
                let file_type = if entry_type == EntryType::Char {
                    FileType::CharacterDevice
                } else {
                    FileType::BlockDevice
                };
                let dev = rustix::fs::makedev(major, minor);
                match rustix::fs::mknodat(parent_fd, base, file_type, Mode::empty(), dev) {
                    Ok(()) => {}
                    Err(Errno::PERM) => {
                        tracing::warn!(
                            layer = %self.layer.display(),
                            entry = %name,
                            "device node skipped: creating devices is not permitted here"
                        );
                        self.stats.skipped_devices += 1;
                        return Ok(());
                    }
                    Err(e) => return Err(create(e)),
                }
                self.stats.devices += 1;
                Node::handle(parent_fd, base).map_err(create)?
            }
            EntryType::Fifo => {
                rustix::fs::mknodat(parent_fd, base, FileType::Fifo, Mode::empty(), 0)
                    .map_err(create)?;
                self.stats.fifos += 1;
                Node::handle(parent_fd, base).map_err(create)?
            }
            other => {
                return Err(UnpackError::UnsupportedEntryType {
                    layer: self.layer.to_path_buf(),
                    entry: name,
                    typeflag: char::from(other.as_byte()),
                });
            }
        };
        self.set_meta(&node, entry_type == EntryType::Symlink, &meta, &name)?;
        let mtime = timespec(&meta);
        if is_dir {
            self.dir_times.insert(clean.clone(), mtime);
        } else {
            set_time(parent_fd, base, mtime).map_err(self.fail(&name, "set the mtime of"))?;
        }
        self.record(clean);
        Ok(())
    }

    /// The archive's own root (`./`): only a directory makes sense, and it gives the root its
    /// owner, mode and mtime.
    fn root_entry(
        &mut self,
        entry_type: EntryType,
        meta: &Meta,
        name: &str,
    ) -> Result<(), UnpackError> {
        if entry_type != EntryType::Directory {
            return Ok(());
        }
        let dir = root::open_dir(self.root.fd(), b".").map_err(self.fail(name, "open"))?;
        self.set_meta(&Node::Open(dir), false, meta, name)?;
        self.dir_times.insert(Vec::new(), timespec(meta));
        Ok(())
    }

    /// The donor's file at `parent`/`base`, open for reading, and its (device, inode), when
    /// its metadata is what this entry would give its new file and no other path of this layer
    /// links to it yet; the content is compared while reading the entry.
    fn donor_candidate(
        &mut self,
        parent: &[u8],
        base: &[u8],
        meta: &Meta,
        size: u64,
    ) -> Option<(File, (u64, u64))> {
        if !meta.xattrs.is_empty() {
            return None;
        }
        let dir = self.donor_dir(parent)?;
        let stat = root::lstat(dir.as_fd(), base).ok()??;
        let inode = (stat.st_dev, stat.st_ino);
        if self.donor_linked.contains(&inode) {
            return None;
        }
        let same = FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile
            && stat.st_size as u64 == size
            && stat.st_mode & 0o7777 == meta.mode & 0o7777
            && (stat.st_uid, stat.st_gid) == (meta.uid, meta.gid)
            && (stat.st_mtime, stat.st_mtime_nsec as i64)
                == (meta.mtime, i64::from(meta.mtime_nsec));
        if !same {
            return None;
        }
        let fd = open_unread(dir.as_fd(), base).ok()?;
        let has_xattrs = rustix::fs::flistxattr(&fd, &mut [0u8; 0][..]).map_or(true, |n| n > 0);
        (!has_xattrs).then(|| (File::from(fd), inode))
    }

    /// The donor's directory at clean path `parent` (the donor is never written, so a handle
    /// stays valid).
    fn donor_dir(&mut self, parent: &[u8]) -> Option<Rc<OwnedFd>> {
        if let Some((path, fd)) = &self.donor_dir
            && path == parent
        {
            return Some(fd.clone());
        }
        let fd = Rc::new(self.donor.as_ref()?.dir(parent).ok()?);
        self.donor_dir = Some((parent.to_vec(), fd.clone()));
        Some(fd)
    }

    /// The destination directory at clean path `parent`, created when missing.
    fn dest_dir(&mut self, parent: &[u8]) -> io::Result<Rc<OwnedFd>> {
        if let Some((path, fd)) = &self.dest_dir
            && path == parent
        {
            return Ok(fd.clone());
        }
        let fd = Rc::new(self.root.make_dirs(parent)?);
        self.dest_dir = Some((parent.to_vec(), fd.clone()));
        Ok(fd)
    }

    /// Makes the regular file `base` in `parent` (at clean directory path `parent_path`): a
    /// hard link to the donor's identical file, returning `None`, or a new file with the
    /// entry's content, returning it for its metadata.
    fn file_or_link<R: Read>(
        &mut self,
        item: &mut tar::Entry<'_, R>,
        parent: BorrowedFd<'_>,
        parent_path: &[u8],
        base: &[u8],
        meta: &Meta,
        name: &str,
    ) -> Result<Option<Node>, UnpackError> {
        let Some((mut donor, inode)) = self.donor_candidate(parent_path, base, meta, item.size())
        else {
            return self.file(item, parent, base, name, None).map(Some);
        };
        let read_err = |source| UnpackError::Read {
            layer: self.layer.to_path_buf(),
            source,
        };
        // Read the entry and the donor side by side until they differ.
        let mut matched: u64 = 0;
        loop {
            let n = crate::layer::read_full(item, &mut self.buffer).map_err(read_err)?;
            if n == 0 {
                break;
            }
            self.donor_buffer.resize(n, 0);
            let same = donor.read_exact(&mut self.donor_buffer).is_ok()
                && self.donor_buffer[..] == self.buffer[..n];
            if !same {
                // The first `matched` bytes are the donor's; the rest is the entry's.
                donor = donor_at_start(donor).map_err(read_err)?;
                let start = (donor.take(matched), n);
                return self.file(item, parent, base, name, Some(start)).map(Some);
            }
            matched += n as u64;
        }
        if let Some(dir) = self.donor_dir(parent_path)
            && rustix::fs::linkat(dir.as_fd(), base, parent, base, AtFlags::empty()).is_ok()
        {
            self.donor_linked.insert(inode);
            return Ok(None);
        }
        // Linking failed (another file system, too many links): copy the donor's bytes, which
        // are the entry's.
        let donor = donor_at_start(donor).map_err(read_err)?;
        self.file(item, parent, base, name, Some((donor.take(matched), 0)))
            .map(Some)
    }

    /// Creates a regular file and streams its content in: first, when given, `start` (a
    /// reader of the content's beginning, then the first `n` bytes of `self.buffer`), then the
    /// rest of the entry.
    fn file<R: Read>(
        &mut self,
        item: &mut tar::Entry<'_, R>,
        parent: BorrowedFd<'_>,
        base: &[u8],
        name: &str,
        start: Option<(io::Take<File>, usize)>,
    ) -> Result<Node, UnpackError> {
        let fd = rustix::fs::openat(
            parent,
            base,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| self.fail(name, "create")(e.into()))?;
        let mut file = File::from(fd);
        if let Some((mut head, n)) = start {
            let copied = io::copy(&mut head, &mut file).map_err(|e| self.fail(name, "write")(e))?;
            file.write_all(&self.buffer[..n])
                .map_err(|e| self.fail(name, "write")(e))?;
            self.stats.bytes += copied + n as u64;
        }
        loop {
            let n = match item.read(&mut self.buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(UnpackError::Read {
                        layer: self.layer.to_path_buf(),
                        source,
                    });
                }
            };
            file.write_all(&self.buffer[..n])
                .map_err(|e| self.fail(name, "write")(e))?;
            self.stats.bytes += n as u64;
        }
        Ok(Node::Open(file.into()))
    }

    /// Links `base` in `parent` to an existing non-directory inside the root. The link shares
    /// the target's inode, so it takes no metadata of its own.
    fn hardlink<R: Read>(
        &mut self,
        item: &tar::Entry<'_, R>,
        parent: BorrowedFd<'_>,
        base: &[u8],
        clean: &[u8],
        name: &str,
    ) -> Result<(), UnpackError> {
        let raw_target = item
            .link_name_bytes()
            .ok_or_else(|| self.invalid_header(name, "link name"))?;
        let written = display(&raw_target);
        let missing = || UnpackError::HardlinkTargetMissing {
            layer: self.layer.to_path_buf(),
            entry: name.to_string(),
            target: written.clone(),
        };
        let target = path::clean(&raw_target).ok_or_else(|| UnpackError::EscapingHardlink {
            layer: self.layer.to_path_buf(),
            entry: name.to_string(),
            target: written.clone(),
        })?;
        if target.is_empty() {
            return Err(missing());
        }
        let (target_parent, target_base) = split(&target);
        let target_dir = match self.root.dir(target_parent) {
            Ok(fd) => fd,
            Err(e) if is_missing(&e) => return Err(missing()),
            Err(e) => return Err(self.fail(name, "find the target of")(e)),
        };
        let target_stat = root::lstat(target_dir.as_fd(), target_base)
            .map_err(self.fail(name, "find the target of"))?;
        let Some(target_stat) = target_stat.filter(|s| !root::is_dir(s)) else {
            return Err(missing());
        };
        if let Some(existing) = root::lstat(parent, base).map_err(self.fail(name, "inspect"))? {
            if existing.st_dev == target_stat.st_dev && existing.st_ino == target_stat.st_ino {
                self.stats.hardlinks += 1;
                return Ok(());
            }
            root::remove_all(parent, base).map_err(self.fail(name, "replace"))?;
            self.forget_dirs(clean);
        }
        rustix::fs::linkat(
            target_dir.as_fd(),
            target_base,
            parent,
            base,
            AtFlags::empty(),
        )
        .map_err(|e| self.fail(name, "create")(e.into()))?;
        self.stats.hardlinks += 1;
        self.record(clean.to_vec());
        Ok(())
    }

    /// Owner, then extended attributes, then mode: `chown` clears setuid/setgid bits and file
    /// capabilities. Ownership or attributes this process may not set are counted, not fatal.
    fn set_meta(
        &mut self,
        node: &Node,
        is_symlink: bool,
        meta: &Meta,
        name: &str,
    ) -> Result<(), UnpackError> {
        match node.chown(meta.uid, meta.gid) {
            Ok(()) => {}
            Err(Errno::PERM | Errno::INVAL) => self.stats.skipped_ownership += 1,
            Err(e) => return Err(self.fail(name, "set the owner of")(e.into())),
        }
        for (key, value) in &meta.xattrs {
            if !xattrs::allowed(key, self.as_root) {
                self.stats.skipped_xattrs += 1;
                continue;
            }
            match node.set_xattr(key, value) {
                Ok(()) => {}
                Err(Errno::PERM | Errno::NOTSUP | Errno::ACCESS) => {
                    self.stats.skipped_xattrs += 1;
                }
                Err(e) => {
                    return Err(self.fail(name, "set an extended attribute of")(e.into()));
                }
            }
        }
        if !is_symlink {
            node.chmod(meta.mode)
                .map_err(|e| self.fail(name, "set the mode of")(e.into()))?;
        }
        Ok(())
    }

    /// Notes that this layer created `path`, for opaque directories in Apply mode, and that
    /// its parent directories hold something of this layer, whether the layer listed them or
    /// they were made for it: an opaque marker clears what they had, not them.
    pub(crate) fn record(&mut self, path: Vec<u8>) {
        if self.whiteouts != WhiteoutFormat::Apply {
            return;
        }
        let mut end = path.len();
        while let Some(slash) = path[..end].iter().rposition(|&b| b == b'/') {
            // A parent already noted had its own parents noted with it.
            if !self.created.insert(path[..slash].to_vec()) {
                break;
            }
            end = slash;
        }
        self.created.insert(path);
    }

    /// Drops pending directory mtimes at and under `path`, which was just removed, and the
    /// directory handle kept for the next entry, which may have gone with it.
    pub(crate) fn forget_dirs(&mut self, path: &[u8]) {
        self.dest_dir = None;
        let doomed: Vec<Vec<u8>> = self
            .dir_times
            .range(path.to_vec()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(path))
            .filter(|k| k.len() == path.len() || k[path.len()] == b'/')
            .cloned()
            .collect();
        for key in doomed {
            self.dir_times.remove(&key);
        }
    }

    /// Sets the mtimes of every directory the layer listed that is still a directory.
    fn set_dir_times(&mut self) -> Result<(), UnpackError> {
        for (clean, time) in std::mem::take(&mut self.dir_times) {
            let name = display(&clean);
            let (parent, base) = split(&clean);
            let (parent_fd, base) = if clean.is_empty() {
                (self.root.dir(b""), &b"."[..])
            } else {
                (self.root.dir(parent), base)
            };
            let parent_fd = match parent_fd {
                Ok(fd) => fd,
                Err(e) if is_missing(&e) => continue,
                Err(e) => return Err(self.fail(&name, "set the mtime of")(e)),
            };
            match root::lstat(parent_fd.as_fd(), base) {
                Ok(Some(stat)) if root::is_dir(&stat) => {}
                Ok(_) => continue,
                Err(e) => return Err(self.fail(&name, "set the mtime of")(e)),
            }
            set_time(parent_fd.as_fd(), base, time)
                .map_err(self.fail(&name, "set the mtime of"))?;
        }
        Ok(())
    }

    pub(crate) fn invalid_header(&self, name: &str, field: &'static str) -> UnpackError {
        UnpackError::InvalidHeader {
            layer: self.layer.to_path_buf(),
            entry: name.to_string(),
            field,
        }
    }
}

/// An error about `entry` of `layer` while doing `action`.
pub(crate) fn fail(
    layer: &Path,
    entry: &str,
    action: &'static str,
) -> impl FnOnce(io::Error) -> UnpackError + use<> {
    let (layer, entry) = (layer.to_path_buf(), entry.to_string());
    move |source| UnpackError::Entry {
        layer,
        entry,
        action,
        source,
    }
}

/// Opens `name` in `dir` to read it without updating its access time, which would cost a
/// journalled inode write per donor file (`O_NOATIME` needs the file's owner or
/// `CAP_FOWNER`; without them the file is opened as usual).
fn open_unread(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(dir, name, flags | OFlags::NOATIME, Mode::empty()) {
        Err(Errno::PERM) => rustix::fs::openat(dir, name, flags, Mode::empty()),
        other => other,
    }
}

fn donor_at_start(mut donor: File) -> io::Result<File> {
    donor.seek(io::SeekFrom::Start(0))?;
    Ok(donor)
}

/// Whether a lookup failed because a path component is missing or not a directory.
pub(crate) fn is_missing(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

fn timespec(meta: &Meta) -> Timespec {
    Timespec {
        tv_sec: meta.mtime,
        tv_nsec: i64::from(meta.mtime_nsec),
    }
}

/// Sets access and modification time of `base` in `parent`, not following a symlink.
fn set_time(parent: BorrowedFd<'_>, base: &[u8], time: Timespec) -> io::Result<()> {
    let times = Timestamps {
        last_access: time,
        last_modification: time,
    };
    Ok(rustix::fs::utimensat(
        parent,
        base,
        &times,
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}
