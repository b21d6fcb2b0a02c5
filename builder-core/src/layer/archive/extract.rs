//! Turns an archive into layer entries under the `ADD` destination, as Docker would extract it.
//!
//! The rules follow BuildKit's archive unpacking: entries are applied in archive order and a
//! later entry replaces an earlier one at the same path (a directory replacing a directory only
//! updates its metadata; anything else removes the old entry and, for a directory, everything
//! under it); missing parent directories are created `0755` and owned by root; entries placed
//! under a symlink made by the archive follow it; hard links must point at something extracted
//! earlier; PAX global headers are ignored. Paths are resolved with chroot semantics (see
//! [`root_path`](super::root_path)). The archive's root entry (`./`) is skipped: the caller
//! owns the destination directory itself.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::UNIX_EPOCH;

use tar::EntryType;

use super::numeric::parse_numeric;
use super::root_path;
use super::{ArchiveFormat, decoder};
use crate::layer::entry::{Content, Entry, EntryKind};
use crate::layer::error::LayerError;

/// How many symlinks may be followed while resolving one entry path (as BuildKit).
const MAX_SYMLINK_STEPS: usize = 255;

/// Reads the archive at `path` and returns its entries placed under `dest` (relative, no
/// leading `/`). Regular files are extracted into a new directory inside `scratch` and referred
/// to by [`Content::Path`], so memory use does not grow with the archive; the caller keeps
/// `scratch` until the layer is written and removes it afterwards.
///
/// Ownership, modes (including setuid, setgid and sticky), mtimes and `SCHILY.xattr.*`
/// extended attributes come from the archive headers; the caller may override ownership for
/// `--chown`. Directories implied by entry paths but missing from the archive are `0755`, owned
/// by `0:0`, with the archive file's mtime. Mtimes before the epoch become 0, as in BuildKit.
pub fn extract_archive_entries(
    path: &Path,
    format: ArchiveFormat,
    dest: &str,
    scratch: &Path,
) -> Result<Vec<Entry>, LayerError> {
    let read_err = |source| LayerError::ReadArchive {
        path: path.to_path_buf(),
        source,
    };
    let implied_mtime = fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(read_err)?
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let file = File::open(path).map_err(read_err)?;
    let scratch_dir = tempfile::Builder::new()
        .prefix("add-")
        .tempdir_in(scratch)
        .map_err(|source| LayerError::Scratch {
            path: scratch.to_path_buf(),
            source,
        })?
        .keep();

    let mut tree = Tree {
        archive: path,
        entries: BTreeMap::new(),
        implied_mtime,
    };
    let mut archive = tar::Archive::new(decoder(file, format));
    let mut extracted = 0usize;
    for item in archive.entries().map_err(read_err)? {
        let mut item = item.map_err(read_err)?;
        let entry_type = item.header().entry_type();
        if matches!(
            entry_type,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            continue;
        }
        let raw_name = utf8(path, &item.path_bytes())?;
        let name = root_path::clean(&raw_name);
        if name.is_empty() {
            continue;
        }
        let meta = HeaderMeta::read(&mut item, path, &raw_name)?;
        let is_dir = entry_type == EntryType::Directory;
        let target = tree.resolve(&name, is_dir, &raw_name)?;
        if target.is_empty() {
            continue;
        }
        tree.make_parents(&target, &raw_name)?;
        tree.remove_replaced(&target, is_dir);

        let kind = match entry_type {
            EntryType::Regular | EntryType::GNUSparse => {
                let content_path = scratch_dir.join(extracted.to_string());
                extracted += 1;
                spill(&mut item, path, &content_path)?;
                EntryKind::File(Content::Path(content_path))
            }
            EntryType::Directory => EntryKind::Dir,
            EntryType::Symlink => {
                let link = item.link_name_bytes().unwrap_or_default();
                EntryKind::Symlink(utf8(path, &link)?)
            }
            EntryType::Link => {
                let link = utf8(path, &item.link_name_bytes().unwrap_or_default())?;
                EntryKind::Hardlink(tree.hardlink_target(&link, &raw_name)?)
            }
            EntryType::Char | EntryType::Block => {
                let block = item.header().as_bytes();
                let device = |range: std::ops::Range<usize>, field| {
                    parse_numeric(&block[range])
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| LayerError::InvalidEntryHeader {
                            archive: path.to_path_buf(),
                            entry: raw_name.clone(),
                            field,
                        })
                };
                let major = device(329..337, "device major")?;
                let minor = device(337..345, "device minor")?;
                if entry_type == EntryType::Char {
                    EntryKind::CharDevice { major, minor }
                } else {
                    EntryKind::BlockDevice { major, minor }
                }
            }
            EntryType::Fifo => EntryKind::Fifo,
            other => {
                return Err(LayerError::UnsupportedEntryType {
                    archive: path.to_path_buf(),
                    entry: raw_name,
                    typeflag: char::from(other.as_byte()),
                });
            }
        };
        let entry = Entry {
            path: target.clone(),
            kind,
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            mtime: meta.mtime,
            xattrs: meta.xattrs,
        };
        tree.entries.insert(target, entry);
    }

    let dest = root_path::clean(dest);
    let place = |p: &str| {
        if dest.is_empty() {
            p.to_string()
        } else {
            format!("{dest}/{p}")
        }
    };
    Ok(tree
        .entries
        .into_values()
        .map(|mut entry| {
            entry.path = place(&entry.path);
            if let EntryKind::Hardlink(target) = &entry.kind {
                entry.kind = EntryKind::Hardlink(place(target));
            }
            entry
        })
        .collect())
}

