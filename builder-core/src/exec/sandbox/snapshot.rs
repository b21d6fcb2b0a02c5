//! Chroot isolation's change capture: the metadata of every path before the step, compared
//! with the tree after it.
//!
//! The comparison mirrors what overlayfs would have put in an upper dir, so both isolations
//! give the same entries for the same step:
//! - a path whose inode was modified is emitted whole (overlayfs copies it up). The inode's
//!   change time catches every modification, content and xattrs included, and cannot be set
//!   from user space, so no content is hashed. A change time moved only by a link count change
//!   (another name of the file created or removed) does not count, as in overlayfs;
//! - a path replaced by a new inode (different inode number or birth time), or of a different
//!   type, is emitted as new; a directory created where something was deleted is opaque
//!   (`.wh..wh..opq`) with all its contents, as overlayfs makes it;
//! - a deleted path becomes a whiteout, unless a deleted or replaced parent already covers it;
//! - a new name for an existing file (`ln`) also emits the file's other names (overlayfs
//!   copies the link source up);
//! - every emitted path brings its parent directories.
//!
//! Directory change times are ignored: a directory's own changes show in its mode, owner or
//! mtime, and its children's changes in their own entries.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::{AtFlags, StatxFlags};
use walkdir::WalkDir;

use crate::oci::Entry;

use super::SandboxError;
use super::disk;

/// What is compared for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Meta {
    /// `S_IFMT` bits.
    kind: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, u32),
    ctime: (i64, u32),
    dev: u64,
    ino: u64,
    /// Birth time when the file system records it: tells a recreated inode from one whose
    /// number was reused.
    btime: Option<(i64, u32)>,
    nlink: u64,
    rdev: u64,
}

const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;

impl Meta {
    fn read(path: &Path) -> Result<Meta, SandboxError> {
        let st = rustix::fs::statx(
            rustix::fs::CWD,
            path,
            AtFlags::SYMLINK_NOFOLLOW,
            StatxFlags::BASIC_STATS | StatxFlags::BTIME,
        )
        .map_err(|e| SandboxError::io("inspect", path, e.into()))?;
        let time = |t: rustix::fs::StatxTimestamp| (t.tv_sec, t.tv_nsec);
        let has_btime = StatxFlags::from_bits_retain(st.stx_mask).contains(StatxFlags::BTIME);
        Ok(Meta {
            kind: u32::from(st.stx_mode) & S_IFMT,
            mode: u32::from(st.stx_mode) & 0o7777,
            uid: st.stx_uid,
            gid: st.stx_gid,
            size: st.stx_size,
            mtime: time(st.stx_mtime),
            ctime: time(st.stx_ctime),
            dev: rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
            ino: st.stx_ino,
            btime: has_btime.then(|| time(st.stx_btime)),
            nlink: u64::from(st.stx_nlink),
            rdev: rustix::fs::makedev(st.stx_rdev_major, st.stx_rdev_minor),
        })
    }

    fn is_dir(&self) -> bool {
        self.kind == S_IFDIR
    }

    fn same_inode(&self, other: &Meta) -> bool {
        self.kind == other.kind
            && self.dev == other.dev
            && self.ino == other.ino
            && self.btime == other.btime
    }

    fn modified(&self, before: &Meta) -> bool {
        let basic = self.mode != before.mode
            || self.uid != before.uid
            || self.gid != before.gid
            || self.mtime != before.mtime;
        if self.is_dir() {
            return basic;
        }
        basic
            || self.size != before.size
            || self.rdev != before.rdev
            || (self.ctime != before.ctime && self.nlink == before.nlink)
    }
}

/// The state of a root directory before a step, to find what the step changed (chroot
/// isolation; see the module docs for the rules).
#[derive(Debug, Clone)]
pub struct Snapshot {
    paths: BTreeMap<String, Meta>,
}

