//! A stage's filesystem as metadata: every path with its type, mode, owner and where its bytes
//! are, without copying any file.
//!
//! COPY needs to know what exists (is the destination a directory? does `/etc/passwd` name
//! `app`?), and `COPY --from` needs to read another stage's files. Keeping the tree as metadata
//! plus a [`Content`] pointer makes both cheap: nothing is extracted or copied until a layer is
//! written, and then it is streamed.

use std::collections::BTreeMap;
use std::io::Read;

use crate::oci::entry::{OPAQUE_WHITEOUT, WHITEOUT_PREFIX};
use crate::oci::{Content, Entry, EntryKind};

/// The most symlinks followed while resolving one path, as Linux's `MAXSYMLINKS`.
const MAX_SYMLINKS: usize = 40;

/// A filesystem tree made from layers.
#[derive(Debug, Clone, Default)]
pub struct FsTree {
    /// Relative path (`etc/passwd`) → what is there. The root is implicit.
    nodes: BTreeMap<String, Entry>,
}

/// A path that could not be resolved inside a tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FsError {
    /// Nothing at that path.
    #[error("`/{0}` does not exist")]
    NotFound(String),
    /// More than 40 links (Linux's `MAXSYMLINKS`).
    #[error("too many levels of symbolic links resolving `/{0}`")]
    SymlinkLoop(String),
    /// A path component that should be a directory is not.
    #[error("`/{0}` is not a directory")]
    NotADirectory(String),
}

impl FsTree {
    /// An empty tree (`FROM scratch`).
    pub fn new() -> FsTree {
        FsTree::default()
    }

    /// Applies a layer's entries on top: whiteouts delete, opaque markers hide what was below a
    /// directory, anything else replaces what was at its path (and, when a directory is replaced
    /// by something else, everything under it).
    pub fn apply(&mut self, entries: &[Entry]) {
        let mut links = Vec::new();
        for e in entries {
            let (parent, name) = split_parent(&e.path);
            if name == OPAQUE_WHITEOUT {
                self.remove_children(parent);
                continue;
            }
            if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) {
                let path = join(parent, target);
                self.remove_tree(&path);
                continue;
            }
            if !matches!(e.kind, EntryKind::Dir) || !self.is_dir(&e.path) {
                self.remove_tree(&e.path);
            }
            if let EntryKind::Hardlink(_) = e.kind {
                links.push(e);
            }
            self.nodes.insert(e.path.clone(), e.clone());
        }
        // A hard link shares its target's bytes; the tree only needs where they are. Targets
        // may come later in the batch than their links (`a-b` sorts before `a/x`), so links are
        // resolved once everything else is in.
        for link in links {
            let EntryKind::Hardlink(target) = &link.kind else {
                continue;
            };
            if let Some(kind) = self.nodes.get(target).map(|t| t.kind.clone())
                && let Some(node) = self.nodes.get_mut(&link.path)
            {
                node.kind = kind;
            }
        }
    }

    fn remove_children(&mut self, dir: &str) {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let doomed: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
    }

    fn remove_tree(&mut self, path: &str) {
        if self.nodes.remove(path).is_some() {
            self.remove_children(path);
        }
    }

    /// What is at `path` exactly (no symlinks followed).
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.nodes.get(path)
    }

    /// Whether `path` is a directory (the root always is).
    pub fn is_dir(&self, path: &str) -> bool {
        path.is_empty() || matches!(self.nodes.get(path).map(|e| &e.kind), Some(EntryKind::Dir))
    }

    /// The direct and indirect children of directory `dir`, sorted, with their relative paths.
    pub fn descendants<'a>(&'a self, dir: &str) -> impl Iterator<Item = (&'a str, &'a Entry)> + 'a {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let start = prefix.clone();
        self.nodes
            .range(start..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| (k.as_str(), v))
    }

    /// Resolves `path` (relative or absolute, as in the image) to the path it denotes, following
    /// symlinks in every component (and in the last one when `follow_last`), with absolute link
    /// targets and `..` kept inside the tree: the root is `/` for the image, never the host's.
    /// A missing last component is not an error: the result is where it would be.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Result<String, FsError> {
        let mut pending: Vec<String> = components(path).map(str::to_string).collect();
        pending.reverse();
        let mut resolved: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            match part.as_str() {
                "." => continue,
                ".." => {
                    resolved.pop();
                    continue;
                }
                _ => {}
            }
            let candidate = if resolved.is_empty() {
                part.clone()
            } else {
                format!("{}/{part}", resolved.join("/"))
            };
            let is_last = pending.is_empty();
            match self.nodes.get(&candidate).map(|e| &e.kind) {
                Some(EntryKind::Symlink(target)) if !is_last || follow_last => {
                    hops += 1;
                    if hops > MAX_SYMLINKS {
                        return Err(FsError::SymlinkLoop(
                            path.trim_start_matches('/').to_string(),
                        ));
                    }
                    if target.starts_with('/') {
                        resolved.clear();
                    }
                    let mut parts: Vec<String> = components(target).map(str::to_string).collect();
                    parts.reverse();
                    pending.extend(parts);
                }
                Some(EntryKind::Dir) | None => resolved.push(part),
                Some(_) if is_last => resolved.push(part),
                Some(_) => return Err(FsError::NotADirectory(candidate)),
            }
        }
        Ok(resolved.join("/"))
    }

    /// Reads a small file (`/etc/passwd`), following symlinks.
    pub fn read_small_file(&self, path: &str) -> Option<Vec<u8>> {
        let resolved = self.resolve(path, true).ok()?;
        match &self.nodes.get(&resolved)?.kind {
            EntryKind::File(Content::Bytes(b)) => Some(b.to_vec()),
            EntryKind::File(Content::Path(p)) => {
                let mut buf = Vec::new();
                std::fs::File::open(p)
                    .ok()?
                    .take(16 << 20)
                    .read_to_end(&mut buf)
                    .ok()?;
                Some(buf)
            }
            _ => None,
        }
    }
}

fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty())
}

/// Splits `a/b/c` into (`a/b`, `c`); a top-level name has parent `""`.
pub(crate) fn split_parent(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((p, n)) => (p, n),
        None => ("", path),
    }
}

/// Joins a relative parent and a name.
pub(crate) fn join(parent: &str, name: &str) -> String {
    crate::context::join_rel(parent, name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn file(path: &str, body: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File(Content::Bytes(Arc::from(body.as_bytes()))),
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Default::default(),
        }
    }

    fn link(path: &str, target: &str) -> Entry {
        Entry {
            kind: EntryKind::Symlink(target.into()),
            ..file(path, "")
        }
    }

    #[test]
    fn whiteouts_and_opaque_dirs_remove_lower_paths() {
        let mut t = FsTree::new();
        t.apply(&[
            Entry::dir("a", 0o755, 0, 0, 0),
            file("a/x", "1"),
            file("a/y", "2"),
            Entry::dir("b", 0o755, 0, 0, 0),
            file("b/z", "3"),
        ]);
        t.apply(&[
            Entry::whiteout("a/x", 0),
            file(&format!("b/{OPAQUE_WHITEOUT}"), ""),
        ]);
        assert!(t.get("a/x").is_none());
        assert!(t.get("a/y").is_some());
        assert!(t.get("b").is_some());
        assert!(t.get("b/z").is_none());
    }

    #[test]
    fn symlinks_resolve_inside_the_tree() {
        let mut t = FsTree::new();
        t.apply(&[
            Entry::dir("usr", 0o755, 0, 0, 0),
            Entry::dir("usr/bin", 0o755, 0, 0, 0),
            link("bin", "/usr/bin"),
            link("escape", "../../../../etc"),
            link("loop", "loop"),
        ]);
        assert_eq!(t.resolve("/bin/sh", true).unwrap(), "usr/bin/sh");
        assert_eq!(t.resolve("escape/passwd", true).unwrap(), "etc/passwd");
        assert_eq!(t.resolve("bin", false).unwrap(), "bin");
        assert!(matches!(
            t.resolve("loop/x", true),
            Err(FsError::SymlinkLoop(_))
        ));
    }

    #[test]
    fn hard_links_take_their_targets_content_whatever_the_order() {
        let mut t = FsTree::new();
        let link = Entry {
            kind: EntryKind::Hardlink("a/x".into()),
            ..file("a-b", "")
        };
        t.apply(&[link, Entry::dir("a", 0o755, 0, 0, 0), file("a/x", "shared")]);
        assert_eq!(t.read_small_file("/a-b").unwrap(), b"shared");
    }

    #[test]
    fn replacing_a_directory_with_a_file_drops_its_children() {
        let mut t = FsTree::new();
        t.apply(&[Entry::dir("d", 0o755, 0, 0, 0), file("d/f", "x")]);
        t.apply(&[file("d", "now a file")]);
        assert!(t.get("d/f").is_none());
        assert_eq!(t.read_small_file("/d").unwrap(), b"now a file");
    }
}