/// The archive's entries so far, keyed by path relative to the extraction root.
struct Tree<'a> {
    archive: &'a Path,
    entries: BTreeMap<String, Entry>,
    implied_mtime: i64,
}

impl Tree<'_> {
    /// Follows symlinks made by the archive in every component of `name` but the last (and the
    /// last too when `follow_leaf`, as for directories).
    fn resolve(&self, name: &str, follow_leaf: bool, raw_name: &str) -> Result<String, LayerError> {
        let mut name = name.to_string();
        for _ in 0..MAX_SYMLINK_STEPS {
            let parts: Vec<&str> = name.split('/').filter(|p| !p.is_empty()).collect();
            let mut resolved = String::new();
            let mut redirected = None;
            for (i, part) in parts.iter().enumerate() {
                let candidate = if resolved.is_empty() {
                    (*part).to_string()
                } else {
                    format!("{resolved}/{part}")
                };
                let is_leaf = i + 1 == parts.len();
                if is_leaf && !follow_leaf {
                    resolved = candidate;
                    continue;
                }
                match self.entries.get(&candidate).map(|e| &e.kind) {
                    None => {
                        let rest = parts[i..].join("/");
                        return Ok(if resolved.is_empty() {
                            rest
                        } else {
                            format!("{resolved}/{rest}")
                        });
                    }
                    Some(EntryKind::Symlink(target)) => {
                        let rest = parts[i + 1..].join("/");
                        let followed = root_path::follow(&candidate, target);
                        redirected = Some(root_path::clean(&format!("{followed}/{rest}")));
                        break;
                    }
                    Some(_) => resolved = candidate,
                }
            }
            match redirected {
                Some(next) => name = next,
                None => return Ok(resolved),
            }
        }
        Err(LayerError::TooManySymlinks {
            archive: self.archive.to_path_buf(),
            entry: raw_name.to_string(),
        })
    }

    /// Creates the missing parents of `path` as `0755` root-owned directories; a parent that
    /// exists as anything but a directory is an error.
    fn make_parents(&mut self, path: &str, raw_name: &str) -> Result<(), LayerError> {
        let mut end = 0;
        while let Some(offset) = path[end..].find('/') {
            end += offset;
            let parent = &path[..end];
            match self.entries.get(parent).map(|e| &e.kind) {
                Some(EntryKind::Dir) => {}
                Some(_) => {
                    return Err(LayerError::NotADirectory {
                        archive: self.archive.to_path_buf(),
                        entry: raw_name.to_string(),
                        parent: parent.to_string(),
                    });
                }
                None => {
                    let dir = Entry::dir(parent, 0o755, 0, 0, self.implied_mtime);
                    self.entries.insert(parent.to_string(), dir);
                }
            }
            end += 1;
        }
        Ok(())
    }

    /// Removes what is at `path` unless both it and the new entry are directories; a removed
    /// directory takes its contents with it.
    fn remove_replaced(&mut self, path: &str, new_is_dir: bool) {
        let Some(old) = self.entries.get(path) else {
            return;
        };
        let old_is_dir = old.kind == EntryKind::Dir;
        if old_is_dir && new_is_dir {
            return;
        }
        self.entries.remove(path);
        if old_is_dir {
            let prefix = format!("{path}/");
            let children: Vec<String> = self
                .entries
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, _)| k.clone())
                .collect();
            for child in children {
                self.entries.remove(&child);
            }
        }
    }

    /// The root-relative path a hard link named `link` in the archive points at.
    fn hardlink_target(&self, link: &str, raw_name: &str) -> Result<String, LayerError> {
        let missing = || LayerError::ArchiveHardlinkTarget {
            archive: self.archive.to_path_buf(),
            entry: raw_name.to_string(),
            target: link.to_string(),
        };
        let cleaned = root_path::clean(link);
        if cleaned.is_empty() {
            return Err(missing());
        }
        let target = self.resolve(&cleaned, false, raw_name)?;
        match self.entries.get(&target).map(|e| &e.kind) {
            None | Some(EntryKind::Dir) => Err(missing()),
            Some(_) => Ok(target),
        }
    }
}