fn scan(root: &Path) -> Result<BTreeMap<String, Meta>, SandboxError> {
    let mut paths = BTreeMap::new();
    for item in WalkDir::new(root).min_depth(1).follow_links(false) {
        let item = item.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            SandboxError::io("walk", path, e.into())
        })?;
        let rel = disk::relative(root, item.path())?;
        paths.insert(rel, Meta::read(item.path())?);
    }
    Ok(paths)
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

impl Snapshot {
    /// Records the metadata of every path under `root`.
    pub fn take(root: &Path) -> Result<Snapshot, SandboxError> {
        Ok(Snapshot { paths: scan(root)? })
    }

    /// The layer entries for what changed under `root` since [`Snapshot::take`], the same
    /// entries [`upper_to_entries`](super::upper_to_entries) gives for the same step. File
    /// contents point into `root`, so write the layer before the next step changes it.
    pub fn diff(&self, root: &Path) -> Result<Vec<Entry>, SandboxError> {
        let now = scan(root)?;
        let mut emit: BTreeSet<&str> = BTreeSet::new();
        // Directories created where something else was: opaque, with all their contents.
        let mut opaque: BTreeSet<&str> = BTreeSet::new();
        for (path, meta) in &now {
            let under_opaque = ancestors(path).any(|a| opaque.contains(a));
            match self.paths.get(path) {
                _ if under_opaque => {
                    emit.insert(path);
                }
                None => {
                    emit.insert(path);
                }
                Some(before) if !meta.same_inode(before) => {
                    emit.insert(path);
                    if meta.is_dir() {
                        opaque.insert(path);
                    }
                }
                Some(before) if meta.modified(before) => {
                    emit.insert(path);
                }
                Some(_) => {}
            }
        }
        // Deletions: only where the parent still is the same directory.
        let mut whiteouts = Vec::new();
        for path in self.paths.keys() {
            if now.contains_key(path) {
                continue;
            }
            let dir = parent(path);
            let parent_kept = dir.is_empty()
                || matches!(
                    (now.get(dir), self.paths.get(dir)),
                    (Some(n), Some(b)) if n.same_inode(b)
                ) && !opaque.contains(dir);
            if parent_kept {
                whiteouts.push(path.as_str());
            }
        }
        // New names of existing files bring the files' other names (the copied-up source).
        let mut by_inode: HashMap<(u64, u64), Vec<&str>> = HashMap::new();
        for (path, meta) in &now {
            if meta.kind == S_IFREG && meta.nlink > 1 {
                by_inode.entry((meta.dev, meta.ino)).or_default().push(path);
            }
        }
        let linked: Vec<&str> = emit
            .iter()
            .filter(|p| !self.paths.contains_key(**p))
            .filter_map(|p| now.get(*p).map(|m| (m.dev, m.ino)))
            .filter_map(|inode| by_inode.get(&inode))
            .flatten()
            .copied()
            .collect();
        emit.extend(linked);
        // Parents of everything emitted.
        let with_parents: Vec<&str> = emit
            .iter()
            .copied()
            .chain(whiteouts.iter().copied())
            .flat_map(ancestors)
            .collect();
        emit.extend(with_parents.into_iter().filter(|a| now.contains_key(*a)));

        let mut entries = Vec::new();
        for path in &emit {
            let host = root.join(path);
            let meta = std::fs::symlink_metadata(&host)
                .map_err(|e| SandboxError::io("inspect", &host, e))?;
            let Some(entry) = disk::entry(path, &host, &meta)? else {
                continue;
            };
            let inode = (meta.is_file() && meta.nlink() > 1).then(|| (meta.dev(), meta.ino()));
            if opaque.contains(path) {
                entries.push((disk::opaque_marker(path, meta.mtime()), None));
            }
            entries.push((entry, inode));
        }
        for path in whiteouts {
            let dir = parent(path);
            let mtime = now.get(dir).map_or(0, |m| m.mtime.0);
            entries.push((Entry::whiteout(path, mtime), None));
        }
        Ok(disk::sort_and_link(&mut entries))
    }
}

/// The proper ancestors of a relative path, nearest first (`a/b/c` → `a/b`, `a`).
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(parent(path)), |p| Some(parent(p))).take_while(|p| !p.is_empty())
}