/// Metadata from an entry's header and PAX records.
struct HeaderMeta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: BTreeMap<String, Vec<u8>>,
}

impl HeaderMeta {
    fn read<R: io::Read>(
        item: &mut tar::Entry<'_, R>,
        archive: &Path,
        raw_name: &str,
    ) -> Result<HeaderMeta, LayerError> {
        let invalid = |field| LayerError::InvalidEntryHeader {
            archive: archive.to_path_buf(),
            entry: raw_name.to_string(),
            field,
        };
        let mut pax_uid = None;
        let mut pax_gid = None;
        let mut pax_mtime = None;
        let mut xattrs = BTreeMap::new();
        let extensions = item
            .pax_extensions()
            .map_err(|source| LayerError::ReadArchive {
                path: archive.to_path_buf(),
                source,
            })?;
        for extension in extensions.into_iter().flatten() {
            let extension = extension.map_err(|source| LayerError::ReadArchive {
                path: archive.to_path_buf(),
                source,
            })?;
            let key = extension.key_bytes();
            let value = extension.value_bytes();
            match key {
                b"uid" => pax_uid = Some(parse_decimal(value).ok_or_else(|| invalid("uid"))?),
                b"gid" => pax_gid = Some(parse_decimal(value).ok_or_else(|| invalid("gid"))?),
                b"mtime" => {
                    pax_mtime = Some(parse_pax_time(value).ok_or_else(|| invalid("mtime"))?)
                }
                _ => {
                    if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                        let name = String::from_utf8(name.to_vec())
                            .map_err(|_| invalid("extended attribute name"))?;
                        xattrs.insert(name, value.to_vec());
                    }
                }
            }
        }
        let block = item.header().as_bytes();
        let field = |range: std::ops::Range<usize>, name| {
            parse_numeric(&block[range]).ok_or_else(|| invalid(name))
        };
        let mode = field(100..108, "mode")?;
        let uid = match pax_uid {
            Some(uid) => uid,
            None => field(108..116, "uid")?,
        };
        let gid = match pax_gid {
            Some(gid) => gid,
            None => field(116..124, "gid")?,
        };
        let mtime = match pax_mtime {
            Some(mtime) => mtime,
            None => field(136..148, "mtime")?,
        };
        Ok(HeaderMeta {
            mode: (mode & 0o7777) as u32,
            uid: u32::try_from(uid).map_err(|_| invalid("uid"))?,
            gid: u32::try_from(gid).map_err(|_| invalid("gid"))?,
            mtime: mtime.max(0),
            xattrs,
        })
    }
}

fn parse_decimal(value: &[u8]) -> Option<i64> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Whole seconds of a PAX time (`"1700000000.5"`, `"-3"`), rounded toward negative infinity.
fn parse_pax_time(value: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(value).ok()?;
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let seconds: i64 = whole.parse().ok()?;
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let has_fraction = fraction.bytes().any(|b| b != b'0');
    Some(if whole.starts_with('-') && has_fraction {
        seconds - 1
    } else {
        seconds
    })
}

fn utf8(archive: &Path, bytes: &[u8]) -> Result<String, LayerError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| LayerError::NonUtf8EntryName {
        archive: archive.to_path_buf(),
        name: String::from_utf8_lossy(bytes).into_owned(),
    })
}

/// Streams one entry's content into a new file, telling archive read errors from scratch
/// write errors.
fn spill<R: io::Read>(
    item: &mut tar::Entry<'_, R>,
    archive: &Path,
    to: &Path,
) -> Result<(), LayerError> {
    let scratch_err = |source| LayerError::Scratch {
        path: to.to_path_buf(),
        source,
    };
    let mut file = File::options()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(scratch_err)?;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match item.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(LayerError::ReadArchive {
                    path: archive.to_path_buf(),
                    source,
                });
            }
        };
        file.write_all(&buffer[..n]).map_err(scratch_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_round_down() {
        assert_eq!(parse_pax_time(b"1700000000.75"), Some(1_700_000_000));
        assert_eq!(parse_pax_time(b"-3"), Some(-3));
        assert_eq!(parse_pax_time(b"-3.5"), Some(-4));
        assert_eq!(parse_pax_time(b"x"), None);
    }
}
